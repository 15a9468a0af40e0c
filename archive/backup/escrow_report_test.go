package backup_test

import (
	"context"
	"strings"
	"testing"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestKeyEscrowVerifyAndPlanCount is issue 17's "operators see the
// escrow": after one of a backup's two customers is erased, verify and
// the restore plan (--dry-run) both say one customer is in the escrow
// (restored readable) and one erased (stays sealed), and verify calls
// that OK. With read_data each entry is decrypted, so a damaged entry —
// which would fail a restore — is a problem; a structure verify only
// lists names and does not see it. A backup from before the escrow, or a
// verify without the identity, reports no escrow counts.
func TestKeyEscrowVerifyAndPlanCount(t *testing.T) {
	for _, rt := range repoTargets() {
		t.Run(rt.name, func(t *testing.T) {
			forEachDialect(t, func(t *testing.T, in *instance) {
				ctx := context.Background()
				repo, _ := rt.open(t)
				f := in.seal()
				victim, _, _ := in.victim()
				survivor := in.customer("Survivor Chen Jing")
				keys := newKeys(t)
				svc := in.service(repo, keys)
				old, err := svc.Backup(ctx, "test", operator, nil)
				if err != nil {
					t.Fatal(err)
				}
				// A second backup, rewritten as one from before the escrow
				// (in place: same id).
				second, err := svc.Backup(ctx, "test", operator, nil)
				if err != nil {
					t.Fatal(err)
				}
				pre, err := backup.PreEscrowBackupForTest(ctx, repo, in.db, second, keys.Recipients)
				if err != nil {
					t.Fatal(err)
				}
				er := retention.NewEraser(in.db, retention.EraserOptions{Holds: in.holds, Keys: in.keys, Fields: f, OnChange: auditHook(in.db.Dialect),
					Blobs: in.blobs, Escrow: svc})
				if _, err := er.Erase(ctx, retention.EraseRequest{CustomerID: victim, Reason: "Art. 17", Force: true}, operator); err != nil {
					t.Fatal(err)
				}

				want := backup.EscrowCoverage{Customers: 2, InEscrow: 1, Erased: 1}
				for _, c := range []struct {
					name     string
					readData bool
					checked  int
				}{
					{"structure", false, 0},
					{"read-data", true, 1},
				} {
					vr, err := repo.Verify(ctx, old.ID, c.readData, keys.Identity, nil)
					if err != nil {
						t.Fatal(err)
					}
					w := want
					w.Checked = c.checked
					if vr.Escrow == nil || *vr.Escrow != w {
						t.Errorf("verify %s: escrow %+v, want %+v", c.name, vr.Escrow, w)
					}
					if !vr.OK {
						t.Errorf("verify %s: an erased customer's missing entry is a problem: %v", c.name, vr.Problems)
					}
				}

				plan, err := repo.Plan(ctx, old.ID, keys.Identity)
				if err != nil {
					t.Fatal(err)
				}
				if plan.Escrow == nil || *plan.Escrow != want {
					t.Errorf("restore plan: escrow %+v, want %+v", plan.Escrow, want)
				}
				// The plan's count is the restore's: the same customers
				// come back readable and sealed.
				dst := openInstance(t, sqldbtest.Open(t, in.db.Dialect), t.TempDir())
				rr := restoreInto(t, repo, old.ID, keys, dst)
				if rr.KeysFromEscrow != plan.Escrow.InEscrow || rr.KeysNotInEscrow != plan.Escrow.Erased {
					t.Errorf("restore: %d keys from the escrow, %d not; the plan said %+v", rr.KeysFromEscrow, rr.KeysNotInEscrow, plan.Escrow)
				}

				// Nothing to count: no identity to read the customers, or
				// keys in the dump.
				if vr, err := repo.Verify(ctx, old.ID, false, nil, nil); err != nil || vr.Escrow != nil {
					t.Errorf("verify without identity: escrow %+v %v, want none", vr.Escrow, err)
				}
				for _, id := range []string{pre.ID} {
					vr, err := repo.Verify(ctx, id, true, keys.Identity, nil)
					if err != nil || vr.Escrow != nil || !vr.OK {
						t.Errorf("verify of a pre-escrow backup: escrow %+v ok %v %v, want none", vr.Escrow, vr.OK, err)
					}
					p, err := repo.Plan(ctx, id, keys.Identity)
					if err != nil || p.Escrow != nil {
						t.Errorf("plan of a pre-escrow backup: escrow %+v %v, want none", p.Escrow, err)
					}
				}

				// A damaged entry would fail a restore: read_data says so.
				if err := backup.DamageEscrowForTest(ctx, repo, survivor); err != nil {
					t.Fatal(err)
				}
				vr, err := repo.Verify(ctx, old.ID, true, keys.Identity, nil)
				if err != nil {
					t.Fatal(err)
				}
				if vr.OK || len(vr.Problems) != 1 || !strings.Contains(vr.Problems[0], "key escrow entry") {
					t.Errorf("verify --read-data of a damaged entry: ok %v, problems %q; want the entry named", vr.OK, vr.Problems)
				}
				if vr.Escrow == nil || vr.Escrow.InEscrow != 1 || vr.Escrow.Checked != 0 {
					t.Errorf("verify --read-data of a damaged entry: escrow %+v, want it counted present, none checked", vr.Escrow)
				}
			})
		})
	}
}
