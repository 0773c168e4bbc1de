package linkd

import (
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// The rules below decide what a record may become. They are pure: the
// service passes them to the Store as update functions, so every backend
// applies the same rules inside its own transaction.

// MaxSessionEvents bounds the events kept for one Link session. A real
// session fires a few dozen; the bound keeps a caller from growing one
// record (rewritten whole on each event) without end.
const MaxSessionEvents = 500

// MaxSessionBytes bounds the encoded size of one Link session record, so
// that a caller cannot fill the disk through one session with events of
// the largest URL linkd accepts (500 of 16 KiB would be 8 MiB). A real
// session of a few dozen events is a few KiB.
const MaxSessionBytes = 512 << 10

// MaxSessionsPerLinkToken bounds the Link sessions one link token may
// create, so that a caller cannot fill the disk with sessions of
// MaxSessionBytes under fresh ids. A real end user opens Link a few times
// with one token (it lives 4 hours); creating link tokens is rate-limited
// per user, so this bounds a user's sessions too.
const MaxSessionsPerLinkToken = 20

// CountLinkTokenSession counts one new Link session on the link token t
// that it was created with. With refuse, it returns an ERATELIMIT *Error
// naming the limit (Reason ReasonSessionsPerLinkToken, RetryAfter the time
// until t expires, when it has not yet) and changes nothing when t has
// created MaxSessionsPerLinkToken sessions already. Without refuse (a
// session that files an Item Plaid billed, which is always stored) it
// counts past the limit.
func CountLinkTokenSession(t *storagev1.StoredLinkToken, now time.Time, refuse bool) error {
	if refuse && t.GetSessions() >= MaxSessionsPerLinkToken {
		e := &Error{Code: ERATELIMIT, Reason: ReasonSessionsPerLinkToken,
			Message: fmt.Sprintf("the link token has created %d Link sessions, the most linkd records for one link token (sessions per link token); create a new link token", MaxSessionsPerLinkToken)}
		if exp := t.GetExpiration(); exp != nil && exp.AsTime().After(now) {
			e.RetryAfter = exp.AsTime().Sub(now)
		}
		return e
	}
	t.Sessions++
	return nil
}

// ItemStatusFor maps a Plaid error, as Link, Plaid's API or a webhook
// reports it, to the Item status it means, and reports false for errors
// that say nothing about the Item: those of another error_type, and the
// user's own mistakes inside Link (a wrong password in update mode leaves
// the Item as broken as it was).
//
//	ITEM_LOGIN_REQUIRED                         LOGIN_REQUIRED
//	PENDING_EXPIRATION                          PENDING_EXPIRATION
//	PENDING_DISCONNECT                          PENDING_DISCONNECT
//	USER_PERMISSION_REVOKED                     REVOKED
//	INVALID_CREDENTIALS, INVALID_MFA, ...       (no change)
//	any other ITEM_ERROR                        ERROR
func ItemStatusFor(errorType, errorCode string) (linkdv1.ItemStatus, bool) {
	switch errorCode {
	case "ITEM_LOGIN_REQUIRED":
		return linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED, true
	case "PENDING_EXPIRATION":
		return linkdv1.ItemStatus_ITEM_STATUS_PENDING_EXPIRATION, true
	case "PENDING_DISCONNECT":
		return linkdv1.ItemStatus_ITEM_STATUS_PENDING_DISCONNECT, true
	case "USER_PERMISSION_REVOKED":
		return linkdv1.ItemStatus_ITEM_STATUS_REVOKED, true
	case "INVALID_CREDENTIALS", "INVALID_MFA", "INVALID_SEND_METHOD", "INVALID_UPDATED_USERNAME",
		"INSUFFICIENT_CREDENTIALS", "USER_INPUT_TIMEOUT", "INVALID_PHONE_NUMBER", "INVALID_OTP":
		return 0, false
	}
	if errorType == "ITEM_ERROR" {
		return linkdv1.ItemStatus_ITEM_STATUS_ERROR, true
	}
	return 0, false
}

// StatusMayChange is the precedence of Item statuses, so that reports
// arriving in any order cannot hide a worse state: REVOKED is final (the
// user withdrew consent; only removing the Item ends it), and a pending
// expiry or disconnect never covers LOGIN_REQUIRED or ERROR, which need
// the user now.
func StatusMayChange(from, to linkdv1.ItemStatus) bool {
	switch {
	case to == linkdv1.ItemStatus_ITEM_STATUS_REVOKED:
		return true
	case from == linkdv1.ItemStatus_ITEM_STATUS_REVOKED:
		return false
	case to == linkdv1.ItemStatus_ITEM_STATUS_PENDING_EXPIRATION || to == linkdv1.ItemStatus_ITEM_STATUS_PENDING_DISCONNECT:
		return from != linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED && from != linkdv1.ItemStatus_ITEM_STATUS_ERROR
	}
	return true
}

// SetItemStatusAsOf is SetItemStatus for what Plaid answered to a call
// linkd made at askedAt: a status the Item took at or after askedAt (a
// webhook applied while the call was in flight) knows more, and stands
// (StatusChangedSince).
func SetItemStatusAsOf(status linkdv1.ItemStatus, errorCode string, askedAt, now time.Time) func(*linkdv1.Item) (bool, error) {
	set := SetItemStatus(status, errorCode, now)
	return func(item *linkdv1.Item) (bool, error) {
		if StatusChangedSince(item, askedAt) {
			return false, nil
		}
		return set(item)
	}
}

// StatusChangedSince reports whether the Item's status changed at or
// after t, when linkd asked Plaid something (zero t: unknown, never). A
// tie goes to the stored status: with a coarse clock, or replicas whose
// clocks differ, a webhook stamped at the very time of the call may have
// arrived after it, and an answer Plaid gave to an older question must
// not undo it (the next reconcile corrects the other case).
func StatusChangedSince(item *linkdv1.Item, t time.Time) bool {
	at := item.GetStatusChangedAt()
	return !t.IsZero() && at != nil && !at.AsTime().Before(t)
}

// SetItemStatus returns an update function that moves an Item to status
// with errorCode, stamping status_changed_at with now, unless the Item is
// there already or StatusMayChange forbids it (then it reports no change).
func SetItemStatus(status linkdv1.ItemStatus, errorCode string, now time.Time) func(*linkdv1.Item) (bool, error) {
	return func(item *linkdv1.Item) (bool, error) {
		if item.GetStatus() == status && item.GetErrorCode() == errorCode {
			return false, nil
		}
		if !StatusMayChange(item.GetStatus(), status) {
			return false, nil
		}
		item.Status, item.ErrorCode, item.StatusChangedAt = status, errorCode, timestamppb.New(now)
		// The reason and time explain one PENDING_DISCONNECT: cleared when
		// the status leaves it, and when it enters it anew (the webhook
		// sets its own), so that a time an older linkd left behind (it
		// kept disconnect_time as an unknown field and never cleared it)
		// cannot stand for a new notice.
		item.PendingDisconnectReason, item.DisconnectTime = "", nil
		return true, nil
	}
}

// SetItemDetails returns an update function that replaces an Item's
// institution id and name where the new value is not empty, and its
// accounts when the list is not empty.
func SetItemDetails(institutionID, institutionName string, accounts []*linkdv1.Account) func(*linkdv1.Item) (bool, error) {
	return func(item *linkdv1.Item) (bool, error) {
		before := proto.CloneOf(item)
		if institutionID != "" {
			item.InstitutionId = institutionID
		}
		if institutionName != "" {
			item.InstitutionName = institutionName
		}
		if len(accounts) > 0 {
			item.Accounts = cloneAccounts(accounts)
		}
		return !proto.Equal(before, item), nil
	}
}

func cloneAccounts(in []*linkdv1.Account) []*linkdv1.Account {
	out := make([]*linkdv1.Account, len(in))
	for i, a := range in {
		out[i] = proto.CloneOf(a)
	}
	return out
}

// MergeRedirect returns an update function that files redirect r in its
// Link session, binding a new session to linkToken and clientUserID. An
// event goes in timestamp order, after events with an equal timestamp; an
// event without a timestamp goes last, and events never move past it. An
// event recorded already (sameEvent: a retry, or the same event reported
// by a redirect and by Plaid) is not added again: the first report
// stands, and gains the fields only the later one carries (Plaid's
// event_id for a redirect's report). Connected
// and exit set the outcome once (connected without its public token); the
// same outcome again changes nothing. first_seen_at and last_seen_at take
// now whenever the session changes.
//
// The function returns ECONFLICT when the session is bound to another link
// token or user or already has another outcome, and EPRECONDITION when an
// event would pass MaxSessionEvents.
func MergeRedirect(linkToken, clientUserID string, r *linkdv1.WebviewRedirect, now time.Time) func(*linkdv1.LinkSession) (bool, error) {
	return func(s *linkdv1.LinkSession) (bool, error) {
		changed := false
		if s.GetLinkToken() == "" && s.GetClientUserId() == "" {
			s.LinkToken, s.ClientUserId = linkToken, clientUserID
			changed = true
		} else if s.GetLinkToken() != linkToken || s.GetClientUserId() != clientUserID {
			return false, Errorf(ECONFLICT, "link session belongs to another link token")
		}
		switch res := r.GetResult().(type) {
		case *linkdv1.WebviewRedirect_Event:
			if i := slices.IndexFunc(s.Events, func(old *linkdv1.LinkEvent) bool { return sameEvent(old, res.Event) }); i >= 0 {
				// Recorded already (a resubmission, or the other source's
				// report): the first report stands, and what it lacked
				// the later one adds (Plaid's event_id to a redirect's).
				filled := proto.CloneOf(s.Events[i])
				if fillEvent(filled, res.Event) {
					if proto.Size(s)-proto.Size(s.Events[i])+proto.Size(filled) > MaxSessionBytes {
						break // the report as it stands is kept
					}
					s.Events[i] = filled
					changed = true
				}
				break
			}
			if len(s.GetEvents()) >= MaxSessionEvents {
				// FAILED_PRECONDITION, not a rate limit: retrying cannot help.
				return false, Errorf(EPRECONDITION, "link session has %d events, the most linkd records", MaxSessionEvents)
			}
			if proto.Size(s)+proto.Size(res.Event) > MaxSessionBytes {
				return false, Errorf(EPRECONDITION, "link session would pass %d bytes, the most linkd records for one session", MaxSessionBytes)
			}
			addEvent(s, proto.CloneOf(res.Event))
			changed = true
		case *linkdv1.WebviewRedirect_Connected:
			c := proto.CloneOf(res.Connected)
			c.PublicToken = ""
			set, err := setOutcome(s, &linkdv1.LinkSession_Connected{Connected: c})
			if err != nil {
				return false, err
			}
			changed = changed || set
		case *linkdv1.WebviewRedirect_Exit:
			set, err := setOutcome(s, &linkdv1.LinkSession_Exit{Exit: proto.CloneOf(res.Exit)})
			if err != nil {
				return false, err
			}
			changed = changed || set
		}
		if !changed {
			return false, nil
		}
		ts := timestamppb.New(now)
		if s.FirstSeenAt == nil {
			s.FirstSeenAt = ts
		}
		s.LastSeenAt = ts
		return true, nil
	}
}

// addEvent inserts e in s.Events after the last event that has no
// timestamp or a timestamp not after e's, so equal timestamps keep arrival
// order and an event without one stays where it arrived.
func addEvent(s *linkdv1.LinkSession, e *linkdv1.LinkEvent) {
	i := len(s.Events)
	if ts := e.GetTimestamp(); ts != nil {
		at := ts.AsTime()
		for i > 0 {
			prev := s.Events[i-1].GetTimestamp()
			if prev == nil || !prev.AsTime().After(at) {
				break
			}
			i--
		}
	}
	s.Events = slices.Insert(s.Events, i, e)
}

// fillEvent sets each field of e that is unset from later, another report
// of the same event (sameEvent), and reports whether it set any.
func fillEvent(e, later *linkdv1.LinkEvent) bool {
	dst := e.ProtoReflect()
	filled := false
	// Set shares the value's messages and lists: take them from a copy.
	proto.CloneOf(later).ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if !dst.Has(fd) {
			dst.Set(fd, v)
			filled = true
		}
		return true
	})
	return filled
}

