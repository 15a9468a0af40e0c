package export_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/archive/s3"
	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/export"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
	"github.com/casevault/casevault/testkit"
)

var base = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

type env struct {
	t     testing.TB
	ctx   context.Context
	db    *sqldb.DB
	store *sqlstore.Store
	keys  *archive.Keyring
	blobs archive.Blobs
	atts  *archive.Attachments
	holds *retention.Holds
	clock *testkit.Clock
	svc   *export.Service
}

func auditHook(d sqldb.Dialect) cases.TxHook {
	return func(ctx context.Context, tx *sql.Tx, ch cases.Change) error {
		_, err := audit.AppendTx(ctx, tx, d, audit.FromChange(ch, audit.OutcomeOK))
		return err
	}
}

func newEnv(t testing.TB, db *sqldb.DB) *env {
	blobs, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return newEnvBlobs(t, db, blobs)
}

// newEnvBlobs is an env whose attachments and packages are in blobs.
func newEnvBlobs(t testing.TB, db *sqldb.DB, blobs archive.Blobs) *env {
	e := &env{t: t, ctx: context.Background(), db: db, clock: testkit.NewClock(base), blobs: blobs}
	e.store = sqlstore.New(db, sqlstore.Options{Policy: retention.NewPolicy(retention.DefaultSchedule()), OnChange: auditHook(db.Dialect)})
	master := bytes.Repeat([]byte{7}, archive.MasterKeySize)
	var err error
	if e.keys, err = archive.NewKeyring(db, master, archive.KeyringOptions{}); err != nil {
		t.Fatal(err)
	}
	e.atts = archive.NewAttachments(db, e.blobs, e.keys, archive.AttachmentOptions{})
	e.holds = retention.NewHolds(db, bodyMatcher{db})
	e.svc = e.service()
	return e
}

// service builds an export service over the env, as a (re)started server does.
func (e *env) service() *export.Service {
	key, err := export.Key(bytes.Repeat([]byte{7}, archive.MasterKeySize))
	if err != nil {
		e.t.Fatal(err)
	}
	return export.New(export.Options{DB: e.db, Blobs: e.blobs, Attachments: e.atts, Holds: e.holds, Key: key,
		AuditTx: auditHook(e.db.Dialect), Now: e.clock.Now})
}

func (e *env) customer(name string) string {
	e.t.Helper()
	c := cases.Customer{ID: cases.NewID(), Name: name, CreatedAt: base, UpdatedAt: base, Consents: cases.Consents{Marketing: true}}
	if err := e.store.CreateCustomer(e.ctx, c, cases.Change{Action: "customer.create", TargetType: "customer", TargetID: c.ID}); err != nil {
		e.t.Fatal(err)
	}
	return c.ID
}

// caseValue and contactValue are the case and contact the env stores.
func caseValue(customerID string) cases.Case {
	return cases.Case{ID: cases.NewID(), CustomerID: customerID, Subject: "Parcel lost", Status: cases.StatusOpen,
		Priority: cases.PriorityNormal, Channel: cases.ChannelEmail, CreatedAt: base, UpdatedAt: base}
}

func contactValue(k cases.Case, body string, at time.Time) cases.Contact {
	return cases.Contact{ID: cases.NewID(), CaseID: k.ID, CustomerID: k.CustomerID, Channel: cases.ChannelChat,
		Direction: cases.DirectionInbound, Author: "Li Lei", Body: masked(body), OccurredAt: at, CreatedAt: at,
		Purposes: []cases.Purpose{cases.PurposeAuthentication}, Categories: []cases.Category{cases.CategorySupportContent}}
}

