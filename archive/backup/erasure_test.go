package backup_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
)

// seal makes the instance's store seal personal fields under its keyring,
// as the server does.
func (in *instance) seal() *sqlstore.Fields {
	in.t.Helper()
	lk, err := sqlstore.LookupKey(master)
	if err != nil {
		in.t.Fatal(err)
	}
	f := sqlstore.NewFields(in.keys, lk)
	in.store = sqlstore.New(in.db, sqlstore.Options{Policy: retention.NewPolicy(retention.DefaultSchedule()), OnChange: auditHook(in.db.Dialect), Fields: f})
	return f
}

func (in *instance) eraser(f *sqlstore.Fields) *retention.Eraser {
	return retention.NewEraser(in.db, retention.EraserOptions{Holds: in.holds, Keys: in.keys, Fields: f, OnChange: auditHook(in.db.Dialect),
		Blobs: in.blobs, DigestKey: bytes.Repeat([]byte{9}, 32)})
}

// The erased customer's text, every personal field of theirs.
var victimText = []string{"Ouyang Xiaoming", "ouyang.xm@example.net", "13912345678", "Refund for the broken kettle",
	"I want my money back for kettle", "Ouyang at the counter", "Jinan Quancheng", "192.0.2.77", "KettleBrowser/9"}

func (in *instance) victim() (string, string, string) {
	in.t.Helper()
	c := cases.Customer{ID: cases.NewID(), Name: victimText[0], Email: victimText[1], Phone: victimText[2], Consents: cases.Consents{Location: true}, CreatedAt: base, UpdatedAt: base}
	if err := in.store.CreateCustomer(in.ctx, c, cases.Change{Action: "customer.create", TargetType: "customer", TargetID: c.ID}); err != nil {
		in.t.Fatal(err)
	}
	caseID := in.newCase(c.ID, victimText[3])
	ct := cases.Contact{ID: cases.NewID(), CaseID: caseID, CustomerID: c.ID, Channel: cases.ChannelPhone, Direction: cases.DirectionInbound,
		Author: victimText[5], Body: victimText[4], OccurredAt: base, CreatedAt: base,
		Purposes: []cases.Purpose{cases.PurposeCustomerService}, Categories: []cases.Category{cases.CategorySupportContent, cases.CategoryLocation, cases.CategoryDevice},
		Location: &cases.Location{Lat: 36.65, Lon: 117.12, Label: victimText[6]}, Device: &cases.Device{IP: victimText[7], UserAgent: victimText[8]}}
	if err := in.store.CreateContact(in.ctx, &ct, cases.Change{Action: "contact.create", TargetType: "contact", TargetID: ct.ID}); err != nil {
		in.t.Fatal(err)
	}
	a := in.attach(ct, 2048)
	return c.ID, caseID, a.ID
}

