package load

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
)

// WriteTable writes results as an aligned text table, one row per
// scenario, and a note under it for each run that ran out of minted tokens
// or had errors. It returns the first write error.
func WriteTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trpc\ttransport\tc\trate\trequests\tok\trps\tp50 ms\tp90 ms\tp99 ms\tmax ms\terrors\tcpu µs/call\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%s\t\n",
			r.Scenario, r.RPC, r.Transport, r.Concurrency, rate(r.Rate), r.Requests, r.OK, r.Throughput, r.P50ms, r.P90ms, r.P99ms, r.MaxMs, errorCounts(r.Errors), cpuPerCall(r.CPUPerCall))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		if r.Exhausted {
			if _, err := fmt.Fprintf(w, "%s: used all %d pre-minted tokens in %.1fs; raise -mint-time or set -n\n", r.Scenario, r.Minted, r.Seconds); err != nil {
				return err
			}
		}
		if r.FirstError != "" {
			if _, err := fmt.Fprintf(w, "%s: first error: %s\n", r.Scenario, r.FirstError); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteJSON writes results as an indented JSON array. It returns the write
// error.
func WriteJSON(w io.Writer, results []Result) error {
	if results == nil {
		results = []Result{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(results)
}

// rate renders an open-loop run's arrival rate, or "-" for a closed loop.
func rate(r float64) string {
	if r <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f/s", r)
}

// errorCounts renders counts by code as "Unavailable:3 Internal:1", or "0".
func errorCounts(errs map[string]int64) string {
	if len(errs) == 0 {
		return "0"
	}
	codes := make([]string, 0, len(errs))
	for c := range errs {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%s:%d", c, errs[c])
	}
	return strings.Join(parts, " ")
}

// cpuPerCall renders CPU per call by process as "emulator=120 linkd=310",
// or "-".
func cpuPerCall(cpu map[string]float64) string {
	if len(cpu) == 0 {
		return "-"
	}
	names := slices.Sorted(maps.Keys(cpu))
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%.0f", n, cpu[n])
	}
	return strings.Join(parts, " ")
}
