package service

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// Hosted Link reports by LINK webhooks instead of redirects, and webview
// sessions may report by them too (a Plaid account setting). Either way the
// webhooks carry a session's events and public tokens but no institution or
// accounts: linkd takes those from /link/token/get and then files the
// session's outcome exactly as it files a redirect (SubmitRedirect), so that
// a public token is exchanged once, through the same claims, whichever of a
// webhook, a retried webhook, the recovery job or a late redirect comes
// first.

// linkWebhook is the part of a LINK webhook body linkd reads.
type linkWebhook struct {
	LinkSessionID string       `json:"link_session_id"`
	LinkToken     string       `json:"link_token"`
	PublicToken   string       `json:"public_token"`
	PublicTokens  []string     `json:"public_tokens"`
	Status        string       `json:"status"`
	Events        []plaidEvent `json:"events"`
}

// plaidEvent is one Link event as the LINK EVENTS webhook sends it.
type plaidEvent struct {
	EventName string `json:"event_name"`
	EventID   string `json:"event_id"`
	Timestamp string `json:"timestamp"`
	Metadata  struct {
		ErrorCode              string `json:"error_code"`
		ErrorMessage           string `json:"error_message"`
		ErrorType              string `json:"error_type"`
		ExitStatus             string `json:"exit_status"`
		InstitutionID          string `json:"institution_id"`
		InstitutionName        string `json:"institution_name"`
		InstitutionSearchQuery string `json:"institution_search_query"`
		RequestID              string `json:"request_id"`
		MfaType                string `json:"mfa_type"`
		ViewName               string `json:"view_name"`
		Selection              string `json:"selection"`
		MatchReason            string `json:"match_reason"`
		RoutingNumber          string `json:"routing_number"`
		AccountNumberMask      string `json:"account_number_mask"`
	} `json:"event_metadata"`
}

// linkEvent converts e, of Link session sessionID, to linkd's event.
func (e plaidEvent) linkEvent(sessionID string) *linkdv1.LinkEvent {
	md := e.Metadata
	ev := &linkdv1.LinkEvent{
		EventName: e.EventName, EventId: e.EventID, LinkSessionId: sessionID,
		ExitStatus: md.ExitStatus, InstitutionId: md.InstitutionID, InstitutionName: md.InstitutionName,
		InstitutionSearchQuery: md.InstitutionSearchQuery, MatchReason: md.MatchReason, MfaType: md.MfaType,
		ViewName: md.ViewName, RequestId: md.RequestID, Selection: md.Selection,
		RoutingNumber: md.RoutingNumber, AccountNumberMask: md.AccountNumberMask,
	}
	if md.ErrorCode != "" || md.ErrorType != "" {
		ev.Error = &linkdv1.LinkError{ErrorType: md.ErrorType, ErrorCode: md.ErrorCode, ErrorMessage: md.ErrorMessage}
	}
	if t, err := time.Parse(time.RFC3339Nano, e.Timestamp); err == nil {
		ev.Timestamp = timestamppb.New(t)
	}
	return ev
}

// applyLinkWebhook acts on a verified, recorded LINK webhook: EVENTS are
// filed in their session; ITEM_ADD_RESULT and SESSION_FINISHED complete
// the session from /link/token/get. A webhook about a link token linkd did
// not issue is recorded only.
func (s *Service) applyLinkWebhook(ctx context.Context, code string, body []byte) error {
	var hook linkWebhook
	if err := json.Unmarshal(body, &hook); err != nil {
		return linkd.InvalidField("body", "body is not a LINK webhook")
	}
	if hook.LinkToken == "" || hook.LinkSessionID == "" {
		return nil
	}
	tok, err := s.store.GetLinkToken(ctx, hook.LinkToken)
	if linkd.ErrorCode(err) == linkd.ENOTFOUND {
		s.log.WarnContext(ctx, "LINK webhook for a link token linkd did not issue; recorded only", "webhook_code", code)
		return nil
	} else if err != nil {
		return err
	}
	switch code {
	case "EVENTS":
		events := make([]*linkdv1.LinkEvent, 0, len(hook.Events))
		for _, e := range hook.Events {
			events = append(events, e.linkEvent(hook.LinkSessionID))
		}
		if err := s.recordEvents(ctx, tok, hook.LinkSessionID, events); definite(err) {
			// The session belongs to another token, or is full: a
			// redelivery would meet the same refusal.
			s.log.WarnContext(ctx, "LINK events refused", "link_session_id", hook.LinkSessionID, "err", err)
		} else if err != nil {
			return err
		}
		return nil
	case "ITEM_ADD_RESULT", "SESSION_FINISHED":
		tokens := hook.PublicTokens
		if hook.PublicToken != "" {
			tokens = append(tokens, hook.PublicToken)
		}
		if _, err := s.completeFromPlaid(ctx, tok, hook.LinkSessionID, tokens); err != nil {
			return err
		}
		if code == "SESSION_FINISHED" && tok.GetHostedCheckAt() != nil {
			// Filed: the recovery job need not ask Plaid about it.
			return s.store.SetHostedLinkTokenCheck(ctx, tok.GetLinkToken(), time.Time{})
		}
	}
	return nil
}