func (e *env) newCase(customerID string) cases.Case {
	e.t.Helper()
	c := caseValue(customerID)
	if err := e.store.CreateCase(e.ctx, &c, cases.Change{Action: "case.create", TargetType: "case", TargetID: c.ID}); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) contact(k cases.Case, body string, at time.Time) cases.Contact {
	e.t.Helper()
	c := contactValue(k, body, at)
	if err := e.store.CreateContact(e.ctx, &c, cases.Change{Action: "contact.create", TargetType: "contact", TargetID: c.ID}); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func masked(s string) string {
	m, _ := cases.MaskSensitive(s)
	return m
}

func (e *env) attach(c cases.Contact, name string, body []byte) cases.Attachment {
	e.t.Helper()
	a, err := e.atts.Put(e.ctx, archive.AttachmentInput{ContactID: c.ID, Filename: name, Body: bytes.NewReader(body),
		InTx: func(ctx context.Context, tx *sql.Tx, att cases.Attachment) error {
			return auditHook(e.db.Dialect)(ctx, tx, cases.Change{Action: "attachment.create", TargetType: "attachment", TargetID: att.ID})
		}})
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *env) hold(scope retention.HoldScope) retention.Hold {
	e.t.Helper()
	h, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "Acme v. Us", Reason: "litigation", Scope: scope}, cases.Actor{Name: "legal", Role: "legal"}, auditHook(e.db.Dialect))
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

var legal = cases.Actor{Name: "counsel", Role: "legal"}

// run creates and runs an export of the hold and returns it complete with
// its package opened.
func (e *env) run(holdID string) (export.Export, []byte, *zip.Reader) {
	e.t.Helper()
	return e.runInput(export.Input{HoldID: holdID})
}

// runInput creates and runs an export of in (a hold or a scope).
func (e *env) runInput(in export.Input) (export.Export, []byte, *zip.Reader) {
	e.t.Helper()
	x, err := e.svc.Create(e.ctx, in, legal)
	if err != nil {
		e.t.Fatal(err)
	}
	var last export.Progress
	if err := e.svc.Run(e.ctx, x.ID, func(p export.Progress) { last = p }); err != nil {
		e.t.Fatal(err)
	}
	if x, err = e.svc.Get(e.ctx, x.ID); err != nil {
		e.t.Fatal(err)
	}
	if x.Status != export.StatusComplete || x.Progress != last || last.ItemsDone != last.ItemsTotal || last.BytesDone != last.BytesTotal {
		e.t.Fatalf("export %+v, last progress %+v: want complete with all items done", x, last)
	}
	rc, err := e.svc.OpenRange(e.ctx, x, 0, x.Size)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	if err != nil {
		e.t.Fatal(err)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != x.SHA256 || int64(len(raw)) != x.Size {
		e.t.Fatalf("package of %d bytes does not match its recorded size %d and digest", len(raw), x.Size)
	}
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		e.t.Fatal(err)
	}
	return x, raw, zr
}

func readZip(t *testing.T, zr *zip.Reader) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		out[f.Name] = b
	}
	return out
}

