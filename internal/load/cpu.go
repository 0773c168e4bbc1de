package load

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc/PID/stat's CPU times: USER_HZ, 100 on
// every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// processCPU returns the CPU time (user and system) pid has used so far,
// from /proc/PID/stat (Linux). It returns an error where there is no such
// file or it cannot be read.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields from the last ')'. utime and stime are fields 14, 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	var total time.Duration
	for _, field := range f[11:13] {
		n, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		total += time.Duration(n) * clockTick
	}
	return total, nil
}

// cpuMeter measures the CPU time named processes use during a timed phase.
type cpuMeter struct {
	pids  map[string]int
	start map[string]time.Duration
}

func newCPUMeter(pids map[string]int) *cpuMeter {
	m := &cpuMeter{pids: pids, start: map[string]time.Duration{}}
	for name, pid := range pids {
		if t, err := processCPU(pid); err == nil {
			m.start[name] = t
		}
	}
	return m
}

// perCall returns each process's CPU time since newCPUMeter in µs per one
// of calls; nil without calls. A process that could not be read is left
// out.
func (m *cpuMeter) perCall(calls int64) map[string]float64 {
	if calls <= 0 || len(m.start) == 0 {
		return nil
	}
	out := map[string]float64{}
	for name, t0 := range m.start {
		t1, err := processCPU(m.pids[name])
		if err != nil {
			continue
		}
		out[name] = float64((t1 - t0).Microseconds()) / float64(calls)
	}
	return out
}
