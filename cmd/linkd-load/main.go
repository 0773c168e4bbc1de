// Command linkd-load drives a running linkd over gRPC or REST at a chosen
// concurrency and duration and prints, per scenario (one RPC each),
// throughput, p50/p90/p99 latency and errors by status code:
//
//	go run ./cmd/linkd &
//	go run ./cmd/linkd-load -transport grpc -c 16 -d 10s
//	go run ./cmd/linkd-load -transport rest -c 64 -d 10s -scenario parse,exchange -json
//
// The API key comes from -api-key, LINKD_API_KEY, or the api-key file of
// linkd's data directory (-data-dir, LINKD_DATA_DIR, ./data).
//
// -transport quickstart drives the Go backend of Plaid's quickstart instead
// (see scripts/quickstart-emulator.sh), pointed at a Plaid emulator:
// create-link-token posts to its /api/create_link_token, exchange to its
// /api/set_access_token with public tokens minted at the emulator
// (-plaid-url, PLAID_CLIENT_ID, PLAID_SECRET) before the timed phase:
//
//	go run ./cmd/linkd-load -transport quickstart -quickstart-addr 127.0.0.1:8000 -plaid-url http://127.0.0.1:7070
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/linkd/linkd/internal/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, asJSON, err := parseFlags(os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "linkd-load:", err)
		os.Exit(2)
	}
	results, err := load.Run(ctx, cfg)
	if werr := write(os.Stdout, results, asJSON); werr != nil {
		err = errors.Join(err, werr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "linkd-load:", err)
		os.Exit(1)
	}
}

// profiler returns a Config.TimedPhase that takes a CPU profile of the
// whole timed phase from linkd's pprof endpoint at addr and writes it to
// dir/SCENARIO-TRANSPORT.prof, so the profile holds the timed calls alone,
// not the minting before them. A failure is reported on stderr; the load
// run goes on.
func profiler(addr, dir, transport string, d time.Duration) func(string) func() {
	return func(scenario string) func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			path := filepath.Join(dir, scenario+"-"+transport+".prof")
			if err := fetchProfile(addr, int((d+time.Second-1)/time.Second), path); err != nil {
				fmt.Fprintln(os.Stderr, "linkd-load: profile:", err)
			}
		}()
		return func() { <-done }
	}
}

// alsoProfileSelf returns a Config.TimedPhase that runs phase (when not
// nil) and takes a CPU profile of linkd-load itself for the same phase,
// into dir/SCENARIO-TRANSPORT-driver.prof: the driver shares the machine's
// CPUs with the server, so what it spends per call is part of a
// comparison's fairness. A failure is reported on stderr.
func alsoProfileSelf(phase func(string) func(), dir, transport string) func(string) func() {
	return func(scenario string) func() {
		end := func() {}
		if phase != nil {
			end = phase(scenario)
		}
		f, err := os.Create(filepath.Join(dir, scenario+"-"+transport+"-driver.prof"))
		if err == nil {
			if err = pprof.StartCPUProfile(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "linkd-load: driver profile:", err)
			return end
		}
		return func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				fmt.Fprintln(os.Stderr, "linkd-load: driver profile:", err)
			}
			end()
		}
	}
}

func fetchProfile(addr string, seconds int, path string) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Request.URL, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func write(w io.Writer, results []load.Result, asJSON bool) error {
	if asJSON {
		return load.WriteJSON(w, results)
	}
	return load.WriteTable(w, results)
}

