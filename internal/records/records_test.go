package records

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
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
	if _, err := Marshal(sess); err == nil {
		t.Fatal("Marshal stored a session holding a public token")
	}
	sess.GetConnected().PublicToken = ""
	for _, pair := range []struct{ api, stored proto.Message }{
		{item, &storagev1.StoredItem{}},
		{sess, &storagev1.StoredLinkSession{}},
	} {
		b, err := Marshal(pair.api)
		if err != nil {
			t.Fatal(err)
		}
		// The record, converted field by field by name, encodes to the
		// very bytes Marshal wrote: the API's encoding is a valid record.
		want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(toStored(pair.api, pair.stored))
		if string(want) != string(b) {
			t.Errorf("%T: Marshal's bytes are not the storage record's", pair.api)
		}
		// Decoded as the record and converted back, it is the API value.
		rec := pair.stored.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(b, rec); err != nil {
			t.Fatal(err)
		}
		back := pair.api.ProtoReflect().New().Interface()
		copyFields(back.ProtoReflect(), rec.ProtoReflect())
		if !proto.Equal(back, pair.api) {
			t.Errorf("round trip of %T through its record:\n got %v\nwant %v", pair.api, back, pair.api)
		}
		got := pair.api.ProtoReflect().New().Interface()
		if err := Unmarshal(b, got); err != nil || !proto.Equal(got, pair.api) {
			t.Errorf("Unmarshal of %T = %v, %v", pair.api, got, err)
		}
	}
}

// toStored copies (the reference conversion, by field name) api into stored and returns stored.
func toStored[M proto.Message](api proto.Message, stored M) M {
	copyFields(stored.ProtoReflect(), api.ProtoReflect())
	return stored
}

// copyFields copies every populated field of src into the field of dst
// with the same name, recursing into messages; a field dst lacks is
// dropped. Scalars and enums copy by value (an enum as its number), lists
// element by element; a message-typed field of the same full name (a
// google.protobuf.Timestamp) is cloned.
func copyFields(dst, src protoreflect.Message) {
	dfields := dst.Descriptor().Fields()
	src.Range(func(sf protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		df := dfields.ByName(sf.Name())
		if df == nil {
			return true
		}
		switch {
		case sf.IsList():
			dl := dst.Mutable(df).List()
			sl := v.List()
			for i := range sl.Len() {
				dl.Append(convertValue(dl.NewElement, df, sf, sl.Get(i)))
			}
		case sf.IsMap():
			panic(fmt.Sprintf("records: map field %s is not supported", sf.FullName()))
		default:
			dst.Set(df, convertValue(func() protoreflect.Value { return dst.NewField(df) }, df, sf, v))
		}
		return true
	})
}

// convertValue converts one value of src's field sf to dst's field df;
// newValue makes a fresh value of df's kind for a message.
func convertValue(newValue func() protoreflect.Value, df, sf protoreflect.FieldDescriptor, v protoreflect.Value) protoreflect.Value {
	switch sf.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if df.Message().FullName() == sf.Message().FullName() {
			return protoreflect.ValueOfMessage(proto.Clone(v.Message().Interface()).ProtoReflect())
		}
		out := newValue()
		copyFields(out.Message(), v.Message())
		return out
	case protoreflect.EnumKind:
		if df.Kind() == protoreflect.Int32Kind {
			return protoreflect.ValueOfInt32(int32(v.Enum()))
		}
		return v
	case protoreflect.Int32Kind:
		if df.Kind() == protoreflect.EnumKind {
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(v.Int()))
		}
	}
	return v
}

// TestStoreFields: the store's own fields of a StoredItem are numbered
// from FirstStoreField, no API Item field is, and an API Item decoded from
// a record holding them keeps none of their bytes, nor writes them back.
func TestStoreFields(t *testing.T) {
	api := (&linkdv1.Item{}).ProtoReflect().Descriptor()
	stored := (&storagev1.StoredItem{}).ProtoReflect().Descriptor()
	for i := range api.Fields().Len() {
		if f := api.Fields().Get(i); f.Number() >= FirstStoreField {
			t.Errorf("API field %s takes number %d, reserved for the store's own fields", f.FullName(), f.Number())
		}
	}
	for i := range stored.Fields().Len() {
		f := stored.Fields().Get(i)
		if api.Fields().ByName(f.Name()) == nil && f.Number() < FirstStoreField {
			t.Errorf("store field %s is numbered %d, under FirstStoreField", f.FullName(), f.Number())
		}
	}

	item := &linkdv1.Item{ItemId: "i1", ClientUserId: "u1", Accounts: []*linkdv1.Account{{Id: "a1"}}}
	b, err := Marshal(item)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("sealed-ciphertext-never-in-the-api")
	own, err := proto.Marshal(&storagev1.StoredItem{
		SealedAccessToken: &storagev1.SealedAccessToken{KeyId: "k1", Nonce: []byte("nonce"), Ciphertext: secret},
		RefreshDue:        timestamppb.Now(),
		PublicTokenSums:   [][]byte{[]byte("sum")},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := new(linkdv1.Item)
	if err := Unmarshal(append(b, own...), got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, item) || len(got.ProtoReflect().GetUnknown()) != 0 {
		t.Fatalf("Unmarshal kept the store's fields: %v, unknown %d bytes", got, len(got.ProtoReflect().GetUnknown()))
	}
	if out, _ := proto.Marshal(got); bytes.Contains(out, secret) {
		t.Fatal("an API Item decoded from a record re-encodes its sealed token")
	}
	// An Item carrying them as unknown fields (decoded without records,
	// or sent by a client) does not write them into a record.
	raw := new(linkdv1.Item)
	if err := proto.Unmarshal(append(b, own...), raw); err != nil {
		t.Fatal(err)
	}
	if out, err := Marshal(raw); err != nil || bytes.Contains(out, secret) {
		t.Fatalf("Marshal wrote an Item's unknown fields (%v)", err)
	}
	if len(raw.ProtoReflect().GetUnknown()) == 0 {
		t.Fatal("Marshal changed the caller's Item")
	}
}

// TestNewerAPIFields: a field a newer linkd added to Item, which this one
// does not know, survives a read and a write of the record (an update by
// an older replica during a rolling deploy does not erase it), while the
// store's fields around it are still dropped.
func TestNewerAPIFields(t *testing.T) {
	b, err := Marshal(&linkdv1.Item{ItemId: "i1", ClientUserId: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	newer := protowire.AppendTag(nil, 999, protowire.BytesType)
	newer = protowire.AppendString(newer, "a newer linkd's field")
	store := protowire.AppendTag(nil, FirstStoreField, protowire.BytesType)
	store = protowire.AppendString(store, "sealed-ciphertext")
	for _, tc := range []struct {
		name   string
		record []byte
	}{
		{"Alone", append(slices.Clone(b), newer...)},
		{"AfterStoreField", append(append(slices.Clone(b), store...), newer...)},
		{"BeforeStoreField", append(append(slices.Clone(b), newer...), store...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			item := new(linkdv1.Item)
			if err := Unmarshal(tc.record, item); err != nil {
				t.Fatal(err)
			}
			if got := item.ProtoReflect().GetUnknown(); !bytes.Equal(got, newer) {
				t.Fatalf("unknown fields after Unmarshal = %q, want only the newer field %q", got, newer)
			}
			item.ClientUserId = "u2" // an update
			out, err := Marshal(item)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(out, newer) || bytes.Contains(out, []byte("sealed-ciphertext")) {
				t.Fatalf("Marshal after an update = %q: want the newer field kept, the store's dropped", out)
			}
		})
	}
}
