package retention_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/archive/s3"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
)

// dispositionOf reads the disposition of one act on a contact (or, with
// action delete_case, on a case).
type dispRow struct {
	rule, digest string
	blobKeys     sql.NullString
	goneAt       sql.NullInt64
}

func (e *env) disposition(targetID, action string) dispRow {
	e.t.Helper()
	col := "contact_id"
	if action == retention.ItemDeleteCase {
		col = "case_id"
	}
	var d dispRow
	err := e.db.Read.QueryRowContext(e.ctx, e.db.Rebind(`SELECT rule, content_sha256, blob_keys, blobs_gone_at FROM dispositions WHERE `+col+` = ? AND action = ?`), targetID, action).
		Scan(&d.rule, &d.digest, &d.blobKeys, &d.goneAt)
	if err != nil {
		e.t.Fatalf("disposition %s of %s: %v", action, targetID, err)
	}
	return d
}

// A case deleted because its last contact expired records the rule that
// deleted it, the one the run report names (it recorded an empty rule).
func TestCaseDeletionRecordsItsRule(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cs := e.newCase(e.customer())
		e.contact(cs, base, purposes(cases.PurposeNotification), contactOpt{})
		rep := e.sweep(base.Add(100*day), false)
		var reported string
		for _, it := range rep.Items {
			if it.Action == retention.ItemDeleteCase && it.CaseID == cs {
				reported = it.Rule
			}
		}
		if reported != string(cases.PurposeNotification) {
			t.Fatalf("report names rule %q for the case deletion: %+v", reported, rep.Items)
		}
		if got := e.disposition(cs, retention.ItemDeleteCase).rule; got != reported {
			t.Fatalf("case disposition records rule %q, the report %q", got, reported)
		}
	})
}

