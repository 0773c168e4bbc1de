package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// TestLinkd_Paging: a session at the most events linkd keeps and a user
// with many Items page in order over gRPC and REST; a client that does not
// page gets all of them, as before paging existed.
func TestLinkd_Paging(t *testing.T) {
	transports(t, func(t *testing.T, ts *testServer, c linkdv1.LinkServiceClient) {
		ctx := context.Background()
		// A session at MaxSessionEvents, written straight to the store.
		start := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
		for i := range linkd.MaxSessionEvents {
			r := &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Event{Event: &linkdv1.LinkEvent{
				EventName: fmt.Sprintf("EVENT_%03d", i), LinkSessionId: "sess-huge", Timestamp: timestamppb.New(start.Add(time.Duration(i) * time.Millisecond)),
			}}}
			if _, err := ts.db.UpdateLinkSession(ctx, "sess-huge", linkd.MergeRedirect("link-token-x", "user-1", r, start)); err != nil {
				t.Fatal(err)
			}
		}
		all, err := c.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: "sess-huge"})
		if err != nil || len(all.GetSession().GetEvents()) != linkd.MaxSessionEvents || all.GetNextPageToken() != "" {
			t.Fatalf("GetLinkSession without paging = %d events, next %q, %v; want all %d, no next page",
				len(all.GetSession().GetEvents()), all.GetNextPageToken(), err, linkd.MaxSessionEvents)
		}
		var got []string
		token := ""
		for pages := 0; ; pages++ {
			resp, err := c.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: "sess-huge", PageSize: 200, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(resp.GetSession().GetEvents()); n > 200 {
				t.Fatalf("page of %d events, want at most 200", n)
			}
			for _, e := range resp.GetSession().GetEvents() {
				got = append(got, e.GetEventName())
			}
			if token = resp.GetNextPageToken(); token == "" || pages > 10 {
				break
			}
		}
		if len(got) != linkd.MaxSessionEvents {
			t.Fatalf("paged events = %d, want %d", len(got), linkd.MaxSessionEvents)
		}
		for i, name := range got {
			if name != fmt.Sprintf("EVENT_%03d", i) {
				t.Fatalf("paged event %d = %s, out of order", i, name)
			}
		}

		// Five Items, paged two at a time.
		const n = 5
		var ids []string
		for i := range n {
			tok, pt := mustLink(t, c, "user-p")
			resp, err := c.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURLWith(pt, fmt.Sprintf("sess-p-%d", i), "Checking", fmt.Sprintf("%04d", i)), LinkToken: tok.GetLinkToken()})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, resp.GetItem().GetItemId())
		}
		if l, err := c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "user-p"}); err != nil || len(l.GetItems()) != n || l.GetNextPageToken() != "" {
			t.Fatalf("ListItems without paging = %d Items, next %q, %v", len(l.GetItems()), l.GetNextPageToken(), err)
		}
		var paged []string
		token = ""
		for pages := 0; pages < 10; pages++ {
			l, err := c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "user-p", PageSize: 2, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			if len(l.GetItems()) > 2 {
				t.Fatalf("page of %d Items, want at most 2", len(l.GetItems()))
			}
			for _, it := range l.GetItems() {
				paged = append(paged, it.GetItemId())
			}
			if token = l.GetNextPageToken(); token == "" {
				break
			}
		}
		if fmt.Sprint(paged) != fmt.Sprint(ids) {
			t.Errorf("paged Items %v, want %v in link order", paged, ids)
		}
		_, err = c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "user-p", PageToken: "not-a-token"})
		if st := wantCode(t, err, codes.InvalidArgument); st != nil && badRequestField(st) != "page_token" {
			t.Errorf("bad page_token: field %q", badRequestField(st))
		}
		_, err = c.ListItems(ctx, &linkdv1.ListItemsRequest{ClientUserId: "user-p", PageSize: -1})
		wantCode(t, err, codes.InvalidArgument)
	})
}
