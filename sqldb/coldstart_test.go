package sqldb_test

import (
	"context"
	"sync"
	"testing"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestSimultaneousColdStarts: several replicas starting at once on an empty
// database all migrate it without error (issue 20 §16: the table that
// records migrations was created before the lock was taken, and two
// creators collided on PostgreSQL's pg_type key), and the schema ends at
// the same version for all of them.
func TestSimultaneousColdStarts(t *testing.T) {
	const replicas = 8
	for _, d := range sqldbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			cfg := sqldbtest.Config(t, d)
			cfg.MaxOpenConns = 2
			ctx := context.Background()

			var wg sync.WaitGroup
			start := make(chan struct{})
			dbs := make([]*sqldb.DB, replicas)
			errs := make([]error, replicas)
			for i := range replicas {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					dbs[i], errs[i] = sqldb.Open(ctx, cfg)
				}()
			}
			close(start)
			wg.Wait()

			versions := map[int]int{}
			for i, err := range errs {
				if err != nil {
					t.Errorf("replica %d: %v", i, err)
					continue
				}
				v, err := dbs[i].Version(ctx)
				if err != nil {
					t.Errorf("replica %d: %v", i, err)
				}
				versions[v]++
				dbs[i].Close()
			}
			if len(versions) != 1 {
				t.Errorf("replicas see different schema versions: %v", versions)
			}
		})
	}
}
