package main

import (
	"runtime/debug"
	"testing"
)

func TestSetGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	unset := func(string) string { return "" }
	if got := setGCPercent(unset); got != defaultGCPercent {
		t.Errorf("GOGC unset: %d, want %d", got, defaultGCPercent)
	}
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("GOGC unset: runtime has %d, want %d", got, defaultGCPercent)
	}
	// GOGC set: the runtime already applied it (here 100, as if GOGC=100).
	set := func(k string) string {
		if k == "GOGC" {
			return "100"
		}
		return ""
	}
	if got := setGCPercent(set); got != 100 {
		t.Errorf("GOGC=100: %d, want the operator's 100", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC=100: runtime has %d, want 100", got)
	}
}
