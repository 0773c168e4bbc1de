package main

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/jwt/jwttest"
)

// TestLinkd_SessionSquatting: Alice files redirects with her own link
// token under Bob's Link session id. Every answer must be what a fresh id
// gets (no 409 "belongs to another link token" telling her Bob's session
// exists), her reads show her own record, and Bob's session is untouched.
func TestLinkd_SessionSquatting(t *testing.T) {
	rsaKey := jwttest.MustRSAKey(t, "rsa-squat")
	callerTransports(t, userEnv(t, rsaKey), func(t *testing.T, ts *testServer, as func(string) linkdv1.LinkServiceClient) {
		ctx := context.Background()
		alice, bob, svc := as(userToken(t, rsaKey, "alice")), as(userToken(t, rsaKey, "bob")), as(ts.APIKey)
		at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

		bobTok, err := bob.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{})
		must(t, err)
		_, err = bob.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: eventURL("OPEN", "", "sess-bob", at), LinkToken: bobTok.GetLinkToken().GetLinkToken()})
		must(t, err)
		bobPT, err := bob.CreateSandboxPublicToken(ctx, &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: "ins_109508"})
		must(t, err)
		_, err = bob.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURL(bobPT.GetPublicToken(), "sess-bob"), LinkToken: bobTok.GetLinkToken().GetLinkToken()})
		must(t, err)
		before, err := svc.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: "sess-bob"})
		must(t, err)

		aliceTok, err := alice.CreateLinkToken(ctx, &linkdv1.CreateLinkTokenRequest{})
		must(t, err)
		link := aliceTok.GetLinkToken().GetLinkToken()
		// The same steps under Bob's id and under a fresh one answer alike.
		answers := map[string][]string{}
		for n, id := range []string{"sess-bob", "sess-fresh"} {
			for i, name := range []string{"OPEN", "TRANSITION_VIEW"} {
				resp, err := alice.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: eventURL(name, "", id, at.Add(time.Duration(i)*time.Second)), LinkToken: link})
				answers[id] = append(answers[id], answerOf(resp, err))
			}
			pt, err := alice.CreateSandboxPublicToken(ctx, &linkdv1.CreateSandboxPublicTokenRequest{InstitutionId: "ins_109508"})
			must(t, err)
			// Another account each time: not a duplicate of her first.
			resp, err := alice.SubmitRedirect(ctx, &linkdv1.SubmitRedirectRequest{Url: connectedURLWith(pt.GetPublicToken(), id, "Checking", "000"+string(rune('1'+n))), LinkToken: link})
			if err == nil {
				answers[id] = append(answers[id], "item of "+resp.GetItem().GetClientUserId())
			} else {
				answers[id] = append(answers[id], answerOf(nil, err))
			}
			sess, err := alice.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: id})
			if err != nil {
				answers[id] = append(answers[id], answerOf(nil, err))
			} else {
				answers[id] = append(answers[id], sessionShape(sess, id))
			}
		}
		if got, want := answers["sess-bob"], answers["sess-fresh"]; !equalStrings(got, want) {
			t.Errorf("answers under Bob's session id:\n %q\nunder a fresh id:\n %q", got, want)
		}

		after, err := svc.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: "sess-bob"})
		must(t, err)
		if !proto.Equal(before, after) {
			t.Errorf("Bob's session changed:\nbefore %v\nafter  %v", before, after)
		}
		own, err := bob.GetLinkSession(ctx, &linkdv1.GetLinkSessionRequest{LinkSessionId: "sess-bob"})
		if err != nil || !proto.Equal(own.GetSession(), before.GetSession()) {
			t.Errorf("Bob reads his session as %v, %v; want it unchanged", own, err)
		}
	})
}

// answerOf says what a SubmitRedirect answered, without ids.
func answerOf(resp *linkdv1.SubmitRedirectResponse, err error) string {
	if err != nil {
		return "error " + err.Error()
	}
	if resp.GetItem() != nil || resp.GetNewLinkToken() != nil {
		return "item or new token"
	}
	return "ok"
}

// sessionShape describes a session read back, without its own ids.
func sessionShape(s *linkdv1.GetLinkSessionResponse, id string) string {
	sess := s.GetSession()
	shape := "session " + sess.GetClientUserId()
	if sess.GetLinkSessionId() != id {
		shape += " under another id " + sess.GetLinkSessionId()
	}
	for _, e := range sess.GetEvents() {
		shape += " " + e.GetEventName()
	}
	if sess.GetConnected() != nil {
		shape += " connected"
	}
	if sess.GetItemId() == "" {
		shape += " without item"
	}
	return shape
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
