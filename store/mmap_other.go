//go:build !unix

package store

// initialMmapSize is maxInitialMmap where there is no address-space limit
// to ask about.
func initialMmapSize() int { return maxInitialMmap }
