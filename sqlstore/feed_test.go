package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/search/bleve"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
	"github.com/casevault/casevault/testkit"
)

// replicaIndex is one replica's embedded index fed from the shared store.
func replicaIndex(t *testing.T, st *sqlstore.Store, name string) *search.Indexer {
	t.Helper()
	eng, err := bleve.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ix := search.NewIndexer(st, eng, nil, search.Options{PollInterval: 20 * time.Millisecond, Settle: -1, BatchSize: 7})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s Run: %v", name, err)
		}
		_ = ix.Close()
	})
	return ix
}

func hits(t *testing.T, ix *search.Indexer, word string) int64 {
	t.Helper()
	res, err := ix.Search(t.Context(), search.Query{Words: []string{word}, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	return res.Total
}

// Several replicas' embedded indexes on one store each see every change:
// the outbox is a feed every consumer reads in full, not a queue whose rows
// go to whichever replica drains them first (issue 20 §3, §4).
func TestEveryIndexSeesEveryChange(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		st := sqlstore.New(db, sqlstore.Options{})
		svc := cases.NewService(st, nil)
		ixs := []*search.Indexer{replicaIndex(t, st, "a"), replicaIndex(t, st, "b"), replicaIndex(t, st, "c")}

		_, cs := seed(t, svc)
		var caseIDs []string
		for i := range 30 {
			addContact(t, svc, cs.ID, fmt.Sprint("walrus number ", i))
			subj, ch := fmt.Sprint("narwhal ", i), cases.ChannelWeb
			c, err := svc.CreateCase(ctx, cases.NewCase{CustomerID: &cs.CustomerID, Subject: &subj, Channel: &ch}, cases.Actor{})
			if err != nil {
				t.Fatal(err)
			}
			caseIDs = append(caseIDs, c.ID)
		}
		for i, ix := range ixs {
			testkit.Eventually(t, 15*time.Second, fmt.Sprint("replica ", i, " finds all 30 new cases"), func() bool { return hits(t, ix, "narwhal") == 30 })
			testkit.Eventually(t, 15*time.Second, fmt.Sprint("replica ", i, " finds the case with the 30 contacts"), func() bool { return hits(t, ix, "walrus") == 1 })
		}

		// A case deleted (as retention does: rows gone, one outbox row)
		// disappears from every index.
		gone := caseIDs[3]
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, db.Rebind(`DELETE FROM cases WHERE id = ?`), gone); err != nil {
				return err
			}
			return sqlstore.Enqueue(ctx, db, tx, gone)
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, ix := range ixs {
			testkit.Eventually(t, 15*time.Second, fmt.Sprint("replica ", i, " forgets the deleted case"), func() bool { return hits(t, ix, "narwhal") == 29 })
		}
	})
}