// An anonymized contact identifies nobody: its customer is replaced by a
// pseudonym, its time coarsened to the month, and it is no longer part of
// what the index is fed (so customer:<id> and text searches miss it).
// Closing or reopening its case afterwards gives it no date again.
func TestAnonymizedContactIdentifiesNobody(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cust := e.customer()
		cs := e.newCase(cust)
		at := base.Add(14*day + 13*time.Hour + 7*time.Minute)
		anon := e.contact(cs, at, purposes(cases.PurposeImprovement), contactOpt{body: "I would like dark mode", location: true, device: true})
		kept := e.contact(cs, at, purposes(cases.PurposeCustomerService), contactOpt{body: "still open"})
		outbox := e.count(`SELECT COUNT(*) FROM outbox WHERE case_id = ?`, cs)

		if rep := e.sweep(base.Add(400*day), false); rep.Anonymized != 1 {
			t.Fatalf("anonymized %d, want 1: %+v", rep.Anonymized, rep)
		}

		got, err := e.store.GetContact(e.ctx, anon.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.CustomerID == cust || !strings.HasPrefix(got.CustomerID, "anonymized-") || strings.Contains(got.CustomerID, cust) {
			t.Fatalf("anonymized contact's customer %q (was %q)", got.CustomerID, cust)
		}
		month := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		if !got.OccurredAt.Equal(month) || !got.CreatedAt.Equal(month) {
			t.Fatalf("anonymized contact occurred %v, created %v; want the month, %v", got.OccurredAt, got.CreatedAt, month)
		}
		if got.Channel != anon.Channel || !slices.Equal(got.Purposes, anon.Purposes) || got.Body != "" || got.Author != "" {
			t.Fatalf("anonymized contact %+v", got)
		}
		// Nor does its disposition record lead back to the customer.
		if n := e.count(`SELECT COUNT(*) FROM dispositions WHERE contact_id = ? AND customer_id = ?`, anon.ID, cust); n != 0 {
			t.Fatal("the anonymize disposition names the customer")
		}

		// Nor its case: it was moved to the run's statistics case, owned by
		// the pseudonym, with no subject, tags or assignee, created at the
		// run's month; no row reachable from the contact names the person's
		// customer or case.
		if got.CaseID == cs {
			t.Fatalf("the anonymized contact is still in the customer's case %s", cs)
		}
		stats, err := e.store.GetCase(e.ctx, got.CaseID)
		if err != nil {
			t.Fatalf("statistics case %s: %v", got.CaseID, err)
		}
		runMonth := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC) // base + 400 days
		if stats.CustomerID != got.CustomerID || stats.Subject != "" || len(stats.Tags) != 0 || stats.Assignee != "" ||
			stats.Channel != anon.Channel || !stats.CreatedAt.Equal(runMonth) {
			t.Fatalf("statistics case %+v (contact's pseudonym %s, channel %s, run month %v)", stats, got.CustomerID, anon.Channel, runMonth)
		}
		if pc, err := e.store.GetCustomer(e.ctx, stats.CustomerID); err != nil || pc.Email != "" || pc.Phone != "" || pc.ExternalRef != "" {
			t.Fatalf("pseudonymous customer %+v, %v", pc, err)
		}
		for _, q := range []string{
			`SELECT COUNT(*) FROM contacts WHERE id = ? AND (case_id = ? OR customer_id = ?)`,
			`SELECT COUNT(*) FROM dispositions WHERE contact_id = ? AND (case_id = ? OR customer_id = ?)`,
			`SELECT COUNT(*) FROM outbox WHERE contact_id = ? AND (case_id = ? OR case_id = (SELECT id FROM cases WHERE customer_id = ?))`,
			`SELECT COUNT(*) FROM attachments WHERE contact_id = ? AND (case_id = ? OR customer_id = ?)`,
			`SELECT COUNT(*) FROM hold_items WHERE contact_id = ? AND (case_id = ? OR customer_id = ?)`,
			`SELECT COUNT(*) FROM cases WHERE id = (SELECT case_id FROM contacts WHERE id = ?) AND (id = ? OR customer_id = ?)`,
		} {
			if n := e.count(q, anon.ID, cs, cust); n != 0 {
				t.Fatalf("%d rows link the anonymized contact to its person: %s", n, q)
			}
		}
		timeline, err := e.store.Timeline(e.ctx, cs)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range timeline {
			if c.ID == anon.ID {
				t.Fatalf("the customer's case still lists the anonymized contact: %+v", timeline)
			}
		}
		if other, _ := e.store.GetContact(e.ctx, kept.ID); other.CustomerID != cust || !other.OccurredAt.Equal(at) {
			t.Fatalf("the kept contact changed: %+v", other)
		}

		// The case is re-indexed, and what the index is fed leaves the
		// anonymized contact out.
		if n := e.count(`SELECT COUNT(*) FROM outbox WHERE case_id = ?`, cs); n <= outbox {
			t.Fatalf("no outbox row for the case (%d, before %d)", n, outbox)
		}
		docs, err := e.store.LoadCaseDocs(e.ctx, []string{cs})
		if err != nil {
			t.Fatal(err)
		}
		var indexed []string
		for _, c := range docs[cs].Contacts {
			indexed = append(indexed, c.ID)
		}
		if !slices.Equal(indexed, []string{kept.ID}) {
			t.Fatalf("index feed of the case has %v, want only the kept contact %s", indexed, kept.ID)
		}
		added, err := e.store.LoadContactDocs(e.ctx, map[string][]string{cs: {anon.ID}})
		if err != nil || len(added[cs].Contacts) != 0 {
			t.Fatalf("the anonymized contact is still fed to the index: %+v %v", added[cs].Contacts, err)
		}

		// Close and reopen: the case_closed clock must not give it a date.
		closed := base.Add(401 * day)
		e.setClosed(cs, &closed)
		if st, _ := e.state(anon.ID); st.retainUntil.Valid {
			t.Fatalf("closing the case gave the anonymized contact retain_until %d", st.retainUntil.Int64)
		}
		e.setClosed(cs, nil)
		e.setClosed(cs, &closed)
		x, err := e.explain.ExplainContact(e.ctx, anon.ID, closed)
		if err != nil {
			t.Fatal(err)
		}
		if !x.Anonymized || x.StoredRetainUntil != nil {
			t.Fatalf("explain after close/reopen: anonymized %v, stored date %v", x.Anonymized, x.StoredRetainUntil)
		}
		if st, _ := e.state(kept.ID); !st.retainUntil.Valid {
			t.Fatal("the kept contact got no date when its case closed")
		}
	})
}

