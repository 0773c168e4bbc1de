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

func TestGCPercentAndMemoryLimit(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(250))
	if got := gcPercent(); got != "250" {
		t.Errorf("gcPercent = %q, want 250", got)
	}
	debug.SetGCPercent(-1)
	if got := gcPercent(); got != "off" {
		t.Errorf("gcPercent = %q, want off", got)
	}
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(400 << 20))
	if got := memoryLimit(); got != "419430400" {
		t.Errorf("memoryLimit = %q, want 419430400", got)
	}
}
