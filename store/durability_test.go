package store_test

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/linkd/linkd"
)

// TestDB_PutItem_CommittedBeforeReturn checks that a write is in the file
// (its transaction committed, which with NoSync off means fsynced) by the
// time the method returns, also when writers are group-committed: the
// server acknowledges an Item on that return.
func TestDB_PutItem_CommittedBeforeReturn(t *testing.T) {
	db := MustOpenStore(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				id := "durable-item-" + strconv.Itoa(w) + "-" + strconv.Itoa(i) + "-end"
				if _, err := db.PutItem(ctx, linkd.NewItem{Item: newItem(id, "user-1"), AccessToken: accessToken(id), PublicToken: "public-" + id}); err != nil {
					t.Error(err)
					return
				}
				raw, err := os.ReadFile(db.Path())
				if err != nil {
					t.Error(err)
					return
				}
				if !bytes.Contains(raw, []byte(id)) {
					t.Errorf("PutItem(%s) returned before its transaction reached the file", id)
				}
			}
		}()
	}
	wg.Wait()
}