// Anonymizing moves a contact out of its person's case, as deleting does:
// a case left without contacts goes, under the rule that emptied it, and
// the run report ties the anonymized contact to its statistics case only.
func TestCaseEmptiedByAnonymizationGoes(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cs := e.newCase(e.customer())
		anon := e.contact(cs, base, purposes(cases.PurposeImprovement), contactOpt{body: "feature idea"})

		rep := e.sweep(base.Add(400*day), false)
		if rep.Anonymized != 1 || rep.CasesDeleted != 1 {
			t.Fatalf("anonymized %d, cases deleted %d; want 1, 1: %+v", rep.Anonymized, rep.CasesDeleted, rep)
		}
		if n := e.count(`SELECT COUNT(*) FROM cases WHERE id = ?`, cs); n != 0 {
			t.Fatal("the case its only contact left by anonymization is still there")
		}
		if got := e.disposition(cs, retention.ItemDeleteCase).rule; got != string(cases.PurposeImprovement) {
			t.Fatalf("case disposition rule %q, want the anonymizing rule", got)
		}
		got, err := e.store.GetContact(e.ctx, anon.ID)
		if err != nil || got.CaseID == cs {
			t.Fatalf("anonymized contact %+v (%v): want it kept, in its statistics case", got, err)
		}
		for _, it := range rep.Items {
			if it.ContactID == anon.ID && it.CaseID != got.CaseID {
				t.Fatalf("report item %+v: want the statistics case %s", it, got.CaseID)
			}
		}
	})
}

// A disposition record proves that something was destroyed, not what:
// given the record, guessing the redacted device among a small candidate
// set (every address of the /24, a few user agents) finds nothing, by the
// unkeyed digest the records used to keep or by any unkeyed hash; the
// store, holding the key, still recognises the value.
func TestDispositionDigestResistsGuessing(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cs := e.newCase(e.customer())
		c := e.contact(cs, base, purposes(cases.PurposeCustomerService), contactOpt{device: true})
		st, _ := e.state(c.ID)
		stored := st.device.String
		if !strings.Contains(stored, "203.0.113.7") {
			t.Fatalf("stored device %q", stored)
		}
		if rep := e.sweep(base.Add(100*day), false); rep.Redacted != 1 {
			t.Fatalf("redacted %d, want 1", rep.Redacted)
		}
		rec := e.disposition(c.ID, retention.ItemRedact)
		if len(rec.digest) != 64 {
			t.Fatalf("no digest recorded: %q", rec.digest)
		}

		unkeyed := []func(string) string{
			func(v string) string { b, _ := json.Marshal(v); s := sha256.Sum256(b); return hex.EncodeToString(s[:]) },
			func(v string) string { s := sha256.Sum256([]byte(v)); return hex.EncodeToString(s[:]) },
			func(v string) string {
				m := hmac.New(sha256.New, nil)
				b, _ := json.Marshal(v)
				m.Write(b)
				return hex.EncodeToString(m.Sum(nil))
			},
		}
		guesses := 0
		for i := 0; i < 256; i++ {
			for _, ua := range []string{"Firefox", "Chrome", "Safari", "Edge"} {
				cand := strings.Replace(strings.Replace(stored, "203.0.113.7", fmt.Sprintf("203.0.113.%d", i), 1), "Firefox", ua, 1)
				for _, h := range unkeyed {
					guesses++
					if h(cand) == rec.digest {
						t.Fatalf("the redacted device was recovered from its record after %d guesses: %s", guesses, cand)
					}
				}
			}
		}

		// Under the store's key the true value matches and a neighbour does not.
		keyed := func(v string) string {
			m := hmac.New(sha256.New, testDigestKey)
			b, _ := json.Marshal(v)
			m.Write(b)
			return hex.EncodeToString(m.Sum(nil))
		}
		if keyed(stored) != rec.digest || keyed(strings.Replace(stored, "203.0.113.7", "203.0.113.8", 1)) == rec.digest {
			t.Fatal("the keyed digest does not identify the destroyed value for the key holder")
		}
	})
}

