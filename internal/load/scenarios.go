package load

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/google/uuid"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// SeedConnectedURL is the connected redirect of Plaid's webview
// documentation, verbatim (quoted accounts JSON and all).
const SeedConnectedURL = `plaidlink://connected?public_token=public-sandbox-fb7cca4a-82e6-4707&institution_id=ins_3&institution_name=Chase&accounts='[{"_id":"QPO8Jo8vdDHMepg41PBwckXm4KdK1yUdmXOwK", "meta": {"name":"Plaid Savings", "number": "0000"}, "subtype": "checking", "type": "depository" }]'&link_session_id=79e772be-547d-4c9c-8b76-4ac4ed4c441a`

// noopURL is the smallest redirect the parser accepts.
const noopURL = "plaidlink://exit?status=requires_credentials&link_session_id=noop"

// institutionID is the sandbox bank every minted public token is for.
const institutionID = "ins_109508"

// eventsPerSession is how many events one load session gets before the
// worker moves to a fresh one, well under the store's cap of 500.
const eventsPerSession = 100

// A Scenario is one RPC called over and over. prepare mints what the calls
// consume and returns the call; the call's i is the request's number in
// the run (unique), worker the caller's (0..concurrency-1).
type Scenario struct {
	Name string
	// RPC is the method every timed call makes.
	RPC string
	// Consumes says the calls use up minted tokens, one each.
	Consumes bool
	prepare  func(ctx context.Context, r *run) (call, error)
}

type call func(ctx context.Context, worker int, i int64) error

// Scenarios lists every scenario, in the order a full run takes them.
var Scenarios = []Scenario{
	{Name: "noop", RPC: "ParseRedirect", prepare: prepareNoop},
	{Name: "parse", RPC: "ParseRedirect", prepare: prepareParse},
	{Name: "create-link-token", RPC: "CreateLinkToken", prepare: prepareCreateLinkToken},
	{Name: "submit-event", RPC: "SubmitRedirect", prepare: prepareSubmitEvent},
	{Name: "exchange", RPC: "ExchangePublicToken", Consumes: true, prepare: prepareExchange},
	{Name: "submit-connected", RPC: "SubmitRedirect", Consumes: true, prepare: prepareSubmitConnected},
}

// ScenarioNames returns the names of the scenarios transport can run, in
// the order of Scenarios: every one over GRPC and REST.
func ScenarioNames(transport string) []string {
	var names []string
	for _, s := range Scenarios {
		if _, ok := quickstartRoutes[s.Name]; ok || transport != Quickstart {
			names = append(names, s.Name)
		}
	}
	return names
}

// ScenarioByName returns the scenario called name, or false.
func ScenarioByName(name string) (Scenario, bool) {
	for _, s := range Scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

func prepareNoop(_ context.Context, r *run) (call, error) {
	req := &linkdv1.ParseRedirectRequest{Url: noopURL}
	return func(ctx context.Context, _ int, _ int64) error {
		_, err := r.api.ParseRedirect(ctx, req)
		return err
	}, nil
}

func prepareParse(_ context.Context, r *run) (call, error) {
	req := &linkdv1.ParseRedirectRequest{Url: SeedConnectedURL}
	return func(ctx context.Context, _ int, _ int64) error {
		_, err := r.api.ParseRedirect(ctx, req)
		return err
	}, nil
}

// prepareCreateLinkToken gives each worker its own user, as many app users
// opening Link at once.
func prepareCreateLinkToken(_ context.Context, r *run) (call, error) {
	return func(ctx context.Context, worker int, _ int64) error {
		_, err := r.api.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: r.user(worker)})
		return err
	}, nil
}

// prepareSubmitEvent gives each worker a link token and a Link session of
// its own, with strictly increasing timestamps, moving to a new session
// every eventsPerSession events.
func prepareSubmitEvent(ctx context.Context, r *run) (call, error) {
	tokens := make([]string, r.cfg.Concurrency)
	for w := range tokens {
		resp, err := r.api.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: r.user(w)})
		if err != nil {
			return nil, fmt.Errorf("CreateLinkToken: %w", err)
		}
		tokens[w] = resp.GetLinkToken().GetLinkToken()
	}
	sent := make([]int64, r.cfg.Concurrency) // each worker touches only its own
	t0 := time.Now().UTC().Truncate(time.Second)
	return func(ctx context.Context, worker int, i int64) error {
		n := sent[worker]
		sent[worker]++
		session := fmt.Sprintf("%s-w%d-s%d", r.id, worker, n/eventsPerSession)
		_, err := r.api.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{
			Url:          eventURL("TRANSITION_VIEW", "CREDENTIAL", session, t0.Add(time.Duration(i)*time.Millisecond)),
			LinkToken:    tokens[worker],
			ClientUserId: r.user(worker),
		})
		return err
	}, nil
}

