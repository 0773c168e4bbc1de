package main

import (
	"math"
	"runtime/debug"
	"strconv"
)

// defaultGCPercent is linkd's garbage collector target when GOGC is unset:
// the heap may grow to 5× what is live between collections instead of 2×.
// linkd's live heap is small (7–9 MB under load; bbolt's pages are mapped,
// not heap), and at Go's default of 100 a CreateLinkToken burst collected
// ~10 times a second and spent 8% of linkd's CPU in the collector; at 400,
// 2% for ~30 MB more heap (BENCHMARKS.md). GOGC and GOMEMLIMIT, set, win.
// In a container with a memory limit set GOMEMLIMIT below it (the
// manifests in deploy/ do): a heap allowed to grow to 5× its live size
// must not be what gets the pod killed.
const defaultGCPercent = 400

// gcPercent returns the collector's target in force, as GOGC spells it
// ("off" for none). Go reads an invalid GOGC as 100; this shows it did.
func gcPercent() string {
	p := debug.SetGCPercent(-1)
	debug.SetGCPercent(p)
	if p < 0 {
		return "off"
	}
	return strconv.Itoa(p)
}

// memoryLimit returns the soft memory limit in force (GOMEMLIMIT), or
// "none".
func memoryLimit() string {
	l := debug.SetMemoryLimit(-1)
	if l == math.MaxInt64 {
		return "none"
	}
	return strconv.FormatInt(l, 10)
}

// setGCPercent applies defaultGCPercent unless GOGC is set, and returns
// the percent in force.
func setGCPercent(getenv func(string) string) int {
	if getenv("GOGC") != "" {
		old := debug.SetGCPercent(-1)
		debug.SetGCPercent(old)
		return old
	}
	debug.SetGCPercent(defaultGCPercent)
	return defaultGCPercent
}