// sameEvent reports whether a and b are one Link event: the same Plaid
// event_id (webhooks and /link/token/get may report one event twice, with
// fields filled differently); or the same event_name at the same timestamp
// with no field that both carry set differently, as a webview redirect
// (plaidlink://event, which has no event_id and may leave request_id
// empty) and a LINK EVENTS webhook or /link/token/get report one event:
// Plaid's docs give every event its event_name, timestamp (to the
// millisecond), link_session_id and request_id; or, without a timestamp
// to tell them apart, equal events.
func sameEvent(a, b *linkdv1.LinkEvent) bool {
	if id := b.GetEventId(); id != "" && a.GetEventId() == id {
		return true
	}
	at, bt := a.GetTimestamp(), b.GetTimestamp()
	if at == nil || bt == nil || a.GetEventName() != b.GetEventName() || !at.AsTime().Equal(bt.AsTime()) {
		return proto.Equal(a, b)
	}
	differ := func(x, y string) bool { return x != "" && y != "" && x != y }
	return !differ(a.GetEventId(), b.GetEventId()) && !differ(a.GetLinkSessionId(), b.GetLinkSessionId()) &&
		!differ(a.GetRequestId(), b.GetRequestId()) && !differ(a.GetViewName(), b.GetViewName()) &&
		!differ(a.GetInstitutionId(), b.GetInstitutionId()) && !differ(a.GetInstitutionName(), b.GetInstitutionName()) && !differ(a.GetInstitutionSearchQuery(), b.GetInstitutionSearchQuery()) &&
		!differ(a.GetExitStatus(), b.GetExitStatus()) && !differ(a.GetMfaType(), b.GetMfaType()) &&
		!differ(a.GetSelection(), b.GetSelection()) && !differ(a.GetMatchReason(), b.GetMatchReason()) &&
		!differ(a.GetError().GetErrorCode(), b.GetError().GetErrorCode())
}

