// Package linkctl is the linkctl command: operating a running linkd over
// its public gRPC API and its admin listener, and restoring a bbolt backup
// offline. cmd/linkctl is its main; cmd/linkd's tests run it against a
// real linkd.
package linkctl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/store"
)

// usage is linkctl's help.
const usage = `usage: linkctl [flags] COMMAND

commands:
  items list -user ID [-status S]...   a user's Items (S: GOOD, LOGIN_REQUIRED, ...)
  items get ITEM_ID                    one Item
  items remove ITEM_ID                 remove an Item at Plaid and in linkd
  sessions get LINK_SESSION_ID         one Link session with its events
  conversion [-since T] [-until T]     the Link funnel (T: RFC 3339 or a duration back, e.g. 24h)
  link-token create -user ID [-item ITEM_ID] [-redirect-uri URI] [-products p,q]
  backup -o FILE                       copy the bbolt store from the admin listener, checked
  restore -from FILE -db PATH          offline: check a backup and put it in place of PATH

flags:
`

// Run runs linkctl with args and returns its exit code: 0, 1 for a failed
// command, 2 for bad usage.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("linkctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	addr := fs.String("addr", env("LINKD_ADDR", "127.0.0.1:50051"), "linkd's gRPC address (LINKD_ADDR)")
	adminAddr := fs.String("admin-addr", env("LINKD_ADMIN_ADDR", "127.0.0.1:9090"), "linkd's admin address, for backup (LINKD_ADMIN_ADDR)")
	caFile := fs.String("tls-ca", env("LINKD_TLS_CA", ""), "PEM CA bundle: reach gRPC over TLS verified by it (LINKD_TLS_CA)")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on one command (backup: on connecting)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return 2
	}
	c := &cli{addr: *addr, adminAddr: *adminAddr, caFile: *caFile, apiKey: getenv("LINKD_API_KEY"), timeout: *timeout, stdout: stdout}
	err := c.run(ctx, rest)
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "linkctl:", err)
		fmt.Fprint(stderr, usage)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "linkctl:", err)
		return 1
	}
	return 0
}

// usageError is a command line linkctl does not understand.
type usageError string

func (e usageError) Error() string { return string(e) }

// cli runs one command.
type cli struct {
	addr, adminAddr, caFile, apiKey string
	timeout                         time.Duration
	stdout                          io.Writer
}

