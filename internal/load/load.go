// Package load drives a running linkd over gRPC or REST with a fixed number
// of concurrent callers, one scenario (one RPC) at a time, and reports
// throughput, latency percentiles and errors by status code. Whatever a
// scenario consumes (public tokens, link tokens) is minted through linkd
// before its timed phase, so the timed phase calls one RPC only.
package load

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/status"
)

// Transports.
const (
	GRPC = "grpc"
	REST = "rest"
)

// Config is one load run.
type Config struct {
	// GRPCAddr and HTTPAddr are linkd's listeners (host:port); only the
	// Transport's is used.
	GRPCAddr, HTTPAddr string
	// Transport is GRPC, REST or Quickstart.
	Transport string
	// GRPCConns is how many gRPC connections carry the calls, taken in
	// turn call by call; 0 or 1 is one, as one client app has.
	GRPCConns int
	// APIKey is linkd's; the Quickstart transport needs none.
	APIKey string
	// QuickstartAddr is the quickstart's listener (host:port), and
	// PlaidURL, PlaidClientID and PlaidSecret the Plaid (emulator) it
	// talks to, where the Quickstart transport mints public tokens.
	QuickstartAddr                       string
	PlaidURL, PlaidClientID, PlaidSecret string
	// Concurrency is how many callers call at once, each waiting for its
	// answer before the next call.
	Concurrency int
	// Rate, when > 0, makes the run open-loop: call i is due at
	// start + i/Rate, whether or not earlier calls have answered, and its
	// latency counts from when it was due, so time spent queued behind
	// busy callers (at most Concurrency in flight) is in the percentiles.
	// Without it each caller calls again as soon as it is answered
	// (closed loop), which hides queueing: at c callers the mean latency
	// is c ÷ throughput whatever the server does. Every call due before
	// the deadline is made, so a run the server cannot keep up with lasts
	// longer than Duration (Result.Seconds says how long).
	Rate float64
	// Duration bounds each scenario's timed phase; MaxRequests (when > 0)
	// bounds its calls, whichever comes first.
	Duration    time.Duration
	MaxRequests int64
	// MintTime bounds the minting before a consuming scenario when
	// MaxRequests is unset; a run that uses up what was minted ends early
	// and its Result says Exhausted.
	MintTime time.Duration
	// Scenarios are the names to run, in order; none means every one the
	// transport has.
	Scenarios []string
	// Timeout bounds one call.
	Timeout time.Duration
	// CPUOf names processes (by pid) whose CPU time during each timed
	// phase a Result reports per successful call, e.g. {"linkd": 1234}:
	// on a shared machine CPU per call moves far less than throughput.
	// Linux only (/proc); a process that cannot be read is left out.
	CPUOf map[string]int
	// TimedPhase, when set, is called as a scenario's timed phase starts,
	// after its minting; the function it returns is called as it ends.
	// Tests use it to profile the timed calls alone.
	TimedPhase func(scenario string) (end func())
}

// Result is one scenario's outcome. Latencies are of successful calls.
type Result struct {
	Scenario    string `json:"scenario"`
	RPC         string `json:"rpc"`
	Transport   string `json:"transport"`
	Concurrency int    `json:"concurrency"`
	// Rate is Config.Rate: calls due per second in an open-loop run, 0 in
	// a closed-loop one.
	Rate float64 `json:"rate_rps,omitempty"`
	// Requests counts every call made, OK those that succeeded; Errors
	// counts the others by gRPC code name ("Unavailable").
	Requests int64            `json:"requests"`
	OK       int64            `json:"ok"`
	Errors   map[string]int64 `json:"errors,omitempty"`
	// FirstError is one failed call's error, to say what went wrong.
	FirstError string `json:"first_error,omitempty"`
	// Seconds is the timed phase's wall time; Throughput is OK per second.
	Seconds    float64 `json:"seconds"`
	Throughput float64 `json:"throughput_rps"`
	P50ms      float64 `json:"p50_ms"`
	P90ms      float64 `json:"p90_ms"`
	P99ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	// Minted is how many tokens were minted before the run; Exhausted says
	// the run used them all before its duration was up.
	Minted    int  `json:"minted,omitempty"`
	Exhausted bool `json:"exhausted,omitempty"`
	// CPUPerCall is the CPU time (µs) each process of Config.CPUOf used
	// during the timed phase, per successful call.
	CPUPerCall map[string]float64 `json:"cpu_us_per_call,omitempty"`
}

// run is one scenario's run: the config, the client, and what the
// scenario's prepare recorded.
type run struct {
	cfg    Config
	api    API
	id     string // tells this run's users and sessions apart from others'
	minted int
}

// user returns the client_user_id of worker's calls.
func (r *run) user(worker int) string { return fmt.Sprintf("%s-u%d", r.id, worker) }

