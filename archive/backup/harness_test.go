package backup_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
)

var base = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// instance is a real casevault store: database, encrypted attachments on
// local disk, audit trail, retention sweeper.
type instance struct {
	t       testing.TB
	ctx     context.Context
	db      *sqldb.DB
	store   *sqlstore.Store
	blobs   archive.Blobs
	keys    *archive.Keyring
	att     *archive.Attachments
	sweeper *retention.Sweeper
	deleter *retention.Deleter
	holds   *retention.Holds
}

func auditHook(d sqldb.Dialect) func(ctx context.Context, tx *sql.Tx, ch cases.Change) error {
	return func(ctx context.Context, tx *sql.Tx, ch cases.Change) error {
		_, err := audit.AppendTx(ctx, tx, d, audit.FromChange(ch, audit.OutcomeOK))
		return err
	}
}

var master = bytes.Repeat([]byte{7}, 32)

// forEachDialect runs fn as a subtest on a fresh instance of every engine.
func forEachDialect(t *testing.T, fn func(t *testing.T, in *instance)) {
	t.Helper()
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) { fn(t, openInstance(t, db, t.TempDir())) })
}

func newInstance(t testing.TB, d sqldb.Dialect) *instance {
	t.Helper()
	return openInstance(t, sqldbtest.Open(t, d), t.TempDir())
}

func openInstance(t testing.TB, db *sqldb.DB, blobDir string) *instance {
	t.Helper()
	in := &instance{t: t, ctx: context.Background(), db: db}
	policy := retention.NewPolicy(retention.DefaultSchedule())
	in.store = sqlstore.New(db, sqlstore.Options{Policy: policy, OnChange: auditHook(db.Dialect)})
	st, err := local.New(blobDir)
	if err != nil {
		t.Fatal(err)
	}
	in.blobs = st
	if in.keys, err = archive.NewKeyring(db, master, archive.KeyringOptions{}); err != nil {
		t.Fatal(err)
	}
	in.att = archive.NewAttachments(db, st, in.keys, archive.AttachmentOptions{})
	in.holds = retention.NewHolds(db, nil)
	in.sweeper = retention.NewSweeper(db, retention.SweeperOptions{Policy: policy, Holds: in.holds, OnChange: auditHook(db.Dialect), Blobs: st,
		IndexLag: func(context.Context) (int64, error) { return 0, nil }})
	in.deleter = retention.NewDeleter(db, retention.DeleterOptions{Holds: in.holds, OnChange: auditHook(db.Dialect), Blobs: st})
	return in
}

func (in *instance) customer(name string) string {
	in.t.Helper()
	c := cases.Customer{ID: cases.NewID(), Name: name, Email: "x@example.com", Consents: cases.Consents{Location: true}, CreatedAt: base, UpdatedAt: base}
	if err := in.store.CreateCustomer(in.ctx, c, cases.Change{Action: "customer.create", TargetType: "customer", TargetID: c.ID}); err != nil {
		in.t.Fatal(err)
	}
	return c.ID
}

func (in *instance) newCase(customerID, subject string) string {
	in.t.Helper()
	c := cases.Case{ID: cases.NewID(), CustomerID: customerID, Subject: subject, Status: cases.StatusOpen, Tags: []string{"vip", "退款"},
		Priority: cases.PriorityNormal, Channel: cases.ChannelEmail, CreatedAt: base, UpdatedAt: base}
	if err := in.store.CreateCase(in.ctx, &c, cases.Change{Action: "case.create", TargetType: "case", TargetID: c.ID}); err != nil {
		in.t.Fatal(err)
	}
	return c.ID
}

func (in *instance) contact(caseID, body string) cases.Contact {
	in.t.Helper()
	cs, err := in.store.GetCase(in.ctx, caseID)
	if err != nil {
		in.t.Fatal(err)
	}
	c := cases.Contact{ID: cases.NewID(), CaseID: caseID, CustomerID: cs.CustomerID, Channel: cases.ChannelChat,
		Direction: cases.DirectionInbound, Author: "Li Lei", Body: body, OccurredAt: base, CreatedAt: base,
		Purposes: []cases.Purpose{cases.PurposeCustomerService}, Categories: []cases.Category{cases.CategorySupportContent, cases.CategoryLocation, cases.CategoryDevice},
		Location: &cases.Location{Lat: 31.2, Lon: 121.5, Label: "上海"}, Device: &cases.Device{IP: "203.0.113.7", UserAgent: "Firefox"}}
	if err := in.store.CreateContact(in.ctx, &c, cases.Change{Action: "contact.create", TargetType: "contact", TargetID: c.ID}); err != nil {
		in.t.Fatal(err)
	}
	return c
}

func (in *instance) attach(c cases.Contact, size int) cases.Attachment {
	in.t.Helper()
	body := make([]byte, size)
	_, _ = rand.Read(body)
	a, err := in.att.Put(in.ctx, archive.AttachmentInput{ContactID: c.ID, Filename: "scan.pdf", ContentType: "application/pdf", Body: bytes.NewReader(body)})
	if err != nil {
		in.t.Fatal(err)
	}
	return a
}