// setOutcome makes o the session's outcome and reports whether it did: not
// when the session has this outcome already. Another outcome is ECONFLICT.
func setOutcome(s *linkdv1.LinkSession, o any) (bool, error) {
	var want proto.Message
	switch o := o.(type) {
	case *linkdv1.LinkSession_Connected:
		if s.GetOutcome() == nil {
			s.Outcome = o
			return true, nil
		}
		want = o.Connected
		if old := s.GetConnected(); old != nil && (proto.Equal(old, o.Connected) || sameConnection(old, o.Connected)) {
			return false, nil
		}
	case *linkdv1.LinkSession_Exit:
		if s.GetOutcome() == nil {
			s.Outcome = o
			return true, nil
		}
		want = o.Exit
		if old := s.GetExit(); old != nil && proto.Equal(old, want) {
			return false, nil
		}
	}
	return false, Errorf(ECONFLICT, "link session already ended with another result")
}

// sameConnection reports whether two connected results are one connection
// reported twice, through a LINK webhook and a late webview redirect, whose
// fields Plaid fills differently: the same institution (or one side
// without one). The first report stands.
func sameConnection(a, b *linkdv1.ConnectedResult) bool {
	return a.GetInstitutionId() == "" || b.GetInstitutionId() == "" || a.GetInstitutionId() == b.GetInstitutionId()
}