func TestPackageContents(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db)
		alice, erased, other := e.customer("Alice <script>alert(1)</script>"), e.customer("Erased Eve"), e.customer("Bob")
		ka, ke, ko := e.newCase(alice), e.newCase(erased), e.newCase(other)
		c1 := e.contact(ka, "my card is 4111 1111 1111 1111, please refund", base)
		c2 := e.contact(ka, "second message", base.Add(time.Hour))
		ce := e.contact(ke, "erased customer's words", base)
		e.contact(ko, "not covered", base)
		native := bytes.Repeat([]byte("PDF-bytes "), 20000) // > 3 DARE packages
		att := e.attach(c2, "../label.pdf", native)
		e.attach(ce, "eve.pdf", []byte("eve's file"))
		h := e.hold(retention.HoldScope{CaseIDs: []string{ka.ID, ke.ID}})
		if err := e.keys.Destroy(e.ctx, erased); err != nil {
			t.Fatal(err)
		}

		x, raw, zr := e.run(h.ID)
		files := readZip(t, zr)
		for _, f := range zr.File {
			if !f.Modified.Equal(x.CreatedAt) {
				t.Errorf("%s: modified %v, want the export's time %v", f.Name, f.Modified, x.CreatedAt)
			}
		}

		// One record per contact of the covered, not erased customer.
		lines := strings.Split(strings.TrimSpace(string(files[export.ContactsFile])), "\n")
		if len(lines) != 2 {
			t.Fatalf("%d records, want 2:\n%s", len(lines), files[export.ContactsFile])
		}
		type rec struct {
			ControlNumber string `json:"control_number"`
			Contact       struct{ ID, Body string }
			Case          struct{ ID, Subject string }
			Customer      cases.Customer
			Attachments   []struct{ ID, Path, SHA256 string }
		}
		var recs []rec
		for _, l := range lines {
			var r rec
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		if recs[0].Contact.ID != c1.ID || recs[1].Contact.ID != c2.ID || recs[0].Case.Subject != "Parcel lost" || recs[0].Customer.ID != alice || !recs[0].Customer.Consents.Marketing {
			t.Errorf("records %+v", recs)
		}
		if strings.Contains(recs[0].Contact.Body, "4111") || !strings.Contains(recs[0].Contact.Body, "****") {
			t.Errorf("masked number not masked in export: %q", recs[0].Contact.Body)
		}
		if len(recs[1].Attachments) != 1 || recs[1].Attachments[0].ID != att.ID {
			t.Fatalf("attachments of c2: %+v", recs[1].Attachments)
		}

		// The native is the archived file, byte for byte.
		if got := files[recs[1].Attachments[0].Path]; !bytes.Equal(got, native) {
			t.Errorf("native %s: %d bytes, want the %d archived", recs[1].Attachments[0].Path, len(got), len(native))
		}

		// Nothing of the erased customer leaves; the summary says so.
		if bytes.Contains(raw, []byte("eve's file")) || strings.Contains(string(files[export.ContactsFile]), "erased customer") {
			t.Error("erased customer's content exported")
		}
		if x.Summary == nil || len(x.Summary.ErasedCustomers) != 1 || x.Summary.ErasedCustomers[0] != erased || x.Summary.Contacts != 2 || x.Summary.Attachments != 1 {
			t.Errorf("summary %+v", x.Summary)
		}
		html := string(files[export.SummaryFile])
		if !strings.Contains(html, erased) || strings.Contains(html, "<script>") {
			t.Errorf("summary.html does not name the erased customer or is not escaped:\n%s", html)
		}

		// The load file: a row per contact and per attachment.
		rows, err := csv.NewReader(bytes.NewReader(files[export.LoadFile])).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 4 || strings.Join(rows[0], ",") != strings.Join(export.LoadFileHeader, ",") {
			t.Fatalf("load file rows %q", rows)
		}
		if rows[3][0] != recs[1].ControlNumber+".001" || rows[3][1] != "Alice <script>alert(1)</script>" || rows[3][6] != recs[1].Attachments[0].Path || rows[3][7] != att.SHA256 {
			t.Errorf("attachment row %q", rows[3])
		}

		// The manifest's digests are the files'.
		var m export.Manifest
		if err := json.Unmarshal(files[export.ManifestName], &m); err != nil {
			t.Fatal(err)
		}
		if len(m.Files) != len(files)-1 {
			t.Errorf("manifest lists %d files, package has %d besides it", len(m.Files), len(files)-1)
		}
		for _, f := range m.Files {
			sum := sha256.Sum256(files[f.Path])
			if hex.EncodeToString(sum[:]) != f.SHA256 || int64(len(files[f.Path])) != f.Size {
				t.Errorf("manifest entry %+v does not match the file", f)
			}
		}

		// The items' audit events, and none of others.
		events := string(files[export.AuditFile])
		for _, id := range []string{c1.ID, c2.ID, ka.ID, att.ID} {
			if !strings.Contains(events, `"target_id":"`+id+`"`) {
				t.Errorf("audit events lack %s:\n%s", id, events)
			}
		}
		if strings.Contains(events, ce.ID) {
			t.Error("audit events of the erased customer's contact exported")
		}

		// A range of the package is that range of the whole.
		rc, err := e.svc.OpenRange(e.ctx, x, 70000, 1000)
		if err != nil {
			t.Fatal(err)
		}
		part, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(part, raw[70000:71000]) {
			t.Error("range read differs from the package")
		}

		// Encrypted at rest: the stored object is not the ZIP.
		stored, err := e.blobs.Get(e.ctx, "exp/"+x.ID+".zip")
		if err != nil {
			t.Fatal(err)
		}
		sraw, _ := io.ReadAll(stored)
		stored.Close()
		if bytes.Contains(sraw, []byte("PK\x03\x04")) || bytes.Contains(sraw, []byte("PDF-bytes")) {
			t.Error("package stored in the clear")
		}

		assertAudited(t, e, x.ID, "export.create")
	})
}