// seed writes a small but varied archive: several customers, cases,
// contacts with awkward text, attachments, an audit trail.
func (in *instance) seed(cases, contactsPer int) []string {
	in.t.Helper()
	var ids []string
	for i := 0; i < cases; i++ {
		cust := in.customer(fmt.Sprintf("Customer %d \"quoted\" \\ 客户", i))
		cs := in.newCase(cust, fmt.Sprintf("Case %d: refund <b>now</b>\n阅读记录", i))
		for j := 0; j < contactsPer; j++ {
			c := in.contact(cs, fmt.Sprintf("body %d/%d\twith tab, emoji 📦, NUL-free \u2028 line sep", i, j))
			if j == 0 {
				in.attach(c, 3000+i)
			}
		}
		ids = append(ids, cs)
	}
	return ids
}

func (in *instance) count(q string, args ...any) int {
	in.t.Helper()
	var n int
	if err := in.db.Read.QueryRowContext(in.ctx, in.db.Rebind(q), args...).Scan(&n); err != nil {
		in.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// repo is a backup repository in a fresh local directory.
func newRepo(t testing.TB) (*backup.Repo, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := backup.OpenRepo(st, "", backup.RepoOptions{Signer: signer(t, master)})
	if err != nil {
		t.Fatal(err)
	}
	return r, dir
}

// signer is the manifest signing key of an instance with master key m.
func signer(t testing.TB, m []byte) *backup.SigningKey {
	t.Helper()
	k, err := backup.DeriveSigningKey(m)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newKeys(t testing.TB) backup.Keys {
	t.Helper()
	k, err := backup.LoadKeys(backup.KeyConfig{DefaultIdentityFile: filepath.Join(t.TempDir(), "backup.key")}, true)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (in *instance) service(repo *backup.Repo, keys backup.Keys) *backup.Service {
	return backup.New(in.db, repo, backup.Options{Blobs: in.blobs, Keys: keys, OnChange: auditHook(in.db.Dialect), Workers: 2})
}

var operator = cases.Actor{Name: "ops", Role: "backup"}

// blobDigests maps every blob key of an instance to the SHA-256 of its
// stored bytes, and every attachment to the SHA-256 of its decrypted bytes.
func (in *instance) blobDigests() map[string]string {
	in.t.Helper()
	out := map[string]string{}
	rows, err := in.db.Read.QueryContext(in.ctx, `SELECT id, blob_key FROM attachments ORDER BY id`)
	if err != nil {
		in.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, key string
		if err := rows.Scan(&id, &key); err != nil {
			in.t.Fatal(err)
		}
		rc, err := in.blobs.Get(in.ctx, key)
		if err != nil {
			in.t.Fatalf("blob %s: %v", key, err)
		}
		out["stored:"+key] = digest(in.t, rc)
		_, plain, err := in.att.Open(in.ctx, id)
		if err != nil {
			in.t.Fatalf("open attachment %s: %v", id, err)
		}
		out["plain:"+id] = digest(in.t, plain)
	}
	return out
}

func digest(t testing.TB, rc io.ReadCloser) string {
	t.Helper()
	defer rc.Close()
	h := newHash()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

type casesCase = cases.Case

func change(id string) cases.Change {
	return cases.Change{Action: "case.update", TargetType: "case", TargetID: id}
}

// fixture is a seeded instance with a repository and keys.
type fixture struct {
	src  *instance
	ids  []string // the seeded cases
	repo *backup.Repo
	dir  string
	keys backup.Keys
}

// newFixture seeds a SQLite instance.
func newFixture(t testing.TB, cases, contactsPer int) fixture {
	t.Helper()
	return newFixtureOn(t, sqldb.SQLite, cases, contactsPer)
}

func newFixtureOn(t testing.TB, d sqldb.Dialect, cases, contactsPer int) fixture {
	t.Helper()
	src := newInstance(t, d)
	ids := src.seed(cases, contactsPer)
	repo, dir := newRepo(t)
	return fixture{src: src, ids: ids, repo: repo, dir: dir, keys: newKeys(t)}
}

// backup takes one backup through a fresh service.
func (f fixture) backup(t testing.TB) backup.Manifest {
	t.Helper()
	m, err := f.src.service(f.repo, f.keys).Backup(context.Background(), "test", operator, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// restoreInto restores backup id of repo into dst, failing the test on an
// error or on a table whose restored digest differs from the backup's.
func restoreInto(t testing.TB, repo *backup.Repo, id string, keys backup.Keys, dst *instance) backup.RestoreReport {
	t.Helper()
	rep, err := repo.Restore(context.Background(), id, backup.RestoreOptions{Target: dst.db, Blobs: dst.blobs, Identity: keys.Identity, Actor: operator})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range rep.Tables {
		if !tr.Match {
			t.Errorf("table %s: restored digest %s, backup %s", tr.Name, tr.Restored, tr.SHA256)
		}
	}
	return rep
}