// LinkTokenStateOf is where a link token stands from its sessions as
// /link/token/get reports them: COMPLETED once a session added an Item,
// else EXITED once a session finished, else EXPIRED past expiration (a
// zero expiration never expires), else OPEN.
func LinkTokenStateOf(sessions []LinkTokenSession, expiration, now time.Time) linkdv1.LinkTokenState {
	exited := false
	for _, s := range sessions {
		if len(s.ItemAdds) > 0 {
			return linkdv1.LinkTokenState_LINK_TOKEN_STATE_COMPLETED
		}
		if s.Finished() {
			exited = true
		}
	}
	switch {
	case exited:
		return linkdv1.LinkTokenState_LINK_TOKEN_STATE_EXITED
	case !expiration.IsZero() && !now.Before(expiration):
		return linkdv1.LinkTokenState_LINK_TOKEN_STATE_EXPIRED
	}
	return linkdv1.LinkTokenState_LINK_TOKEN_STATE_OPEN
}

// LinkTokenSettled reports whether what GetLinkToken answers for a link
// token can no longer change, so that linkd may keep the answer and stop
// asking Plaid: every session Plaid lists (sessions) finished, and linkd
// recorded its outcome (recorded[i] is linkd's record of sessions[i], nil
// when it has none): the connected one with its Item, or the exit; and
// either a session linked an Item (COMPLETED, which no later session
// changes; Plaid's link tokens are for one linking) or the token expired,
// so that no session can start (a zero expiration never does). An open
// session, or one linkd has not filed yet, may still change.
func LinkTokenSettled(sessions []LinkTokenSession, recorded []*linkdv1.LinkSession, expiration, now time.Time) bool {
	if len(recorded) != len(sessions) {
		return false
	}
	linked := false
	for i, ps := range sessions {
		rec := recorded[i]
		switch {
		case !ps.Finished() || rec == nil:
			return false
		case len(ps.ItemAdds) > 0:
			if rec.GetConnected() == nil || rec.GetItemId() == "" {
				return false
			}
			linked = true
		case rec.GetOutcome() == nil:
			return false
		}
	}
	return linked || !expiration.IsZero() && !now.Before(expiration)
}