// recordEvents files events in session sessionID of tok in one commit;
// events recorded before (by Plaid's event_id) change nothing.
func (s *Service) recordEvents(ctx context.Context, tok *storagev1.StoredLinkToken, sessionID string, events []*linkdv1.LinkEvent) error {
	if len(events) == 0 {
		return nil
	}
	_, err := s.store.UpdateLinkSession(ctx, sessionID, func(sess *linkdv1.LinkSession) (bool, error) {
		changed := false
		for _, e := range events {
			r := &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Event{Event: e}}
			c, err := linkd.MergeRedirect(tok.GetLinkToken(), tok.GetClientUserId(), r, s.now())(sess)
			if err != nil {
				return false, err
			}
			changed = changed || c
		}
		return changed, nil
	})
	return err
}

// completeFromPlaid asks /link/token/get for tok's sessions and files what
// each finished one came to, as its redirects would have: events, then a
// connected result per Item added (exchanged once, from Plaid's
// institution and accounts) or the exit. With sessionID set only that
// session is filed; publicTokens (from a webhook) that Plaid's results do
// not list are filed bare, so that no Item Plaid made is dropped. It
// returns Plaid's view, and the first error after trying everything.
func (s *Service) completeFromPlaid(ctx context.Context, tok *storagev1.StoredLinkToken, sessionID string, publicTokens []string) (linkd.LinkTokenStatus, error) {
	st, err := s.plaid.GetLinkToken(ctx, tok.GetLinkToken())
	if err != nil {
		return st, err
	}
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	listed := map[string]bool{}
	for _, ps := range st.Sessions {
		if sessionID != "" && ps.LinkSessionID != sessionID {
			continue
		}
		for _, c := range ps.ItemAdds {
			listed[c.GetPublicToken()] = true
		}
		keep(s.fileSession(ctx, tok, ps))
	}
	for _, pt := range publicTokens {
		if !listed[pt] && sessionID != "" {
			c := &linkdv1.ConnectedResult{PublicToken: pt, LinkSessionId: sessionID}
			_, err := s.SubmitRedirect(ctx, tok, &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Connected{Connected: c}})
			if definite(err) {
				s.log.WarnContext(ctx, "Link session result refused", "link_session_id", sessionID, "err", err)
				err = nil
			}
			keep(err)
		}
	}
	return st, first
}

// fileSession files one session of /link/token/get, if it finished.
func (s *Service) fileSession(ctx context.Context, tok *storagev1.StoredLinkToken, ps linkd.LinkTokenSession) error {
	if !ps.Finished() {
		return nil
	}
	if err := s.recordEvents(ctx, tok, ps.LinkSessionID, ps.Events); definite(err) {
		s.log.WarnContext(ctx, "Link session events refused", "link_session_id", ps.LinkSessionID, "err", err)
	} else if err != nil {
		return err
	}
	for _, c := range ps.ItemAdds {
		r := &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Connected{Connected: proto.CloneOf(c)}}
		out, err := s.SubmitRedirect(ctx, tok, r)
		if definite(err) {
			// A duplicate Item, a token spent elsewhere: asking again
			// cannot change the answer, so the session counts as filed.
			s.log.WarnContext(ctx, "Link session result refused", "link_session_id", ps.LinkSessionID, "err", err)
			continue
		} else if err != nil {
			return err
		}
		s.log.InfoContext(ctx, "Link session result filed from Plaid", "link_session_id", ps.LinkSessionID, "item_id", out.Item.GetItemId())
	}
	if ps.Exit != nil && len(ps.ItemAdds) == 0 {
		r := &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Exit{Exit: proto.CloneOf(ps.Exit)}}
		if _, err := s.SubmitRedirect(ctx, tok, r); err != nil {
			return err
		}
	}
	return nil
}

