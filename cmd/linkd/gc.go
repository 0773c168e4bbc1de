package main

import "runtime/debug"

// defaultGCPercent is linkd's garbage collector target when GOGC is unset:
// the heap may grow to 5× what is live between collections instead of 2×.
// linkd's live heap is small (7–9 MB under load; bbolt's pages are mapped,
// not heap), and at Go's default of 100 a CreateLinkToken burst collected
// ~10 times a second and spent 8% of linkd's CPU in the collector; at 400,
// 2% for ~30 MB more heap (BENCHMARKS.md). GOGC and GOMEMLIMIT, set, win.
const defaultGCPercent = 400

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