// blobBackend is a real blob store a disposal must leave nothing in.
type blobBackend struct {
	name string
	open func(t *testing.T) (store archive.Blobs, versions func(key string) []string)
}

func blobBackends() []blobBackend {
	return []blobBackend{
		{"local", func(t *testing.T) (archive.Blobs, func(string) []string) {
			st, err := local.New(filepath.Join(t.TempDir(), "blobs"))
			if err != nil {
				t.Fatal(err)
			}
			return st, func(key string) []string {
				if _, err := st.Stat(context.Background(), key); errors.Is(err, archive.ErrNotFound) {
					return nil
				}
				return []string{key}
			}
		}},
		{"s3-object-lock", func(t *testing.T) (archive.Blobs, func(string) []string) {
			srv := blobtest.EnvS3(t)
			st, err := s3.New(context.Background(), s3.Config{Endpoint: srv.Endpoint, Bucket: fmt.Sprintf("cv-dispose-%d", time.Now().UnixNano()),
				AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, MaxRetries: 1, ObjectLock: true})
			if err != nil {
				t.Fatal(err)
			}
			if on, err := st.ObjectLockEnabled(context.Background()); err != nil || !on {
				t.Fatalf("object lock %v %v", on, err)
			}
			return st, func(key string) []string {
				var out []string
				err := st.ListVersions(context.Background(), key, func(v archive.VersionInfo) error {
					if v.Key == key {
						out = append(out, v.VersionID)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
		}},
	}
}

// Retention delete, anonymize and a manual case deletion remove every
// version of the disposed blobs — on a versioned, object-lock bucket a
// plain delete left the data readable by version id — and each
// disposition says its blobs were verified gone.
func TestDisposalLeavesNoBlobVersion(t *testing.T) {
	for _, bb := range blobBackends() {
		t.Run(bb.name, func(t *testing.T) {
			forEachDialect(t, func(t *testing.T, e *env) {
				store, versions := bb.open(t)
				sw := retention.NewSweeper(e.db, retention.SweeperOptions{Policy: e.policy, Holds: e.holds, OnChange: auditHook(e.db.Dialect), Blobs: store, DigestKey: testDigestKey})
				del := retention.NewDeleter(e.db, retention.DeleterOptions{Holds: e.holds, OnChange: auditHook(e.db.Dialect), Blobs: store, DigestKey: testDigestKey})
				cust := e.customer()
				withBlob := func(cs string, ps ...cases.Purpose) (cases.Contact, string) {
					c := e.contact(cs, base, ps, contactOpt{})
					key := e.attachment(c)
					for _, v := range []string{"first version", "second version"} {
						if err := store.Put(e.ctx, key, bytes.NewReader([]byte(v)), int64(len(v))); err != nil {
							t.Fatal(err)
						}
					}
					return c, key
				}
				swept := e.newCase(cust)
				expired, expiredKey := withBlob(swept, cases.PurposeNotification)
				anon, anonKey := withBlob(swept, cases.PurposeImprovement)
				manual := e.newCase(cust)
				deleted, deletedKey := withBlob(manual, cases.PurposeCustomerService)
				keptCase := e.newCase(cust)
				_, keptKey := withBlob(keptCase, cases.PurposeCustomerService)

				rep, err := sw.Run(e.ctx, retention.RunOptions{Now: base.Add(400 * day)})
				if err != nil || rep.Deleted != 1 || rep.Anonymized != 1 {
					t.Fatalf("sweep: %+v %v", rep, err)
				}
				if err := del.DeleteCase(e.ctx, manual, cases.Actor{Name: "operator", Role: "admin"}); err != nil {
					t.Fatal(err)
				}

				for _, act := range []struct {
					contact, action, key string
				}{{expired.ID, retention.ItemDelete, expiredKey}, {anon.ID, retention.ItemAnonymize, anonKey}, {deleted.ID, retention.ItemDelete, deletedKey}} {
					if vs := versions(act.key); len(vs) != 0 {
						t.Errorf("%s: %d versions of %s are still stored", act.action, len(vs), act.key)
					}
					d := e.disposition(act.contact, act.action)
					if !d.goneAt.Valid || !strings.Contains(d.blobKeys.String, act.key) {
						t.Errorf("%s: disposition blobs %q verified gone at %v", act.action, d.blobKeys.String, d.goneAt)
					}
				}
				if vs := versions(keptKey); len(vs) == 0 {
					t.Fatal("the blob of a kept contact was removed")
				}
			})
		})
	}
}

// A disposal whose blobs could not be removed (the store was down) stays
// pending in its record, and the next sweep finishes it.
func TestPendingPurgeFinishedByNextSweep(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cs := e.newCase(e.customer())
		c := e.contact(cs, base, purposes(cases.PurposeNotification), contactOpt{})
		key := e.attachment(c)
		e.blobs.setDown(true)
		e.sweep(base.Add(100*day), false)
		if d := e.disposition(c.ID, retention.ItemDelete); d.goneAt.Valid {
			t.Fatal("blobs recorded as gone while the store was down")
		}
		e.blobs.setDown(false)
		rep := e.sweep(base.Add(101*day), false)
		if rep.PurgesFinished != 1 || !slices.Contains(e.blobs.keys(), key) {
			t.Fatalf("next sweep finished %d purges, purged %v", rep.PurgesFinished, e.blobs.keys())
		}
		if d := e.disposition(c.ID, retention.ItemDelete); !d.goneAt.Valid {
			t.Fatal("the finished disposal is not recorded as verified gone")
		}
		if rep := e.sweep(base.Add(102*day), false); rep.PurgesFinished != 0 {
			t.Fatalf("a finished purge was done again: %d", rep.PurgesFinished)
		}
	})
}

// TestReversedDisposalsDoNotBlockPendingPurges: a disposal an undo reversed
// brought its attachments back, so its blobs are live, not pending. Left
// pending, such records filled every sweep's batch of purges to finish
// (oldest first) and a real leftover behind them was never purged.
func TestReversedDisposalsDoNotBlockPendingPurges(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cs := e.newCase(e.customer())
		keeper := e.contact(cs, base.Add(300*day), purposes(cases.PurposeNotification), contactOpt{})
		e.blobs.setDown(true)

		// A sweep's worth (BatchSize 3) of disposals whose purge failed…
		undone := map[string]string{}
		for range 3 {
			c := e.contact(cs, base, purposes(cases.PurposeNotification), contactOpt{})
			undone[c.ID] = e.attachment(c)
		}
		e.sweep(base.Add(100*day), false)

		// …then reversed by an undo that restored their attachments (here:
		// rows naming the same blobs).
		for id, key := range undone {
			if d := e.disposition(id, retention.ItemDelete); d.goneAt.Valid {
				t.Fatal("blobs recorded as gone while the store was down")
			}
			if _, err := e.db.Write.ExecContext(e.ctx, e.db.Rebind(`UPDATE dispositions SET reversed_at = ?, reversed_by = 'undo' WHERE contact_id = ?`), sqldb.Micros(base.Add(101*day)), id); err != nil {
				t.Fatal(err)
			}
			if _, err := e.db.Write.ExecContext(e.ctx, e.db.Rebind(`INSERT INTO attachments (id, contact_id, case_id, customer_id, filename, content_type, size, sha256, blob_key, created_at)
				VALUES (?, ?, ?, ?, 'label.pdf', 'application/pdf', 3, 'abc', ?, 0)`), cases.NewID(), keeper.ID, cs, keeper.CustomerID, key); err != nil {
				t.Fatal(err)
			}
		}

		// A later disposal whose purge failed: the one really pending.
		c := e.contact(cs, base.Add(20*day), purposes(cases.PurposeNotification), contactOpt{})
		key := e.attachment(c)
		e.sweep(base.Add(150*day), false)
		e.blobs.setDown(false)

		rep := e.sweep(base.Add(151*day), false)
		if rep.PurgesFinished != 1 || !slices.Contains(e.blobs.keys(), key) {
			t.Fatalf("sweep finished %d purges, purged %v; want the pending %s purged", rep.PurgesFinished, e.blobs.keys(), key)
		}
		for _, k := range undone {
			if slices.Contains(e.blobs.keys(), k) {
				t.Errorf("the blob %s of a reversed disposal (restored, live) was purged", k)
			}
		}
	})
}
