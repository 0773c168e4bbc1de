package records

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// apiOnly are the API fields a storage record has no place for, on
// purpose.
var apiOnly = map[protoreflect.FullName]bool{
	"linkd.v1.ConnectedResult.public_token": true,
}

// TestConvert_EveryAPIField fails when an API message stored through
// records gains a field the storage record lacks, or whose kind differs:
// add it to records.proto (with the same number) before storing it.
func TestConvert_EveryAPIField(t *testing.T) {
	pairs := []struct {
		api, stored protoreflect.MessageDescriptor
	}{
		{(&linkdv1.Item{}).ProtoReflect().Descriptor(), (&storagev1.StoredItem{}).ProtoReflect().Descriptor()},
		{(&linkdv1.LinkSession{}).ProtoReflect().Descriptor(), (&storagev1.StoredLinkSession{}).ProtoReflect().Descriptor()},
	}
	seen := map[protoreflect.FullName]bool{}
	var walk func(api, stored protoreflect.MessageDescriptor)
	walk = func(api, stored protoreflect.MessageDescriptor) {
		if seen[api.FullName()] {
			return
		}
		seen[api.FullName()] = true
		for i := range api.Fields().Len() {
			af := api.Fields().Get(i)
			if apiOnly[af.FullName()] {
				if stored.Fields().ByName(af.Name()) != nil {
					t.Errorf("%s is meant to be API-only, yet %s has it", af.FullName(), stored.FullName())
				}
				continue
			}
			sf := stored.Fields().ByName(af.Name())
			if sf == nil {
				t.Errorf("%s has no field %s: add it to records.proto", stored.FullName(), af.Name())
				continue
			}
			if sf.Number() != af.Number() || sf.Cardinality() != af.Cardinality() {
				t.Errorf("%s: number or cardinality differs from %s", sf.FullName(), af.FullName())
			}
			switch {
			case af.Kind() == protoreflect.MessageKind && af.Message().FullName() != sf.Message().FullName():
				walk(af.Message(), sf.Message())
			case af.Kind() == protoreflect.EnumKind && sf.Kind() == protoreflect.Int32Kind:
			case af.Kind() != sf.Kind():
				t.Errorf("%s is %v, %s is %v", af.FullName(), af.Kind(), sf.FullName(), sf.Kind())
			}
		}
	}
	for _, p := range pairs {
		walk(p.api, p.stored)
	}
}

// TestMarshal_RoundTrip: what goes in comes back, but for a connected
// result's public token, which is never stored.
func TestMarshal_RoundTrip(t *testing.T) {
	ts := timestamppb.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	acc := &linkdv1.Account{Id: "a1", Name: "Checking", Mask: "0000", Type: "depository", Subtype: "checking"}
	item := &linkdv1.Item{ItemId: "i1", ClientUserId: "u1", InstitutionId: "ins_1", InstitutionName: "Bank",
		Accounts: []*linkdv1.Account{acc}, Status: linkdv1.ItemStatus_ITEM_STATUS_LOGIN_REQUIRED, CreatedAt: ts,
		LinkSessionId: "s1", ErrorCode: "ITEM_LOGIN_REQUIRED", StatusChangedAt: ts}
	sess := &linkdv1.LinkSession{LinkSessionId: "s1", LinkToken: "link-sandbox-1", ClientUserId: "u1", ItemId: "i1",
		Events: []*linkdv1.LinkEvent{
			{EventName: "OPEN", Timestamp: ts, ViewName: "CONSENT"},
			{EventName: "ERROR", Error: &linkdv1.LinkError{ErrorType: "ITEM_ERROR", ErrorCode: "INVALID_CREDENTIALS"}, IsUpdateMode: true},
		},
		Outcome:     &linkdv1.LinkSession_Connected{Connected: &linkdv1.ConnectedResult{PublicToken: "public-sandbox-secret", InstitutionId: "ins_1", Accounts: []*linkdv1.Account{acc}}},
		FirstSeenAt: ts, LastSeenAt: ts}
	for _, m := range []proto.Message{item, sess} {
		b, err := Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got := m.ProtoReflect().New().Interface()
		if err := Unmarshal(b, got); err != nil {
			t.Fatal(err)
		}
		want := proto.Clone(m)
		if s, ok := want.(*linkdv1.LinkSession); ok {
			s.GetConnected().PublicToken = ""
		}
		if !proto.Equal(got, want) {
			t.Errorf("round trip of %T:\n got %v\nwant %v", m, got, want)
		}
		// The bytes are the API message's own (but the public token): the
		// storage records are wire-compatible with what was stored before.
		legacy, _ := proto.MarshalOptions{Deterministic: true}.Marshal(want)
		if string(legacy) != string(b) {
			t.Errorf("%T: storage bytes differ from the API encoding of the same value", m)
		}
	}
	b, _ := Marshal(sess)
	if string(b) == "" || contains(b, "public-sandbox-secret") {
		t.Error("a stored session holds the public token")
	}
}

func contains(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return true
		}
	}
	return false
}
