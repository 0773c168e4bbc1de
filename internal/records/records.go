// Package records converts between the API's Item and LinkSession and the
// storage records every backend writes (proto/linkd/storage/v1,
// records.proto), so that what is on disk is not the API's wire format.
// Both backends encode and decode through Marshal and Unmarshal; other
// messages (already storage messages) pass through as they are.
//
// The conversion copies fields by name, recursively, so that the two
// message families stay apart in their definitions and the code has no
// field list to forget: TestConvert_EveryAPIField fails when an API field
// has no storage field (or the kinds differ), which is when records.proto
// must grow. A field only the API has is dropped on the way in; the only
// such field today is ConnectedResult.public_token, which a session never
// keeps.
package records

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// Marshal encodes m for storage: an API Item or LinkSession as its
// storage record, any other message as it is.
func Marshal(m proto.Message) ([]byte, error) {
	switch m := m.(type) {
	case *linkdv1.Item:
		return proto.Marshal(toStored(m, &storagev1.StoredItem{}))
	case *linkdv1.LinkSession:
		return proto.Marshal(toStored(m, &storagev1.StoredLinkSession{}))
	}
	return proto.Marshal(m)
}

// Unmarshal decodes a stored value into m: into its storage record first
// when m is an API Item or LinkSession.
func Unmarshal(b []byte, m proto.Message) error {
	var stored proto.Message
	switch m.(type) {
	case *linkdv1.Item:
		stored = &storagev1.StoredItem{}
	case *linkdv1.LinkSession:
		stored = &storagev1.StoredLinkSession{}
	default:
		return proto.Unmarshal(b, m)
	}
	if err := proto.Unmarshal(b, stored); err != nil {
		return err
	}
	proto.Reset(m)
	copyFields(m.ProtoReflect(), stored.ProtoReflect())
	return nil
}

// toStored copies api into stored and returns stored.
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