// SessionStart is when a Link session started, for reports: its earliest
// event timestamp (events are kept in order, and ones without a timestamp
// go last), or else when linkd first saw it. Event timestamps come from
// the end user's device clock, which may be years off either way, so
// retention counts from SessionLastSeen instead.
func SessionStart(s *linkdv1.LinkSession) time.Time {
	if evs := s.GetEvents(); len(evs) > 0 && evs[0].GetTimestamp() != nil {
		return evs[0].GetTimestamp().AsTime()
	}
	return s.GetFirstSeenAt().AsTime()
}

// SessionLastSeen is when linkd last recorded something new for a Link
// session by its own clock (last_seen_at), what retention counts from; a
// session without one (not recorded through MergeRedirect) falls back to
// SessionStart.
func SessionLastSeen(s *linkdv1.LinkSession) time.Time {
	if ts := s.GetLastSeenAt(); ts != nil {
		return ts.AsTime()
	}
	return SessionStart(s)
}

// SameAccounts reports whether two account lists share an account by name
// and mask, or, when either has no account with both, whether that cannot
// be told (and the institution decides): the duplicate-Item match Plaid
// recommends.
func SameAccounts(a, b []*linkdv1.Account) bool {
	if !slices.ContainsFunc(a, namedAccount) || !slices.ContainsFunc(b, namedAccount) {
		return true
	}
	return shareNamedAccount(a, b)
}

// namedAccount reports whether an account has both a name and a mask.
func namedAccount(acc *linkdv1.Account) bool { return acc.GetName() != "" && acc.GetMask() != "" }

// shareNamedAccount reports whether two account lists share an account by
// name and mask.
func shareNamedAccount(a, b []*linkdv1.Account) bool {
	for _, x := range a {
		for _, y := range b {
			if namedAccount(x) && x.GetName() == y.GetName() && x.GetMask() == y.GetMask() {
				return true
			}
		}
	}
	return false
}

// DuplicateOf returns the first Item of candidates that a connection to
// institutionID with accounts repeats, or nil.
func DuplicateOf(candidates []*linkdv1.Item, institutionID string, accounts []*linkdv1.Account) *linkdv1.Item {
	if institutionID == "" {
		return nil
	}
	for _, old := range candidates {
		if old.GetInstitutionId() == institutionID && SameAccounts(old.GetAccounts(), accounts) {
			return old
		}
	}
	return nil
}

// PendingDuplicateOf returns the first of pending (connections being
// exchanged, each as the Item it would be: user, institution, accounts)
// that a connection of clientUserID to institutionID with accounts must
// wait for before its duplicate check, or nil. The user's own pending
// links count as DuplicateOf judges them; with allUsers, so do other
// users' when they share a named account. Another user's link with no
// named account on either side does not count, though DuplicateOf lets
// the institution decide against a stored Item: two users at one bank
// are no sign of one shared login, and otherwise one user's flood of
// account-less redirects would hold every other user's links to that
// institution (the stored Items are still checked after the wait).
func PendingDuplicateOf(pending []*linkdv1.Item, clientUserID, institutionID string, accounts []*linkdv1.Account, allUsers bool) *linkdv1.Item {
	if institutionID == "" {
		return nil
	}
	for _, p := range pending {
		if p.GetInstitutionId() != institutionID {
			continue
		}
		if p.GetClientUserId() == clientUserID && SameAccounts(p.GetAccounts(), accounts) ||
			allUsers && shareNamedAccount(p.GetAccounts(), accounts) {
			return p
		}
	}
	return nil
}

// SandboxWebhookCodes are the webhook codes Plaid's
// /sandbox/item/fire_webhook fires (plaid-openapi 2020-09-14,
// SandboxItemFireWebhookRequest), and SandboxWebhookTypes its webhook
// types. Plaid refuses others; so does linkd, before calling Plaid, to name
// the field.
var (
	SandboxWebhookCodes = []string{
		"DEFAULT_UPDATE", "NEW_ACCOUNTS_AVAILABLE", "SMS_MICRODEPOSITS_VERIFICATION", "AUTHORIZATION_GRANTED",
		"USER_PERMISSION_REVOKED", "USER_ACCOUNT_REVOKED", "PENDING_DISCONNECT", "RECURRING_TRANSACTIONS_UPDATE",
		"LOGIN_REPAIRED", "SYNC_UPDATES_AVAILABLE", "PRODUCT_READY", "ERROR",
	}
	SandboxWebhookTypes = []string{"AUTH", "HOLDINGS", "INVESTMENTS_TRANSACTIONS", "ITEM", "LIABILITIES", "TRANSACTIONS", "ASSETS"}
)

