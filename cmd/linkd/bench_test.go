package main

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// End-to-end benchmarks: the real linkd on loopback, a real gRPC client,
// the emulator for Plaid, a real bbolt file. Run with
//
//	go test -run='^$' -bench=Linkd -benchtime=3s ./cmd/linkd/
//
// "parallel" runs 16 concurrent callers (b.SetParallelism(8) on 2 CPUs).

const docConnectedURL = `plaidlink://connected?public_token=public-sandbox-fb7cca4a-82e6-4707&institution_id=ins_3&institution_name=Chase&accounts='[{"_id":"QPO8Jo8vdDHMepg41PBwckXm4KdK1yUdmXOwK", "meta": {"name":"Plaid Savings", "number": "0000"}, "subtype": "checking", "type": "depository" }]'&link_session_id=79e772be-547d-4c9c-8b76-4ac4ed4c441a`

// BenchmarkLinkd_ParseRedirect is the pure path: gRPC, auth, the parser;
// parallel-rest is the same over REST (the gateway calling in process),
// with a connection per caller kept open as linkd-load does. The parallel
// ones report cpu-µs/op, the process's CPU time (client and server) per
// call, to compare the two transports on a busy machine.
func BenchmarkLinkd_ParseRedirect(b *testing.B) {
	ts := MustStartServer(b)
	c := ts.GRPC(b)
	req := &linkdv1.ParseRedirectRequest{Url: docConnectedURL}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(tr.CloseIdleConnections)
	rest := &restClient{base: ts.BaseURL, key: ts.APIKey, http: &http.Client{Transport: tr}}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.ParseRedirect(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
	for name, c := range map[string]linkdv1.LinkServiceClient{"parallel": c, "parallel-rest": rest} {
		b.Run(name, func(b *testing.B) { parseInParallel(b, c, req) })
	}
}

// parseInParallel calls ParseRedirect from 16 callers (8 per CPU on 2)
// and reports cpu-µs/op.
func parseInParallel(b *testing.B, c linkdv1.LinkServiceClient, req *linkdv1.ParseRedirectRequest) {
	defer reportCPU(b)()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.ParseRedirect(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkLinkd_SubmitEvent records events (one durable, group-committed
// write each), each caller in its own Link session.
func BenchmarkLinkd_SubmitEvent(b *testing.B) {
	ts := MustStartServer(b)
	c := ts.GRPC(b)
	tok, _ := mustLink(b, c, "bench-user")
	var n atomic.Int64
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	submit := func(session string) error {
		i := n.Add(1)
		// A session holds at most store.MaxSessionEvents; move on well before.
		_, err := c.SubmitRedirect(context.Background(), &linkdv1.SubmitRedirectRequest{
			Url:       eventURL("TRANSITION_VIEW", "CREDENTIAL", fmt.Sprintf("%s-%d", session, i/100), t0.Add(time.Duration(i)*time.Millisecond)),
			LinkToken: tok.GetLinkToken(),
		})
		return err
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if err := submit("serial"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(8)
		var g atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			session := fmt.Sprintf("parallel-%d", g.Add(1))
			for pb.Next() {
				if err := submit(session); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkLinkd_Exchange is a whole link: a sandbox public token from the
// emulator, then the exchange, the sealed store write and /accounts/get.
func BenchmarkLinkd_Exchange(b *testing.B) {
	ts := MustStartServer(b, "LINKD_DUPLICATE_ITEMS=off")
	c := ts.GRPC(b)
	link := func() error {
		pt, err := c.CreateSandboxPublicToken(context.Background(), &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: "ins_109508"})
		if err != nil {
			return err
		}
		_, err = c.ExchangePublicToken(context.Background(), &linkdv1.ExchangePublicTokenRequest{PublicToken: pt.GetPublicToken(), ClientUserId: "bench-user"})
		return err
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if err := link(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := link(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