func assertAudited(t *testing.T, e *env, id, action string) {
	t.Helper()
	var n int
	if err := e.db.Read.QueryRowContext(e.ctx, e.db.Rebind(`SELECT COUNT(*) FROM audit_events WHERE target_id = ? AND action = ?`), id, action).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d %s events for %s, want 1", n, action, id)
	}
}

func TestBadInput(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db)
		k := e.newCase(e.customer("Ann"))
		e.contact(k, "hello", base)
		held := e.hold(retention.HoldScope{CaseIDs: []string{k.ID}})
		empty := e.hold(retention.HoldScope{CustomerIDs: []string{e.customer("No cases")}})

		for _, tc := range []struct {
			name string
			in   export.Input
			want error // nil: a validation error (422)
		}{
			{"unknown hold", export.Input{HoldID: cases.NewID()}, cases.ErrNotFound},
			{"hold covering nothing", export.Input{HoldID: empty.ID}, export.ErrNothingCovered},
			{"no hold", export.Input{}, nil},
			{"format", export.Input{HoldID: held.ID, Format: "pdf"}, nil},
			{"hold and scope", export.Input{HoldID: held.ID, Scope: json.RawMessage(`{"case_ids":["` + k.ID + `"]}`)}, nil},
			{"empty scope", export.Input{Scope: json.RawMessage(`{}`)}, nil},
			{"scope with an unknown case", export.Input{Scope: json.RawMessage(`{"case_ids":["` + cases.NewID() + `"]}`)}, nil},
			{"scope with a bad time", export.Input{Scope: json.RawMessage(`{"customer_ids":["` + k.CustomerID + `"],"from":"yesterday"}`)}, nil},
			{"scope with an unknown field", export.Input{Scope: json.RawMessage(`{"cases":["x"]}`)}, nil},
			{"scope matching nothing", export.Input{Scope: json.RawMessage(`{"customer_ids":["` + k.CustomerID + `"],"from":"2030-01-01"}`)}, export.ErrNothingCovered},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := e.svc.Create(e.ctx, tc.in, legal)
				var ve *cases.ValidationError
				if tc.want != nil && !errors.Is(err, tc.want) || tc.want == nil && !errors.As(err, &ve) {
					t.Errorf("err = %v, want %v", err, tc.want)
				}
			})
		}
		var n int
		if err := db.Read.QueryRow(`SELECT COUNT(*) FROM exports`).Scan(&n); err != nil || n != 0 {
			t.Errorf("%d exports recorded after refusals (%v)", n, err)
		}
	})
}

func TestExpiryAndDeleteRemovePackages(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db)
		k := e.newCase(e.customer("Ann"))
		e.attach(e.contact(k, "hello", base), "a.txt", []byte("file"))
		h := e.hold(retention.HoldScope{CaseIDs: []string{k.ID}})
		old, _, _ := e.run(h.ID)
		e.clock.Advance(export.DefaultTTL / 2)
		young, _, _ := e.run(h.ID)

		e.clock.Advance(export.DefaultTTL/2 + time.Second)
		if n, err := e.svc.Expire(e.ctx); err != nil || n != 1 {
			t.Fatalf("Expire = %d, %v; want the older export", n, err)
		}
		assertGone(t, e, old.ID, export.StatusExpired)
		assertAudited(t, e, old.ID, "export.expire")
		if x, _ := e.svc.Get(e.ctx, young.ID); x.Status != export.StatusComplete {
			t.Errorf("younger export is %s", x.Status)
		}

		if err := e.svc.Delete(e.ctx, young.ID, legal); err != nil {
			t.Fatal(err)
		}
		assertGone(t, e, young.ID, export.StatusDeleted)
		assertAudited(t, e, young.ID, "export.delete")
		if err := e.svc.Delete(e.ctx, young.ID, legal); !errors.Is(err, cases.ErrNotFound) {
			t.Errorf("second delete: %v, want not found", err)
		}
	})
}

