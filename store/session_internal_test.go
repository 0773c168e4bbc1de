package store

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// TestWithSessions: reading and rewriting only a link token record's
// sessions field gives the bytes proto.Marshal gives for the decoded
// record with the new count, whatever else the record holds.
func TestWithSessions(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	full := &storagev1.StoredLinkToken{
		LinkToken: "link-sandbox-1", ClientUserId: "u1", CreatedAt: timestamppb.New(t0), Expiration: timestamppb.New(t0.Add(4 * time.Hour)),
		WebviewUrl: "https://cdn.plaid.com/link/v2/stable/link.html?token=x", RequestId: "req", RedirectUri: "https://app.example/oauth",
		Request:       &linkdv1.CreateLinkTokenRequest{ClientUserId: "u1", Products: []string{"auth", "transactions"}},
		HostedCheckAt: timestamppb.New(t0.Add(time.Hour)),
	}
	settled := proto.CloneOf(full)
	settled.Settled = &storagev1.LinkTokenSettlement{LinkSessionIds: []string{"s1"}, SettledAt: timestamppb.New(t0)}
	for name, rec := range map[string]*storagev1.StoredLinkToken{
		"Bare":         {LinkToken: "link-sandbox-2"},
		"Full":         full,
		"Settled":      settled,
		"Counted":      func() *storagev1.StoredLinkToken { c := proto.CloneOf(settled); c.Sessions = 41; return c }(),
		"Negative":     {LinkToken: "link-sandbox-3", Sessions: -5},
		"SessionsOnly": {Sessions: 7},
		"ManySessions": {LinkToken: "link-sandbox-4", Sessions: 1 << 30},
		"BeforeLimit":  {LinkToken: "link-sandbox-5", Sessions: 99},
		"ZeroToOne":    {},
		"WithUnknown": func() *storagev1.StoredLinkToken {
			c := proto.CloneOf(full)
			c.ProtoReflect().SetUnknown([]byte{0xf8, 0x01, 0x05})
			return c
		}(),
		"SettledOnly": nil,
	} {
		t.Run(name, func(t *testing.T) {
			if rec == nil {
				rec = &storagev1.StoredLinkToken{Settled: &storagev1.LinkTokenSettlement{}, Sessions: 2}
			}
			v, err := proto.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			n, err := storedSessions(v)
			if err != nil || n != rec.GetSessions() {
				t.Fatalf("storedSessions = %d, %v; want %d", n, err, rec.GetSessions())
			}
			for _, next := range []int32{n + 1, 0, -1} {
				want := proto.CloneOf(rec)
				want.Sessions = next
				wantBytes, err := proto.Marshal(want)
				if err != nil {
					t.Fatal(err)
				}
				got := withSessions(v, next)
				if !bytes.Equal(got, wantBytes) {
					t.Errorf("withSessions(%d) = %x; proto.Marshal gives %x", next, got, wantBytes)
				}
				var back storagev1.StoredLinkToken
				if err := proto.Unmarshal(got, &back); err != nil || !proto.Equal(&back, want) {
					t.Errorf("withSessions(%d) decodes to %v, %v; want %v", next, &back, err, want)
				}
			}
		})
	}
	if _, err := storedSessions([]byte{0x60}); err == nil {
		t.Error("storedSessions of a torn value: no error")
	}
}