func (c *cli) run(ctx context.Context, args []string) error {
	cmd := strings.Join(args[:min(2, len(args))], " ")
	switch {
	case cmd == "items list":
		fs, user := subFlags("items list")
		var statuses multiFlag
		fs.Var(&statuses, "status", "only Items in this status (repeatable)")
		if err := fs.Parse(args[2:]); err != nil || *user == "" {
			return usageError("items list needs -user")
		}
		req := &linkdv1.ListItemsRequest{ClientUserId: *user}
		for _, s := range statuses {
			v, ok := linkdv1.ItemStatus_value["ITEM_STATUS_"+strings.ToUpper(strings.TrimPrefix(s, "ITEM_STATUS_"))]
			if !ok {
				return usageError("unknown status " + s)
			}
			req.Statuses = append(req.Statuses, linkdv1.ItemStatus(v))
		}
		return c.call(ctx, func(ctx context.Context, api linkdv1.LinkServiceClient) (proto.Message, error) {
			return api.ListItems(ctx, req)
		})
	case cmd == "items get", cmd == "items remove", cmd == "sessions get":
		if len(args) != 3 || args[2] == "" {
			return usageError(cmd + " needs one id")
		}
		id := args[2]
		return c.call(ctx, func(ctx context.Context, api linkdv1.LinkServiceClient) (proto.Message, error) {
			switch cmd {
			case "items get":
				return api.GetItem(ctx, &linkdv1.GetItemRequest{ItemId: id})
			case "items remove":
				return api.RemoveItem(ctx, &linkdv1.RemoveItemRequest{ItemId: id})
			}
			return api.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: id})
		})
	case args[0] == "conversion":
		fs := flag.NewFlagSet("conversion", flag.ContinueOnError)
		since := fs.String("since", "", "start: RFC 3339 time or a duration back from now (default 30 days)")
		until := fs.String("until", "", "end: RFC 3339 time or a duration back from now (default now)")
		if err := fs.Parse(args[1:]); err != nil {
			return usageError(err.Error())
		}
		req := &linkdv1.GetLinkConversionRequest{}
		var err error
		if req.Since, err = parseWhen(*since); err != nil {
			return usageError("-since: " + err.Error())
		}
		if req.Until, err = parseWhen(*until); err != nil {
			return usageError("-until: " + err.Error())
		}
		return c.call(ctx, func(ctx context.Context, api linkdv1.LinkServiceClient) (proto.Message, error) {
			return api.GetLinkConversion(ctx, req)
		})
	case cmd == "link-token create":
		fs, user := subFlags(cmd)
		item := fs.String("item", "", "an Item id: an update-mode token to repair it")
		redirectURI := fs.String("redirect-uri", "", "OAuth redirect URI")
		products := fs.String("products", "", "Plaid products, comma-separated (linkd's defaults when empty)")
		if err := fs.Parse(args[2:]); err != nil || *user == "" {
			return usageError("link-token create needs -user")
		}
		req := &linkdv1.CreateLinkTokenRequest{ClientUserId: *user, ItemId: *item, RedirectUri: *redirectURI}
		for _, p := range strings.Split(*products, ",") {
			if p = strings.TrimSpace(p); p != "" {
				req.Products = append(req.Products, p)
			}
		}
		return c.call(ctx, func(ctx context.Context, api linkdv1.LinkServiceClient) (proto.Message, error) {
			return api.CreateLinkToken(ctx, req)
		})
	case args[0] == "backup":
		fs := flag.NewFlagSet("backup", flag.ContinueOnError)
		out := fs.String("o", "", "file to write the backup to")
		if err := fs.Parse(args[1:]); err != nil || *out == "" {
			return usageError("backup needs -o FILE")
		}
		return c.backup(ctx, *out)
	case args[0] == "restore":
		fs := flag.NewFlagSet("restore", flag.ContinueOnError)
		from := fs.String("from", "", "the backup file")
		db := fs.String("db", "", "linkd's database file (<data-dir>/linkd.db); linkd must be stopped")
		if err := fs.Parse(args[1:]); err != nil || *from == "" || *db == "" {
			return usageError("restore needs -from FILE and -db PATH")
		}
		if err := store.Restore(*from, *db); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "restored %s from %s; start linkd with the master keys that sealed it\n", *db, *from)
		return nil
	}
	return usageError(fmt.Sprintf("unknown command %q", strings.Join(args, " ")))
}

// subFlags returns a flag set for a command with its -user flag.
func subFlags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs, fs.String("user", "", "the client_user_id")
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// parseWhen reads an RFC 3339 time or a duration back from now; "" is
// unset.
func parseWhen(s string) (*timestamppb.Timestamp, error) {
	if s == "" {
		return nil, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return timestamppb.New(time.Now().Add(-d)), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
	}
	return timestamppb.New(t), nil
}

// call dials linkd, runs fn with the API key and prints its answer.
func (c *cli) call(ctx context.Context, fn func(context.Context, linkdv1.LinkServiceClient) (proto.Message, error)) error {
	if c.apiKey == "" {
		return errors.New("set LINKD_API_KEY to one of linkd's API keys (LINKD_API_KEYS, or <data-dir>/api-key)")
	}
	creds := insecure.NewCredentials()
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s holds no PEM certificate", c.caFile)
		}
		creds = credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.apiKey)
	resp, err := fn(ctx, linkdv1.NewLinkServiceClient(conn))
	if err != nil {
		return err
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(resp)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%s\n", b)
	return err
}

// backup downloads GET /backup into out: into a temporary file beside it
// first, checked by bbolt before it takes out's name, so out is never a
// partial or broken copy.
func (c *cli) backup(ctx context.Context, out string) error {
	if c.apiKey == "" {
		return errors.New("set LINKD_API_KEY to one of linkd's API keys")
	}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+c.adminAddr+"/backup", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	client := &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: c.timeout}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("GET /backup: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".linkctl-backup-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, resp.Body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup cut short after %d bytes: %w", n, err)
	}
	if err := store.CheckFile(tmp.Name()); err != nil {
		return fmt.Errorf("the backup does not pass bbolt's check: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %s (%d bytes, checked)\n", out, n)
	return nil
}
