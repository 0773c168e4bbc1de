package linkd

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// twoAccounts is an Item's accounts before a webhook.
func twoAccounts() []*linkdv1.Account {
	return []*linkdv1.Account{
		{Id: "acc-1", Name: "Checking", VerificationStatus: "pending_automatic_verification"},
		{Id: "acc-2", Name: "Savings"},
	}
}

func TestApplyItemWebhook(t *testing.T) {
	later := ruleT0.Add(5 * 24 * time.Hour)
	for _, tt := range []struct {
		name   string
		from   *linkdv1.Item
		hook   ItemWebhook
		want   *linkdv1.Item // nil: the webhook means no update function
		change bool
	}{
		{"NewAccountsAvailable",
			&linkdv1.Item{Status: good},
			ItemWebhook{Type: "ITEM", Code: "NEW_ACCOUNTS_AVAILABLE"},
			&linkdv1.Item{Status: good, NewAccountsAvailable: true, NewAccountsAvailableAt: sec(0)}, true},
		// The notice stands from the latest one: a session that
		// finished between the two did not answer the second.
		{"NewAccountsAvailableAgain",
			&linkdv1.Item{Status: good, NewAccountsAvailable: true, NewAccountsAvailableAt: sec(-60)},
			ItemWebhook{Type: "ITEM", Code: "NEW_ACCOUNTS_AVAILABLE"},
			&linkdv1.Item{Status: good, NewAccountsAvailable: true, NewAccountsAvailableAt: sec(0)}, true},
		// Raised by an older linkd, which kept no time: from now on, this.
		{"NewAccountsAvailableAgainNoTime",
			&linkdv1.Item{Status: good, NewAccountsAvailable: true},
			ItemWebhook{Type: "ITEM", Code: "NEW_ACCOUNTS_AVAILABLE"},
			&linkdv1.Item{Status: good, NewAccountsAvailable: true, NewAccountsAvailableAt: sec(0)}, true},
		{"UserAccountRevoked",
			&linkdv1.Item{Status: good, Accounts: twoAccounts()},
			ItemWebhook{Type: "ITEM", Code: "USER_ACCOUNT_REVOKED", AccountID: "acc-2"},
			&linkdv1.Item{Status: good, Accounts: twoAccounts()[:1]}, true},
		{"UserAccountRevokedUnknownAccount",
			&linkdv1.Item{Status: good, Accounts: twoAccounts()},
			ItemWebhook{Type: "ITEM", Code: "USER_ACCOUNT_REVOKED", AccountID: "acc-9"},
			&linkdv1.Item{Status: good, Accounts: twoAccounts()}, false},
		{"AutomaticallyVerified",
			&linkdv1.Item{Status: good, Accounts: twoAccounts()},
			ItemWebhook{Type: "AUTH", Code: "AUTOMATICALLY_VERIFIED", AccountID: "acc-1"},
			&linkdv1.Item{Status: good, Accounts: []*linkdv1.Account{
				{Id: "acc-1", Name: "Checking", VerificationStatus: "automatically_verified"}, {Id: "acc-2", Name: "Savings"}}}, true},
		{"VerificationExpired",
			&linkdv1.Item{Status: good, Accounts: twoAccounts()},
			ItemWebhook{Type: "AUTH", Code: "VERIFICATION_EXPIRED", AccountID: "acc-2"},
			&linkdv1.Item{Status: good, Accounts: []*linkdv1.Account{
				{Id: "acc-1", Name: "Checking", VerificationStatus: "pending_automatic_verification"}, {Id: "acc-2", Name: "Savings", VerificationStatus: "verification_expired"}}}, true},
		{"VerificationOfAnotherItemsAccount",
			&linkdv1.Item{Status: good, Accounts: twoAccounts()},
			ItemWebhook{Type: "AUTH", Code: "VERIFICATION_EXPIRED", AccountID: "acc-9"},
			&linkdv1.Item{Status: good, Accounts: twoAccounts()}, false},
		{"PendingExpirationKeepsConsentTime",
			&linkdv1.Item{Status: good},
			ItemWebhook{Type: "ITEM", Code: "PENDING_EXPIRATION", ConsentExpiration: later},
			&linkdv1.Item{Status: expiring, StatusChangedAt: sec(0), ConsentExpirationTime: timestamppb.New(later)}, true},
		{"PendingExpirationUnderLoginRequiredStillKeepsConsentTime",
			&linkdv1.Item{Status: login, ErrorCode: "ITEM_LOGIN_REQUIRED"},
			ItemWebhook{Type: "ITEM", Code: "PENDING_EXPIRATION", ConsentExpiration: later},
			&linkdv1.Item{Status: login, ErrorCode: "ITEM_LOGIN_REQUIRED", ConsentExpirationTime: timestamppb.New(later)}, true},
		// The disconnect time is kept apart: the consent's expiration is
		// Plaid's, and unrelated.
		{"PendingDisconnectKeepsReasonAndTime",
			&linkdv1.Item{Status: good, ConsentExpirationTime: timestamppb.New(ruleT0.Add(365 * 24 * time.Hour))},
			ItemWebhook{Type: "ITEM", Code: "PENDING_DISCONNECT", Reason: "INSTITUTION_MIGRATION", DisconnectTime: later},
			&linkdv1.Item{Status: disconn, StatusChangedAt: sec(0), PendingDisconnectReason: "INSTITUTION_MIGRATION",
				ConsentExpirationTime: timestamppb.New(ruleT0.Add(365 * 24 * time.Hour)), DisconnectTime: timestamppb.New(later)}, true},
		// A time an older linkd left behind (it kept disconnect_time as an
		// unknown field and never cleared it) does not stand for a new
		// notice that names none.
		{"PendingDisconnectAnewDropsAnOldTime",
			&linkdv1.Item{Status: good, DisconnectTime: sec(-86400)},
			ItemWebhook{Type: "ITEM", Code: "PENDING_DISCONNECT", Reason: "INSTITUTION_MIGRATION"},
			&linkdv1.Item{Status: disconn, StatusChangedAt: sec(0), PendingDisconnectReason: "INSTITUTION_MIGRATION"}, true},
		{"PendingDisconnectAgainMovesTime",
			&linkdv1.Item{Status: disconn, StatusChangedAt: sec(-60), PendingDisconnectReason: "INSTITUTION_MIGRATION", DisconnectTime: sec(60)},
			ItemWebhook{Type: "ITEM", Code: "PENDING_DISCONNECT", Reason: "INSTITUTION_MIGRATION", DisconnectTime: later},
			&linkdv1.Item{Status: disconn, StatusChangedAt: sec(-60), PendingDisconnectReason: "INSTITUTION_MIGRATION", DisconnectTime: timestamppb.New(later)}, true},
		{"PendingDisconnectUnderErrorKeepsNoReason",
			&linkdv1.Item{Status: itemError},
			ItemWebhook{Type: "ITEM", Code: "PENDING_DISCONNECT", Reason: "INSTITUTION_MIGRATION", DisconnectTime: later},
			&linkdv1.Item{Status: itemError}, false},
		{"RepairedClearsReason",
			&linkdv1.Item{Status: disconn, PendingDisconnectReason: "INSTITUTION_MIGRATION", DisconnectTime: timestamppb.New(later)},
			ItemWebhook{Type: "ITEM", Code: "LOGIN_REPAIRED"},
			&linkdv1.Item{Status: good, StatusChangedAt: sec(0)}, true},
		{"LoginRequired",
			&linkdv1.Item{Status: good},
			ItemWebhook{Type: "ITEM", Code: "ERROR", ErrorType: "ITEM_ERROR", ErrorCode: "ITEM_LOGIN_REQUIRED"},
			&linkdv1.Item{Status: login, ErrorCode: "ITEM_LOGIN_REQUIRED", StatusChangedAt: sec(0)}, true},
		{"RecordedOnly", &linkdv1.Item{Status: good}, ItemWebhook{Type: "ITEM", Code: "WEBHOOK_UPDATE_ACKNOWLEDGED"}, nil, false},
		{"OtherType", &linkdv1.Item{Status: good}, ItemWebhook{Type: "TRANSACTIONS", Code: "SYNC_UPDATES_AVAILABLE"}, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fn := ApplyItemWebhook(tt.hook, ruleT0)
			if tt.want == nil {
				if fn != nil {
					t.Fatal("an update function for a webhook that means none")
				}
				return
			}
			item := proto.CloneOf(tt.from)
			item.WebhookAppliedAt = sec(-3600) // an earlier webhook's
			changed, err := fn(item)
			// Every webhook that means something stamps the time it was
			// applied, even when it changes nothing else (tt.change).
			if err != nil || !changed {
				t.Fatalf("changed = %v, %v; want a change (webhook_applied_at)", changed, err)
			}
			if !item.GetWebhookAppliedAt().AsTime().Equal(ruleT0) {
				t.Fatalf("webhook_applied_at = %v, want %v", item.GetWebhookAppliedAt().AsTime(), ruleT0)
			}
			rest := proto.CloneOf(item)
			rest.WebhookAppliedAt = nil
			if !proto.Equal(rest, tt.want) {
				t.Fatalf("item = %v\nwant %v", rest, tt.want)
			}
			if same := proto.Equal(rest, tt.from); same == tt.change {
				t.Fatalf("changed beyond the stamp: %v, want %v", !same, tt.change)
			}
			// A replay changes nothing.
			if again, _ := fn(item); again {
				t.Fatalf("the same webhook again changed %v", item)
			}
		})
	}
}