// TestErasureReachesBackups is the backup proof of issue 15: a backup taken
// before an erasure holds none of the customer's text in clear (its dump,
// decrypted with the backup's age identity, has only sealed values), and a
// restore of it replays the erasure: the customer is absent, and their
// data key destroyed.
func TestErasureReachesBackups(t *testing.T) {
	forEachDialect(t, func(t *testing.T, in *instance) {
		ctx := context.Background()
		f := in.seal()
		in.seed(2, 2)
		victim, victimCase, _ := in.victim()
		repo, _ := newRepo(t)
		keys := newKeys(t)
		old, err := in.service(repo, keys).Backup(ctx, "test", operator, nil)
		if err != nil {
			t.Fatal(err)
		}

		er := in.eraser(f)
		if _, err := er.Erase(ctx, retention.EraseRequest{CustomerID: victim, Reason: "Art. 17 request"}, operator); !errors.Is(err, retention.ErrOpenCases) || !errors.Is(err, cases.ErrConflict) {
			t.Fatalf("erasure with an open case and no force: %v, want ErrOpenCases", err)
		}
		res, err := er.Erase(ctx, retention.EraseRequest{CustomerID: victim, Reason: "Art. 17 request", Force: true}, operator)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Cases) != 1 || res.Cases[0] != victimCase || res.Contacts != 1 || res.Attachments != 1 || res.OpenCases != 1 {
			t.Errorf("erasure report %+v", res)
		}
		if _, err := er.Erase(ctx, retention.EraseRequest{CustomerID: victim, Reason: "again", Force: true}, operator); !errors.Is(err, cases.ErrErased) {
			t.Errorf("second erasure: %v, want ErrErased", err)
		}
		if _, err := er.Erase(ctx, retention.EraseRequest{CustomerID: cases.NewID(), Reason: "x"}, operator); !errors.Is(err, cases.ErrNotFound) {
			t.Errorf("erasure of an unknown customer: %v, want ErrNotFound", err)
		}
		if _, err := in.store.GetCustomer(ctx, victim); !errors.Is(err, cases.ErrErased) {
			t.Errorf("GetCustomer after erasure: %v, want ErrErased", err)
		}
		for _, q := range []string{
			`SELECT COUNT(*) FROM customers WHERE id = ?`, `SELECT COUNT(*) FROM cases WHERE customer_id = ?`,
			`SELECT COUNT(*) FROM contacts WHERE customer_id = ?`, `SELECT COUNT(*) FROM attachments WHERE customer_id = ?`,
			`SELECT COUNT(*) FROM customer_keys WHERE customer_id = ? AND wrapped_key IS NOT NULL`,
		} {
			if n := in.count(q, victim); n != 0 {
				t.Errorf("%s = %d after the erasure", q, n)
			}
		}
		if n := in.count(`SELECT COUNT(*) FROM dispositions WHERE customer_id = ? AND action = ?`, victim, retention.ItemEraseCustomer); n != 1 {
			t.Errorf("%d erase_customer records, want 1", n)
		}
		if n := in.count(`SELECT COUNT(*) FROM audit_events WHERE action = ? AND target_id = ?`, retention.AuditEraseCustomer, victim); n != 1 {
			t.Errorf("%d customer.erase audit events, want 1", n)
		}
		if n := in.count(`SELECT COUNT(*) FROM customers`); n != 2 {
			t.Errorf("%d customers left, want the 2 others", n)
		}

		// The old backup, decrypted with its age identity: sealed values only.
		dump, err := backup.PlainDump(ctx, repo, old, keys.Identity)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(dump["customers"], []byte(victim)) {
			t.Fatal("the backup does not hold the customer at all: the proof would prove nothing")
		}
		for table, b := range dump {
			for _, s := range append(victimText, strings.ToLower(victimText[1])) {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("backup table %s holds %q in clear", table, s)
				}
			}
		}

		// Restored with the live instance's tombstones: the customer is absent.
		dst := openInstance(t, sqldbtest.Open(t, in.db.Dialect), t.TempDir())
		rr, err := repo.Restore(ctx, old.ID, backup.RestoreOptions{Target: dst.db, Blobs: dst.blobs, Identity: keys.Identity, Actor: operator,
			Live: []*sqldb.DB{in.db}, OnChange: auditHook(dst.db.Dialect)})
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			`SELECT COUNT(*) FROM customers WHERE id = ?`, `SELECT COUNT(*) FROM cases WHERE customer_id = ?`,
			`SELECT COUNT(*) FROM contacts WHERE customer_id = ?`, `SELECT COUNT(*) FROM attachments WHERE customer_id = ?`,
			`SELECT COUNT(*) FROM customer_keys WHERE customer_id = ? AND wrapped_key IS NOT NULL`,
		} {
			if n := dst.count(q, victim); n != 0 {
				t.Errorf("restored: %s = %d, the erased customer came back", q, n)
			}
		}
		if n := dst.count(`SELECT COUNT(*) FROM customers`); n != 2 {
			t.Errorf("restored %d customers, want the 2 others", n)
		}
		if rr.Tombstones.KeysDestroyed != 1 {
			t.Errorf("replay report %+v, want the key destroyed", rr.Tombstones)
		}
		dstFields := sqlstore.NewFields(dst.keys, nil)
		other := sqlstore.New(dst.db, sqlstore.Options{Fields: dstFields})
		if cs, _, err := other.ListCases(ctx, cases.CaseFilter{}, cases.Page{}); err != nil || len(cs) != 2 {
			t.Errorf("the other customers' cases after the restore: %d, %v", len(cs), err)
		}
	})
}

// TestErasureRestoredWithoutReplayStaysSealed: a tool that restores the
// old backup without replaying tombstones brings the rows back, but only
// sealed: without the customer's data key (here: without the master key
// the keys are wrapped under) none of them opens.
func TestErasureRestoredWithoutReplayStaysSealed(t *testing.T) {
	ctx := context.Background()
	in := newInstance(t, sqldb.SQLite)
	in.seal()
	victim, victimCase, _ := in.victim()
	repo, _ := newRepo(t)
	keys := newKeys(t)
	old, err := in.service(repo, keys).Backup(ctx, "test", operator, nil)
	if err != nil {
		t.Fatal(err)
	}

	dst := openInstance(t, sqldbtest.Open(t, sqldb.SQLite), t.TempDir())
	restoreInto(t, repo, old.ID, keys, dst)
	var subject string
	if err := dst.db.Read.QueryRow(`SELECT subject FROM cases WHERE id = ?`, victimCase).Scan(&subject); err != nil {
		t.Fatal(err)
	}
	if !sqlstore.IsSealed(subject) {
		t.Fatalf("restored subject %q is not sealed", subject)
	}
	keyless := sqlstore.New(dst.db, sqlstore.Options{})
	if _, err := keyless.GetCustomer(ctx, victim); !errors.Is(err, sqlstore.ErrSealed) {
		t.Errorf("restored customer read without keys: %v, want ErrSealed", err)
	}
}