func assertGone(t *testing.T, e *env, id, status string) {
	t.Helper()
	x, err := e.svc.Get(e.ctx, id)
	if err != nil || x.Status != status {
		t.Errorf("export %s: %s, %v; want %s", id, x.Status, err, status)
	}
	if _, err := e.blobs.Stat(e.ctx, "exp/"+id+".zip"); !errors.Is(err, archive.ErrNotFound) {
		t.Errorf("package %s still stored (%v)", id, err)
	}
	if _, err := e.svc.OpenRange(e.ctx, x, 0, 1); !errors.Is(err, export.ErrNotReady) {
		t.Errorf("download of a %s export: %v, want ErrNotReady", status, err)
	}
}

// A process killed during an export leaves its row running and maybe a
// stored package; the next start marks it interrupted and removes the
// package, never completing it.
func TestKilledExportIsInterrupted(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db)
		k := e.newCase(e.customer("Ann"))
		e.attach(e.contact(k, "hello", base), "a.txt", []byte("file"))
		h := e.hold(retention.HoldScope{CaseIDs: []string{k.ID}})

		// Killed before anything was stored, and killed after the package
		// was stored but before the row said complete.
		early, err := e.svc.Create(e.ctx, export.Input{HoldID: h.ID}, legal)
		if err != nil {
			t.Fatal(err)
		}
		late, err := e.svc.Create(e.ctx, export.Input{HoldID: h.ID}, legal)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.blobs.Put(e.ctx, "exp/"+late.ID+".zip", strings.NewReader("whole package"), -1); err != nil {
			t.Fatal(err)
		}

		// Their leases expire unrenewed: nothing runs them any more.
		e.clock.Advance(export.DefaultLeaseTTL + time.Second)
		restarted := e.service()
		if n, err := restarted.Recover(e.ctx); err != nil || n != 2 {
			t.Fatalf("Recover = %d, %v; want 2", n, err)
		}
		e.svc = restarted
		assertGone(t, e, early.ID, export.StatusInterrupted)
		assertGone(t, e, late.ID, export.StatusInterrupted)
		if err := restarted.Run(e.ctx, late.ID, nil); !errors.Is(err, export.ErrNotReady) {
			t.Errorf("running an interrupted export: %v", err)
		}
	})
}

// A run cancelled mid-way (the server stopping) is failed, never complete.
func TestCancelledRunFails(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db)
		k := e.newCase(e.customer("Ann"))
		e.attach(e.contact(k, "hello", base), "a.txt", bytes.Repeat([]byte("x"), 1<<20))
		e.contact(k, "again", base.Add(time.Minute))
		h := e.hold(retention.HoldScope{CaseIDs: []string{k.ID}})
		x, err := e.svc.Create(e.ctx, export.Input{HoldID: h.ID}, legal)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(e.ctx)
		err = e.svc.Run(ctx, x.ID, func(p export.Progress) {
			if p.ItemsDone == 1 {
				cancel()
			}
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want cancelled", err)
		}
		assertGone(t, e, x.ID, export.StatusFailed)
	})
}

