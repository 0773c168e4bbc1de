package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestExamples runs each client example in examples/ against a real linkd,
// as its README tells a developer to. They need Node (with npm ci run in
// examples/node) and a JDK with Debian's gRPC jars (examples/java/build.sh
// run), so they run only under make examples, which prepares both and sets
// LINKD_EXAMPLES=1; there a missing toolchain fails instead of skipping.
func TestExamples(t *testing.T) {
	if os.Getenv("LINKD_EXAMPLES") != "1" {
		t.Skip("make examples runs these (LINKD_EXAMPLES=1)")
	}
	ts := MustStartServer(t)
	env := append(os.Environ(), "LINKD_GRPC_ADDR="+ts.GRPCAddr(), "LINKD_API_KEY="+ts.APIKey)
	examples := filepath.Join("..", "..", "examples")
	for _, tt := range []struct {
		name string
		cmd  []string
	}{
		{"Go", []string{"go", "run", filepath.Join(examples, "go")}},
		{"Node", []string{"node", filepath.Join(examples, "node", "example.js")}},
		{"Java", []string{filepath.Join(examples, "java", "run.sh")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, tt.cmd[0], tt.cmd[1:]...)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			t.Logf("%s:\n%s", tt.cmd, out)
			if err != nil {
				t.Fatalf("%s: %v", tt.cmd, err)
			}
		})
	}
}
