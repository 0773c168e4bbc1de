package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/plaidemu"
)

// faultCodes are the answers a call may end with while Plaid misbehaves:
// success, or an honest "try again" (UNAVAILABLE, RESOURCE_EXHAUSTED), or
// the caller's deadline. An exchange whose outcome the network hid may be
// refused when retried (INVALID_ARGUMENT: Plaid spent the token), which is
// loud, never a second Item.
var faultCodes = map[codes.Code]bool{
	codes.OK: true, codes.Unavailable: true, codes.ResourceExhausted: true, codes.DeadlineExceeded: true,
}

// TestLinkd_UpstreamFaults runs link flows through a toxiproxy TCP proxy
// (latency, reset peer, stalls, slow bandwidth) in front of an emulator
// failing 20% of requests with API_ERROR, and checks that every call ends
// by its deadline with an expected code, that every acknowledged Item is
// whole, and that nothing leaks goroutines once linkd stops.
func TestLinkd_UpstreamFaults(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs after every cleanup below

	emu, err := plaidemu.Start("127.0.0.1:0", plaidemu.Options{ClientID: "faults-client", Secret: "faults-secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	emuURL, _ := url.Parse(emu.URL())

	toxi := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	proxy := toxiproxy.NewProxy(toxi, "plaid", "127.0.0.1:0", emuURL.Host)
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Stop)
	for _, toxic := range []string{
		`{"name":"latency","type":"latency","stream":"downstream","toxicity":1,"attributes":{"latency":15,"jitter":15}}`,
		`{"name":"reset","type":"reset_peer","stream":"downstream","toxicity":0.04,"attributes":{"timeout":5}}`,
		`{"name":"stall","type":"timeout","stream":"upstream","toxicity":0.02,"attributes":{"timeout":0}}`,
		`{"name":"slow","type":"bandwidth","stream":"downstream","toxicity":0.1,"attributes":{"rate":8}}`,
	} {
		if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
			t.Fatalf("toxic %s: %v", toxic, err)
		}
	}
	emu.SetFaults(plaidemu.Faults{ErrorRate: 0.2, Latency: 2 * time.Millisecond, Jitter: 5 * time.Millisecond})

	ts := MustStartServer(t, "PLAID_CLIENT_ID=faults-client", "PLAID_SECRET=faults-secret",
		"PLAID_BASE_URL=http://"+proxy.Listen, "LINKD_API_KEYS=faults-key")
	c := ts.GRPC(t)

	const (
		workers  = 6
		flows    = 10 // per worker
		deadline = 2 * time.Second
		// slack covers scheduling on a loaded 2-core machine; a call that
		// ignored its deadline would overrun by Plaid's 15 s timeout.
		slack = time.Second
	)
	var mu sync.Mutex
	tally := map[string]int{}
	var acked []*linkdv1.Item
	call := func(name string, fn func(ctx context.Context) error) bool {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		start := time.Now()
		err := fn(ctx)
		took := time.Since(start)
		code := status.Code(err)
		mu.Lock()
		tally[fmt.Sprintf("%s %s", name, code)]++
		mu.Unlock()
		if took > deadline+slack {
			t.Errorf("%s took %v, past its %v deadline", name, took, deadline)
		}
		if !faultCodes[code] && !(name == "Exchange" && code == codes.InvalidArgument) {
			t.Errorf("%s ended with %v: %v", name, code, err)
		}
		return err == nil
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("fault-user-%d", w)
			for range flows {
				call("CreateLinkToken", func(ctx context.Context) error {
					_, err := c.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{ClientUserId: user})
					return err
				})
				var publicToken string
				if !call("CreateSandboxPublicToken", func(ctx context.Context) error {
					pt, err := c.CreateSandboxPublicToken(ctx, &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: "ins_109508"})
					publicToken = pt.GetPublicToken()
					return err
				}) {
					continue
				}
				// A client retries an exchange that did not answer OK; linkd
				// must never make two Items of one token.
				for range 2 {
					var item *linkdv1.Item
					if call("Exchange", func(ctx context.Context) error {
						resp, err := c.ExchangePublicToken(ctx, &linkdv1.ExchangePublicTokenRequest{PublicToken: publicToken, ClientUserId: user})
						item = resp.GetItem()
						return err
					}) {
						mu.Lock()
						acked = append(acked, item)
						mu.Unlock()
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("outcomes: %v", tally)

	var failures int
	for k, n := range tally {
		if !strings.HasSuffix(k, " OK") {
			failures += n
		}
	}
	if len(acked) == 0 || failures == 0 {
		t.Fatalf("%d Items acknowledged, %d calls failed: the faults did not bite or nothing got through", len(acked), failures)
	}

	// Nothing half-written: every acknowledged Item is whole, and every Item
	// stored has its sealed token.
	emu.SetFaults(plaidemu.Faults{})
	ctx := context.Background()
	seen := map[string]bool{}
	for _, it := range acked {
		if seen[it.GetItemId()] {
			t.Errorf("item %s acknowledged twice", it.GetItemId())
		}
		seen[it.GetItemId()] = true
		if _, err := ts.db.GetItem(ctx, it.GetItemId()); err != nil {
			t.Errorf("acknowledged item %s: %v", it.GetItemId(), err)
		}
	}
	for w := range workers {
		items, err := ts.db.ListItems(ctx, fmt.Sprintf("fault-user-%d", w))
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if _, err := ts.db.AccessToken(ctx, it.GetItemId()); err != nil {
				t.Errorf("stored item %s has no readable access token: %v", it.GetItemId(), err)
			}
		}
	}
	if err := ts.db.Check(context.Background()); err != nil {
		t.Errorf("bbolt check: %v", err)
	}
}