// definite reports whether err is an answer that asking again cannot
// change (ECONFLICT, EINVALID, EPRECONDITION, ENOTFOUND, and a session
// refused past MaxSessionsPerLinkToken: a redelivery would be refused
// too).
func definite(err error) bool {
	switch linkd.ErrorCode(err) {
	case linkd.ECONFLICT, linkd.EINVALID, linkd.EPRECONDITION, linkd.ENOTFOUND:
		return true
	}
	var e *linkd.Error
	return errors.As(err, &e) && e.Reason == linkd.ReasonSessionsPerLinkToken
}

// LinkTokenStatus returns tok with its state and its sessions from
// /link/token/get, each as linkd recorded it when it did (events, outcome,
// Item) and as Plaid reports it otherwise, never with a public token. A
// token Plaid no longer answers for after it expired is EXPIRED without
// sessions. Once the answer can no longer change (linkd.LinkTokenSettled:
// every session finished and filed, and the token linked an Item or
// expired) linkd keeps it with the token (SettleLinkToken) and answers
// from its records without asking Plaid; until then every call asks, as
// a session may still change.
func (s *Service) LinkTokenStatus(ctx context.Context, tok *storagev1.StoredLinkToken) (*linkdv1.GetLinkTokenResponse, error) {
	if settled := tok.GetSettled(); settled != nil {
		if resp, ok, err := s.settledStatus(ctx, tok, settled); ok || err != nil {
			return resp, err
		}
		// A session's record is gone (retention): ask Plaid, as before.
	}
	resp := &linkdv1.GetLinkTokenResponse{LinkToken: linkTokenOf(tok)}
	var expiration time.Time
	if tok.GetExpiration() != nil {
		expiration = tok.GetExpiration().AsTime()
	}
	st, err := s.plaid.GetLinkToken(ctx, tok.GetLinkToken())
	if err != nil {
		if !expiration.IsZero() && !s.now().Before(expiration) && linkd.ErrorCode(err) == linkd.EINVALID {
			resp.State = linkdv1.LinkTokenState_LINK_TOKEN_STATE_EXPIRED
			return resp, nil
		}
		return nil, err
	}
	now := s.now()
	resp.State = linkd.LinkTokenStateOf(st.Sessions, expiration, now)
	recorded := make([]*linkdv1.LinkSession, len(st.Sessions))
	for i, ps := range st.Sessions {
		sess, err := s.store.GetLinkSession(ctx, ps.LinkSessionID)
		switch {
		case err == nil && sess.GetLinkToken() == tok.GetLinkToken():
			recorded[i] = sess
			resp.LinkSessions = append(resp.LinkSessions, sess)
			continue
		case err != nil && linkd.ErrorCode(err) != linkd.ENOTFOUND:
			return nil, err
		}
		resp.LinkSessions = append(resp.LinkSessions, sessionFromPlaid(tok, ps))
	}
	if linkd.LinkTokenSettled(st.Sessions, recorded, expiration, now) {
		settled := &storagev1.LinkTokenSettlement{State: resp.State, SettledAt: timestamppb.New(now)}
		for _, ps := range st.Sessions {
			settled.LinkSessionIds = append(settled.LinkSessionIds, ps.LinkSessionID)
		}
		// Best effort: unsettled, the next call asks Plaid again.
		if err := s.store.SettleLinkToken(ctx, tok.GetLinkToken(), settled); err != nil {
			s.log.WarnContext(ctx, "link token not settled", "client_user_id", tok.GetClientUserId(), "err", err)
		}
	}
	return resp, nil
}

// settledStatus is LinkTokenStatus of a settled token, from linkd's records
// alone; false when a session's record is gone.
func (s *Service) settledStatus(ctx context.Context, tok *storagev1.StoredLinkToken, settled *storagev1.LinkTokenSettlement) (*linkdv1.GetLinkTokenResponse, bool, error) {
	resp := &linkdv1.GetLinkTokenResponse{LinkToken: linkTokenOf(tok), State: settled.GetState()}
	for _, id := range settled.GetLinkSessionIds() {
		sess, err := s.store.GetLinkSession(ctx, id)
		switch {
		case linkd.ErrorCode(err) == linkd.ENOTFOUND || err == nil && sess.GetLinkToken() != tok.GetLinkToken():
			return nil, false, nil
		case err != nil:
			return nil, false, err
		}
		resp.LinkSessions = append(resp.LinkSessions, sess)
	}
	return resp, true, nil
}

