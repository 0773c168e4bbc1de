package linkd

import (
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// Items as Plaid describes them: what a webhook about an Item, Plaid's
// /item/get, and a confirmed update-mode session make of the stored Item.
// Like the rules in rules.go these are pure update functions.

// PendingExpirationWindow is how long before an Item's consent expires
// Plaid sends PENDING_EXPIRATION: a consent expiring within it is a
// pending expiration, one further away is not.
const PendingExpirationWindow = 7 * 24 * time.Hour

// ItemState is Plaid's view of an Item, from /item/get.
type ItemState struct {
	ItemID          string
	InstitutionID   string
	InstitutionName string
	// Webhook is the Item's webhook URL at Plaid; empty for none.
	Webhook string
	// ErrorType and ErrorCode are the Item's error; empty when it has
	// none.
	ErrorType, ErrorCode string
	// ConsentExpiration is when the user's consent expires; zero when it
	// does not.
	ConsentExpiration time.Time
	RequestID         string
	// ReadAt is when linkd asked (its clock, before the call); zero when
	// unknown. A status that changed at or after it came from a newer
	// report (a webhook that arrived meanwhile) and stands.
	ReadAt time.Time
	// Version is the Item as linkd read it before asking (VersionOf);
	// zero when it did not, and ReadAt tells of webhooks instead
	// (WebhookAppliedSince).
	Version ItemVersion
}

// ItemWebhook is what linkd reads of a Plaid webhook about an Item.
type ItemWebhook struct {
	Type, Code           string
	ErrorType, ErrorCode string
	// AccountID names the account of USER_ACCOUNT_REVOKED and of AUTH
	// AUTOMATICALLY_VERIFIED and VERIFICATION_EXPIRED.
	AccountID string
	// ConsentExpiration is PENDING_EXPIRATION's consent_expiration_time;
	// zero when absent.
	ConsentExpiration time.Time
	// Reason is PENDING_DISCONNECT's reason, DisconnectTime its
	// disconnect_time (zero when absent): when the Item's consent ends.
	Reason         string
	DisconnectTime time.Time
}

// WebhookStatus is the Item status an ITEM webhook means, and false for
// one that means no status (NEW_ACCOUNTS_AVAILABLE,
// WEBHOOK_UPDATE_ACKNOWLEDGED, USER_ACCOUNT_REVOKED, other types and
// codes).
func WebhookStatus(webhookType, webhookCode, errorType, errorCode string) (linkdv1.ItemStatus, bool) {
	if webhookType != "ITEM" {
		return 0, false
	}
	switch webhookCode {
	case "ERROR":
		return ItemStatusFor(errorType, errorCode)
	case "LOGIN_REPAIRED":
		return linkdv1.ItemStatus_ITEM_STATUS_GOOD, true
	}
	// PENDING_EXPIRATION, PENDING_DISCONNECT, USER_PERMISSION_REVOKED: the
	// webhook code is the error code ItemStatusFor knows.
	return ItemStatusFor("", webhookCode)
}

// ApplyItemWebhook returns the update function a webhook means for its
// Item, or nil when it means none:
//
//	ITEM ERROR, LOGIN_REPAIRED, USER_PERMISSION_REVOKED   the status (SetItemStatus)
//	ITEM PENDING_EXPIRATION                               the status, and consent_expiration_time
//	ITEM PENDING_DISCONNECT                               the status, pending_disconnect_reason and disconnect_time
//	ITEM NEW_ACCOUNTS_AVAILABLE                           new_accounts_available set, new_accounts_available_at now
//	ITEM USER_ACCOUNT_REVOKED                             the account account_id removed
//	AUTH AUTOMATICALLY_VERIFIED, VERIFICATION_EXPIRED     that account's verification_status
//
// Each also stamps webhook_applied_at with now, even when it changes
// nothing else (a NEW_ACCOUNTS_AVAILABLE for an Item flagged already is
// still news to a read taken before it): a view of the Item read from
// Plaid before then does not undo it (WebhookAppliedSince, ErrStaleRead).
// Applying one twice changes nothing the second time.
func ApplyItemWebhook(w ItemWebhook, now time.Time) func(*linkdv1.Item) (bool, error) {
	var fns []func(*linkdv1.Item) (bool, error)
	if st, ok := WebhookStatus(w.Type, w.Code, w.ErrorType, w.ErrorCode); ok {
		fns = append(fns, SetItemStatus(st, w.ErrorCode, now))
	}
	switch w.Type + " " + w.Code {
	case "ITEM PENDING_EXPIRATION":
		if !w.ConsentExpiration.IsZero() {
			fns = append(fns, setConsentExpiration(w.ConsentExpiration))
		}
	case "ITEM PENDING_DISCONNECT":
		fns = append(fns, func(item *linkdv1.Item) (bool, error) {
			// Kept only with the status they explain (a worse status that
			// StatusMayChange keeps is not pending a disconnect). The time
			// is its own, not the consent's expiration: Plaid shows none
			// for most Items, and that must not read as renewed
			// (DisconnectAverted).
			if item.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_PENDING_DISCONNECT {
				return false, nil
			}
			changed := false
			if w.Reason != "" && item.GetPendingDisconnectReason() != w.Reason {
				item.PendingDisconnectReason, changed = w.Reason, true
			}
			if at := w.DisconnectTime; !at.IsZero() && (item.GetDisconnectTime() == nil || !item.GetDisconnectTime().AsTime().Equal(at)) {
				item.DisconnectTime, changed = timestamppb.New(at), true
			}
			return changed, nil
		})
	case "ITEM NEW_ACCOUNTS_AVAILABLE":
		fns = append(fns, func(item *linkdv1.Item) (bool, error) {
			// The notice stands from the latest one: a session that
			// finished before it did not answer it (accounts opened
			// after that session), so it must not clear the flag. A
			// delivery Plaid repeats is applied once (webhook ids).
			if item.GetNewAccountsAvailable() && item.GetNewAccountsAvailableAt().AsTime().Equal(now) {
				return false, nil
			}
			item.NewAccountsAvailable, item.NewAccountsAvailableAt = true, timestamppb.New(now)
			return true, nil
		})
	case "ITEM USER_ACCOUNT_REVOKED":
		if w.AccountID != "" {
			fns = append(fns, func(item *linkdv1.Item) (bool, error) {
				n := len(item.Accounts)
				item.Accounts = slices.DeleteFunc(item.Accounts, func(a *linkdv1.Account) bool { return a.GetId() == w.AccountID })
				return len(item.Accounts) != n, nil
			})
		}
	case "AUTH AUTOMATICALLY_VERIFIED":
		fns = append(fns, setVerificationStatus(w.AccountID, "automatically_verified"))
	case "AUTH VERIFICATION_EXPIRED":
		fns = append(fns, setVerificationStatus(w.AccountID, "verification_expired"))
	}
	if len(fns) == 0 {
		return nil
	}
	return all(append(fns, func(item *linkdv1.Item) (bool, error) {
		if at := item.GetWebhookAppliedAt(); at != nil && at.AsTime().Equal(now) {
			return false, nil
		}
		item.WebhookAppliedAt = timestamppb.New(now)
		return true, nil
	})...)
}

// ErrStaleRead is what an update function returns for a view of an Item
// that linkd read from Plaid before a webhook about the Item was applied
// (WebhookAppliedSince): storing it could undo the webhook (a revoked account
// listed again, new_accounts_available cleared, an older verification
// status), so nothing is stored and the caller reads Plaid again, whose
// answer then includes what the webhook reported.
var ErrStaleRead = Errorf(EUNAVAILABLE, "a webhook about the Item arrived while linkd read it from Plaid; read it again")

// WebhookSince reports whether a webhook was applied to the Item at or
// after t, when linkd asked Plaid (zero t: unknown, never). A tie goes to
// the webhook, as in StatusChangedSince. It compares two clocks when
// replicas share a store (the one that applied the webhook, the one that
// asked): a skew makes needless re-reads one way and misses a webhook the
// other, so readers that read the Item first compare versions instead
// (WebhookAppliedSince).
func WebhookSince(item *linkdv1.Item, t time.Time) bool {
	at := item.GetWebhookAppliedAt()
	return !t.IsZero() && at != nil && !at.AsTime().Before(t)
}

// ItemVersion is an Item's record as linkd read it from the store before
// asking Plaid about the Item, as far as webhooks and status go: its
// webhook_applied_at, which every applied webhook stamps anew
// (ApplyItemWebhook), and its status_changed_at. The zero ItemVersion is
// unknown (linkd did not read the record first).
type ItemVersion struct {
	webhookAppliedAt *timestamppb.Timestamp
	statusChangedAt  *timestamppb.Timestamp
	known            bool
}

// VersionOf returns item's ItemVersion.
func VersionOf(item *linkdv1.Item) ItemVersion {
	return ItemVersion{webhookAppliedAt: proto.CloneOf(item.GetWebhookAppliedAt()), statusChangedAt: proto.CloneOf(item.GetStatusChangedAt()), known: true}
}

// WebhookAppliedSince reports whether a webhook was applied to the Item
// since linkd read it at v: its webhook_applied_at is no longer v's, an
// equality that holds whichever replica's clock stamped it. With v
// unknown it falls back to the clocks, WebhookSince(item, t).
func WebhookAppliedSince(item *linkdv1.Item, v ItemVersion, t time.Time) bool {
	if !v.known {
		return WebhookSince(item, t)
	}
	return !proto.Equal(item.GetWebhookAppliedAt(), v.webhookAppliedAt)
}

// RefreshItem returns an update function that replaces an Item's
// institution and accounts with Plaid's /accounts/get (SetItemDetails)
// and records its webhook URL when Plaid names one. ErrStaleRead, changing
// nothing, when a webhook was applied since acc was read
// (WebhookAppliedSince).
func RefreshItem(acc ItemAccounts) func(*linkdv1.Item) (bool, error) {
	details := SetItemDetails(acc.InstitutionID, acc.InstitutionName, acc.Accounts)
	return func(item *linkdv1.Item) (bool, error) {
		if WebhookAppliedSince(item, acc.Version, acc.ReadAt) {
			return false, ErrStaleRead
		}
		changed, _ := details(item)
		if acc.Webhook != "" {
			moved, _ := SetItemWebhook(acc.Webhook)(item)
			changed = changed || moved
		}
		return changed, nil
	}
}

// setVerificationStatus returns an update function that sets the
// verification_status of the Item's account accountID; an Item without
// that account is left alone.
func setVerificationStatus(accountID, status string) func(*linkdv1.Item) (bool, error) {
	return func(item *linkdv1.Item) (bool, error) {
		if accountID == "" {
			return false, nil
		}
		for _, a := range item.GetAccounts() {
			if a.GetId() == accountID && a.GetVerificationStatus() != status {
				a.VerificationStatus = status
				return true, nil
			}
		}
		return false, nil
	}
}

// setConsentExpiration returns an update function that records when the
// Item's consent expires (zero: it does not).
func setConsentExpiration(at time.Time) func(*linkdv1.Item) (bool, error) {
	return func(item *linkdv1.Item) (bool, error) {
		old := item.GetConsentExpirationTime()
		switch {
		case at.IsZero() && old == nil:
			return false, nil
		case at.IsZero():
			item.ConsentExpirationTime = nil
			return true, nil
		case old != nil && old.AsTime().Equal(at):
			return false, nil
		}
		item.ConsentExpirationTime = timestamppb.New(at)
		return true, nil
	}
}

// ConsentRenewed reports whether Plaid's consent expiration (plaid; zero
// when the consent does not expire) shows that the user renewed consent
// since linkd recorded stored (nil when linkd knows of none): it moved
// later, or the consent no longer expires, or, when linkd knows no
// earlier one, it is further away than PendingExpirationWindow (Plaid
// shows nothing pending). The same expiration again, as a replayed or
// made-up update-mode redirect finds it, is no renewal.
func ConsentRenewed(stored *timestamppb.Timestamp, plaid, now time.Time) bool {
	switch {
	case plaid.IsZero():
		return stored != nil
	case stored == nil:
		return plaid.After(now.Add(PendingExpirationWindow))
	}
	return plaid.After(stored.AsTime())
}

// UpdateModeConfirmed reports whether Plaid's /link/token/get of an
// update-mode link token linkd issued for an Item shows that the user went
// through update mode: a session of it that finished without an exit, at
// or after since (when the notice the session answers arrived: the Item's
// PENDING_DISCONNECT status, its new_accounts_available; zero: any time;
// Plaid's times are whole seconds, so from since's second). Only this
// makes an update-mode session confirmed (DisconnectAverted, the
// new_accounts_available flag cleared): a connected redirect is the
// client's word, as easily made up or replayed, and a session that ended
// before the notice did not answer it.
func UpdateModeConfirmed(sessions []LinkTokenSession, since time.Time) bool {
	for _, s := range sessions {
		if s.FinishedAt.IsZero() || s.Exit != nil {
			continue
		}
		if since.IsZero() || !s.FinishedAt.Before(since.Truncate(time.Second)) {
			return true
		}
	}
	return false
}

// newAccountsNoticeAt returns when the Item's new_accounts_available was
// raised: its new_accounts_available_at, or, for a flag an older linkd
// raised without keeping the time, its webhook_applied_at (the flag's
// webhook was applied then or before, so no session that ended before
// it answers the flag); zero when neither is known.
func newAccountsNoticeAt(item *linkdv1.Item) time.Time {
	switch {
	case item.GetNewAccountsAvailableAt() != nil:
		return item.GetNewAccountsAvailableAt().AsTime()
	case item.GetWebhookAppliedAt() != nil:
		return item.GetWebhookAppliedAt().AsTime()
	}
	return time.Time{}
}

// DisconnectAverted reports whether Plaid's /item/get at now, showing no
// Item error and the consent expiring at plaid (zero when it does not),
// shows that the pending disconnect of item (PENDING_DISCONNECT) will not
// happen: the consent now expires after the disconnect time and, unless
// updateMode (a session Plaid confirmed, UpdateModeConfirmed), moved since
// linkd recorded it
// (ConsentRenewed); or the disconnect time has passed and Plaid still
// reports no error. A consent that does not expire says nothing either
// way: Plaid shows none for most Items. The disconnect time is the webhook's
// disconnect_time, else Plaid's notice (PendingExpirationWindow, a week)
// from when the status was taken; with neither, only a consent renewed as
// ConsentRenewed tells.
func DisconnectAverted(item *linkdv1.Item, plaid, now time.Time, updateMode bool) bool {
	var at time.Time
	switch {
	case item.GetDisconnectTime() != nil:
		at = item.GetDisconnectTime().AsTime()
	case item.GetStatusChangedAt() != nil:
		at = item.GetStatusChangedAt().AsTime().Add(PendingExpirationWindow)
	default:
		return !plaid.IsZero() && ConsentRenewed(item.GetConsentExpirationTime(), plaid, now)
	}
	// Outside update mode the consent must also have moved
	// (ConsentRenewed), not only lie past the disconnect: an Item whose
	// consent Plaid showed a year out before the webhook still shows it
	// after, and nobody went through update mode. A confirmed update-mode
	// session needs no more than the consent past the disconnect: the
	// user renewed it, perhaps within the second of an earlier renewal.
	renewed := !plaid.IsZero() && plaid.After(at) &&
		(updateMode || ConsentRenewed(item.GetConsentExpirationTime(), plaid, now))
	return renewed || !now.Before(at)
}

// ApplyItemState returns an update function that brings an Item in line
// with Plaid's /item/get at now (its status only when no report changed it
// at or after st.ReadAt, StatusChangedSince):
//   - an Item error Plaid reports sets the status it means (SetItemStatus);
//   - with no error, LOGIN_REQUIRED and ERROR become GOOD (the error was
//     repaired, perhaps while its webhook was lost), PENDING_EXPIRATION
//     becomes GOOD only when ConsentRenewed, PENDING_DISCONNECT only when
//     DisconnectAverted, and a
//     GOOD Item whose consent expires within PendingExpirationWindow
//     becomes PENDING_EXPIRATION (a lost webhook);
//   - consent_expiration_time and webhook take Plaid's values, and
//     reconciled_at takes now.
//
// REVOKED stays (StatusMayChange).
func ApplyItemState(st ItemState, now time.Time) func(*linkdv1.Item) (bool, error) {
	return applyItemState(st, now, false)
}

// applyItemState is ApplyItemState, for a confirmed update-mode session
// when updateMode (DisconnectAverted).
func applyItemState(st ItemState, now time.Time, updateMode bool) func(*linkdv1.Item) (bool, error) {
	return func(item *linkdv1.Item) (bool, error) {
		before := proto.CloneOf(item)
		var status func(*linkdv1.Item) (bool, error)
		// A status that changed since linkd read the Item (known
		// version: whichever replica's clock stamped it), or else at or
		// after the read began, is newer than Plaid's answer.
		newer := StatusChangedSince(item, st.ReadAt)
		if st.Version.known {
			newer = !proto.Equal(item.GetStatusChangedAt(), st.Version.statusChangedAt)
		}
		switch {
		case newer:
			// A report that arrived while Plaid was asked knows more.
		case st.ErrorCode != "":
			if s, ok := ItemStatusFor(st.ErrorType, st.ErrorCode); ok {
				status = SetItemStatus(s, st.ErrorCode, now)
			}
		default:
			switch item.GetStatus() {
			case linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED, linkdv1.ItemStatus_ITEM_STATUS_ERROR:
				status = SetItemStatus(linkdv1.ItemStatus_ITEM_STATUS_GOOD, "", now)
			case linkdv1.ItemStatus_ITEM_STATUS_PENDING_EXPIRATION:
				if ConsentRenewed(item.GetConsentExpirationTime(), st.ConsentExpiration, now) {
					status = SetItemStatus(linkdv1.ItemStatus_ITEM_STATUS_GOOD, "", now)
				}
			case linkdv1.ItemStatus_ITEM_STATUS_PENDING_DISCONNECT:
				if DisconnectAverted(item, st.ConsentExpiration, now, updateMode) {
					status = SetItemStatus(linkdv1.ItemStatus_ITEM_STATUS_GOOD, "", now)
				}
			case linkdv1.ItemStatus_ITEM_STATUS_GOOD:
				if at := st.ConsentExpiration; !at.IsZero() && at.Before(now.Add(PendingExpirationWindow)) {
					status = SetItemStatus(linkdv1.ItemStatus_ITEM_STATUS_PENDING_EXPIRATION, "", now)
				}
			}
		}
		if status != nil {
			status(item)
		}
		// A PENDING_* webhook's consent time is newer too, also when it
		// repeats the status with a new time (no status change).
		if !newer && !WebhookAppliedSince(item, st.Version, st.ReadAt) {
			setConsentExpiration(st.ConsentExpiration)(item)
		}
		if st.Webhook != "" {
			item.Webhook = st.Webhook
		}
		if st.InstitutionName != "" && item.GetInstitutionName() == "" {
			item.InstitutionName = st.InstitutionName
		}
		item.ReconciledAt = timestamppb.New(now)
		return !proto.Equal(before, item), nil
	}
}

// ConfirmUpdateMode returns an update function for a connected redirect of
// an update-mode session, with Plaid's /link/token/get of the update-mode
// link token (sessions; nil when linkd did not ask, or Plaid no longer
// answers for the token), then /item/get (st, with st.ReadAt when linkd
// began confirming the session) and /accounts/get (acc) read after it:
// ApplyItemState (as for a session Plaid confirmed, DisconnectAverted,
// only when UpdateModeConfirmed since the Item took its status), the
// Item's institution and accounts replaced by Plaid's (SetItemDetails), so
// that accounts the user added in update mode appear, and
// new_accounts_available cleared only when UpdateModeConfirmed since the
// flag was raised (newAccountsNoticeAt). The redirect itself confirms
// nothing: a made-up one has no session at Plaid, and a replayed one's
// session ended before a flag raised since. Both are judged on the Item
// as stored, so that a flag raised while Plaid was asked stays unless a
// session Plaid listed finished after it. ErrStaleRead, changing nothing,
// when a webhook was applied since acc was read (WebhookAppliedSince,
// acc.Version or acc.ReadAt).
func ConfirmUpdateMode(st ItemState, acc ItemAccounts, sessions []LinkTokenSession, now time.Time) func(*linkdv1.Item) (bool, error) {
	return func(item *linkdv1.Item) (bool, error) {
		if WebhookAppliedSince(item, acc.Version, acc.ReadAt) {
			return false, ErrStaleRead
		}
		var statusSince time.Time
		if at := item.GetStatusChangedAt(); at != nil {
			statusSince = at.AsTime()
		}
		return all(
			applyItemState(st, now, UpdateModeConfirmed(sessions, statusSince)),
			SetItemDetails(acc.InstitutionID, acc.InstitutionName, acc.Accounts),
			func(item *linkdv1.Item) (bool, error) {
				if !item.GetNewAccountsAvailable() || !UpdateModeConfirmed(sessions, newAccountsNoticeAt(item)) {
					return false, nil
				}
				item.NewAccountsAvailable, item.NewAccountsAvailableAt = false, nil
				return true, nil
			},
		)(item)
	}
}

// SetItemWebhook returns an update function that records the Item's
// webhook URL.
func SetItemWebhook(url string) func(*linkdv1.Item) (bool, error) {
	return func(item *linkdv1.Item) (bool, error) {
		if item.GetWebhook() == url {
			return false, nil
		}
		item.Webhook = url
		return true, nil
	}
}

// all returns an update function applying each of fns in order, reporting
// a change when any did; the first error stops it.
func all(fns ...func(*linkdv1.Item) (bool, error)) func(*linkdv1.Item) (bool, error) {
	return func(item *linkdv1.Item) (bool, error) {
		changed := false
		for _, fn := range fns {
			c, err := fn(item)
			if err != nil {
				return false, err
			}
			changed = changed || c
		}
		return changed, nil
	}
}