// The same package through S3 (versitygw), on both dialects: natives
// fetched ahead (small) and streamed (larger than the prefetch bound)
// come out byte for byte in package order, masked numbers stay masked,
// the package is stored as one upload, read back by ranges (a download
// resumed mid-way), and deleted with the export.
func TestPackageOnS3(t *testing.T) {
	srv := blobtest.EnvS3(t)
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		bucket := fmt.Sprintf("cv-exp-%d", time.Now().UnixNano())
		blobs, err := s3.New(context.Background(), s3.Config{Endpoint: srv.Endpoint, Bucket: bucket,
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PartSize: 5 << 20, MaxRetries: 1})
		if err != nil {
			t.Fatal(err)
		}
		e := newEnvBlobs(t, db, blobs)
		k := e.newCase(e.customer("Ann"))
		natives := map[string][]byte{
			"natives/CV0000001.001_a.bin":   bytes.Repeat([]byte("s3 native "), 700000), // 7 MB
			"natives/CV0000001.002_b.bin":   []byte("small"),
			"natives/CV0000002.001_big.bin": bytes.Repeat([]byte("streamed "), 1100000), // 9.9 MB: past the prefetch bound
			"natives/CV0000003.001_空白.bin":  {},
		}
		c1 := e.contact(k, "card 4111 1111 1111 1111", base)
		e.attach(c1, "a.bin", natives["natives/CV0000001.001_a.bin"])
		e.attach(c1, "b.bin", natives["natives/CV0000001.002_b.bin"])
		e.attach(e.contact(k, "second", base.Add(time.Minute)), "big.bin", natives["natives/CV0000002.001_big.bin"])
		e.attach(e.contact(k, "third", base.Add(2*time.Minute)), "空白.bin", natives["natives/CV0000003.001_空白.bin"])
		h := e.hold(retention.HoldScope{CaseIDs: []string{k.ID}})

		x, raw, zr := e.run(h.ID)
		files := readZip(t, zr)
		for path, want := range natives {
			if got, ok := files[path]; !ok || !bytes.Equal(got, want) {
				t.Errorf("native %s: %d bytes (present %v), want %d", path, len(got), ok, len(want))
			}
		}
		// The card's first two groups, in every file and in the raw zip: four
		// digits alone would also be found, now and then, in a random id, a
		// digest or compressed bytes.
		unmasked := []byte("4111 1111")
		for path, b := range files {
			if bytes.Contains(b, unmasked) {
				t.Errorf("%s holds a masked number unmasked", path)
			}
		}
		if bytes.Contains(raw, unmasked) || !strings.Contains(string(files[export.ContactsFile]), "****") {
			t.Error("a masked number is not masked in the package")
		}
		var m export.Manifest
		if err := json.Unmarshal(files[export.ManifestName], &m); err != nil {
			t.Fatal(err)
		}
		for _, f := range m.Files {
			if sum := sha256.Sum256(files[f.Path]); hex.EncodeToString(sum[:]) != f.SHA256 || int64(len(files[f.Path])) != f.Size {
				t.Errorf("manifest entry %+v does not match the file", f)
			}
		}

		// A download cut short and resumed: the rest from where it stopped.
		cut := int64(len(raw)) / 3
		rc, err := e.svc.OpenRange(e.ctx, x, cut, int64(len(raw))-cut)
		if err != nil {
			t.Fatal(err)
		}
		rest, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(append(raw[:cut:cut], rest...), raw) {
			t.Error("resumed download differs from the package")
		}
		if err := e.svc.Delete(e.ctx, x.ID, legal); err != nil {
			t.Fatal(err)
		}
		assertGone(t, e, x.ID, export.StatusDeleted)
	})
}

// A native that is not the file archived (its recorded digest differs)
// fails the export, whether it was fetched ahead or streamed: failed,
// no package, never complete.
func TestNativeNotAsArchivedFailsExport(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		for _, tc := range []struct {
			name string
			size int
		}{
			{"fetched ahead", 1 << 20},
			{"streamed", 9 << 20},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnv(t, db)
				k := e.newCase(e.customer("Ann"))
				c := e.contact(k, "hello", base)
				e.attach(c, "ok.bin", []byte("fine"))
				bad := e.attach(e.contact(k, "again", base.Add(time.Minute)), "bad.bin", bytes.Repeat([]byte("x"), tc.size))
				if _, err := db.Write.Exec(db.Rebind(`UPDATE attachments SET sha256 = ? WHERE id = ?`), strings.Repeat("0", 64), bad.ID); err != nil {
					t.Fatal(err)
				}
				h := e.hold(retention.HoldScope{CaseIDs: []string{k.ID}})
				x, err := e.svc.Create(e.ctx, export.Input{HoldID: h.ID}, legal)
				if err != nil {
					t.Fatal(err)
				}
				if err := e.svc.Run(e.ctx, x.ID, nil); !errors.Is(err, archive.ErrCorrupt) {
					t.Fatalf("Run = %v, want ErrCorrupt", err)
				}
				assertGone(t, e, x.ID, export.StatusFailed)
			})
		}
	})
}

