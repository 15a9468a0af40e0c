package retention_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// sealedEnv is env with personal fields sealed under a keyring, as the
// server writes them, and the retention services given the fields to open
// what they digest.
type sealedEnv struct {
	*env
	consents *retention.Consents
	keys     *archive.Keyring
	fields   *sqlstore.Fields
}

func newSealedEnv(t *testing.T, db *sqldb.DB) *sealedEnv {
	t.Helper()
	e := newEnv(t, db)
	master := bytes.Repeat([]byte{7}, 32)
	keys, err := archive.NewKeyring(db, master, archive.KeyringOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lk, err := sqlstore.LookupKey(master)
	if err != nil {
		t.Fatal(err)
	}
	fields := sqlstore.NewFields(keys, lk)
	audited := auditHook(db.Dialect)
	e.store = sqlstore.New(db, sqlstore.Options{Policy: e.policy, Fields: fields,
		OnChange: func(ctx context.Context, tx *sql.Tx, ch cases.Change) error {
			if err := e.holds.RecordWrite(ctx, tx, ch); err != nil {
				return err
			}
			return audited(ctx, tx, ch)
		},
		BeforeCaseUpdate: func(ctx context.Context, tx *sql.Tx, caseID string) error { return e.holds.RecordCase(ctx, tx, caseID) }})
	e.sweeper = retention.NewSweeper(db, retention.SweeperOptions{Policy: e.policy, Holds: e.holds, OnChange: audited, Blobs: e.blobs,
		IndexLag: e.indexLag, DigestKey: testDigestKey, Fields: fields})
	e.deleter = retention.NewDeleter(db, retention.DeleterOptions{Holds: e.holds, OnChange: audited, Blobs: e.blobs, DigestKey: testDigestKey, Fields: fields})
	cons := retention.NewConsents(db, retention.ConsentOptions{Holds: e.holds, OnChange: audited, DigestKey: testDigestKey, Fields: fields,
		Policy: e.policy, Blobs: e.blobs})
	return &sealedEnv{env: e, consents: cons, keys: keys, fields: fields}
}

func forEachSealed(t *testing.T, fn func(t *testing.T, e *sealedEnv)) {
	forEachDialect(t, func(t *testing.T, e *env) { fn(t, newSealedEnv(t, e.db)) })
}

// keyedOf is the digest a disposition must keep of content in clear.
func keyedOf(content any) string {
	b, _ := json.Marshal(content)
	m := hmac.New(sha256.New, testDigestKey)
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

func jsonText(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestDispositionDigestsAreOfClearText: with personal fields sealed, every
// act that destroys them (a sweep's redaction, a manual deletion of a
// contact and its case, a consent withdrawal's redaction) records the
// keyed digest of the clear text, the one a copy someone brings can be
// checked against, never of the sealed form (random per write).
func TestDispositionDigestsAreOfClearText(t *testing.T) {
	dev := cases.Device{IP: "203.0.113.7", UserAgent: "Firefox"}
	loc := cases.Location{Lat: 31.2, Lon: 121.5, Label: "Shanghai"}
	for _, tc := range []struct {
		name string
		opt  contactOpt
		act  func(e *sealedEnv, customerID, caseID string)
		// the disposition (target, action) and the clear content it digests
		action string
		onCase bool
		want   func(c cases.Contact) any
	}{
		{"sweep redacts a device", contactOpt{device: true}, func(e *sealedEnv, _, _ string) {
			if rep := e.sweep(base.Add(100*day), false); rep.Redacted != 1 {
				e.t.Fatalf("redacted %d, want 1", rep.Redacted)
			}
		}, retention.ItemRedact, false, func(cases.Contact) any { return jsonText(dev) }},
		{"manual deletion of the contact", contactOpt{location: true}, func(e *sealedEnv, _, caseID string) {
			if err := e.deleter.DeleteCase(e.ctx, caseID, cases.Actor{Name: "sup"}); err != nil {
				e.t.Fatal(err)
			}
		}, retention.ItemDelete, false, func(c cases.Contact) any {
			return map[string]any{"author": c.Author, "body": c.Body, "location": jsonText(loc), "device": "", "attachments": []string{}}
		}},
		{"manual deletion of the case", contactOpt{}, func(e *sealedEnv, _, caseID string) {
			if err := e.deleter.DeleteCase(e.ctx, caseID, cases.Actor{Name: "sup"}); err != nil {
				e.t.Fatal(err)
			}
		}, retention.ItemDeleteCase, true, func(cases.Contact) any { return map[string]any{"subject": "Parcel lost"} }},
		{"location consent withdrawn", contactOpt{location: true}, func(e *sealedEnv, customerID, _ string) {
			if rep, err := e.consents.Apply(e.ctx, customerID, cases.Actor{Name: "agent"}); err != nil || rep.Redacted["location"] != 1 {
				e.t.Fatalf("withdrawal = %+v, %v", rep, err)
			}
		}, retention.ItemRedact, false, func(cases.Contact) any { return jsonText(loc) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachSealed(t, func(t *testing.T, e *sealedEnv) {
				cust := e.customer()
				cs := e.newCase(cust)
				c := e.contact(cs, base, purposes(cases.PurposeCustomerService), tc.opt)
				st, _ := e.state(c.ID)
				if !sqlstore.IsSealed(st.body) {
					t.Fatalf("body stored %q: not sealed, the test would prove nothing", st.body)
				}
				tc.act(e, cust, cs)
				target := c.ID
				if tc.onCase {
					target = cs
				}
				rec := e.disposition(target, tc.action)
				if want := keyedOf(tc.want(c)); rec.digest != want {
					t.Fatalf("digest %s, want the keyed digest of the clear text %s", rec.digest, want)
				}
			})
		})
	}
}

// TestPersonalizationWithdrawalDropsThePurpose (issue 15 §3): withdrawing
// personalization consent drops that purpose from the customer's stored
// contacts and recomputes their retention from the purposes left; a
// contact kept only for personalization is deleted with its attachment
// (disposition record, blob purged); a held contact is kept and reported;
// other customers' contacts and other purposes are untouched; applying
// again changes nothing.
func TestPersonalizationWithdrawalDropsThePurpose(t *testing.T) {
	forEachSealed(t, func(t *testing.T, e *sealedEnv) {
		cust, other := e.customer(), e.customer()
		cs, heldCase, otherCase := e.newCase(cust), e.newCase(cust), e.newCase(other)
		mixed := e.contact(cs, base, purposes(cases.PurposeNotification, cases.PurposePersonalization), contactOpt{})
		only := e.contact(cs, base, purposes(cases.PurposePersonalization), contactOpt{})
		blob := e.attachment(only)
		plain := e.contact(cs, base, purposes(cases.PurposeCustomerService), contactOpt{})
		held := e.contact(heldCase, base, purposes(cases.PurposePersonalization), contactOpt{})
		elsewhere := e.contact(otherCase, base, purposes(cases.PurposePersonalization), contactOpt{})
		hold := e.place(retention.HoldScope{CaseIDs: []string{heldCase}})

		rep, err := e.consents.Apply(e.ctx, cust, cases.Actor{Name: "agent", Role: "agent"})
		if err != nil {
			t.Fatal(err)
		}
		if rep.PurposeDropped["personalization"] != 1 || rep.Deleted["personalization"] != 1 || len(rep.Held) != 1 ||
			rep.Held[0].ContactID != held.ID || rep.Held[0].Purpose != "personalization" || !slices.Contains(rep.Held[0].Holds, hold) {
			t.Fatalf("report %+v", rep)
		}

		purposesOf := func(id string) (string, sql.NullInt64) {
			var ps string
			var until sql.NullInt64
			if err := e.db.Read.QueryRowContext(e.ctx, e.db.Rebind(`SELECT purposes, retain_until FROM contacts WHERE id = ?`), id).Scan(&ps, &until); err != nil {
				t.Fatalf("contact %s: %v", id, err)
			}
			return ps, until
		}
		ps, until := purposesOf(mixed.ID)
		want, _ := e.policy.Schedule().RetainUntil(purposes(cases.PurposeNotification), base, nil)
		if ps != `["notification"]` || !until.Valid || until.Int64 != want.UnixMicro() {
			t.Errorf("mixed contact: purposes %s, retain_until %v; want [notification] until %s (90 days, not personalization's year)", ps, until, want)
		}
		if e.exists(only.ID) {
			t.Error("the contact kept only for personalization is still there")
		}
		rec := e.disposition(only.ID, retention.ItemDelete)
		if rec.rule != "consent:personalization" || rec.digest != keyedOf(map[string]any{"author": only.Author, "body": only.Body, "location": "", "device": "", "attachments": []string{"abc"}}) {
			t.Errorf("deletion record %+v", rec)
		}
		if !slices.Contains(e.blobs.keys(), blob) || e.count(`SELECT COUNT(*) FROM attachments WHERE contact_id = ?`, only.ID) != 0 {
			t.Error("the deleted contact's attachment (row or blob) is left")
		}
		for _, c := range []cases.Contact{plain, held, elsewhere} {
			if ps, _ := purposesOf(c.ID); ps != jsonText(c.Purposes) {
				t.Errorf("contact %s purposes %s, want %s untouched", c.ID, ps, jsonText(c.Purposes))
			}
		}
		if n := e.count(`SELECT COUNT(*) FROM audit_events WHERE action = ? AND target_id = ?`, retention.AuditConsentPurpose, mixed.ID) +
			e.count(`SELECT COUNT(*) FROM audit_pending WHERE action = ? AND target_id = ?`, retention.AuditConsentPurpose, mixed.ID); n != 1 {
			t.Errorf("%d audit events of the dropped purpose, want 1", n)
		}

		again, err := e.consents.Apply(e.ctx, cust, cases.Actor{Name: "agent", Role: "agent"})
		if err != nil || len(again.PurposeDropped) != 0 || len(again.Deleted) != 0 || len(again.Held) != 1 {
			t.Fatalf("applied again: %+v, %v", again, err)
		}

		// Given again, nothing is dropped.
		if _, err := e.store.UpdateCustomer(e.ctx, other, func(c *cases.Customer) error { c.Consents.Personalization = true; return nil },
			cases.Change{Action: "customer.update", TargetType: "customer", TargetID: other}); err != nil {
			t.Fatal(err)
		}
		if rep, err := e.consents.Apply(e.ctx, other, cases.Actor{}); err != nil || len(rep.PurposeDropped)+len(rep.Deleted) != 0 {
			t.Fatalf("with consent given: %+v, %v", rep, err)
		}
		if !e.exists(elsewhere.ID) {
			t.Error("a consenting customer's contact was deleted")
		}
	})
}

// TestProfileDeletionDigestIsOfClearText: the customer_profile rule's
// record of a deleted profile digests its clear name, e-mail and phone,
// as an erasure's does (destroyedCustomer), not their sealed forms.
func TestProfileDeletionDigestIsOfClearText(t *testing.T) {
	forEachSealed(t, func(t *testing.T, e *sealedEnv) {
		c := cases.Customer{ID: cases.NewID(), Name: "Han Meimei", Email: "han@example.com", Phone: "+86 10 5555 0000", CreatedAt: base, UpdatedAt: base}
		if err := e.store.CreateCustomer(e.ctx, c, cases.Change{Action: "customer.create", TargetType: "customer", TargetID: c.ID}); err != nil {
			t.Fatal(err)
		}
		var stored string
		if err := e.db.Read.QueryRowContext(e.ctx, e.db.Rebind(`SELECT name FROM customers WHERE id = ?`), c.ID).Scan(&stored); err != nil || !sqlstore.IsSealed(stored) {
			t.Fatalf("name stored %q (%v): not sealed", stored, err)
		}
		if rep := e.sweep(e.clock.Now(), false); rep.ProfilesDeleted != 1 {
			t.Fatalf("profiles deleted %d, want 1", rep.ProfilesDeleted)
		}
		var digest string
		if err := e.db.Read.QueryRowContext(e.ctx, e.db.Rebind(`SELECT content_sha256 FROM dispositions WHERE customer_id = ? AND action = ?`), c.ID, retention.ItemDeleteCustomer).Scan(&digest); err != nil {
			t.Fatal(err)
		}
		if want := keyedOf(map[string]any{"name": c.Name, "email": c.Email, "phone": c.Phone, "external_ref": ""}); digest != want {
			t.Fatalf("digest %s, want the keyed digest of the clear profile %s", digest, want)
		}
	})
}

// TestErasureAndWithdrawalLeaveNoBlobVersion: on local disk and on a
// versioned, object-lock S3 bucket (versitygw), erasing a customer purges
// every version of every blob of theirs, as does deleting a contact kept
// only for a withdrawn consent; each record says its blobs were verified
// gone; another customer's blob stays.
func TestErasureAndWithdrawalLeaveNoBlobVersion(t *testing.T) {
	for _, bb := range blobBackends() {
		t.Run(bb.name, func(t *testing.T) {
			forEachSealed(t, func(t *testing.T, e *sealedEnv) {
				store, versions := bb.open(t)
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
				erased, withdrawn, kept := e.customer(), e.customer(), e.customer()
				var erasedKeys []string
				for range 2 {
					cs := e.newCase(erased)
					for range 2 {
						_, k := withBlob(cs, cases.PurposeCustomerService)
						erasedKeys = append(erasedKeys, k)
					}
				}
				only, onlyKey := withBlob(e.newCase(withdrawn), cases.PurposePersonalization)
				_, keptKey := withBlob(e.newCase(kept), cases.PurposeCustomerService)
				for _, k := range append(erasedKeys, onlyKey, keptKey) {
					if bb.name != "local" && len(versions(k)) != 2 {
						t.Fatalf("%s: %d versions stored, want 2", k, len(versions(k)))
					}
				}

				er := retention.NewEraser(e.db, retention.EraserOptions{Holds: e.holds, Keys: e.keys, Fields: e.fields, OnChange: auditHook(e.db.Dialect),
					Blobs: store, DigestKey: testDigestKey})
				res, err := er.Erase(e.ctx, retention.EraseRequest{CustomerID: erased, Reason: "Art. 17", Force: true}, cases.Actor{Name: "dpo", Role: "admin"})
				if err != nil || res.Blobs != len(erasedKeys) {
					t.Fatalf("erase: %+v, %v", res, err)
				}
				cons := retention.NewConsents(e.db, retention.ConsentOptions{Holds: e.holds, OnChange: auditHook(e.db.Dialect), DigestKey: testDigestKey,
					Fields: e.fields, Policy: e.policy, Blobs: store})
				if rep, err := cons.Apply(e.ctx, withdrawn, cases.Actor{Name: "agent"}); err != nil || rep.Deleted["personalization"] != 1 {
					t.Fatalf("withdrawal: %+v, %v", rep, err)
				}

				for _, k := range append(erasedKeys, onlyKey) {
					if vs := versions(k); len(vs) != 0 {
						t.Errorf("%d versions of %s are still stored", len(vs), k)
					}
				}
				if vs := versions(keptKey); len(vs) == 0 {
					t.Fatal("another customer's blob was removed")
				}
				if n := e.count(`SELECT COUNT(*) FROM dispositions WHERE customer_id = ? AND blob_keys IS NOT NULL AND blobs_gone_at IS NULL`, erased); n != 0 {
					t.Errorf("%d erasure records not verified gone", n)
				}
				if d := e.disposition(only.ID, retention.ItemDelete); !d.goneAt.Valid || !strings.Contains(d.blobKeys.String, onlyKey) {
					t.Errorf("withdrawal record blobs %q gone at %v", d.blobKeys.String, d.goneAt)
				}
			})
		})
	}
}
