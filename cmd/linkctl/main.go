// Command linkctl operates a running linkd over its public gRPC API (with
// an API key from LINKD_API_KEY) and its admin listener (backup), and
// restores a bbolt backup offline. Every command prints JSON (proto field
// names, as the REST API does).
//
//	linkctl [flags] items list -user ID [-status S]...
//	linkctl [flags] items get ITEM_ID
//	linkctl [flags] items remove ITEM_ID
//	linkctl [flags] sessions get LINK_SESSION_ID
//	linkctl [flags] conversion [-since T] [-until T]
//	linkctl [flags] link-token create -user ID [-item ITEM_ID] [-redirect-uri URI] [-products p,q]
//	linkctl [flags] backup -o FILE
//	linkctl restore -from FILE -db PATH
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/linkd/linkd/internal/linkctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := linkctl.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