// A sweep that runs while an export is being written, with every contact
// long past its retention, deletes what the hold does not cover and none of
// what is being exported.
func TestSweepDuringExportKeepsExportedItems(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db)
		held, loose := e.newCase(e.customer("Held")), e.newCase(e.customer("Loose"))
		var natives [][]byte
		for i := range 3 {
			c := e.contact(held, fmt.Sprintf("held %d", i), base.Add(time.Duration(i)*time.Minute))
			natives = append(natives, bytes.Repeat([]byte{byte('a' + i)}, 100000))
			e.attach(c, fmt.Sprintf("n%d.bin", i), natives[i])
		}
		gone := e.contact(loose, "not held", base)
		h := e.hold(retention.HoldScope{CaseIDs: []string{held.ID}})
		sweeper := retention.NewSweeper(db, retention.SweeperOptions{Policy: retention.NewPolicy(retention.DefaultSchedule()), Holds: e.holds, Blobs: e.blobs})

		x, err := e.svc.Create(e.ctx, export.Input{HoldID: h.ID}, legal)
		if err != nil {
			t.Fatal(err)
		}
		var rep retention.RunReport
		err = e.svc.Run(e.ctx, x.ID, func(p export.Progress) {
			if p.ItemsDone != 1 {
				return
			}
			var serr error
			if rep, serr = sweeper.Run(e.ctx, retention.RunOptions{Now: base.AddDate(50, 0, 0)}); serr != nil {
				t.Error(serr)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if rep.SkippedHeld == 0 || rep.Deleted == 0 {
			t.Fatalf("sweep during the export: %+v, want held items skipped and the loose one deleted", rep)
		}
		var n int
		if err := db.Read.QueryRow(db.Rebind(`SELECT COUNT(*) FROM contacts WHERE id = ?`), gone.ID).Scan(&n); err != nil || n != 0 {
			t.Fatalf("the sweep did not delete the unheld contact (%d, %v)", n, err)
		}

		x, _ = e.svc.Get(e.ctx, x.ID)
		rc, err := e.svc.OpenRange(e.ctx, x, 0, x.Size)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(rc)
		rc.Close()
		zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			t.Fatal(err)
		}
		files := readZip(t, zr)
		for i, want := range natives {
			if got := files[fmt.Sprintf("natives/CV%07d.001_n%d.bin", i+1, i)]; !bytes.Equal(got, want) {
				t.Errorf("native %d: %d bytes, want %d", i, len(got), len(want))
			}
		}
	})
}

// A scope export holds exactly the contacts the scope matches when it
// runs: here Ann's contacts of March (not Ann's of April, not Bob's), and
// no hold is placed or needed.
func TestScopeExport(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db)
		ann, bob := e.customer("Ann"), e.customer("Bob")
		ka, kb := e.newCase(ann), e.newCase(bob)
		in1 := e.contact(ka, "march one", base)
		in2 := e.contact(ka, "march two", base.Add(48*time.Hour))
		e.contact(ka, "april", base.AddDate(0, 1, 0))
		e.contact(kb, "bob in march", base)

		scope := `{"customer_ids":["` + ann + `"],"from":"2025-03-01","to":"2025-04-01"}`
		x, _, zr := e.runInput(export.Input{Scope: json.RawMessage(scope)})
		if x.HoldID != "" || x.Scope == nil || len(x.Scope.CustomerIDs) != 1 || x.Scope.From == nil {
			t.Errorf("export %+v: want its scope recorded and no hold", x)
		}

		var got []string
		for line := range strings.SplitSeq(strings.TrimSpace(string(readZip(t, zr)[export.ContactsFile])), "\n") {
			var r struct {
				Contact struct {
					ID string `json:"id"`
				} `json:"contact"`
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			got = append(got, r.Contact.ID)
		}
		if want := []string{in1.ID, in2.ID}; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("package contacts %v, want exactly %v", got, want)
		}
		var holds int
		if err := db.Read.QueryRow(`SELECT COUNT(*) FROM legal_holds`).Scan(&holds); err != nil || holds != 0 {
			t.Errorf("%d holds after a scope export (%v)", holds, err)
		}
	})
}

