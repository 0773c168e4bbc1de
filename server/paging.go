package server

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// Page sizes of the listing RPCs: the default is also the most, and large
// enough that a client that never pages gets every record of a real user.
const (
	MaxItemsPage  = 1000
	MaxEventsPage = linkd.MaxSessionEvents
)

// nextPageHeader carries GetLinkSession's next_page_token to REST clients,
// whose body is the LinkSession alone (grpc-gateway forwards it as
// Grpc-Metadata-Linkd-Next-Page-Token).
const nextPageHeader = "linkd-next-page-token"

// pageSize returns the page size a request asked for: def for 0, at most
// max; EINVALID naming page_size when negative.
func pageSize(n int32, max int) (int, error) {
	switch {
	case n < 0:
		return 0, linkd.InvalidField("page_size", "page_size must not be negative")
	case n == 0 || int(n) > max:
		return max, nil
	}
	return int(n), nil
}

var errPageToken = linkd.InvalidField("page_token", "page_token is not one linkd issued for this list")

// itemsPageToken is the token of the page after item: its created_at and
// item_id, the order ListItems returns.
func itemsPageToken(item *linkdv1.Item) string {
	return base64.RawURLEncoding.EncodeToString([]byte("i1:" + strconv.FormatInt(item.GetCreatedAt().AsTime().UnixNano(), 10) + ":" + item.GetItemId()))
}

// pageItems returns the page of items (oldest first) that token and size
// ask for, and the next page's token.
func pageItems(items []*linkdv1.Item, size int, token string) ([]*linkdv1.Item, string, error) {
	start := 0
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		rest, ok := strings.CutPrefix(string(b), "i1:")
		nanos, id, ok2 := strings.Cut(rest, ":")
		at, perr := strconv.ParseInt(nanos, 10, 64)
		if err != nil || !ok || !ok2 || perr != nil {
			return nil, "", errPageToken
		}
		// The first Item after the token's, by (created_at, item_id):
		// an Item removed meanwhile does not lose the place.
		start = len(items)
		for i, it := range items {
			t := it.GetCreatedAt().AsTime().UnixNano()
			if t > at || (t == at && it.GetItemId() > id) {
				start = i
				break
			}
		}
	}
	end := min(start+size, len(items))
	page := items[start:end]
	if end < len(items) && len(page) > 0 {
		return page, itemsPageToken(page[len(page)-1]), nil
	}
	return page, "", nil
}

// pageEvents cuts sess's events to the page that token and size ask for,
// and returns the next page's token. The token is an offset: events are
// kept in timestamp order and only grow.
func pageEvents(sess *linkdv1.LinkSession, size int, token string) (string, error) {
	start := 0
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		rest, ok := strings.CutPrefix(string(b), "e1:")
		n, perr := strconv.Atoi(rest)
		if err != nil || !ok || perr != nil || n < 0 {
			return "", errPageToken
		}
		start = min(n, len(sess.GetEvents()))
	}
	events := sess.GetEvents()
	end := min(start+size, len(events))
	sess.Events = events[start:end]
	if end >= len(events) {
		return "", nil
	}
	return base64.RawURLEncoding.EncodeToString([]byte("e1:" + strconv.Itoa(end))), nil
}

// setNextPageHeader sends token in the response header for REST clients.
func setNextPageHeader(ctx context.Context, token string) {
	if token != "" {
		grpc.SetHeader(ctx, metadata.Pairs(nextPageHeader, token))
	}
}
