package store

import (
	"fmt"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/internal/records"
)

// An items value is one storagev1.StoredItem: the Item's API fields, as
// records.Marshal writes them, followed by the store's own fields
// (records.FirstStoreField and up: the sealed access token, the queued
// refresh's due time, the spent public tokens' hashes), so that one Item
// is one key in one bucket and storing a connected Link dirties one page
// for it, not four. Protobuf decodes concatenated encodings as one
// message, so the two halves are written apart and either can be
// rewritten alone. API Items are decoded through records.Unmarshal, which
// drops the store's fields: a sealed token never reaches an API message.

// encodeItem is the items value of item with the store's fields own.
func encodeItem(item *linkdv1.Item, own *storagev1.StoredItem) ([]byte, error) {
	api, err := records.Marshal(item)
	if err != nil {
		return nil, internal("encode items value", err)
	}
	return appendOwn(api, own)
}

// appendOwn appends the encoding of the store's fields own to an Item's
// API fields api.
func appendOwn(api []byte, own *storagev1.StoredItem) ([]byte, error) {
	v, err := proto.MarshalOptions{}.MarshalAppend(api, own)
	if err != nil {
		return nil, internal("encode items value", err)
	}
	return v, nil
}

// splitItem returns copies of an items value's API fields and of the
// store's own fields, each field whole and in its order.
func splitItem(v []byte) (api, own []byte, err error) {
	return scanItem(v, make([]byte, 0, len(v)))
}

// ownOf decodes the store's fields of an items value.
func ownOf(v []byte) (*storagev1.StoredItem, error) {
	_, own, err := scanItem(v, nil)
	if err != nil {
		return nil, err
	}
	return decodeOwn(own)
}

// scanItem is splitItem appending the API fields to api, or skipping them
// when api is nil.
func scanItem(v, api []byte) (_, own []byte, err error) {
	keepAPI := api != nil
	for len(v) > 0 {
		num, typ, n := protowire.ConsumeTag(v)
		if n < 0 {
			return nil, nil, internal("decode items value", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, v[n:])
		if m < 0 {
			return nil, nil, internal("decode items value", protowire.ParseError(m))
		}
		if num >= records.FirstStoreField {
			own = append(own, v[:n+m]...)
		} else if keepAPI {
			api = append(api, v[:n+m]...)
		}
		v = v[n+m:]
	}
	return api, own, nil
}

// decodeOwn decodes the store's fields of an items value (splitItem's
// own).
func decodeOwn(own []byte) (*storagev1.StoredItem, error) {
	s := new(storagev1.StoredItem)
	if err := proto.Unmarshal(own, s); err != nil {
		return nil, internal("decode items value", err)
	}
	return s, nil
}

// itemRecord is an Item's stored value in tx, split: api is its API
// fields' encoding and own its store fields, decoded. found is false when
// there is no such Item.
func itemRecord(tx *bbolt.Tx, id []byte) (api []byte, own *storagev1.StoredItem, found bool, err error) {
	v := tx.Bucket(bucketItems).Get(id)
	if v == nil {
		return nil, nil, false, nil
	}
	api, ownRaw, err := splitItem(v)
	if err != nil {
		return nil, nil, true, err
	}
	own, err = decodeOwn(ownRaw)
	return api, own, true, err
}

// putItemRecord stores an Item's API fields' encoding api with its store
// fields own.
func putItemRecord(tx *bbolt.Tx, id, api []byte, own *storagev1.StoredItem) error {
	v, err := appendOwn(api, own)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketItems).Put(id, v); err != nil {
		return fmt.Errorf("put items value: %w", err)
	}
	return nil
}
