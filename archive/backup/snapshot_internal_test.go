package backup

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// The transactions the dump lanes read from see one same state while
// writers commit all along: every lane counts the same rows. (Without the
// write-lock barrier on SQLite, transactions begun one after the other
// under this write load see different counts.)
func TestSnapshotTxsShareOneState(t *testing.T) {
	for _, d := range []sqldb.Dialect{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			db := sqldbtest.Open(t, d)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Add(1)
			first := make(chan error, 1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					_, err := db.Write.ExecContext(ctx, db.Rebind(`INSERT INTO tokens (id, name, role, hash, created_at) VALUES (?, ?, ?, ?, ?)`),
						fmt.Sprintf("snap-%d", i), "t", "agent", fmt.Sprintf("h-%d", i), int64(i))
					if i == 0 {
						first <- err
					}
				}
			}()
			defer wg.Wait()
			defer cancel()
			if err := <-first; err != nil {
				t.Fatal(err)
			}

			distinct := map[int64]bool{}
			for i := 0; i < 30 || (len(distinct) < 2 && i < 300); i++ {
				txs, release, err := snapshotTxs(ctx, db, 3)
				if err != nil {
					t.Fatal(err)
				}
				var counts []int64
				for _, tx := range txs {
					var n int64
					if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tokens`).Scan(&n); err != nil {
						release()
						t.Fatal(err)
					}
					counts = append(counts, n)
				}
				release()
				if counts[0] != counts[1] || counts[0] != counts[2] {
					t.Fatalf("lanes see different states: %v tokens", counts)
				}
				distinct[counts[0]] = true
			}
			if len(distinct) < 2 {
				t.Fatalf("the writer never committed between snapshots (%v): the check proved nothing", distinct)
			}
		})
	}
}