// sessionFromPlaid is linkd's view of a session only Plaid has reported:
// its events and outcome, without public tokens.
func sessionFromPlaid(tok *storagev1.StoredLinkToken, ps linkd.LinkTokenSession) *linkdv1.LinkSession {
	sess := &linkdv1.LinkSession{
		LinkSessionId: ps.LinkSessionID,
		LinkToken:     tok.GetLinkToken(),
		ClientUserId:  tok.GetClientUserId(),
	}
	for _, e := range ps.Events {
		sess.Events = append(sess.Events, proto.CloneOf(e))
	}
	switch {
	case len(ps.ItemAdds) > 0:
		c := proto.CloneOf(ps.ItemAdds[0])
		c.PublicToken = ""
		sess.Outcome = &linkdv1.LinkSession_Connected{Connected: c}
	case ps.Exit != nil:
		sess.Outcome = &linkdv1.LinkSession_Exit{Exit: proto.CloneOf(ps.Exit)}
	}
	return sess
}

// CompleteSandboxLinkSession completes a Link session of tok as a user
// would, through the emulator, and returns its id. EPRECONDITION when
// linkd talks to Plaid rather than to its emulator.
func (s *Service) CompleteSandboxLinkSession(ctx context.Context, tok *storagev1.StoredLinkToken, institutionID, exitStatus string) (string, error) {
	if s.sandboxLink == nil {
		return "", linkd.Errorf(linkd.EPRECONDITION, "sandbox Link sessions are completed only by linkd's embedded Plaid emulator")
	}
	return s.sandboxLink.CompleteLinkSession(ctx, tok.GetLinkToken(), institutionID, exitStatus)
}

// Hosted Link recovery: when a Hosted Link token's webhooks are lost, linkd
// asks /link/token/get about it, first when its session should have
// finished and then now and again, until Plaid reports a finished session
// (filed as the webhooks would have) or it is too late for Plaid to report
// one.
const (
	// hostedFirstCheck is how long after issuing a Hosted Link token linkd
	// first asks about it: most sessions take a few minutes.
	hostedFirstCheck = 15 * time.Minute
	// hostedRecheck spaces later checks, and retries after a failure.
	hostedRecheck = 10 * time.Minute
	// hostedGrace is how long after the token expires linkd still asks:
	// Plaid keeps a session's data six hours after it ends.
	hostedGrace = 6 * time.Hour
	// hostedBatch is how many due tokens one pass takes.
	hostedBatch = 64
)

// firstHostedCheck is when linkd first asks Plaid about a new Hosted Link
// token, nil for other tokens.
func (s *Service) firstHostedCheck(tok *linkdv1.LinkToken) *timestamppb.Timestamp {
	if tok.GetHostedLinkUrl() == "" {
		return nil
	}
	at := s.now().Add(hostedFirstCheck)
	if exp := tok.GetExpiration(); exp != nil && exp.AsTime().Before(at) {
		at = exp.AsTime()
	}
	return timestamppb.New(at)
}

// CheckHostedLinkTokens asks Plaid about the Hosted Link tokens whose check
// is due, files the sessions Plaid reports finished (exchanging each
// public token once, as a webhook would have) and returns how many tokens
// it settled. A token with a finished session, or past its expiration and
// the grace, is not asked about again; a failure asks again later.
func (s *Service) CheckHostedLinkTokens(ctx context.Context) (int, error) {
	due, err := s.store.HostedLinkTokensDue(ctx, s.now(), hostedBatch)
	if err != nil {
		return 0, err
	}
	settled := 0
	for _, tok := range due {
		next := s.now().Add(hostedRecheck)
		late := tok.GetExpiration() != nil && s.now().After(tok.GetExpiration().AsTime().Add(hostedGrace))
		st, err := s.completeFromPlaid(ctx, tok, "", nil)
		switch {
		case err == nil && finishedAny(st.Sessions), late:
			next = time.Time{}
			settled++
		case err != nil:
			s.log.WarnContext(ctx, "Hosted Link token not checked; asking again later", "client_user_id", tok.GetClientUserId(), "err", err)
		}
		if err := s.store.SetHostedLinkTokenCheck(ctx, tok.GetLinkToken(), next); err != nil {
			return settled, err
		}
	}
	return settled, nil
}

// finishedAny reports whether a session finished.
func finishedAny(sessions []linkd.LinkTokenSession) bool {
	for _, ps := range sessions {
		if ps.Finished() {
			return true
		}
	}
	return false
}
