package linkd

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// The rules are pure functions, tested by tables here and through a store
// only in storetest.

var ruleT0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// sec returns a timestamp n seconds after ruleT0.
func sec(n int) *timestamppb.Timestamp {
	return timestamppb.New(ruleT0.Add(time.Duration(n) * time.Second))
}

const (
	good      = linkdv1.ItemStatus_ITEM_STATUS_GOOD
	login     = linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED
	expiring  = linkdv1.ItemStatus_ITEM_STATUS_PENDING_EXPIRATION
	disconn   = linkdv1.ItemStatus_ITEM_STATUS_PENDING_DISCONNECT
	revoked   = linkdv1.ItemStatus_ITEM_STATUS_REVOKED
	itemError = linkdv1.ItemStatus_ITEM_STATUS_ERROR
)

func TestItemStatusFor(t *testing.T) {
	for _, tt := range []struct {
		errorType, errorCode string
		want                 linkdv1.ItemStatus
		ok                   bool
	}{
		{"ITEM_ERROR", "ITEM_LOGIN_REQUIRED", login, true},
		{"ITEM_ERROR", "PENDING_EXPIRATION", expiring, true},
		{"ITEM_ERROR", "PENDING_DISCONNECT", disconn, true},
		{"ITEM_ERROR", "USER_PERMISSION_REVOKED", revoked, true},
		{"ITEM_ERROR", "INVALID_CREDENTIALS", 0, false}, // the user's typo leaves the Item as it was
		{"ITEM_ERROR", "INVALID_MFA", 0, false},
		{"ITEM_ERROR", "ITEM_LOCKED", itemError, true},
		{"API_ERROR", "INTERNAL_SERVER_ERROR", 0, false},
	} {
		t.Run(tt.errorCode, func(t *testing.T) {
			got, ok := ItemStatusFor(tt.errorType, tt.errorCode)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("ItemStatusFor(%s, %s) = %v, %v; want %v, %v", tt.errorType, tt.errorCode, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// Status precedence: reports arriving in any order never hide a worse
// state.
func TestStatusMayChange(t *testing.T) {
	for _, tt := range []struct {
		from, to linkdv1.ItemStatus
		want     bool
	}{
		{good, login, true},
		{good, expiring, true},
		{login, good, true}, // a repair
		{login, expiring, false},
		{login, disconn, false},
		{itemError, expiring, false},
		{expiring, login, true},
		{expiring, disconn, true},
		{revoked, good, false}, // final
		{revoked, login, false},
		{good, revoked, true},
		{login, revoked, true},
		{revoked, revoked, true},
	} {
		t.Run(fmt.Sprintf("%v→%v", tt.from, tt.to), func(t *testing.T) {
			if got := StatusMayChange(tt.from, tt.to); got != tt.want {
				t.Fatalf("StatusMayChange(%v, %v) = %v, want %v", tt.from, tt.to, got, tt.want)
			}
		})
	}
}

func TestSetItemStatusAsOf(t *testing.T) {
	login := linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED
	asked := ruleT0.Add(-2 * time.Second)
	for _, tt := range []struct {
		name        string
		changedAt   *timestamppb.Timestamp
		wantChanged bool
	}{
		{"NeverChanged", nil, true},
		{"ChangedBeforeTheCall", sec(-3), true},
		{"ChangedWhileAsked", sec(-1), false}, // LOGIN_REPAIRED landed meanwhile
		// Stamped at the very time linkd asked (a coarse or skewed clock
		// across replicas): the webhook arrived no earlier than the call
		// went out, and stands.
		{"ChangedAtTheAskedTime", sec(-2), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			item := &linkdv1.Item{Status: linkdv1.ItemStatus_ITEM_STATUS_GOOD, StatusChangedAt: tt.changedAt}
			changed, err := SetItemStatusAsOf(login, "ITEM_LOGIN_REQUIRED", asked, ruleT0)(item)
			if err != nil || changed != tt.wantChanged || (item.GetStatus() == login) != tt.wantChanged {
				t.Fatalf("changed = %v, %v, item %v; want changed %v", changed, err, item, tt.wantChanged)
			}
		})
	}
}

func TestSetItemStatus(t *testing.T) {
	for _, tt := range []struct {
		name    string
		steps   []linkdv1.ItemStatus // applied in order, at 1s, 2s, ...
		want    linkdv1.ItemStatus
		changed []bool // what each step reported
	}{
		{"PendingDoesNotCoverLogin", []linkdv1.ItemStatus{login, expiring}, login, []bool{true, false}},
		{"PendingAfterGood", []linkdv1.ItemStatus{good, expiring}, expiring, []bool{false, true}},
		{"LoginCoversPending", []linkdv1.ItemStatus{expiring, login}, login, []bool{true, true}},
		{"RepairClearsLogin", []linkdv1.ItemStatus{login, good}, good, []bool{true, true}},
		{"RevokedIsFinal", []linkdv1.ItemStatus{revoked, good, login}, revoked, []bool{true, false, false}},
		{"Repeat", []linkdv1.ItemStatus{login, login}, login, []bool{true, false}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			item := &linkdv1.Item{ItemId: "item-1", Status: good}
			var changedAt *timestamppb.Timestamp
			for i, st := range tt.steps {
				before := proto.CloneOf(item)
				changed, err := SetItemStatus(st, "", sec(i+1).AsTime())(item)
				if err != nil {
					t.Fatal(err)
				}
				if changed != tt.changed[i] {
					t.Fatalf("step %d (%v): changed = %v, want %v", i, st, changed, tt.changed[i])
				}
				if !changed && !proto.Equal(before, item) {
					t.Fatalf("step %d reported no change but changed %v", i, item)
				}
				if changed {
					changedAt = sec(i + 1)
				}
			}
			if item.GetStatus() != tt.want {
				t.Fatalf("status = %v, want %v", item.GetStatus(), tt.want)
			}
			if changedAt != nil && !proto.Equal(item.GetStatusChangedAt(), changedAt) {
				t.Fatalf("status_changed_at = %v, want %v", item.GetStatusChangedAt(), changedAt)
			}
		})
	}

	t.Run("ErrorCodeChange", func(t *testing.T) {
		item := &linkdv1.Item{Status: itemError, ErrorCode: "ITEM_LOCKED"}
		if changed, _ := SetItemStatus(itemError, "INSTITUTION_DOWN", ruleT0)(item); !changed || item.GetErrorCode() != "INSTITUTION_DOWN" {
			t.Fatalf("changed = %v, item = %v; want the new error code", changed, item)
		}
	})
}

func TestSetItemDetails(t *testing.T) {
	accounts := []*linkdv1.Account{{Id: "acc-1", Name: "Checking", Mask: "0000"}}
	base := func() *linkdv1.Item {
		return &linkdv1.Item{InstitutionId: "ins_3", InstitutionName: "Chase", Accounts: accounts}
	}
	for _, tt := range []struct {
		name        string
		id, name2   string
		accounts    []*linkdv1.Account
		want        *linkdv1.Item
		wantChanged bool
	}{
		{"Nothing", "", "", nil, base(), false},
		{"Same", "ins_3", "Chase", accounts, base(), false},
		{"NameOnly", "", "Chase Bank", nil, &linkdv1.Item{InstitutionId: "ins_3", InstitutionName: "Chase Bank", Accounts: accounts}, true},
		{"Institution", "ins_9", "Other", nil, &linkdv1.Item{InstitutionId: "ins_9", InstitutionName: "Other", Accounts: accounts}, true},
		{"Accounts", "", "", []*linkdv1.Account{{Id: "acc-2"}}, &linkdv1.Item{InstitutionId: "ins_3", InstitutionName: "Chase", Accounts: []*linkdv1.Account{{Id: "acc-2"}}}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			item := base()
			changed, err := SetItemDetails(tt.id, tt.name2, tt.accounts)(item)
			if err != nil || changed != tt.wantChanged {
				t.Fatalf("changed = %v, %v; want %v", changed, err, tt.wantChanged)
			}
			if !proto.Equal(item, tt.want) {
				t.Fatalf("item = %v, want %v", item, tt.want)
			}
		})
	}
	// The function keeps none of what it is given: a later change to the
	// caller's accounts does not reach the Item.
	t.Run("CopiesAccounts", func(t *testing.T) {
		in := []*linkdv1.Account{{Id: "acc-2"}}
		item := base()
		SetItemDetails("", "", in)(item)
		in[0].Id = "changed"
		if item.GetAccounts()[0].GetId() != "acc-2" {
			t.Fatal("the Item shares the caller's accounts")
		}
	})
}

// Redirect builders for the MergeRedirect tables.
func ev(name string, ts *timestamppb.Timestamp) *linkdv1.WebviewRedirect {
	return &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Event{Event: &linkdv1.LinkEvent{EventName: name, LinkSessionId: "sess-1", Timestamp: ts}}}
}

func connectedWith(publicToken, institutionID string) *linkdv1.WebviewRedirect {
	return &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Connected{Connected: &linkdv1.ConnectedResult{
		PublicToken: publicToken, InstitutionId: institutionID, LinkSessionId: "sess-1",
	}}}
}