// TestErasureDuringBackupIsAllOrNothing: an erasure that commits while a
// backup is dumping its tables (after the customers table, before the
// contacts) leaves the backup holding the customer's rows entirely, as of
// its snapshot: profile, case, every contact, never a part; and their key
// not at all (the run's escrow step sees the erasure: issue 15 §1).
func TestErasureDuringBackupIsAllOrNothing(t *testing.T) {
	forEachDialect(t, func(t *testing.T, in *instance) {
		ctx := context.Background()
		f := in.seal()
		victim, victimCase, _ := in.victim()
		const extra = 1200 // with their audit events, past the first progress report (2048 rows)
		for i := 0; i < extra; i++ {
			in.contact(victimCase, "more of the same complaint")
		}
		repo, _ := newRepo(t)
		keys := newKeys(t)

		erased := false
		m, err := in.service(repo, keys).Backup(ctx, "test", operator, func(p backup.Progress) {
			if erased || p.Phase != "tables" {
				return
			}
			if p.Done >= p.Total {
				t.Errorf("first progress report at the end of the dump (%d/%d): the erasure would not run mid-dump", p.Done, p.Total)
			}
			erased = true
			if _, err := in.eraser(f).Erase(ctx, retention.EraseRequest{CustomerID: victim, Reason: "during the backup", Force: true}, operator); err != nil {
				t.Errorf("erasure during the backup: %v", err)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if !erased || in.count(`SELECT COUNT(*) FROM customers WHERE id = ?`, victim) != 0 {
			t.Fatal("the erasure did not run during the backup")
		}

		dst := openInstance(t, sqldbtest.Open(t, in.db.Dialect), t.TempDir())
		restoreInto(t, repo, m.ID, keys, dst) // no live tombstones: the backup as it is
		for q, want := range map[string]int{
			`SELECT COUNT(*) FROM customers WHERE id = ?`:         1,
			`SELECT COUNT(*) FROM cases WHERE customer_id = ?`:    1,
			`SELECT COUNT(*) FROM contacts WHERE customer_id = ?`: extra + 1,
			// The rows are the snapshot's, whole; the key is not: the
			// erasure reached the key escrow, so the restore has the
			// customer's rows sealed and their key destroyed.
			`SELECT COUNT(*) FROM customer_keys WHERE customer_id = ? AND destroyed_at IS NOT NULL AND wrapped_key IS NULL`: 1,
			`SELECT COUNT(*) FROM dispositions WHERE customer_id = ?`:                                                       0,
		} {
			if n := dst.count(q, victim); n != want {
				t.Errorf("backup taken across the erasure: %s = %d, want %d (the snapshot before it, whole)", q, n, want)
			}
		}
	})
}

// TestErasureInterruptedBeforeCommitChangesNothing: an erasure that fails
// at its last step (the process dying there rolls back the same way: one
// transaction) leaves the customer whole: rows, key, blob, no record.
func TestErasureInterruptedBeforeCommitChangesNothing(t *testing.T) {
	forEachDialect(t, func(t *testing.T, in *instance) {
		ctx := context.Background()
		f := in.seal()
		victim, _, attID := in.victim()
		before := in.blobDigests()
		boom := errors.New("killed before commit")
		er := retention.NewEraser(in.db, retention.EraserOptions{Holds: in.holds, Keys: in.keys, Fields: f, OnChange: auditHook(in.db.Dialect),
			Blobs: in.blobs, BeforeCommit: func(context.Context) error { return boom }})
		if _, err := er.Erase(ctx, retention.EraseRequest{CustomerID: victim, Reason: "x", Force: true}, operator); !errors.Is(err, boom) {
			t.Fatalf("erasure: %v, want the injected failure", err)
		}
		for q, want := range map[string]int{
			`SELECT COUNT(*) FROM customers WHERE id = ?`:                                          1,
			`SELECT COUNT(*) FROM cases WHERE customer_id = ?`:                                     1,
			`SELECT COUNT(*) FROM contacts WHERE customer_id = ?`:                                  1,
			`SELECT COUNT(*) FROM attachments WHERE customer_id = ?`:                               1,
			`SELECT COUNT(*) FROM customer_keys WHERE customer_id = ? AND wrapped_key IS NOT NULL`: 1,
			`SELECT COUNT(*) FROM dispositions WHERE customer_id = ?`:                              0,
			`SELECT COUNT(*) FROM audit_events WHERE target_id = ? AND action = 'customer.erase'`:  0,
		} {
			if n := in.count(q, victim); n != want {
				t.Errorf("%s = %d, want %d", q, n, want)
			}
		}
		if after := in.blobDigests(); len(after) != len(before) || after["plain:"+attID] != before["plain:"+attID] {
			t.Errorf("the attachment changed: %v → %v", before, after)
		}
		if c, err := in.store.GetCustomer(ctx, victim); err != nil || c.Name != victimText[0] {
			t.Errorf("customer after the failed erasure: %+v %v", c, err)
		}
	})
}