// Run runs cfg's scenarios one after another and returns a Result for
// each. It returns an error for a bad config, an unknown scenario, a
// client that cannot be made, or a failure while minting; errors of timed
// calls are counted in the Results, not returned.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	if cfg.Concurrency < 1 {
		return nil, errors.New("concurrency must be at least 1")
	}
	if cfg.Duration <= 0 && cfg.MaxRequests <= 0 {
		return nil, errors.New("set a duration or a maximum number of requests")
	}
	if cfg.Rate < 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0) {
		return nil, errors.New("rate must be a finite number, not negative")
	}
	if cfg.APIKey == "" && cfg.Transport != Quickstart {
		return nil, errors.New("an API key is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MintTime <= 0 {
		cfg.MintTime = 2 * cfg.Duration
	}
	if len(cfg.Scenarios) == 0 {
		cfg.Scenarios = ScenarioNames(cfg.Transport)
	}
	scenarios := make([]Scenario, 0, len(cfg.Scenarios))
	for _, name := range cfg.Scenarios {
		s, ok := ScenarioByName(name)
		if !ok {
			return nil, fmt.Errorf("unknown scenario %q", name)
		}
		scenarios = append(scenarios, s)
	}
	var (
		api   API
		close func() error
		err   error
	)
	switch cfg.Transport {
	case GRPC:
		api, close, err = dialGRPC(cfg.GRPCAddr, cfg.APIKey, cfg.GRPCConns)
	case REST:
		api, close = newREST(cfg.HTTPAddr, cfg.APIKey, cfg.Concurrency)
	case Quickstart:
		if err = checkQuickstartScenarios(cfg.Scenarios); err == nil && cfg.PlaidURL == "" {
			err = errors.New("the quickstart transport needs the Plaid URL to mint public tokens at")
		}
		if err == nil {
			api, close = newQuickstart(cfg.QuickstartAddr, cfg.PlaidURL, cfg.PlaidClientID, cfg.PlaidSecret, cfg.Concurrency)
		}
	default:
		err = fmt.Errorf("transport must be %q, %q or %q, not %q", GRPC, REST, Quickstart, cfg.Transport)
	}
	if err != nil {
		return nil, err
	}
	defer close()
	var results []Result
	for _, s := range scenarios {
		res, err := runScenario(ctx, &run{cfg: cfg, api: api, id: "load-" + randomID()}, s)
		if err != nil {
			return results, fmt.Errorf("%s: %w", s.Name, err)
		}
		results = append(results, res)
	}
	return results, nil
}

// runScenario prepares s, then has cfg.Concurrency workers call it until
// the duration is up, the request limit or the minted tokens are reached,
// or ctx ends. Calls in flight at the deadline finish and count.
func runScenario(ctx context.Context, r *run, s Scenario) (Result, error) {
	call, err := s.prepare(ctx, r)
	if err != nil {
		return Result{}, err
	}
	limit := r.cfg.MaxRequests
	tokenBound := s.Consumes && (limit <= 0 || int64(r.minted) < limit)
	if tokenBound {
		limit = int64(r.minted)
	}
	var (
		next     atomic.Int64
		mu       sync.Mutex
		lat      []time.Duration
		errs     = map[string]int64{}
		firstErr string
		wg       sync.WaitGroup
	)
	if r.cfg.TimedPhase != nil {
		end := r.cfg.TimedPhase(s.Name)
		defer end()
	}
	meter := newCPUMeter(r.cfg.CPUOf)
	start := time.Now()
	var deadline time.Time
	if r.cfg.Duration > 0 {
		deadline = start.Add(r.cfg.Duration)
	}
	open := r.cfg.Rate > 0
	var ranOut atomic.Bool // a call was due before the deadline with no minted token left
	for w := range r.cfg.Concurrency {
		wg.Go(func() {
			var mine []time.Duration
			myErrs := map[string]int64{}
			var myFirst string
			for ctx.Err() == nil {
				// A closed loop stops calling at the deadline. An open loop
				// makes every call due before it, however late: an
				// overloaded run outlasts the duration and its backlog is
				// in the latencies, not dropped.
				if !open && !deadline.IsZero() && !time.Now().Before(deadline) {
					break
				}
				i := next.Add(1) - 1
				t0 := time.Now()
				if open {
					t0 = start.Add(time.Duration(float64(i) / r.cfg.Rate * float64(time.Second)))
					if !deadline.IsZero() && !t0.Before(deadline) {
						break
					}
				}
				if limit > 0 && i >= limit {
					if tokenBound {
						ranOut.Store(true)
					}
					break
				}
				if wait := time.Until(t0); open && wait > 0 {
					select {
					case <-time.After(wait):
					case <-ctx.Done():
					}
				}
				cctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
				err := call(cctx, w, i)
				d := time.Since(t0)
				cancel()
				if err == nil {
					mine = append(mine, d)
					continue
				}
				if ctx.Err() != nil {
					break // interrupted: not the server's error
				}
				myErrs[status.Code(err).String()]++
				if myFirst == "" {
					myFirst = err.Error()
				}
			}
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, mine...)
			for k, v := range myErrs {
				errs[k] += v
			}
			if firstErr == "" {
				firstErr = myFirst
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := meter.perCall(int64(len(lat)))
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	rpc := s.RPC
	if r.cfg.Transport == Quickstart {
		rpc = "POST " + quickstartRoutes[s.Name]
	}
	res := Result{
		Scenario:    s.Name,
		RPC:         rpc,
		Transport:   r.cfg.Transport,
		Concurrency: r.cfg.Concurrency,
		Rate:        r.cfg.Rate,
		OK:          int64(len(lat)),
		FirstError:  firstErr,
		Seconds:     elapsed.Seconds(),
		Minted:      r.minted,
		Exhausted:   ranOut.Load(),
		CPUPerCall:  cpu,
	}
	res.Requests = res.OK
	for _, v := range errs {
		res.Requests += v
	}
	if len(errs) > 0 {
		res.Errors = errs
	}
	if elapsed > 0 {
		res.Throughput = float64(res.OK) / elapsed.Seconds()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	res.P50ms, res.P90ms, res.P99ms = ms(percentile(lat, 50)), ms(percentile(lat, 90)), ms(percentile(lat, 99))
	if len(lat) > 0 {
		res.MaxMs = ms(lat[len(lat)-1])
	}
	return res, nil
}

// percentile returns the p-th percentile of sorted by nearest rank; 0 for
// none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func randomID() string {
	b := make([]byte, 4)
	rand.Read(b) // never fails: crypto/rand crashes the program instead
	return hex.EncodeToString(b)
}
