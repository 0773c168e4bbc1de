package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/linkd/linkd/internal/load"
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
	for _, transport := range []string{load.GRPC, load.REST} {
		t.Run(transport, func(t *testing.T) {
			results, err := load.Run(context.Background(), load.Config{
				GRPCAddr: ts.GRPCAddr(), HTTPAddr: ts.HTTPAddr(), Transport: transport, APIKey: ts.APIKey,
				Concurrency: 4, Duration: time.Second, MintTime: time.Second, Scenarios: names,
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
			t.Logf("\n%s", table.String())
		})
	}
}