func exitWith(status string) *linkdv1.WebviewRedirect {
	return &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Exit{Exit: &linkdv1.ExitResult{Status: status, LinkSessionId: "sess-1"}}}
}

// merge applies redirects for link-1/user-1 to s, failing on error, and
// returns what each reported.
func merge(t *testing.T, s *linkdv1.LinkSession, rs ...*linkdv1.WebviewRedirect) []bool {
	t.Helper()
	var changed []bool
	for i, r := range rs {
		c, err := MergeRedirect("link-1", "user-1", r, ruleT0.Add(time.Duration(i)*time.Minute))(s)
		if err != nil {
			t.Fatalf("redirect %d: %v", i, err)
		}
		changed = append(changed, c)
	}
	return changed
}

func names(s *linkdv1.LinkSession) []string {
	var out []string
	for _, e := range s.GetEvents() {
		out = append(out, e.GetEventName())
	}
	return out
}

func TestMergeRedirect(t *testing.T) {
	// Events are ordered by timestamp, whatever order they arrive in.
	for _, tt := range []struct {
		name   string
		events []*linkdv1.WebviewRedirect // in arrival order
		want   []string                   // event names in stored order
	}{
		{"InOrder", []*linkdv1.WebviewRedirect{ev("OPEN", sec(1)), ev("TRANSITION_VIEW", sec(2)), ev("HANDOFF", sec(3))}, []string{"OPEN", "TRANSITION_VIEW", "HANDOFF"}},
		{"OutOfOrder", []*linkdv1.WebviewRedirect{ev("HANDOFF", sec(3)), ev("OPEN", sec(1)), ev("TRANSITION_VIEW", sec(2))}, []string{"OPEN", "TRANSITION_VIEW", "HANDOFF"}},
		// Equal timestamps keep arrival order.
		{"EqualTimestamps", []*linkdv1.WebviewRedirect{ev("B", sec(2)), ev("C", sec(2)), ev("A", sec(1)), ev("D", sec(2))}, []string{"A", "B", "C", "D"}},
		// An event without a timestamp stays where it arrived; later
		// events are not moved before it.
		{"MissingTimestamp", []*linkdv1.WebviewRedirect{ev("B", sec(2)), ev("X", nil), ev("D", sec(4)), ev("C", sec(3)), ev("A", sec(1))}, []string{"B", "X", "A", "C", "D"}},
		// A retried event is not added twice, even after others.
		{"Duplicates", []*linkdv1.WebviewRedirect{ev("OPEN", sec(1)), ev("OPEN", sec(1)), ev("HANDOFF", sec(3)), ev("OPEN", sec(1)), ev("X", nil), ev("X", nil)}, []string{"OPEN", "HANDOFF", "X"}},
		// Same name and time but another value of a field both carry: a
		// different event (a field only one carries is how a redirect and
		// a webhook report one event differently; sameEvent).
		{"NearDuplicates", []*linkdv1.WebviewRedirect{
			{Result: &linkdv1.WebviewRedirect_Event{Event: &linkdv1.LinkEvent{EventName: "TRANSITION_VIEW", LinkSessionId: "sess-1", Timestamp: sec(1), ViewName: "CREDENTIAL"}}},
			{Result: &linkdv1.WebviewRedirect_Event{Event: &linkdv1.LinkEvent{EventName: "TRANSITION_VIEW", LinkSessionId: "sess-1", Timestamp: sec(1), ViewName: "CONSENT"}}},
		}, []string{"TRANSITION_VIEW", "TRANSITION_VIEW"}},
	} {
		t.Run("Events/"+tt.name, func(t *testing.T) {
			s := &linkdv1.LinkSession{LinkSessionId: "sess-1"}
			merge(t, s, tt.events...)
			if got := names(s); !slices.Equal(got, tt.want) {
				t.Fatalf("events = %q, want %q", got, tt.want)
			}
			if s.GetLinkToken() != "link-1" || s.GetClientUserId() != "user-1" {
				t.Fatalf("binding = %q %q", s.GetLinkToken(), s.GetClientUserId())
			}
		})
	}

	// A retry reports no change and leaves the session as it was,
	// last_seen_at included.
	t.Run("RetryNoChange", func(t *testing.T) {
		s := &linkdv1.LinkSession{LinkSessionId: "sess-1"}
		got := merge(t, s, ev("OPEN", sec(1)), connectedWith("public-1", "ins_3"), ev("OPEN", sec(1)), connectedWith("public-1", "ins_3"))
		if want := []bool{true, true, false, false}; !slices.Equal(got, want) {
			t.Fatalf("changed = %v, want %v", got, want)
		}
		if !proto.Equal(s.GetFirstSeenAt(), timestamppb.New(ruleT0)) || !proto.Equal(s.GetLastSeenAt(), timestamppb.New(ruleT0.Add(time.Minute))) {
			t.Fatalf("seen = %v .. %v, want the first two redirects' times", s.GetFirstSeenAt(), s.GetLastSeenAt())
		}
	})

	// Connected is kept without its public token.
	t.Run("ConnectedWithoutPublicToken", func(t *testing.T) {
		s := &linkdv1.LinkSession{LinkSessionId: "sess-1"}
		merge(t, s, connectedWith("public-secret", "ins_3"))
		if s.GetConnected().GetPublicToken() != "" || s.GetConnected().GetInstitutionId() != "ins_3" {
			t.Fatalf("connected = %v", s.GetConnected())
		}
	})

	// The outcome can arrive before the events; events still file.
	t.Run("OutcomeFirst", func(t *testing.T) {
		s := &linkdv1.LinkSession{LinkSessionId: "sess-1"}
		merge(t, s, exitWith("requires_credentials"), ev("EXIT", sec(2)), ev("OPEN", sec(1)))
		if s.GetExit().GetStatus() != "requires_credentials" || !slices.Equal(names(s), []string{"OPEN", "EXIT"}) {
			t.Fatalf("session = %v", s)
		}
	})

	for _, tt := range []struct {
		name          string
		first, second *linkdv1.WebviewRedirect
	}{
		{"ConnectedThenExit", connectedWith("public-1", "ins_3"), exitWith("requires_credentials")},
		{"ExitThenConnected", exitWith("requires_credentials"), connectedWith("public-1", "ins_3")},
		{"TwoExits", exitWith("requires_credentials"), exitWith("institution_not_found")},
		{"TwoConnected", connectedWith("public-1", "ins_3"), connectedWith("public-1", "ins_4")},
	} {
		t.Run("ErrConflictOutcome/"+tt.name, func(t *testing.T) {
			s := &linkdv1.LinkSession{LinkSessionId: "sess-1"}
			merge(t, s, tt.first)
			before := proto.CloneOf(s)
			_, err := MergeRedirect("link-1", "user-1", tt.second, ruleT0.Add(time.Hour))(s)
			if ErrorCode(err) != ECONFLICT {
				t.Fatalf("err = %v, want ECONFLICT", err)
			}
			if !proto.Equal(s, before) {
				t.Fatalf("a conflicting outcome changed the session: %v", s)
			}
		})
	}

	t.Run("ErrConflictBinding", func(t *testing.T) {
		s := &linkdv1.LinkSession{LinkSessionId: "sess-1"}
		merge(t, s, ev("OPEN", sec(1)))
		for _, bind := range [][2]string{{"link-2", "user-1"}, {"link-1", "user-2"}} {
			if _, err := MergeRedirect(bind[0], bind[1], ev("HANDOFF", sec(2)), ruleT0)(s); ErrorCode(err) != ECONFLICT {
				t.Fatalf("%v: err = %v, want ECONFLICT", bind, err)
			}
		}
		if !slices.Equal(names(s), []string{"OPEN"}) {
			t.Fatalf("events = %q", names(s))
		}
	})

	// At MaxSessionEvents a new event is EPRECONDITION; a resubmitted one
	// is still a no-op and an outcome still lands.
	t.Run("EventBound", func(t *testing.T) {
		s := &linkdv1.LinkSession{LinkSessionId: "sess-1"}
		for i := range MaxSessionEvents {
			if _, err := MergeRedirect("link-1", "user-1", ev("TRANSITION_VIEW", sec(i)), ruleT0)(s); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
		}
		_, err := MergeRedirect("link-1", "user-1", ev("TRANSITION_VIEW", sec(MaxSessionEvents)), ruleT0)(s)
		if ErrorCode(err) != EPRECONDITION {
			t.Fatalf("event past the bound: err = %v, want EPRECONDITION", err)
		}
		if changed, err := MergeRedirect("link-1", "user-1", ev("TRANSITION_VIEW", sec(MaxSessionEvents-1)), ruleT0)(s); err != nil || changed {
			t.Fatalf("resubmission at the bound = %v, %v", changed, err)
		}
		if _, err := MergeRedirect("link-1", "user-1", exitWith("requires_credentials"), ruleT0)(s); err != nil {
			t.Fatalf("exit at the bound: %v", err)
		}
		if len(s.GetEvents()) != MaxSessionEvents {
			t.Fatalf("%d events, want %d", len(s.GetEvents()), MaxSessionEvents)
		}
	})

	// Large events reach MaxSessionBytes long before the event bound: the
	// event that would pass it is EPRECONDITION and the session stays
	// under the bound.
	t.Run("ByteBound", func(t *testing.T) {
		s := &linkdv1.LinkSession{LinkSessionId: "sess-1"}
		big := strings.Repeat("x", 15<<10)
		var err error
		for i := 0; err == nil && i < MaxSessionEvents; i++ {
			e := ev("SEARCH_INSTITUTION", sec(i))
			e.GetEvent().InstitutionSearchQuery = big
			_, err = MergeRedirect("link-1", "user-1", e, ruleT0)(s)
		}
		if ErrorCode(err) != EPRECONDITION {
			t.Fatalf("err = %v, want EPRECONDITION before %d events", err, MaxSessionEvents)
		}
		if n := proto.Size(s); n > MaxSessionBytes {
			t.Fatalf("session is %d bytes, over %d", n, MaxSessionBytes)
		}
	})
}

