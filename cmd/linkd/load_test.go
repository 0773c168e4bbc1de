package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/linkd/linkd/internal/load"
)

// Flags of TestLoad_Scenarios, to profile linkd under one scenario (it
// logs the CPU time per call of each scenario too):
//
//	go test -count=1 -run 'TestLoad_Scenarios/grpc' ./cmd/linkd -args \
//	  -load.scenarios=submit-connected -load.c=16 -load.d=10s -load.cpuprofile=submit.prof
var (
	loadScenarios  = flag.String("load.scenarios", "", "comma-separated scenarios of TestLoad_Scenarios; empty: all")
	loadC          = flag.Int("load.c", 4, "concurrency of TestLoad_Scenarios")
	loadD          = flag.Duration("load.d", time.Second, "duration of each scenario of TestLoad_Scenarios")
	loadCPUProfile = flag.String("load.cpuprofile", "", "write a CPU profile of TestLoad_Scenarios' timed phases (client and server: one process) to this file")
)

// The load tool (cmd/linkd-load, internal/load) against a real linkd: every
// scenario for about a second over each transport. It asserts that calls
// succeed and each scenario is reported, nothing about timing. It lives
// here because this package's Main is what it needs to start.
func TestLoad_Scenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("runs each scenario for a second")
	}
	ts := MustStartServer(t)
	var names []string
	for _, s := range load.Scenarios {
		names = append(names, s.Name)
	}
	if *loadScenarios != "" {
		names = strings.Split(*loadScenarios, ",")
	}
	// cpu is the process's CPU time (linkd and the load driver: one
	// process) over each scenario's timed phase, per call below: on a
	// shared machine a steadier measure than requests per second.
	cpu := map[string]time.Duration{}
	profile := func(string) func() { return func() {} }
	timed := func(scenario string) func() {
		stop, start := profile(scenario), cpuTime()
		return func() {
			cpu[scenario] = cpuTime() - start
			stop()
		}
	}
	if *loadCPUProfile != "" {
		f, err := os.Create(*loadCPUProfile)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		profile = func(string) func() {
			if err := pprof.StartCPUProfile(f); err != nil {
				t.Errorf("StartCPUProfile: %v (profile one scenario over one transport)", err)
				return func() {}
			}
			return pprof.StopCPUProfile
		}
	}
	for _, transport := range []string{load.GRPC, load.REST} {
		t.Run(transport, func(t *testing.T) {
			results, err := load.Run(context.Background(), load.Config{
				GRPCAddr: ts.GRPCAddr(), HTTPAddr: ts.HTTPAddr(), Transport: transport, APIKey: ts.APIKey,
				Concurrency: *loadC, Duration: *loadD, Scenarios: names, TimedPhase: timed,
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(results) != len(names) {
				t.Fatalf("%d results, want one per scenario (%d)", len(results), len(names))
			}
			for i, r := range results {
				if r.Scenario != names[i] || r.Transport != transport {
					t.Errorf("result %d is %s over %s, want %s over %s", i, r.Scenario, r.Transport, names[i], transport)
				}
				if r.OK == 0 || r.Requests != r.OK {
					t.Errorf("%s: %d of %d calls succeeded, errors %v, first: %s", r.Scenario, r.OK, r.Requests, r.Errors, r.FirstError)
				}
			}
			var table strings.Builder
			if err := load.WriteTable(&table, results); err != nil {
				t.Fatal(err)
			}
			for _, name := range names {
				if !strings.Contains(table.String(), name) {
					t.Errorf("table lacks %s:\n%s", name, table.String())
				}
			}
			for _, r := range results {
				if r.OK > 0 {
					fmt.Fprintf(&table, "%s over %s: %.0f cpu-µs per call\n", r.Scenario, r.Transport, float64(cpu[r.Scenario].Microseconds())/float64(r.OK))
				}
			}
			t.Logf("\n%s", table.String())
		})
	}
}

// TestLoad_GRPCConns: the load tool's calls over several gRPC connections
// (-grpc-conns) all succeed, a connected link among them.
func TestLoad_GRPCConns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two scenarios for a fraction of a second")
	}
	ts := MustStartServer(t)
	names := []string{"parse", "submit-connected"}
	results, err := load.Run(context.Background(), load.Config{
		GRPCAddr: ts.GRPCAddr(), Transport: load.GRPC, GRPCConns: 3, APIKey: ts.APIKey,
		Concurrency: 4, Duration: 300 * time.Millisecond, Scenarios: names,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for i, r := range results {
		if r.Scenario != names[i] || r.OK == 0 || r.Requests != r.OK {
			t.Errorf("%s: %d of %d calls succeeded, errors %v, first: %s", r.Scenario, r.OK, r.Requests, r.Errors, r.FirstError)
		}
	}
}
