package load

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var out []time.Duration
		for _, n := range ns {
			out = append(out, time.Duration(n)*time.Millisecond)
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"Empty", nil, 50, 0},
		{"One", ms(7), 99, 7 * time.Millisecond},
		{"MedianOfFour", ms(1, 2, 3, 4), 50, 2 * time.Millisecond}, // nearest rank: ceil(0.5*4) = 2nd
		{"P90OfHundred", hundred, 90, 90 * time.Millisecond},
		{"P99OfHundred", hundred, 99, 99 * time.Millisecond},
		{"P100IsMax", hundred, 100, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(p%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	var b strings.Builder
	err := WriteTable(&b, []Result{
		{Scenario: "exchange", RPC: "ExchangePublicToken", Transport: GRPC, Concurrency: 4, Requests: 12, OK: 9,
			Errors: map[string]int64{"Unavailable": 2, "Internal": 1}, FirstError: "boom", Minted: 12, Exhausted: true,
			CPUPerCall: map[string]float64{"linkd": 310.4, "emulator": 120}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"exchange", "ExchangePublicToken", "Internal:1 Unavailable:2", "used all 12 pre-minted tokens", "first error: boom", "emulator=120 linkd=310"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// processCPU reads this process's CPU time, which grows as it works.
func TestProcessCPU(t *testing.T) {
	t0, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatalf("processCPU: %v", err)
	}
	for i := 0; ; i++ {
		t1, err := processCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if t1 > t0 {
			break
		}
		if i == 1e6 {
			t.Fatalf("CPU time stayed at %v over a million reads of /proc", t0)
		}
	}
	if _, err := processCPU(-1); err == nil {
		t.Error("processCPU(-1): no error")
	}
}

// An open-loop run counts latency from when a call was due: one caller
// whose calls take 20 ms, with calls due every 5 ms, falls behind, and the
// queueing shows in the percentiles; a closed loop would report ~20 ms.
func TestRunScenario_OpenLoopCountsQueueing(t *testing.T) {
	slow := sleepScenario(20 * time.Millisecond)
	r := &run{cfg: Config{Concurrency: 1, Rate: 200, MaxRequests: 10, Timeout: time.Second}}
	res, err := runScenario(context.Background(), r, slow)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 10 || res.Rate != 200 {
		t.Fatalf("ok %d rate %v, want 10 calls at 200/s", res.OK, res.Rate)
	}
	// The 10th call is due at 45 ms and cannot start before 9 calls of
	// 20 ms have finished (180 ms): at least 155 ms from due to answered.
	if res.MaxMs < 155 {
		t.Errorf("max latency %.1f ms, want ≥ 155 ms (time queued behind the busy caller)", res.MaxMs)
	}
	r.cfg.Rate = 0
	if res, err = runScenario(context.Background(), r, slow); err != nil {
		t.Fatal(err)
	}
	if res.Rate != 0 || res.OK != 10 {
		t.Fatalf("closed loop: ok %d rate %v", res.OK, res.Rate)
	}
}

// An open loop the server cannot keep up with still makes every call due
// before the deadline: the backlog is measured, not dropped.
func TestRunScenario_OpenLoopMakesEveryDueCall(t *testing.T) {
	slow := sleepScenario(10 * time.Millisecond)
	// 20 calls due in 40 ms, one caller taking 10 ms each: ≥ 200 ms.
	r := &run{cfg: Config{Concurrency: 1, Rate: 500, Duration: 40 * time.Millisecond, Timeout: time.Second}}
	res, err := runScenario(context.Background(), r, slow)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 20 || res.OK != 20 {
		t.Errorf("requests %d ok %d, want all 20 calls due before the deadline", res.Requests, res.OK)
	}
	if res.Seconds < 0.19 {
		t.Errorf("run took %.3fs, want ≥ 0.19s: the backlog is made, not dropped", res.Seconds)
	}
	if res.MaxMs < 150 {
		t.Errorf("max latency %.1f ms, want ≥ 150 ms (the 20th call, due at 38 ms, starts after 190 ms)", res.MaxMs)
	}
	if res.Exhausted {
		t.Error("Exhausted without consuming tokens")
	}
}

func TestRun_RefusesBadRate(t *testing.T) {
	for _, rate := range []float64{-1, math.NaN(), math.Inf(1)} {
		_, err := Run(context.Background(), Config{Concurrency: 1, Duration: time.Second, APIKey: "k", Rate: rate})
		if err == nil || !strings.Contains(err.Error(), "rate") {
			t.Errorf("rate %v: error %v, want one naming the rate", rate, err)
		}
	}
}

// sleepScenario is a scenario whose every call takes d.
func sleepScenario(d time.Duration) Scenario {
	return Scenario{Name: "slow", RPC: "Slow", prepare: func(context.Context, *run) (call, error) {
		return func(context.Context, int, int64) error {
			time.Sleep(d)
			return nil
		}, nil
	}}
}
