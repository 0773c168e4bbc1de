// Package records keeps Items and Link sessions on disk as the storage
// records of proto/linkd/storage/v1/records.proto, not as the API's
// messages, for every backend: Marshal and Unmarshal are the one way both
// stores encode and decode them; other messages (storage messages
// already) pass through as they are.
//
// The storage records are declared apart, and held to the API field by
// field: TestConvert_EveryAPIField fails when an API message gains a field
// its record lacks, or a field's number, cardinality or kind differs, and
// TestMarshal_RoundTrip converts by field name (copyFields) and checks the
// bytes. While both hold, the API message's own encoding is a valid
// record, byte for byte, so Marshal and Unmarshal use it and convert
// nothing at run time (converting by reflection cost 45% of an event's
// CPU). An API change that breaks the correspondence fails those tests,
// and is then the moment to write an explicit conversion here. The one
// API field a record has no place for, ConnectedResult.public_token, is
// refused: a session never keeps a public token.
package records

import (
	"errors"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// FirstStoreField is the first field number of a StoredItem that is the
// bbolt store's own (its sealed access token, queued refresh and spent
// public tokens), never an API field: an API Item decoded from a record
// drops them, and one encoded for a record never carries them.
const FirstStoreField = 1000

// errPublicToken refuses to store a session holding a public token.
var errPublicToken = errors.New("records: a Link session's connected result holds a public token, which is never stored")

// Marshal encodes m for storage: an API Item or LinkSession as its
// storage record, any other message as it is. Unknown fields numbered
// FirstStoreField and up (kept from a message decoded without records, or
// sent by a client) are dropped, so that a record's store fields are
// written by the store alone; other unknown fields, a newer linkd's API
// fields, are kept.
func Marshal(m proto.Message) ([]byte, error) {
	switch m := m.(type) {
	case *linkdv1.LinkSession:
		if m.GetConnected().GetPublicToken() != "" {
			return nil, errPublicToken
		}
		return proto.Marshal(withoutStoreFields(m))
	case *linkdv1.Item:
		return proto.Marshal(withoutStoreFields(m))
	}
	return proto.Marshal(m)
}

// withoutStoreFields returns m, or a copy of it whose unknown fields
// numbered FirstStoreField and up are dropped.
func withoutStoreFields[M proto.Message](m M) M {
	unknown := m.ProtoReflect().GetUnknown()
	kept := apiFields(unknown)
	if len(kept) == len(unknown) {
		return m
	}
	c := proto.CloneOf(m)
	c.ProtoReflect().SetUnknown(kept)
	return c
}

// apiFields returns the fields of unknown numbered below FirstStoreField,
// unknown itself when that is all of them. A malformed field ends it:
// nothing after it can be told apart.
func apiFields(unknown protoreflect.RawFields) protoreflect.RawFields {
	var kept protoreflect.RawFields
	for rest, i := unknown, 0; len(rest) > 0; {
		num, _, n := protowire.ConsumeField(rest)
		if n < 0 {
			if kept == nil {
				return unknown[:i]
			}
			return kept
		}
		switch {
		case num >= FirstStoreField && kept == nil:
			kept = append(protoreflect.RawFields{}, unknown[:i]...)
		case num < FirstStoreField && kept != nil:
			kept = append(kept, rest[:n]...)
		}
		rest, i = rest[n:], i+n
	}
	if kept == nil {
		return unknown
	}
	return kept
}

// Unmarshal decodes a stored value into m: an API Item or LinkSession
// from its storage record, keeping none of the record's fields numbered
// FirstStoreField and up (an Item's sealed access token never reaches an
// API message) but any other field m does not know (a newer linkd's,
// during a rolling deploy: kept, it is written back by the next update
// instead of lost), or any other message as it is.
func Unmarshal(b []byte, m proto.Message) error {
	if err := proto.Unmarshal(b, m); err != nil {
		return err
	}
	switch m.(type) {
	case *linkdv1.Item, *linkdv1.LinkSession:
		r := m.ProtoReflect()
		if unknown := r.GetUnknown(); len(unknown) > 0 {
			r.SetUnknown(apiFields(unknown))
		}
	}
	return nil
}

// SessionLastSeen is linkd.SessionLastSeen of a stored Link session
// record. It decodes only last_seen_at, stepping over the rest (the
// events, most of the bytes): each store's prune runs it on every
// candidate inside a write transaction. A record without last_seen_at
// (written before linkd stamped it) is decoded whole.
func SessionLastSeen(b []byte) (time.Time, error) {
	field := (*linkdv1.LinkSession)(nil).ProtoReflect().Descriptor().Fields().ByName("last_seen_at").Number()
	var seen []byte
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return time.Time{}, protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, rest[n:])
		if m < 0 {
			return time.Time{}, protowire.ParseError(m)
		}
		if num == field && typ == protowire.BytesType {
			seen, _ = protowire.ConsumeBytes(rest[n : n+m])
		}
		rest = rest[n+m:]
	}
	if seen == nil {
		s := new(linkdv1.LinkSession)
		if err := Unmarshal(b, s); err != nil {
			return time.Time{}, err
		}
		return linkd.SessionLastSeen(s), nil
	}
	ts := new(timestamppb.Timestamp)
	if err := proto.Unmarshal(seen, ts); err != nil {
		return time.Time{}, err
	}
	return ts.AsTime(), nil
}

// NewPendingLink returns the record of an exchange claim's link, for both
// stores: its institution and its accounts' names and masks, all that
// linkd.PendingDuplicateOf compares (nothing else of the accounts is
// kept).
func NewPendingLink(l *linkd.PendingLink) *storagev1.PendingLink {
	rec := &storagev1.PendingLink{InstitutionId: l.InstitutionID}
	for _, a := range l.Accounts {
		rec.Accounts = append(rec.Accounts, &linkdv1.Account{Name: a.GetName(), Mask: a.GetMask()})
	}
	return rec
}

// PendingItem is a claim's link as linkd.PendingDuplicateOf takes it: the
// Item it would create for clientUserID.
func PendingItem(clientUserID string, link *storagev1.PendingLink) *linkdv1.Item {
	return &linkdv1.Item{ClientUserId: clientUserID, InstitutionId: link.GetInstitutionId(), Accounts: link.GetAccounts()}
}