func TestSessionLastSeen(t *testing.T) {
	for _, tt := range []struct {
		name string
		s    *linkdv1.LinkSession
		want time.Time
	}{
		// A device clock reset to 2001 does not make the session old.
		{"LastSeen", &linkdv1.LinkSession{FirstSeenAt: sec(50), LastSeenAt: sec(70), Events: []*linkdv1.LinkEvent{{Timestamp: sec(-1e9)}}}, sec(70).AsTime()},
		{"NoLastSeen", &linkdv1.LinkSession{FirstSeenAt: sec(50), Events: []*linkdv1.LinkEvent{{Timestamp: sec(5)}}}, sec(5).AsTime()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := SessionLastSeen(tt.s); !got.Equal(tt.want) {
				t.Fatalf("SessionLastSeen = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSessionStart(t *testing.T) {
	for _, tt := range []struct {
		name string
		s    *linkdv1.LinkSession
		want time.Time
	}{
		{"EarliestEvent", &linkdv1.LinkSession{FirstSeenAt: sec(50), Events: []*linkdv1.LinkEvent{{Timestamp: sec(5)}, {Timestamp: sec(9)}}}, sec(5).AsTime()},
		{"FirstSeen", &linkdv1.LinkSession{FirstSeenAt: sec(50)}, sec(50).AsTime()},
		{"UntimedEventFirst", &linkdv1.LinkSession{FirstSeenAt: sec(50), Events: []*linkdv1.LinkEvent{{EventName: "X"}}}, sec(50).AsTime()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := SessionStart(tt.s); !got.Equal(tt.want) {
				t.Fatalf("SessionStart = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDuplicateOf(t *testing.T) {
	acc := func(name, mask string) *linkdv1.Account { return &linkdv1.Account{Name: name, Mask: mask} }
	checking := []*linkdv1.Account{acc("Checking", "0000")}
	savings := []*linkdv1.Account{acc("Savings", "1111")}
	unnamed := []*linkdv1.Account{acc("", "0000")}
	for _, tt := range []struct {
		name string
		a, b []*linkdv1.Account
		want bool
	}{
		{"SameAccount", checking, append([]*linkdv1.Account{acc("Savings", "1111")}, checking...), true},
		{"OtherAccounts", checking, savings, false},
		{"SameNameOtherMask", checking, []*linkdv1.Account{acc("Checking", "9999")}, false},
		{"CannotTell", checking, unnamed, true}, // the institution decides
		{"NoAccounts", nil, checking, true},
	} {
		t.Run("SameAccounts/"+tt.name, func(t *testing.T) {
			if got := SameAccounts(tt.a, tt.b); got != tt.want {
				t.Fatalf("SameAccounts = %v, want %v", got, tt.want)
			}
		})
	}

	items := []*linkdv1.Item{
		{ItemId: "item-other-bank", InstitutionId: "ins_4", Accounts: checking},
		{ItemId: "item-savings", InstitutionId: "ins_3", Accounts: savings},
		{ItemId: "item-checking", InstitutionId: "ins_3", Accounts: checking},
	}
	for _, tt := range []struct {
		name          string
		institutionID string
		accounts      []*linkdv1.Account
		want          string
	}{
		{"Match", "ins_3", checking, "item-checking"},
		{"FirstMatch", "ins_3", unnamed, "item-savings"},
		{"OtherInstitution", "ins_9", checking, ""},
		{"NoInstitution", "", checking, ""},
	} {
		t.Run("DuplicateOf/"+tt.name, func(t *testing.T) {
			if got := DuplicateOf(items, tt.institutionID, tt.accounts).GetItemId(); got != tt.want {
				t.Fatalf("DuplicateOf = %q, want %q", got, tt.want)
			}
		})
	}
}

// Webhooks and /link/token/get report events with Plaid's event_id: the
// same id is the same event however its fields were filled; a webview
// redirect's event (no id) still dedupes by equality. A webhook and a late
// redirect reporting one connection are one outcome; another institution
// is still a conflict.
func TestMergeRedirect_HostedLink(t *testing.T) {
	withID := func(id, view string) *linkdv1.WebviewRedirect {
		return &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Event{Event: &linkdv1.LinkEvent{
			EventName: "TRANSITION_VIEW", ViewName: view, EventId: id, LinkSessionId: "sess-1", Timestamp: timestamppb.New(ruleT0)}}}
	}
	for _, tt := range []struct {
		name   string
		rs     []*linkdv1.WebviewRedirect
		events int
	}{
		{"SameEventID", []*linkdv1.WebviewRedirect{withID("e-1", "CONSENT"), withID("e-1", "CONSENT")}, 1},
		{"SameEventIDOtherFields", []*linkdv1.WebviewRedirect{withID("e-1", "CONSENT"), withID("e-1", "")}, 1},
		{"OtherEventIDs", []*linkdv1.WebviewRedirect{withID("e-1", "CONSENT"), withID("e-2", "CONSENT")}, 2},
		{"NoIDsEqual", []*linkdv1.WebviewRedirect{withID("", "CONSENT"), withID("", "CONSENT")}, 1},
	} {
		t.Run("Events/"+tt.name, func(t *testing.T) {
			s := &linkdv1.LinkSession{LinkSessionId: "sess-1"}
			merge(t, s, tt.rs...)
			if len(s.GetEvents()) != tt.events {
				t.Fatalf("events = %d, want %d", len(s.GetEvents()), tt.events)
			}
		})
	}
	for _, tt := range []struct {
		name          string
		first, second *linkdv1.WebviewRedirect
		conflict      bool
	}{
		{"SameInstitution", connectedWith("public-1", "ins_3"), connectedWith("public-1", "ins_3"), false},
		{"WebhookWithoutInstitution", connectedWith("public-1", ""), connectedWith("public-1", "ins_3"), false},
		{"OtherInstitution", connectedWith("public-1", "ins_3"), connectedWith("public-1", "ins_4"), true},
	} {
		t.Run("Connected/"+tt.name, func(t *testing.T) {
			s := &linkdv1.LinkSession{LinkSessionId: "sess-1"}
			merge(t, s, tt.first)
			before := proto.CloneOf(s)
			changed, err := MergeRedirect("link-1", "user-1", tt.second, ruleT0.Add(time.Hour))(s)
			if (ErrorCode(err) == ECONFLICT) != tt.conflict {
				t.Fatalf("err = %v, want conflict %v", err, tt.conflict)
			}
			if changed || !proto.Equal(s, before) {
				t.Fatalf("the second report changed the session: %v", s)
			}
		})
	}
}

func TestLinkTokenStateOf(t *testing.T) {
	exp := ruleT0.Add(time.Hour)
	added := LinkTokenSession{LinkSessionID: "s-1", FinishedAt: ruleT0, ItemAdds: []*linkdv1.ConnectedResult{{PublicToken: "public-1"}}}
	exited := LinkTokenSession{LinkSessionID: "s-2", FinishedAt: ruleT0, Exit: &linkdv1.ExitResult{Status: "requires_credentials"}}
	open := LinkTokenSession{LinkSessionID: "s-3", StartedAt: ruleT0}
	for _, tt := range []struct {
		name       string
		sessions   []LinkTokenSession
		expiration time.Time
		now        time.Time
		want       linkdv1.LinkTokenState
	}{
		{"NoSession", nil, exp, ruleT0, linkdv1.LinkTokenState_LINK_TOKEN_STATE_OPEN},
		{"SessionInProgress", []LinkTokenSession{open}, exp, ruleT0, linkdv1.LinkTokenState_LINK_TOKEN_STATE_OPEN},
		{"Completed", []LinkTokenSession{added}, exp, ruleT0, linkdv1.LinkTokenState_LINK_TOKEN_STATE_COMPLETED},
		{"CompletedAfterExpiry", []LinkTokenSession{added}, exp, exp.Add(time.Hour), linkdv1.LinkTokenState_LINK_TOKEN_STATE_COMPLETED},
		{"ExitedThenCompleted", []LinkTokenSession{exited, added}, exp, ruleT0, linkdv1.LinkTokenState_LINK_TOKEN_STATE_COMPLETED},
		{"Exited", []LinkTokenSession{open, exited}, exp, ruleT0, linkdv1.LinkTokenState_LINK_TOKEN_STATE_EXITED},
		{"Expired", []LinkTokenSession{open}, exp, exp, linkdv1.LinkTokenState_LINK_TOKEN_STATE_EXPIRED},
		{"NoExpiration", nil, time.Time{}, exp.Add(1000 * time.Hour), linkdv1.LinkTokenState_LINK_TOKEN_STATE_OPEN},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := LinkTokenStateOf(tt.sessions, tt.expiration, tt.now); got != tt.want {
				t.Fatalf("state = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCountLinkTokenSession(t *testing.T) {
	exp := timestamppb.New(ruleT0.Add(time.Hour))
	tests := []struct {
		name     string
		sessions int32
		exp      *timestamppb.Timestamp
		refuse   bool
		wantErr  bool
		retry    time.Duration
	}{
		{name: "first", sessions: 0, exp: exp, refuse: true},
		{name: "last under the bound", sessions: MaxSessionsPerLinkToken - 1, exp: exp, refuse: true},
		{name: "at the bound", sessions: MaxSessionsPerLinkToken, exp: exp, refuse: true, wantErr: true, retry: time.Hour},
		// An expired token (or one without expiration) has no time to wait.
		{name: "at the bound, expired", sessions: MaxSessionsPerLinkToken, exp: timestamppb.New(ruleT0), refuse: true, wantErr: true},
		{name: "at the bound, no expiration", sessions: MaxSessionsPerLinkToken, refuse: true, wantErr: true},
		// A session that files a billed Item is counted, never refused.
		{name: "at the bound, not refused", sessions: MaxSessionsPerLinkToken, exp: exp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := &storagev1.StoredLinkToken{LinkToken: "link-t", Sessions: tt.sessions, Expiration: tt.exp}
			err := CountLinkTokenSession(tok, ruleT0, tt.refuse)
			if !tt.wantErr {
				if err != nil || tok.GetSessions() != tt.sessions+1 {
					t.Fatalf("err %v, sessions %d; want nil, %d", err, tok.GetSessions(), tt.sessions+1)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != ERATELIMIT || e.Reason != ReasonSessionsPerLinkToken || e.RetryAfter != tt.retry {
				t.Fatalf("err %#v; want ERATELIMIT %s, RetryAfter %v", err, ReasonSessionsPerLinkToken, tt.retry)
			}
			if !strings.Contains(e.Message, fmt.Sprint(MaxSessionsPerLinkToken)) {
				t.Errorf("message %q does not name the limit", e.Message)
			}
			if tok.GetSessions() != tt.sessions {
				t.Errorf("a refusal changed the count to %d", tok.GetSessions())
			}
		})
	}
}

func TestCheckSandboxWebhook(t *testing.T) {
	for _, tc := range []struct {
		code, typ string
		field     string // "" for accepted
	}{
		{"DEFAULT_UPDATE", "TRANSACTIONS", ""},
		{"NEW_ACCOUNTS_AVAILABLE", "", ""},
		{"PENDING_DISCONNECT", "ITEM", ""},
		{"ERROR", "", ""},
		{"ERROR", "ASSETS", ""},
		{"USER_ACCOUNT_REVOKED", "", ""},
		{"", "", "webhook_code"},
		{"PENDING_EXPIRATION", "", "webhook_code"},          // Plaid's sandbox cannot
		{"WEBHOOK_UPDATE_ACKNOWLEDGED", "", "webhook_code"}, // nor this
		{"AUTOMATICALLY_VERIFIED", "AUTH", "webhook_code"},  // SetSandboxVerificationStatus's
		{"default_update", "TRANSACTIONS", "webhook_code"},
		{"DEFAULT_UPDATE", "", "webhook_type"},
		{"DEFAULT_UPDATE", "IDENTITY", "webhook_type"},
		{"ERROR", "ITEM", "webhook_type"}, // reset_login's
	} {
		err := CheckSandboxWebhook(tc.code, tc.typ)
		var e *Error
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("CheckSandboxWebhook(%q, %q) = %v, want nil", tc.code, tc.typ, err)
		case tc.field != "" && (!errors.As(err, &e) || e.Code != EINVALID || e.Field != tc.field):
			t.Errorf("CheckSandboxWebhook(%q, %q) = %v, want EINVALID naming %s", tc.code, tc.typ, err, tc.field)
		}
	}
	if err := CheckSandboxWebhook("PENDING_EXPIRATION", ""); !strings.Contains(err.Error(), "SetEmulatorItemState") {
		t.Errorf("PENDING_EXPIRATION refused with %q, want it to point at SetEmulatorItemState", err)
	}
}

// TestCheckSandboxFields: the sandbox and emulator requests' other checks,
// each naming its field.
func TestCheckSandboxFields(t *testing.T) {
	status, state := CheckSandboxVerificationStatus, CheckEmulatorItemState
	for _, tc := range []struct {
		check func(string, string) error
		a, b  string
		field string // "" for accepted
	}{
		{status, "acc", "automatically_verified", ""},
		{status, "acc", "verification_expired", ""},
		{status, "", "automatically_verified", "account_id"},
		{status, "acc", "", "verification_status"},
		{status, "acc", "manually_verified", "verification_status"},
		{state, "PENDING_EXPIRATION", "", ""},
		{state, "PENDING_DISCONNECT", "", ""},
		{state, "PENDING_DISCONNECT", "INSTITUTION_MIGRATION", ""},
		{state, "LOGIN_REPAIRED", "", ""},
		{state, "", "", "state"},
		{state, "GOOD", "", "state"},
		{state, "PENDING_EXPIRATION", "INSTITUTION_MIGRATION", "reason"},
		{state, "PENDING_DISCONNECT", "BORED", "reason"},
	} {
		err := tc.check(tc.a, tc.b)
		var e *Error
		if tc.field == "" && err != nil || tc.field != "" && (!errors.As(err, &e) || e.Code != EINVALID || e.Field != tc.field) {
			t.Errorf("check(%q, %q) = %v, want field %q", tc.a, tc.b, err, tc.field)
		}
	}
}

// A rescued webview session reports its events twice: by redirect
// (plaidlink://event: no event_id, request_id often empty) and by a LINK
// EVENTS webhook (event_id, request_id). Whichever comes first, one event
// is recorded, with the fields of both (the first report's where both
// carry one); events told apart by name, timestamp or a field both carry
// stay apart.
func TestMergeRedirect_EventFromRedirectAndWebhook(t *testing.T) {
	ev := func(mod func(*linkdv1.LinkEvent)) *linkdv1.WebviewRedirect {
		e := &linkdv1.LinkEvent{EventName: "TRANSITION_VIEW", ViewName: "CREDENTIAL", InstitutionId: "ins_3",
			LinkSessionId: "sess-1", Timestamp: timestamppb.New(ruleT0.Add(542 * time.Millisecond))}
		if mod != nil {
			mod(e)
		}
		return &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Event{Event: e}}
	}
	redirect := ev(nil)
	webhook := ev(func(e *linkdv1.LinkEvent) { e.EventId, e.RequestId, e.InstitutionName = "e-1", "req-1", "Tartan Bank" })
	for _, tt := range []struct {
		name   string
		rs     []*linkdv1.WebviewRedirect
		events int
	}{
		{"RedirectThenWebhook", []*linkdv1.WebviewRedirect{redirect, webhook}, 1},
		{"WebhookThenRedirect", []*linkdv1.WebviewRedirect{webhook, redirect}, 1},
		{"RedirectWithSameRequestID", []*linkdv1.WebviewRedirect{webhook, ev(func(e *linkdv1.LinkEvent) { e.RequestId = "req-1" })}, 1},
		{"OtherRequestID", []*linkdv1.WebviewRedirect{webhook, ev(func(e *linkdv1.LinkEvent) { e.RequestId = "req-2" })}, 2},
		{"OtherView", []*linkdv1.WebviewRedirect{webhook, ev(func(e *linkdv1.LinkEvent) { e.ViewName = "MFA" })}, 2},
		{"OtherName", []*linkdv1.WebviewRedirect{webhook, ev(func(e *linkdv1.LinkEvent) { e.EventName = "SUBMIT_CREDENTIALS"; e.ViewName = "" })}, 2},
		{"OtherMillisecond", []*linkdv1.WebviewRedirect{webhook, ev(func(e *linkdv1.LinkEvent) { e.Timestamp = timestamppb.New(ruleT0.Add(543 * time.Millisecond)) })}, 2},
		{"OtherEventIDs", []*linkdv1.WebviewRedirect{webhook, ev(func(e *linkdv1.LinkEvent) { e.EventId = "e-2" })}, 2},
		// Without timestamps only equal events are one.
		{"NoTimestamp", []*linkdv1.WebviewRedirect{ev(func(e *linkdv1.LinkEvent) { e.Timestamp = nil }), ev(func(e *linkdv1.LinkEvent) { e.Timestamp, e.RequestId = nil, "req-1" })}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &linkdv1.LinkSession{LinkSessionId: "sess-1"}
			merge(t, s, tt.rs...)
			if len(s.GetEvents()) != tt.events {
				t.Fatalf("events = %v, want %d", s.GetEvents(), tt.events)
			}
			if tt.events == 1 {
				// One event: the first report, with what it lacked
				// from the other (each one-event pair here is a
				// redirect's report and the webhook's, which carries
				// all it has and more).
				if !proto.Equal(s.GetEvents()[0], webhook.GetEvent()) {
					t.Fatalf("event = %v; want both reports' fields %v", s.GetEvents()[0], webhook.GetEvent())
				}
				return
			}
			if first := tt.rs[0].GetEvent(); !proto.Equal(s.GetEvents()[0], first) && !proto.Equal(s.GetEvents()[len(s.GetEvents())-1], first) {
				t.Fatalf("events = %v; want the first report %v kept as it came", s.GetEvents(), first)
			}
		})
	}
}

func TestLinkTokenSettled(t *testing.T) {
	expiration := ruleT0.Add(time.Hour)
	finished := ruleT0.Add(-time.Minute)
	linked := LinkTokenSession{LinkSessionID: "sess-1", FinishedAt: finished, ItemAdds: []*linkdv1.ConnectedResult{{PublicToken: "public-1"}}}
	exited := LinkTokenSession{LinkSessionID: "sess-2", FinishedAt: finished, Exit: &linkdv1.ExitResult{Status: "requires_credentials"}}
	open := LinkTokenSession{LinkSessionID: "sess-3", StartedAt: finished}
	filed := &linkdv1.LinkSession{ItemId: "item-1", Outcome: &linkdv1.LinkSession_Connected{Connected: &linkdv1.ConnectedResult{}}}
	connectedNoItem := &linkdv1.LinkSession{Outcome: &linkdv1.LinkSession_Connected{Connected: &linkdv1.ConnectedResult{}}}
	exitFiled := &linkdv1.LinkSession{Outcome: &linkdv1.LinkSession_Exit{Exit: &linkdv1.ExitResult{}}}
	eventsOnly := &linkdv1.LinkSession{Events: []*linkdv1.LinkEvent{{EventName: "OPEN"}}}
	for _, tt := range []struct {
		name     string
		sessions []LinkTokenSession
		recorded []*linkdv1.LinkSession
		now      time.Time
		want     bool
	}{
		{"LinkedAndFiled", []LinkTokenSession{linked}, []*linkdv1.LinkSession{filed}, ruleT0, true},
		{"ExitThenLinked", []LinkTokenSession{exited, linked}, []*linkdv1.LinkSession{exitFiled, filed}, ruleT0, true},
		// Plaid reports the Item, linkd has not filed it yet.
		{"LinkedNotFiled", []LinkTokenSession{linked}, []*linkdv1.LinkSession{nil}, ruleT0, false},
		{"LinkedOnlyEventsFiled", []LinkTokenSession{linked}, []*linkdv1.LinkSession{eventsOnly}, ruleT0, false},
		{"LinkedNoItemYet", []LinkTokenSession{linked}, []*linkdv1.LinkSession{connectedNoItem}, ruleT0, false},
		// Another session still runs.
		{"LinkedAndOpen", []LinkTokenSession{linked, open}, []*linkdv1.LinkSession{filed, eventsOnly}, ruleT0, false},
		// Exited before expiry: the user may open Link again.
		{"ExitedBeforeExpiry", []LinkTokenSession{exited}, []*linkdv1.LinkSession{exitFiled}, ruleT0, false},
		{"ExitedAfterExpiry", []LinkTokenSession{exited}, []*linkdv1.LinkSession{exitFiled}, expiration, true},
		{"ExitedAfterExpiryNotFiled", []LinkTokenSession{exited}, []*linkdv1.LinkSession{nil}, expiration, false},
		{"NoSessionBeforeExpiry", nil, nil, ruleT0, false},
		{"NoSessionAfterExpiry", nil, nil, expiration.Add(time.Second), true},
		{"OpenAfterExpiry", []LinkTokenSession{open}, []*linkdv1.LinkSession{nil}, expiration, false},
		{"RecordsMissing", []LinkTokenSession{linked}, nil, ruleT0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := LinkTokenSettled(tt.sessions, tt.recorded, expiration, tt.now); got != tt.want {
				t.Fatalf("LinkTokenSettled = %v, want %v", got, tt.want)
			}
		})
	}
	if LinkTokenSettled([]LinkTokenSession{exited}, []*linkdv1.LinkSession{exitFiled}, time.Time{}, ruleT0.Add(1000*time.Hour)) {
		t.Error("a token without an expiration settled on an exit")
	}
}

// TestPendingDuplicateOf: a connection waits for a pending link of its own
// user as DuplicateOf judges, and, across users, only for one sharing a
// named account.
func TestPendingDuplicateOf(t *testing.T) {
	acc := func(name, mask string) *linkdv1.Account { return &linkdv1.Account{Name: name, Mask: mask} }
	checking := []*linkdv1.Account{acc("Checking", "0000")}
	savings := []*linkdv1.Account{acc("Savings", "1111")}
	pending := []*linkdv1.Item{
		{ItemId: "u1-other-bank", ClientUserId: "u1", InstitutionId: "ins_4", Accounts: checking},
		{ItemId: "u1-savings", ClientUserId: "u1", InstitutionId: "ins_3", Accounts: savings},
		{ItemId: "u2-checking", ClientUserId: "u2", InstitutionId: "ins_3", Accounts: checking},
		{ItemId: "u3-none", ClientUserId: "u3", InstitutionId: "ins_5"},
	}
	for _, tt := range []struct {
		name, user, institutionID string
		accounts                  []*linkdv1.Account
		allUsers                  bool
		want                      string
	}{
		{"OwnSameAccount", "u1", "ins_3", savings, false, "u1-savings"},
		{"OwnNoAccounts", "u1", "ins_3", nil, false, "u1-savings"},
		{"OwnOtherAccount", "u1", "ins_3", checking, false, ""},
		{"OtherUserPerUser", "u1", "ins_3", checking, false, ""},
		{"OtherUserSharedAccount", "u1", "ins_3", checking, true, "u2-checking"},
		{"OtherUserNoAccounts", "u4", "ins_3", nil, true, ""},
		{"OtherUserPendingNoAccounts", "u1", "ins_5", checking, true, ""},
		{"OwnPendingNoAccounts", "u3", "ins_5", checking, true, "u3-none"},
		{"NoInstitution", "u1", "", savings, true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := PendingDuplicateOf(pending, tt.user, tt.institutionID, tt.accounts, tt.allUsers).GetItemId(); got != tt.want {
				t.Fatalf("PendingDuplicateOf = %q, want %q", got, tt.want)
			}
		})
	}
}
