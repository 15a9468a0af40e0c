package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/casevault/casevault/cluster"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// openReplicas opens n connections to one fresh database, as n replicas
// would.
func openReplicas(t *testing.T, d sqldb.Dialect, n int) []*sqldb.DB {
	t.Helper()
	cfg := sqldbtest.Config(t, d)
	dbs := make([]*sqldb.DB, n)
	for i := range dbs {
		db, err := sqldb.Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}
	return dbs
}

// TestTickClaimedOnce: replicas whose crons fire for the same tick at once
// run it once between them (issue 20 §16: the reconciler ran on every
// replica); a later tick is claimed again, an earlier one never.
func TestTickClaimedOnce(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	for _, d := range sqldbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			dbs := openReplicas(t, d, 4)
			claim := func(tick time.Time) (owners int) {
				var wg sync.WaitGroup
				var mu sync.Mutex
				for i, db := range dbs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ok, err := cluster.NewTicks(db, fmt.Sprint("replica-", i), nil).Claim(ctx, "cron.reconcile", tick)
						if err != nil {
							t.Error(err)
						}
						if ok {
							mu.Lock()
							owners++
							mu.Unlock()
						}
					}()
				}
				wg.Wait()
				return owners
			}

			for _, tc := range []struct {
				name string
				tick time.Time
				want int
			}{
				{"first tick", t0, 1},
				{"the same tick again", t0, 0},
				{"the next tick", t0.Add(time.Hour), 1},
				{"a late cron's earlier tick", t0.Add(30 * time.Minute), 0},
			} {
				if got := claim(tc.tick); got != tc.want {
					t.Errorf("%s: %d replicas claimed it, want %d", tc.name, got, tc.want)
				}
			}

			// Jobs are claimed independently.
			ok, err := cluster.NewTicks(dbs[0], "r", nil).Claim(ctx, "cron.audit_prune", t0)
			if err != nil || !ok {
				t.Fatalf("another job's tick: %v, %v", ok, err)
			}
		})
	}
}

// TestCheckBackups: with other live replicas a replica backs up only into
// the one shared repository, to the shared recipients (issue 20 §15).
func TestCheckBackups(t *testing.T) {
	ctx := context.Background()
	s3 := cluster.Backups{Repo: "s3:s3.example:9000/backups/prod/", Recipients: "age1aaa,age1bbb"}
	tests := []struct {
		name   string
		self   cluster.Backups
		others []cluster.Backups
		// stale others stopped beating longer ago than the TTL
		stale   []cluster.Backups
		wantErr string // "" when allowed
	}{
		{name: "alone with a local repository", self: cluster.Backups{Repo: "local:/data/backups"}},
		{name: "others gone", self: cluster.Backups{Repo: "local:/data/backups"}, stale: []cluster.Backups{s3}},
		{name: "local repository with others live", self: cluster.Backups{Repo: "local:/data/backups"}, others: []cluster.Backups{{Repo: "local:/data/backups"}},
			wantErr: "on its own disk"},
		{name: "shared repository, own keys", self: cluster.Backups{Repo: s3.Repo}, others: []cluster.Backups{{Repo: s3.Repo}}, wantErr: "--backup-recipients"},
		{name: "another repository", self: s3, others: []cluster.Backups{{Repo: "s3:other:9000/b/", Recipients: s3.Recipients}}, wantErr: "another repository"},
		{name: "other recipients", self: s3, others: []cluster.Backups{{Repo: s3.Repo, Recipients: "age1ccc"}}, wantErr: "other recipients"},
		{name: "same repository and recipients", self: s3, others: []cluster.Backups{s3, {Repo: s3.Repo, Recipients: "age1bbb, age1aaa"}}},
	}
	for _, d := range sqldbtest.Dialects {
		for _, tc := range tests {
			t.Run(string(d)+"/"+tc.name, func(t *testing.T) {
				db := sqldbtest.Open(t, d)
				clock := testkit.NewClock(time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC))
				for i, b := range tc.stale {
					r := cluster.NewRegistry(db, cluster.RegistryOptions{Host: fmt.Sprint("stale-", i), Backups: b, Now: clock.Now})
					if err := r.Beat(ctx); err != nil {
						t.Fatal(err)
					}
				}
				clock.Advance(time.Minute)
				for i, b := range tc.others {
					r := cluster.NewRegistry(db, cluster.RegistryOptions{Host: fmt.Sprint("other-", i), Backups: b, Now: clock.Now})
					if err := r.Beat(ctx); err != nil {
						t.Fatal(err)
					}
				}
				self := cluster.NewRegistry(db, cluster.RegistryOptions{Host: "self", Backups: tc.self, Now: clock.Now})
				if err := self.Beat(ctx); err != nil {
					t.Fatal(err)
				}

				err := self.CheckBackups(ctx)
				switch {
				case tc.wantErr == "" && err != nil:
					t.Fatalf("refused: %v", err)
				case tc.wantErr != "" && (!errors.Is(err, cluster.ErrBackupsNotShared) || !strings.Contains(err.Error(), tc.wantErr)):
					t.Fatalf("err = %v, want ErrBackupsNotShared saying %q", err, tc.wantErr)
				}
			})
		}
	}
}

// TestLeave: a replica that stops cleanly is no longer live at once.
func TestLeave(t *testing.T) {
	ctx := context.Background()
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		a := cluster.NewRegistry(db, cluster.RegistryOptions{Host: "a"})
		b := cluster.NewRegistry(db, cluster.RegistryOptions{Host: "b"})
		for _, r := range []*cluster.Registry{a, b} {
			if err := r.Beat(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if others, err := a.Others(ctx); err != nil || len(others) != 1 || others[0].Host != "b" {
			t.Fatalf("others of a: %v, %v", others, err)
		}
		if err := b.Leave(ctx); err != nil {
			t.Fatal(err)
		}
		if others, err := a.Others(ctx); err != nil || len(others) != 0 {
			t.Fatalf("others after b left: %v, %v", others, err)
		}
	})
}
