package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionString(t *testing.T) {
	for _, tt := range []struct {
		name string
		bi   *debug.BuildInfo
		want []string
	}{
		{"VCS", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "f61e47c0"}, {Key: "vcs.time", Value: "2026-12-01T15:00:00Z"}, {Key: "vcs.modified", Value: "false"}}},
			[]string{"linkd v1.2.3", "commit f61e47c0\n", "committed 2026-12-01T15:00:00Z", "go1.26.8"}},
		{"Dirty", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "f61e47c0"}, {Key: "vcs.modified", Value: "true"}}},
			[]string{"linkd (devel)", "commit f61e47c0+dirty", "committed unknown"}},
		{"NoVCS", &debug.BuildInfo{}, []string{"linkd (devel)", "commit unknown"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := versionString(tt.bi, true)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("versionString =\n%s\nwant it to contain %q", got, w)
				}
			}
		})
	}
	if got := versionString(nil, false); got != "linkd (no build info)" {
		t.Errorf("without build info: %q", got)
	}
}