// TestAuditLookupIndexed: the package's audit events are read by
// target_id IN (...), which must use an index, not scan the whole log
// (SQLite's planner is deterministic enough to ask; PostgreSQL chooses by
// statistics).
func TestAuditLookupIndexed(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.SQLite)
	plan := sqldbtest.QueryPlan(t, db, `SELECT seq FROM audit_events WHERE target_id IN (?, ?)`, "a", "b")
	if p := strings.Join(plan, "; "); !strings.Contains(p, "INDEX audit_events_target_id") {
		t.Errorf("plan %q: want the audit_events_target_id index", p)
	}
}

// gatedOpener holds every attachment open until release is closed, so a
// run stays alive mid-package for as long as a test needs.
type gatedOpener struct {
	export.AttachmentOpener
	entered chan struct{}
	release chan struct{}
}

func (g *gatedOpener) Open(ctx context.Context, id string) (cases.Attachment, io.ReadCloser, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.release
	return g.AttachmentOpener.Open(ctx, id)
}

// TestRecoveryLeavesLiveRuns: two replicas on one database. B starting
// (its recovery) leaves A's live run alone however long it runs, since A
// renews its lease; a run nobody renews (its process died) is marked
// interrupted by B's recovery once its lease has expired, not before.
func TestRecoveryLeavesLiveRuns(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db)
		k := e.newCase(e.customer("Ann"))
		e.attach(e.contact(k, "hello", base), "a.txt", []byte("file"))
		h := e.hold(retention.HoldScope{CaseIDs: []string{k.ID}})
		key, err := export.Key(bytes.Repeat([]byte{7}, archive.MasterKeySize))
		if err != nil {
			t.Fatal(err)
		}
		const ttl = time.Minute
		gate := &gatedOpener{AttachmentOpener: e.atts, entered: make(chan struct{}, 1), release: make(chan struct{})}
		replica := func(atts export.AttachmentOpener) *export.Service {
			return export.New(export.Options{DB: db, Blobs: e.blobs, Attachments: atts, Holds: e.holds, Key: key,
				AuditTx: auditHook(db.Dialect), Now: e.clock.Now, LeaseTTL: ttl, RenewEvery: 5 * time.Millisecond})
		}
		a, b := replica(gate), replica(e.atts)
		leaseOf := func(id string) int64 {
			var until int64
			if err := db.Read.QueryRow(db.Rebind(`SELECT lease_until FROM exports WHERE id = ?`), id).Scan(&until); err != nil {
				t.Fatal(err)
			}
			return until
		}

		live, err := a.Create(e.ctx, export.Input{HoldID: h.ID}, legal)
		if err != nil {
			t.Fatal(err)
		}
		dead, err := a.Create(e.ctx, export.Input{HoldID: h.ID}, legal) // never run: its process "died"
		if err != nil {
			t.Fatal(err)
		}
		ran := make(chan error, 1)
		go func() { ran <- a.Run(e.ctx, live.ID, nil) }()
		<-gate.entered

		// Before any lease expires, B's recovery marks nothing.
		if n, err := b.Recover(e.ctx); err != nil || n != 0 {
			t.Fatalf("Recover with live leases = %d, %v; want 0", n, err)
		}

		// Long past the TTL: A renewed its live run's lease, the dead
		// run's lease expired.
		e.clock.Advance(10 * ttl)
		testkit.Eventually(t, 10*time.Second, "lease renewed", func() bool {
			return leaseOf(live.ID) > sqldb.Micros(e.clock.Now())
		})
		if n, err := b.Recover(e.ctx); err != nil || n != 1 {
			t.Fatalf("Recover = %d, %v; want 1 (the dead run)", n, err)
		}
		assertGone(t, e, dead.ID, export.StatusInterrupted)
		if x, err := b.Get(e.ctx, live.ID); err != nil || x.Status != export.StatusRunning {
			t.Fatalf("live run after B's recovery: %+v, %v", x, err)
		}

		close(gate.release)
		if err := <-ran; err != nil {
			t.Fatalf("live run: %v", err)
		}
		if x, err := b.Get(e.ctx, live.ID); err != nil || x.Status != export.StatusComplete {
			t.Errorf("live run ended %+v, %v; want complete", x, err)
		}
	})
}