// prepareExchange mints sandbox public tokens before the timed phase; each
// call exchanges one.
func prepareExchange(ctx context.Context, r *run) (call, error) {
	tokens, err := mint(ctx, r, func(ctx context.Context, _ int) (string, error) {
		pt, err := r.api.CreateSandboxPublicToken(ctx, &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: institutionID})
		return pt.GetPublicToken(), err
	})
	if err != nil {
		return nil, err
	}
	r.minted = len(tokens)
	return func(ctx context.Context, worker int, i int64) error {
		_, err := r.api.ExchangePublicToken(ctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: tokens[i], ClientUserId: r.user(worker)})
		return err
	}, nil
}

// connectedLink is what one connected redirect needs: a link token of its
// own user (so linkd's duplicate check, per user by default, passes), a
// public token and a Link session.
type connectedLink struct {
	user, linkToken, url string
}

// prepareSubmitConnected mints, before the timed phase, a link token, a
// sandbox public token and a link_session_id per call, and builds the
// connected redirect Link would fire.
func prepareSubmitConnected(ctx context.Context, r *run) (call, error) {
	links, err := mint(ctx, r, func(ctx context.Context, i int) (connectedLink, error) {
		user := fmt.Sprintf("%s-c%d", r.id, i)
		lt, err := r.api.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: user})
		if err != nil {
			return connectedLink{}, err
		}
		pt, err := r.api.CreateSandboxPublicToken(ctx, &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: institutionID})
		if err != nil {
			return connectedLink{}, err
		}
		return connectedLink{user: user, linkToken: lt.GetLinkToken().GetLinkToken(), url: connectedURL(pt.GetPublicToken(), uuid.NewString())}, nil
	})
	if err != nil {
		return nil, err
	}
	r.minted = len(links)
	return func(ctx context.Context, _ int, i int64) error {
		l := links[i]
		_, err := r.api.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: l.url, LinkToken: l.linkToken, ClientUserId: l.user})
		return err
	}, nil
}

// mint makes up to r.cfg.MaxRequests items (when set) or as many as it can
// in r.cfg.MintTime, r.cfg.Concurrency at a time, and returns them in
// order. It returns the first error.
func mint[T any](ctx context.Context, r *run, make1 func(ctx context.Context, i int) (T, error)) ([]T, error) {
	want := r.cfg.MaxRequests
	if want <= 0 {
		want = maxMinted
	}
	deadline := time.Now().Add(r.cfg.MintTime)
	var (
		mu    sync.Mutex
		out   = make(map[int]T)
		next  int
		first error
		wg    sync.WaitGroup
	)
	for range r.cfg.Concurrency {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				stop := first != nil || int64(i) >= want || ctx.Err() != nil || (r.cfg.MaxRequests <= 0 && time.Now().After(deadline))
				if !stop {
					next++
				}
				mu.Unlock()
				if stop {
					return
				}
				v, err := make1(ctx, i)
				mu.Lock()
				if err != nil && first == nil {
					first = fmt.Errorf("minting before the run: %w", err)
				}
				out[i] = v
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	items := make([]T, len(out))
	for i := range items {
		items[i] = out[i]
	}
	return items, nil
}

// maxMinted bounds what a run without -n mints, whatever MintTime allows.
const maxMinted = 1_000_000

// connectedURL builds a connected redirect as Plaid's webview documentation
// shows it: the accounts JSON in single quotes, Plaid's _id and meta keys.
func connectedURL(publicToken, sessionID string) string {
	accounts := `'[{"_id":"load-acc-1","meta":{"name":"Plaid Checking","number":"0000"},"type":"depository","subtype":"checking"}]'`
	return "plaidlink://connected?public_token=" + url.QueryEscape(publicToken) +
		"&institution_id=" + institutionID + "&institution_name=First%20Platypus%20Bank" +
		"&accounts=" + url.QueryEscape(accounts) +
		"&link_session_id=" + sessionID
}

// eventURL builds an event redirect with every key Plaid lists, the empty
// ones bare, as Link sends it.
func eventURL(name, view, sessionID string, at time.Time) string {
	return "plaidlink://event?event_name=" + name + "&error_type&error_code&error_message&exit_status" +
		"&institution_id=" + institutionID + "&institution_name=First%20Platypus%20Bank&institution_search_query" +
		"&mfa_type&view_name=" + view + "&request_id&link_session_id=" + sessionID +
		"&timestamp=" + url.QueryEscape(at.UTC().Format("2006-01-02T15:04:05.000Z"))
}
