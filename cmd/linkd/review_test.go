package main

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/jwt/jwttest"
)

// TestLinkd_DuplicateItems_OtherUserHidden: with duplicate checks across all
// users, an end user whose link repeats another user's Item is refused
// without learning that Item's id, even with a made-up redirect; a service
// is told the id.
func TestLinkd_DuplicateItems_OtherUserHidden(t *testing.T) {
	k := jwttest.MustECKey(t, "ec-dup")
	env := append(userEnv(t, k), "LINKD_DUPLICATE_ITEMS=all", "LINKD_API_KEYS=svc-key")
	callerTransports(t, env, func(t *testing.T, ts *testServer, as func(bearer string) linkdv1.LinkServiceClient) {
		ctx := context.Background()
		svc := as("svc-key")
		tok, publicToken := mustLink(t, svc, "victim")
		first, err := svc.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURL(publicToken, "sess-victim"), LinkToken: tok.GetLinkToken()})
		if err != nil {
			t.Fatal(err)
		}
		victimItem := first.GetItem().GetItemId()

		mallory := as(userToken(t, k, "mallory"))
		mtok, err := mallory.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		// A forged connected redirect naming only the institution.
		forged := "plaidlink://connected?public_token=public-sandbox-00000000-0000-0000-0000-000000000001&institution_id=ins_109508&link_session_id=sess-mallory&accounts=" + url.QueryEscape("[]")
		_, err = mallory.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: forged, LinkToken: mtok.GetLinkToken().GetLinkToken()})
		if st := wantCode(t, err, codes.AlreadyExists); st != nil {
			if strings.Contains(st.Message(), victimItem) || duplicateOf(err) != "" {
				t.Errorf("an end user learned another user's item_id: %v", st.Proto())
			}
		}

		// A service may see which Item it repeats.
		stok, spt := mustLink(t, svc, "someone")
		_, err = svc.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURL(spt, "sess-someone"), LinkToken: stok.GetLinkToken()})
		if wantCode(t, err, codes.AlreadyExists); duplicateOf(err) != victimItem {
			t.Errorf("service: duplicate of %q, want %q", duplicateOf(err), victimItem)
		}
	})
}
