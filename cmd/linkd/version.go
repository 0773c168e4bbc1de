package main

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// versionString returns what linkd version prints: the module version, the
// VCS commit and its time (with "+dirty" for a build from modified files),
// and the Go version, all from the build info the Go toolchain embedded. A
// build without VCS information (go run, a source tree without .git) says
// "unknown" for those.
func versionString(bi *debug.BuildInfo, ok bool) string {
	if !ok || bi == nil {
		return "linkd (no build info)"
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	revision, at, modified := "unknown", "unknown", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified {
		revision += "+dirty"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "linkd %s\ncommit %s\ncommitted %s\n%s", version, revision, at, bi.GoVersion)
	return b.String()
}
