package backup_test

import (
	"context"
	"slices"
	"testing"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestRestoreKeepsSecurityState: a restore never rolls back security state
// recorded after the backup, whether a later backup or the live database
// holds it: a token revoked since stays revoked, a hold released since stays
// released, a hold placed since is there, the newer schedule is current.
func TestRestoreKeepsSecurityState(t *testing.T) {
	for _, source := range []string{"live", "newer backup"} {
		t.Run(source, func(t *testing.T) {
			forEachDialect(t, func(t *testing.T, src *instance) {
				ctx := context.Background()
				ids := src.seed(2, 1)
				tokens := auth.NewTokens(src.db)
				revoked, revokedSecret, err := tokens.Create(ctx, "leaked", auth.RoleAdmin, nil)
				if err != nil {
					t.Fatal(err)
				}
				_, keptSecret, err := tokens.Create(ctx, "kept", auth.RoleAgent, nil)
				if err != nil {
					t.Fatal(err)
				}
				released, err := src.holds.Place(ctx, retention.HoldInput{Matter: "M-1", Reason: "dispute", Scope: retention.HoldScope{CaseIDs: ids[:1]}}, operator, nil)
				if err != nil {
					t.Fatal(err)
				}
				policy := retention.NewPolicy(retention.DefaultSchedule())
				schedules := retention.NewSchedules(src.db, policy)
				sc := retention.DefaultSchedule()
				first, err := schedules.Put(ctx, sc, operator, nil)
				if err != nil {
					t.Fatal(err)
				}

				repo, _ := newRepo(t)
				keys := newKeys(t)
				svc := src.service(repo, keys)
				old, err := svc.Backup(ctx, "test", operator, nil)
				if err != nil {
					t.Fatal(err)
				}

				if err := tokens.Revoke(ctx, revoked.ID, nil); err != nil {
					t.Fatal(err)
				}
				if _, err := src.holds.Release(ctx, released.ID, "settled", operator, nil); err != nil {
					t.Fatal(err)
				}
				placed, err := src.holds.Place(ctx, retention.HoldInput{Matter: "M-2", Reason: "audit", Scope: retention.HoldScope{CaseIDs: ids[1:]}}, operator, nil)
				if err != nil {
					t.Fatal(err)
				}
				g, _ := retention.ParseDuration("7d")
				first.HoldReleaseGrace = &g
				second, err := schedules.Put(ctx, first, operator, nil)
				if err != nil {
					t.Fatal(err)
				}
				if second.Version <= first.Version {
					t.Fatalf("schedule versions %d then %d", first.Version, second.Version)
				}

				opts := backup.RestoreOptions{Identity: keys.Identity, Actor: operator}
				if source == "live" {
					opts.Live = []*sqldb.DB{src.db}
				} else if _, err := svc.Backup(ctx, "test", operator, nil); err != nil {
					t.Fatal(err)
				}
				dst := openInstance(t, sqldbtest.Open(t, src.db.Dialect), t.TempDir())
				opts.Target, opts.Blobs, opts.OnChange = dst.db, dst.blobs, auditHook(dst.db.Dialect)
				rr, err := repo.Restore(ctx, old.ID, opts)
				if err != nil {
					t.Fatal(err)
				}

				dstTokens := auth.NewTokens(dst.db)
				if _, err := dstTokens.Authenticate(ctx, revokedSecret); err == nil {
					t.Error("a token revoked after the backup authenticates after the restore")
				}
				if _, err := dstTokens.Authenticate(ctx, keptSecret); err != nil {
					t.Errorf("a token never revoked: %v", err)
				}
				if n := dst.count(`SELECT COUNT(*) FROM legal_holds WHERE id = ? AND released_at IS NOT NULL`, released.ID); n != 1 {
					t.Error("a hold released after the backup is active again after the restore")
				}
				if n := dst.count(`SELECT COUNT(*) FROM legal_holds WHERE id = ? AND released_at IS NULL`, placed.ID); n != 1 {
					t.Error("a hold placed after the backup is missing after the restore")
				}
				if cur, err := retention.NewSchedules(dst.db, policy).Current(ctx); err != nil || cur.Version != second.Version {
					t.Errorf("current schedule after restore: version %d (%v), want %d", cur.Version, err, second.Version)
				}

				sec := rr.Tombstones.Security
				if !slices.Equal(sec.TokensRevoked, []string{revoked.ID}) || !slices.Equal(sec.HoldsPlaced, []string{placed.ID}) ||
					!slices.Equal(sec.HoldsUpdated, []string{released.ID}) || !slices.Equal(sec.ScheduleVersions, []int64{int64(second.Version)}) {
					t.Errorf("security report %+v", sec)
				}
			})
		})
	}
}