func TestConsentRenewed(t *testing.T) {
	soon := ruleT0.Add(3 * 24 * time.Hour)
	far := ruleT0.Add(365 * 24 * time.Hour)
	for _, tt := range []struct {
		name   string
		stored *timestamppb.Timestamp
		plaid  time.Time
		want   bool
	}{
		{"MovedLater", timestamppb.New(soon), far, true},
		{"Same", timestamppb.New(soon), soon, false},   // a replayed or made-up redirect
		{"Earlier", timestamppb.New(far), soon, false}, // a stale read
		{"NoLongerExpires", timestamppb.New(soon), time.Time{}, true},
		{"NeverKnownNeverExpires", nil, time.Time{}, false}, // nothing shows a renewal
		{"UnknownBeforeFarAway", nil, far, true},            // Plaid shows nothing pending
		{"UnknownBeforeWithinWindow", nil, soon, false},     // still pending at Plaid
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := ConsentRenewed(tt.stored, tt.plaid, ruleT0); got != tt.want {
				t.Fatalf("ConsentRenewed = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDisconnectAverted(t *testing.T) {
	soon := ruleT0.Add(3 * 24 * time.Hour)
	far := ruleT0.Add(365 * 24 * time.Hour)
	for _, tt := range []struct {
		name  string
		item  *linkdv1.Item
		plaid time.Time
		want  bool
	}{
		{"NoConsentAtPlaid", &linkdv1.Item{DisconnectTime: timestamppb.New(soon), ConsentExpirationTime: timestamppb.New(soon)}, time.Time{}, false},
		{"ConsentRenewedPastIt", &linkdv1.Item{DisconnectTime: timestamppb.New(soon)}, far, true},
		{"ConsentAtIt", &linkdv1.Item{DisconnectTime: timestamppb.New(soon)}, soon, false}, // a replayed or made-up redirect
		{"Passed", &linkdv1.Item{DisconnectTime: sec(-1)}, time.Time{}, true},
		{"PassesNow", &linkdv1.Item{DisconnectTime: sec(0)}, time.Time{}, true},
		{"NoTimeWithinNotice", &linkdv1.Item{StatusChangedAt: sec(-3600)}, time.Time{}, false},
		{"NoTimeNoticeOver", &linkdv1.Item{StatusChangedAt: timestamppb.New(ruleT0.Add(-PendingExpirationWindow))}, time.Time{}, true},
		{"NoTimeConsentRenewedPastNotice", &linkdv1.Item{StatusChangedAt: sec(-3600)}, far, true},
		{"NothingKnownNoConsent", &linkdv1.Item{ConsentExpirationTime: timestamppb.New(soon)}, time.Time{}, false},
		{"NothingKnownConsentRenewed", &linkdv1.Item{ConsentExpirationTime: timestamppb.New(soon)}, far, true},
		// The consent Plaid showed before the webhook, unchanged: no renewal.
		{"SameFarConsent", &linkdv1.Item{DisconnectTime: timestamppb.New(soon), ConsentExpirationTime: timestamppb.New(far)}, far, false},
		{"NoTimeSameFarConsent", &linkdv1.Item{StatusChangedAt: sec(-3600), ConsentExpirationTime: timestamppb.New(far)}, far, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.item.Status = disconn
			if got := DisconnectAverted(tt.item, tt.plaid, ruleT0, false); got != tt.want {
				t.Fatalf("DisconnectAverted = %v, want %v", got, tt.want)
			}
			// A confirmed update-mode session needs only the consent past
			// the disconnect, moved or not.
			wantUpdate := tt.want || tt.name == "SameFarConsent" || tt.name == "NoTimeSameFarConsent"
			if got := DisconnectAverted(tt.item, tt.plaid, ruleT0, true); got != wantUpdate {
				t.Fatalf("DisconnectAverted(update mode) = %v, want %v", got, wantUpdate)
			}
		})
	}
}

func TestUpdateModeConfirmed(t *testing.T) {
	notice := ruleT0.Add(-time.Hour).Add(400 * time.Millisecond) // when the Item took PENDING_DISCONNECT
	linked := &linkdv1.ConnectedResult{PublicToken: "public-1"}
	exited := &linkdv1.ExitResult{Status: "requires_credentials"}
	for _, tt := range []struct {
		name     string
		sessions []LinkTokenSession
		since    time.Time
		want     bool
	}{
		{"NoSession", nil, notice, false}, // a made-up redirect: Plaid knows of no session
		{"OpenSession", []LinkTokenSession{{StartedAt: notice.Add(time.Minute)}}, notice, false},
		{"Exited", []LinkTokenSession{{FinishedAt: notice.Add(time.Minute), Exit: exited}}, notice, false},
		{"Linked", []LinkTokenSession{{FinishedAt: notice.Add(time.Minute), ItemAdds: []*linkdv1.ConnectedResult{linked}}}, notice, true},
		// Update mode adds no Item: Plaid may list no result.
		{"FinishedWithoutResult", []LinkTokenSession{{FinishedAt: notice.Add(time.Minute)}}, notice, true},
		// Plaid's whole seconds: the notice's second counts.
		{"InTheNoticesSecond", []LinkTokenSession{{FinishedAt: notice.Truncate(time.Second)}}, notice, true},
		// A session that ended before the notice did not answer it.
		{"BeforeTheNotice", []LinkTokenSession{{FinishedAt: notice.Add(-time.Second).Truncate(time.Second)}}, notice, false},
		{"NoNoticeTime", []LinkTokenSession{{FinishedAt: notice.Add(-time.Hour)}}, time.Time{}, true},
		{"OneOfSeveral", []LinkTokenSession{{FinishedAt: notice.Add(time.Minute), Exit: exited}, {FinishedAt: notice.Add(2 * time.Minute)}}, notice, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := UpdateModeConfirmed(tt.sessions, tt.since); got != tt.want {
				t.Fatalf("UpdateModeConfirmed = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestApplyItemState(t *testing.T) {
	soon := ruleT0.Add(3 * 24 * time.Hour)
	far := ruleT0.Add(365 * 24 * time.Hour)
	reconciled := timestamppb.New(ruleT0)
	for _, tt := range []struct {
		name string
		from *linkdv1.Item
		st   ItemState
		want *linkdv1.Item
	}{
		{"LostLoginRequiredWebhook",
			&linkdv1.Item{Status: good},
			ItemState{ErrorType: "ITEM_ERROR", ErrorCode: "ITEM_LOGIN_REQUIRED", Webhook: "https://a/webhook"},
			&linkdv1.Item{Status: login, ErrorCode: "ITEM_LOGIN_REQUIRED", StatusChangedAt: reconciled, Webhook: "https://a/webhook", ReconciledAt: reconciled}},
		{"LostRepairedWebhook",
			&linkdv1.Item{Status: login, ErrorCode: "ITEM_LOGIN_REQUIRED"},
			ItemState{},
			&linkdv1.Item{Status: good, StatusChangedAt: reconciled, ReconciledAt: reconciled}},
		{"UnrelatedErrorKeepsLoginRequired",
			&linkdv1.Item{Status: login, ErrorCode: "ITEM_LOGIN_REQUIRED"},
			ItemState{ErrorType: "INSTITUTION_ERROR", ErrorCode: "INSTITUTION_DOWN"},
			&linkdv1.Item{Status: login, ErrorCode: "ITEM_LOGIN_REQUIRED", ReconciledAt: reconciled}},
		{"PendingExpirationRenewed",
			&linkdv1.Item{Status: expiring, ConsentExpirationTime: timestamppb.New(soon)},
			ItemState{ConsentExpiration: far},
			&linkdv1.Item{Status: good, StatusChangedAt: reconciled, ConsentExpirationTime: timestamppb.New(far), ReconciledAt: reconciled}},
		{"PendingExpirationNotRenewed",
			&linkdv1.Item{Status: expiring, ConsentExpirationTime: timestamppb.New(soon)},
			ItemState{ConsentExpiration: soon},
			&linkdv1.Item{Status: expiring, ConsentExpirationTime: timestamppb.New(soon), ReconciledAt: reconciled}},
		{"PendingDisconnectRenewed",
			&linkdv1.Item{Status: disconn, PendingDisconnectReason: "INSTITUTION_TOKEN_EXPIRATION", ConsentExpirationTime: timestamppb.New(soon), DisconnectTime: timestamppb.New(soon)},
			ItemState{ConsentExpiration: far},
			&linkdv1.Item{Status: good, StatusChangedAt: reconciled, ConsentExpirationTime: timestamppb.New(far), ReconciledAt: reconciled}},
		// Plaid shows no consent expiration for most Items: that says
		// nothing of a disconnect still days away (as stored before
		// disconnect_time was kept apart, its time as the consent's).
		{"PendingDisconnectNoConsentAtPlaid",
			&linkdv1.Item{Status: disconn, StatusChangedAt: sec(-3600), PendingDisconnectReason: "INSTITUTION_MIGRATION", ConsentExpirationTime: timestamppb.New(soon), DisconnectTime: timestamppb.New(soon)},
			ItemState{},
			&linkdv1.Item{Status: disconn, StatusChangedAt: sec(-3600), PendingDisconnectReason: "INSTITUTION_MIGRATION", DisconnectTime: timestamppb.New(soon), ReconciledAt: reconciled}},
		{"PendingDisconnectConsentNotPastIt",
			&linkdv1.Item{Status: disconn, StatusChangedAt: sec(-3600), DisconnectTime: timestamppb.New(soon)},
			ItemState{ConsentExpiration: soon},
			&linkdv1.Item{Status: disconn, StatusChangedAt: sec(-3600), DisconnectTime: timestamppb.New(soon), ConsentExpirationTime: timestamppb.New(soon), ReconciledAt: reconciled}},
		// Its time has passed and Plaid reports no error: not disconnected.
		{"PendingDisconnectPassed",
			&linkdv1.Item{Status: disconn, StatusChangedAt: sec(-3600), PendingDisconnectReason: "INSTITUTION_MIGRATION", DisconnectTime: sec(-1)},
			ItemState{},
			&linkdv1.Item{Status: good, StatusChangedAt: reconciled, ReconciledAt: reconciled}},
		// Without disconnect_time, Plaid's notice (a week) from the webhook.
		{"PendingDisconnectUnknownTimeWithinNotice",
			&linkdv1.Item{Status: disconn, StatusChangedAt: sec(-3600)},
			ItemState{},
			&linkdv1.Item{Status: disconn, StatusChangedAt: sec(-3600), ReconciledAt: reconciled}},
		{"PendingDisconnectUnknownTimePassed",
			&linkdv1.Item{Status: disconn, StatusChangedAt: timestamppb.New(ruleT0.Add(-PendingExpirationWindow))},
			ItemState{},
			&linkdv1.Item{Status: good, StatusChangedAt: reconciled, ReconciledAt: reconciled}},
		{"LostPendingExpirationWebhook",
			&linkdv1.Item{Status: good},
			ItemState{ConsentExpiration: soon},
			&linkdv1.Item{Status: expiring, StatusChangedAt: reconciled, ConsentExpirationTime: timestamppb.New(soon), ReconciledAt: reconciled}},
		{"NewerReportStands", // an ERROR webhook applied while /item/get was asked
			&linkdv1.Item{Status: login, ErrorCode: "ITEM_LOGIN_REQUIRED", StatusChangedAt: sec(-1)},
			ItemState{ReadAt: ruleT0.Add(-2 * time.Second)},
			&linkdv1.Item{Status: login, ErrorCode: "ITEM_LOGIN_REQUIRED", StatusChangedAt: sec(-1), ReconciledAt: reconciled}},
		{"NewerConsentStands", // a PENDING_EXPIRATION webhook applied while /item/get was asked
			&linkdv1.Item{Status: expiring, StatusChangedAt: sec(-1), ConsentExpirationTime: timestamppb.New(soon)},
			ItemState{ReadAt: ruleT0.Add(-2 * time.Second)},
			&linkdv1.Item{Status: expiring, StatusChangedAt: sec(-1), ConsentExpirationTime: timestamppb.New(soon), ReconciledAt: reconciled}},
		{"ReportAtTheReadTimeStands", // stamped at the very time /item/get was asked: the webhook wins the tie
			&linkdv1.Item{Status: login, ErrorCode: "ITEM_LOGIN_REQUIRED", StatusChangedAt: sec(-2)},
			ItemState{ReadAt: ruleT0.Add(-2 * time.Second)},
			&linkdv1.Item{Status: login, ErrorCode: "ITEM_LOGIN_REQUIRED", StatusChangedAt: sec(-2), ReconciledAt: reconciled}},
		{"ConsentAtTheReadTimeStands",
			&linkdv1.Item{Status: expiring, StatusChangedAt: sec(-2), ConsentExpirationTime: timestamppb.New(soon)},
			ItemState{ReadAt: ruleT0.Add(-2 * time.Second), ConsentExpiration: far},
			&linkdv1.Item{Status: expiring, StatusChangedAt: sec(-2), ConsentExpirationTime: timestamppb.New(soon), ReconciledAt: reconciled}},
		{"OlderReportGives",
			&linkdv1.Item{Status: login, ErrorCode: "ITEM_LOGIN_REQUIRED", StatusChangedAt: sec(-3)},
			ItemState{ReadAt: ruleT0.Add(-2 * time.Second)},
			&linkdv1.Item{Status: good, StatusChangedAt: reconciled, ReconciledAt: reconciled}},
		// A PENDING_EXPIRATION webhook repeated with a later consent time
		// while Plaid was asked (the status did not change) stands.
		{"RepeatedWebhookConsentDuringRead",
			&linkdv1.Item{Status: expiring, StatusChangedAt: sec(-7200), ConsentExpirationTime: timestamppb.New(far), WebhookAppliedAt: sec(-1)},
			ItemState{ConsentExpiration: soon, ReadAt: ruleT0.Add(-2 * time.Second)},
			&linkdv1.Item{Status: expiring, StatusChangedAt: sec(-7200), ConsentExpirationTime: timestamppb.New(far), WebhookAppliedAt: sec(-1), ReconciledAt: reconciled}},
		{"RevokedStays",
			&linkdv1.Item{Status: revoked, ErrorCode: "USER_PERMISSION_REVOKED"},
			ItemState{},
			&linkdv1.Item{Status: revoked, ErrorCode: "USER_PERMISSION_REVOKED", ReconciledAt: reconciled}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			item := proto.CloneOf(tt.from)
			if _, err := ApplyItemState(tt.st, ruleT0)(item); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(item, tt.want) {
				t.Fatalf("item = %v\nwant %v", item, tt.want)
			}
			// Read again later, the same state changes only reconciled_at.
			again := proto.CloneOf(item)
			ApplyItemState(tt.st, ruleT0)(again)
			if !proto.Equal(again, item) {
				t.Fatalf("the same state again changed %v to %v", item, again)
			}
		})
	}
}

func TestRefreshItem(t *testing.T) {
	readAt := ruleT0.Add(-2 * time.Second)
	acc := ItemAccounts{InstitutionID: "ins_1", Accounts: twoAccounts(), Webhook: "https://a/webhook", ReadAt: readAt}
	for _, tt := range []struct {
		name      string
		webhookAt *timestamppb.Timestamp
		readAt    time.Time
		wantStale bool
	}{
		{"NoWebhook", nil, readAt, false},
		{"WebhookBeforeTheRead", sec(-3), readAt, false},
		{"WebhookWhileRead", sec(-1), readAt, true}, // a USER_ACCOUNT_REVOKED landed meanwhile
		{"WebhookAtTheReadTime", sec(-2), readAt, true},
		{"ReadTimeUnknown", sec(-1), time.Time{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			from := &linkdv1.Item{Status: good, InstitutionId: "ins_1", Accounts: twoAccounts()[:1], WebhookAppliedAt: tt.webhookAt}
			item := proto.CloneOf(from)
			a := acc
			a.ReadAt = tt.readAt
			changed, err := RefreshItem(a)(item)
			if tt.wantStale {
				if !errors.Is(err, ErrStaleRead) || changed || !proto.Equal(item, from) {
					t.Fatalf("changed = %v, %v, item %v; want ErrStaleRead and the Item untouched", changed, err, item)
				}
				return
			}
			if err != nil || !changed || len(item.GetAccounts()) != 2 || item.GetWebhook() != "https://a/webhook" {
				t.Fatalf("changed = %v, %v, item %v; want Plaid's accounts and webhook", changed, err, item)
			}
		})
	}
}

// finished is a session /link/token/get lists as finished without an
// exit n seconds after ruleT0, as update mode ends.
func finished(n int) LinkTokenSession {
	return LinkTokenSession{LinkSessionID: fmt.Sprint("sess-", n), FinishedAt: ruleT0.Add(time.Duration(n) * time.Second)}
}

func TestConfirmUpdateMode_WebhookMeanwhile(t *testing.T) {
	far := ruleT0.Add(365 * 24 * time.Hour)
	began, read := ruleT0.Add(-4*time.Second), ruleT0.Add(-2*time.Second)
	acc := ItemAccounts{InstitutionID: "ins_1", Accounts: twoAccounts(), ReadAt: read}
	for _, tt := range []struct {
		name      string
		webhookAt *timestamppb.Timestamp
		flaggedAt *timestamppb.Timestamp // new_accounts_available_at as stored at the write
		sessions  []LinkTokenSession     // /link/token/get, asked as the session began
		wantErr   error
		wantFlag  bool
	}{
		{"NoneSince", sec(-5), sec(-5), []LinkTokenSession{finished(-5)}, nil, false},
		// A NEW_ACCOUNTS_AVAILABLE after the session, before the accounts
		// were read: they are current, the flag is news. Not flagged as
		// the session began, linkd did not ask /link/token/get.
		{"SinceTheSessionBegan", sec(-3), sec(-3), nil, nil, true},
		// Asked all the same (a pending disconnect): the session Plaid
		// lists ended before the flag.
		{"SinceTheSessionEnded", sec(-3), sec(-3), []LinkTokenSession{finished(-5)}, nil, true},
		// Flagged before the session, which answers it: another webhook
		// since (LOGIN_REPAIRED) does not keep the flag.
		{"FlaggedBeforeOtherWebhookSince", sec(-3), sec(-10), []LinkTokenSession{finished(-5)}, nil, false},
		// After the accounts were read (or at that time): read again.
		{"WhileTheAccountsWereRead", sec(-1), sec(-1), []LinkTokenSession{finished(-5)}, ErrStaleRead, true},
		{"AtTheAccountsReadTime", sec(-2), sec(-2), []LinkTokenSession{finished(-5)}, ErrStaleRead, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			from := &linkdv1.Item{Status: expiring, ConsentExpirationTime: timestamppb.New(ruleT0.Add(time.Hour)),
				NewAccountsAvailable: true, NewAccountsAvailableAt: tt.flaggedAt, InstitutionId: "ins_1", Accounts: twoAccounts()[:1], WebhookAppliedAt: tt.webhookAt}
			item := proto.CloneOf(from)
			_, err := ConfirmUpdateMode(ItemState{ConsentExpiration: far, ReadAt: began}, acc, tt.sessions, ruleT0)(item)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !proto.Equal(item, from) {
					t.Fatalf("a stale read changed the Item to %v", item)
				}
				return
			}
			if item.GetNewAccountsAvailable() != tt.wantFlag || len(item.GetAccounts()) != 2 {
				t.Fatalf("item = %v; want new_accounts_available %v and both accounts", item, tt.wantFlag)
			}
		})
	}
}

func TestConfirmUpdateMode(t *testing.T) {
	far := ruleT0.Add(365 * 24 * time.Hour)
	item := &linkdv1.Item{Status: expiring, ConsentExpirationTime: timestamppb.New(ruleT0.Add(time.Hour)),
		NewAccountsAvailable: true, NewAccountsAvailableAt: sec(-60), InstitutionId: "ins_1", Accounts: twoAccounts()[:1]}
	acc := ItemAccounts{InstitutionID: "ins_1", Accounts: twoAccounts()}
	changed, err := ConfirmUpdateMode(ItemState{ConsentExpiration: far}, acc, []LinkTokenSession{finished(-10)}, ruleT0)(item)
	if err != nil || !changed {
		t.Fatalf("changed = %v, %v", changed, err)
	}
	if item.GetStatus() != good || item.GetNewAccountsAvailable() || item.GetNewAccountsAvailableAt() != nil || len(item.GetAccounts()) != 2 ||
		!item.GetConsentExpirationTime().AsTime().Equal(far) {
		t.Fatalf("item = %v; want GOOD, consent moved, the flag and its time cleared and both accounts", item)
	}
}

// TestConfirmUpdateMode_NewAccountsAvailable: the flag clears only for a
// session /link/token/get shows finished without an exit since the flag
// was raised, never for the connected redirect alone: a made-up one has
// no session at Plaid, a replayed one's ended before a flag raised since.
func TestConfirmUpdateMode_NewAccountsAvailable(t *testing.T) {
	exited := LinkTokenSession{FinishedAt: ruleT0.Add(-10 * time.Second), Exit: &linkdv1.ExitResult{Status: "requires_credentials"}}
	for _, tt := range []struct {
		name      string
		flaggedAt *timestamppb.Timestamp // new_accounts_available_at
		applied   *timestamppb.Timestamp // webhook_applied_at
		sessions  []LinkTokenSession
		wantFlag  bool
	}{
		{"MadeUp", sec(-60), sec(-60), nil, true},
		{"MadeUpNoSessionFinished", sec(-60), sec(-60), []LinkTokenSession{{StartedAt: ruleT0.Add(-30 * time.Second)}}, true},
		{"Exited", sec(-60), sec(-60), []LinkTokenSession{exited}, true},
		{"Confirmed", sec(-60), sec(-60), []LinkTokenSession{finished(-10)}, false},
		// The session cleared an earlier flag; the redirect comes again
		// after a new NEW_ACCOUNTS_AVAILABLE.
		{"ReplayedAfterNewFlag", sec(-5), sec(-5), []LinkTokenSession{finished(-10)}, true},
		// Plaid's whole seconds: a session in the notice's second counts.
		{"InTheNoticesSecond", timestamppb.New(ruleT0.Add(-10*time.Second + 300*time.Millisecond)), sec(-10), []LinkTokenSession{finished(-10)}, false},
		// Raised by an older linkd without a time: no session before the
		// last webhook applied answers it.
		{"NoTimeSessionAfterLastWebhook", nil, sec(-60), []LinkTokenSession{finished(-10)}, false},
		{"NoTimeSessionBeforeLastWebhook", nil, sec(-5), []LinkTokenSession{finished(-10)}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			item := &linkdv1.Item{Status: good, NewAccountsAvailable: true, NewAccountsAvailableAt: tt.flaggedAt, WebhookAppliedAt: tt.applied,
				InstitutionId: "ins_1", Accounts: twoAccounts()}
			acc := ItemAccounts{InstitutionID: "ins_1", Accounts: twoAccounts()}
			if _, err := ConfirmUpdateMode(ItemState{}, acc, tt.sessions, ruleT0)(item); err != nil {
				t.Fatal(err)
			}
			wantAt := tt.flaggedAt // kept with the flag, cleared with it
			if !tt.wantFlag {
				wantAt = nil
			}
			if item.GetNewAccountsAvailable() != tt.wantFlag || !proto.Equal(item.GetNewAccountsAvailableAt(), wantAt) {
				t.Fatalf("new_accounts_available %v at %v, want %v at %v", item.GetNewAccountsAvailable(), item.GetNewAccountsAvailableAt(), tt.wantFlag, wantAt)
			}
		})
	}
}

// TestConfirmUpdateMode_SecondNotice: a NEW_ACCOUNTS_AVAILABLE after an
// update-mode session (accounts opened since) is not answered by that
// session's redirect arriving late or resubmitted. The first notice's
// time was kept, so the session counted and the second notice was lost.
func TestConfirmUpdateMode_SecondNotice(t *testing.T) {
	item := &linkdv1.Item{Status: good, InstitutionId: "ins_1", Accounts: twoAccounts()}
	notice := ItemWebhook{Type: "ITEM", Code: "NEW_ACCOUNTS_AVAILABLE"}
	for _, at := range []time.Duration{-60 * time.Second, -10 * time.Second} {
		if _, err := ApplyItemWebhook(notice, ruleT0.Add(at))(item); err != nil {
			t.Fatal(err)
		}
	}
	acc := ItemAccounts{InstitutionID: "ins_1", Accounts: twoAccounts()}
	if _, err := ConfirmUpdateMode(ItemState{}, acc, []LinkTokenSession{finished(-30)}, ruleT0)(item); err != nil {
		t.Fatal(err)
	}
	if !item.GetNewAccountsAvailable() {
		t.Fatal("a session finished before the second notice cleared new_accounts_available")
	}
}

// TestConfirmUpdateMode_PendingDisconnect: Plaid's consent lies past the
// disconnect time as it did before the notice; only a session Plaid
// confirmed (UpdateModeConfirmed) since the notice takes that as averted,
// never the connected redirect alone.
func TestConfirmUpdateMode_PendingDisconnect(t *testing.T) {
	far := ruleT0.Add(365 * 24 * time.Hour)
	for _, tt := range []struct {
		name     string
		sessions []LinkTokenSession
		want     linkdv1.ItemStatus
	}{
		{"MadeUp", nil, disconn},
		{"BeforeTheNotice", []LinkTokenSession{finished(-61)}, disconn},
		{"Confirmed", []LinkTokenSession{finished(-10)}, good},
	} {
		t.Run(tt.name, func(t *testing.T) {
			item := &linkdv1.Item{Status: disconn, StatusChangedAt: sec(-60), DisconnectTime: timestamppb.New(ruleT0.Add(48 * time.Hour)),
				ConsentExpirationTime: timestamppb.New(far), InstitutionId: "ins_1", Accounts: twoAccounts()}
			acc := ItemAccounts{InstitutionID: "ins_1", Accounts: twoAccounts()}
			if _, err := ConfirmUpdateMode(ItemState{ConsentExpiration: far}, acc, tt.sessions, ruleT0)(item); err != nil {
				t.Fatal(err)
			}
			if item.GetStatus() != tt.want {
				t.Fatalf("status = %v, want %v", item.GetStatus(), tt.want)
			}
		})
	}
}

// WebhookAppliedSince compares the Item's webhook_applied_at with the one
// read before Plaid was asked, not with the reader's clock: replicas'
// clocks differ.
func TestWebhookAppliedSince(t *testing.T) {
	readAt := ruleT0
	for _, tt := range []struct {
		name          string
		seen, now     *timestamppb.Timestamp // webhook_applied_at as read before asking, and at the write
		known         bool
		want, clocked bool // WebhookAppliedSince, and what the clocks alone said (WebhookSince)
	}{
		{"NoneEver", nil, nil, true, false, false},
		{"NoneSince", sec(-60), sec(-60), true, false, false},
		// Applied before the read by a replica whose clock runs ahead.
		{"BeforeByAClockAhead", sec(5), sec(5), true, false, true},
		// Applied during the read by a replica whose clock runs behind.
		{"DuringByAClockBehind", sec(-60), sec(-5), true, true, false},
		{"FirstDuringByAClockBehind", nil, sec(-5), true, true, false},
		{"During", sec(-60), sec(1), true, true, true},
		// Unknown version: the clocks tell.
		{"UnknownVersion", nil, sec(1), false, true, true},
		{"UnknownVersionClockBehind", nil, sec(-5), false, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var v ItemVersion
			if tt.known {
				v = VersionOf(&linkdv1.Item{WebhookAppliedAt: tt.seen})
			}
			item := &linkdv1.Item{WebhookAppliedAt: tt.now}
			if got := WebhookAppliedSince(item, v, readAt); got != tt.want {
				t.Fatalf("WebhookAppliedSince = %v, want %v", got, tt.want)
			}
			if got := WebhookSince(item, readAt); got != tt.clocked {
				t.Fatalf("WebhookSince = %v, want %v", got, tt.clocked)
			}
		})
	}
	// The version is a copy: the Item it was read from may change.
	item := &linkdv1.Item{WebhookAppliedAt: sec(-60)}
	v := VersionOf(item)
	item.WebhookAppliedAt.Seconds++
	if !WebhookAppliedSince(item, v, readAt) {
		t.Fatal("a version shares the Item's timestamp")
	}
}

// TestApplyItemState_StatusWebhookByClockBehind: a LOGIN_REQUIRED webhook
// applied by a replica whose clock runs 5 s behind, while this replica
// asked Plaid's /item/get (which answered before the webhook: no error).
// The reader read the Item first (st.Version), so it knows the status
// changed meanwhile; the status stands, as the consent time does.
func TestApplyItemState_StatusWebhookByClockBehind(t *testing.T) {
	readAt := ruleT0
	item := &linkdv1.Item{ItemId: "item-1", Status: linkdv1.ItemStatus_ITEM_STATUS_GOOD}
	v := VersionOf(item)
	behind := readAt.Add(-5 * time.Second)
	if _, err := ApplyItemWebhook(ItemWebhook{Type: "ITEM", Code: "ERROR", ErrorType: "ITEM_ERROR", ErrorCode: "ITEM_LOGIN_REQUIRED"}, behind)(item); err != nil {
		t.Fatal(err)
	}
	if item.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED {
		t.Fatalf("webhook gave %v", item.GetStatus())
	}
	if _, err := ApplyItemState(ItemState{ReadAt: readAt, Version: v}, readAt.Add(time.Second))(item); err != nil {
		t.Fatal(err)
	}
	if item.GetStatus() != linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED {
		t.Fatalf("a stale /item/get undid the webhook: status %v", item.GetStatus())
	}
}
