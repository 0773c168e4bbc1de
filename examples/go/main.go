// Command example calls linkd from Go through package client: it creates a
// link token, parses a redirect, and reads the field a bad request names.
// make examples runs it against a real linkd (LINKD_GRPC_ADDR,
// LINKD_API_KEY).
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/linkd/linkd/client"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

func run() error {
	c, err := client.Dial(os.Getenv("LINKD_GRPC_ADDR"), client.Options{APIKey: os.Getenv("LINKD_API_KEY"), Insecure: true})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	tok, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: "go-example-user"})
	if err != nil {
		return fmt.Errorf("CreateLinkToken: %w", err)
	}
	fmt.Println("link token:", tok.GetLinkToken().GetLinkToken(), "webview_url:", tok.GetLinkToken().GetWebviewUrl())

	parsed, err := c.ParseRedirect(ctx, &linkdv1.ParseRedirectRequest{
		Url: "plaidlink://exit?status=requires_credentials&link_session_id=79e772be-547d-4c9c-8b76-4ac4ed4c441a",
	})
	if err != nil {
		return fmt.Errorf("ParseRedirect: %w", err)
	}
	fmt.Println("exit status:", parsed.GetRedirect().GetExit().GetStatus())

	_, err = c.ParseRedirect(ctx, &linkdv1.ParseRedirectRequest{Url: "plaidlink://connected?public_token=public-sandbox-1&accounts=%5B%7B"})
	violations := client.FieldViolations(err)
	if len(violations) == 0 {
		return fmt.Errorf("a malformed redirect named no field: %v", err)
	}
	for _, v := range violations {
		fmt.Printf("bad request: %s: %s\n", v.GetField(), v.GetDescription())
	}
	return nil
}