// parseFlags reads the run's configuration from args, falling back to the
// environment through getenv, and says whether to print JSON. It returns
// an error for bad flags or when no API key can be found.
func parseFlags(args []string, getenv func(string) string) (load.Config, bool, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var (
		cfg       load.Config
		scenarios string
		dataDir   string
		asJSON    bool
	)
	all := load.ScenarioNames(load.GRPC)
	fs := flag.NewFlagSet("linkd-load", flag.ContinueOnError)
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", env("LINKD_GRPC_ADDR", "127.0.0.1:50051"), "linkd's gRPC address (LINKD_GRPC_ADDR)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", env("LINKD_HTTP_ADDR", "127.0.0.1:8080"), "linkd's REST address (LINKD_HTTP_ADDR)")
	fs.StringVar(&cfg.Transport, "transport", load.GRPC, "grpc, rest, or quickstart (Plaid's quickstart backend, not linkd)")
	fs.IntVar(&cfg.GRPCConns, "grpc-conns", 1, "gRPC connections the calls take in turn (-transport grpc)")
	fs.StringVar(&cfg.QuickstartAddr, "quickstart-addr", env("QUICKSTART_ADDR", "127.0.0.1:8000"), "the quickstart's address, for -transport quickstart (QUICKSTART_ADDR)")
	fs.StringVar(&cfg.PlaidURL, "plaid-url", env("PLAID_BASE_URL", ""), "the Plaid emulator the quickstart talks to, where -transport quickstart mints public tokens (PLAID_BASE_URL)")
	cfg.PlaidClientID = env("PLAID_CLIENT_ID", "linkd-emulator")
	cfg.PlaidSecret = env("PLAID_SECRET", "linkd-emulator-secret")
	fs.IntVar(&cfg.Concurrency, "c", 16, "concurrent callers")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: calls due per second, latency counted from when each was due (0: closed loop, each caller calls again when answered)")
	fs.DurationVar(&cfg.Duration, "d", 10*time.Second, "timed phase of each scenario")
	fs.Int64Var(&cfg.MaxRequests, "n", 0, "at most this many calls per scenario (0: no limit); consuming scenarios mint exactly this many")
	fs.DurationVar(&cfg.MintTime, "mint-time", 0, "without -n, mint tokens for up to this long before a consuming scenario (default 2×-d)")
	fs.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "bound on one call")
	fs.StringVar(&cfg.APIKey, "api-key", "", "linkd API key (LINKD_API_KEY; default: the api-key file in -data-dir)")
	fs.StringVar(&dataDir, "data-dir", env("LINKD_DATA_DIR", "./data"), "linkd's data directory, for its api-key file (LINKD_DATA_DIR)")
	fs.StringVar(&scenarios, "scenario", "", "comma-separated scenarios (default: every one the transport has): "+strings.Join(all, ", "))
	fs.BoolVar(&asJSON, "json", false, "print the results as JSON")
	var profileAddr, profileDir string
	fs.StringVar(&profileAddr, "profile-from", "", "during each timed phase, take a CPU profile from linkd's admin listener at this host:port (pprof) ...")
	fs.StringVar(&profileDir, "profile-dir", ".", "... into SCENARIO-TRANSPORT.prof here")
	var driverProfile bool
	fs.BoolVar(&driverProfile, "driver-profile", false, "during each timed phase, take a CPU profile of linkd-load itself into SCENARIO-TRANSPORT-driver.prof in -profile-dir")
	fs.Func("cpu-of", "report the CPU time per call of these processes during each timed phase: name=pid,... (Linux); pid self is linkd-load", func(v string) error {
		cfg.CPUOf = map[string]int{}
		for _, kv := range strings.Split(v, ",") {
			name, pid, ok := strings.Cut(kv, "=")
			if pid == "self" {
				pid = strconv.Itoa(os.Getpid())
			}
			n, err := strconv.Atoi(pid)
			if !ok || name == "" || err != nil || n <= 0 {
				return fmt.Errorf("want name=pid, not %q", kv)
			}
			cfg.CPUOf[name] = n
		}
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return load.Config{}, false, err
	}
	if fs.NArg() > 0 {
		return load.Config{}, false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if profileAddr != "" {
		if cfg.Duration < time.Second {
			return load.Config{}, false, errors.New("-profile-from needs -d of at least 1s")
		}
		cfg.TimedPhase = profiler(profileAddr, profileDir, cfg.Transport, cfg.Duration)
	}
	if driverProfile {
		cfg.TimedPhase = alsoProfileSelf(cfg.TimedPhase, profileDir, cfg.Transport)
	}
	for _, s := range strings.Split(scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Scenarios = append(cfg.Scenarios, s)
		}
	}
	if cfg.APIKey == "" {
		cfg.APIKey = getenv("LINKD_API_KEY")
	}
	if cfg.APIKey == "" && cfg.Transport != load.Quickstart {
		path := filepath.Join(dataDir, "api-key")
		b, err := os.ReadFile(path)
		if err != nil {
			return load.Config{}, false, fmt.Errorf("no -api-key or LINKD_API_KEY, and %w", err)
		}
		cfg.APIKey = strings.TrimSpace(string(b))
	}
	return cfg, asJSON, nil
}
