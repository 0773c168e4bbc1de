// Command linkd is the backend for Plaid Link in mobile webviews: it issues
// link tokens, makes sense of plaidlink:// redirects and exchanges public
// tokens for access tokens that never leave it. With no Plaid credentials it
// runs against its embedded Plaid emulator.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	setGCPercent(os.Getenv)
	args := os.Args[1:]
	if len(args) == 1 && args[0] == "version" {
		fmt.Println(versionString(debug.ReadBuildInfo()))
		return
	}
	if len(args) > 0 && args[0] == "emulator" {
		os.Exit(runEmulator(ctx, args[1:]))
	}
	m := NewMain()
	var command string
	if len(args) > 0 && (args[0] == "rotate-key" || args[0] == "migrate") {
		command, args = args[0], args[1:]
	}
	if err := m.ParseFlags(args, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "linkd:", err)
		os.Exit(2)
	}
	switch command {
	case "rotate-key":
		if err := m.RotateKey(ctx, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "linkd rotate-key:", err)
			os.Exit(1)
		}
		return
	case "migrate":
		if err := m.Migrate(ctx, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "linkd migrate:", err)
			os.Exit(1)
		}
		return
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "linkd:", err)
		m.Close()
		os.Exit(1)
	}
	<-ctx.Done()
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "linkd: shutdown:", err)
		os.Exit(1)
	}
}