// SandboxVerificationStatuses are the statuses Plaid's
// /sandbox/item/set_verification_status sets.
var SandboxVerificationStatuses = []string{"automatically_verified", "verification_expired"}

// EmulatorItemStates are the states SetEmulatorItemState puts an Item in,
// and PendingDisconnectReasons Plaid's reasons for PENDING_DISCONNECT.
var (
	EmulatorItemStates       = []string{"PENDING_EXPIRATION", "PENDING_DISCONNECT", "LOGIN_REPAIRED"}
	PendingDisconnectReasons = []string{"INSTITUTION_MIGRATION", "INSTITUTION_TOKEN_EXPIRATION"}
)

// emulatorOnlyWebhooks are webhook codes Plaid sends that its sandbox
// cannot fire, with the emulator state that sends them.
var emulatorOnlyWebhooks = map[string]string{"PENDING_EXPIRATION": "PENDING_EXPIRATION"}

// CheckSandboxWebhook returns nil when Plaid's sandbox fires webhookCode
// with webhookType ("" for none), else an EINVALID *Error naming
// webhook_code or webhook_type: a code or type outside Plaid's lists,
// DEFAULT_UPDATE without a type, or ERROR as anything but the Assets
// webhook it is.
func CheckSandboxWebhook(webhookCode, webhookType string) error {
	switch {
	case webhookCode == "":
		return InvalidField("webhook_code", "webhook_code is required")
	case emulatorOnlyWebhooks[webhookCode] != "":
		return InvalidField("webhook_code", "Plaid's sandbox cannot fire %s; with the emulator, SetEmulatorItemState with state %s sends it", webhookCode, emulatorOnlyWebhooks[webhookCode])
	case !slices.Contains(SandboxWebhookCodes, webhookCode):
		return InvalidField("webhook_code", "webhook_code %q is not a webhook code Plaid's sandbox fires (one of %v)", webhookCode, SandboxWebhookCodes)
	case webhookType != "" && !slices.Contains(SandboxWebhookTypes, webhookType):
		return InvalidField("webhook_type", "webhook_type %q is not a webhook type Plaid's sandbox fires (one of %v)", webhookType, SandboxWebhookTypes)
	case webhookCode == "DEFAULT_UPDATE" && webhookType == "":
		return InvalidField("webhook_type", "webhook_type is required with DEFAULT_UPDATE: the product whose update to fire")
	case webhookCode == "ERROR" && webhookType != "" && webhookType != "ASSETS":
		return InvalidField("webhook_type", "webhook_code ERROR is an ASSETS webhook in Plaid's sandbox; ResetSandboxItemLogin puts an Item in ITEM_LOGIN_REQUIRED")
	}
	return nil
}

// CheckSandboxVerificationStatus returns nil when Plaid's sandbox can be
// asked to set an account's verification status, else an EINVALID *Error
// naming account_id or verification_status.
func CheckSandboxVerificationStatus(accountID, status string) error {
	switch {
	case accountID == "":
		return InvalidField("account_id", "account_id is required")
	case !slices.Contains(SandboxVerificationStatuses, status):
		return InvalidField("verification_status", "verification_status must be one of %v", SandboxVerificationStatuses)
	}
	return nil
}

// CheckEmulatorItemState returns nil when the emulator can put an Item in
// state (with reason, for PENDING_DISCONNECT only), else an EINVALID
// *Error naming state or reason.
func CheckEmulatorItemState(state, reason string) error {
	switch {
	case !slices.Contains(EmulatorItemStates, state):
		return InvalidField("state", "state must be one of %v", EmulatorItemStates)
	case reason != "" && state != "PENDING_DISCONNECT":
		return InvalidField("reason", "reason is only for state PENDING_DISCONNECT")
	case reason != "" && !slices.Contains(PendingDisconnectReasons, reason):
		return InvalidField("reason", "reason must be one of %v", PendingDisconnectReasons)
	}
	return nil
}
