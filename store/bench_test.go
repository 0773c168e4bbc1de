package store_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// Every write is one fsynced bbolt transaction, so these measure the disk's
// fsync more than the code.

func BenchmarkDB_PutItem(b *testing.B) {
	ctx := context.Background()
	db := MustOpenStore(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id := "item-" + strconv.Itoa(i)
		if err := db.PutItem(ctx, newItem(id, "user-"+strconv.Itoa(i%100)), accessToken(id), "public-"+id); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkDB_PutItem_Parallel(b *testing.B) {
	ctx := context.Background()
	db := MustOpenStore(b)
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			id := "item-" + strconv.FormatInt(i, 10)
			if err := db.PutItem(ctx, newItem(id, "user-"+strconv.FormatInt(i%100, 10)), accessToken(id), "public-"+id); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDB_RecordRedirect files events, twenty to a session (a short
// Link flow), every fourth one out of order.
func BenchmarkDB_RecordRedirect(b *testing.B) {
	ctx := context.Background()
	db := MustOpenStore(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sid := "sess-" + strconv.Itoa(i/20)
		ts := i % 20
		if ts%4 == 3 {
			ts -= 2
		}
		r := eventRedirect(sid, "TRANSITION_VIEW", timestamppb.New(clockStart.Add(time.Duration(ts)*time.Second)))
		r.GetEvent().ViewName = "CREDENTIAL"
		r.GetEvent().RequestId = "req-" + strconv.Itoa(i)
		if err := db.RecordRedirect(ctx, "link-"+sid, "user-1", r); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
