package retention

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// What each consent gates among the data already stored (issue 15 §3).
//
//   - location gates a category with a field of its own: ingest keeps a
//     contact's location only while the customer consents
//     (cases.Service.AddContact), and withdrawing it redacts the locations
//     stored before (a disposition record each, action redact).
//   - personalization gates a purpose: a contact captured for
//     "personalization" rests, for that purpose, on the consent. Withdrawing
//     it drops the purpose from the customer's contacts and recomputes their
//     retain_until from the purposes left (the schedule in force, read in the
//     batch's transaction), audited per contact (customer.consent_purpose;
//     nothing is destroyed, so no disposition record); a contact whose only
//     purpose it was has no other basis and is deleted, attachments too,
//     with a disposition record (action delete, rule
//     consent:personalization, a keyed digest of its clear text), as a
//     sweep deletes.
//   - marketing gates nothing stored: no purpose or category of a contact
//     is collected under it (cases.Purposes, cases.Categories). Its
//     withdrawal is recorded by the customer's update event, and by an
//     ItemConsentWithdraw record like the other two (for restores).
//
// The other purposes (customer_service, security, legal_obligation, ...)
// and categories rest on contract, legal obligation or legitimate
// interest, not on one of the customer's consents; "consented" names no
// consent the customer record holds, so it is gated by none of these.
var consentGates = []struct {
	consent  string
	given    func(cases.Consents) bool
	category cases.Category // a field redacted on withdrawal, or ""
	purpose  cases.Purpose  // a purpose dropped on withdrawal, or ""
}{
	{"location", func(c cases.Consents) bool { return c.Location }, cases.CategoryLocation, ""},
	{"personalization", func(c cases.Consents) bool { return c.Personalization }, "", cases.PurposePersonalization},
	// Gates nothing stored, but its withdrawal is recorded too, so that a
	// restore does not bring back an old marketing=true.
	{"marketing", func(c cases.Consents) bool { return c.Marketing }, "", ""},
}

// AuditConsentPurpose is the audit action of a purpose dropped from a
// contact by a withdrawal.
const AuditConsentPurpose = "customer.consent_purpose"

// AuditConsentDelete is the audit action of a contact deleted by a
// withdrawal (the withdrawn consent's purpose was its only one).
const AuditConsentDelete = "customer.consent_delete"

// Disposition actions of a withdrawal besides redact and delete, so that a
// restore of a backup older than the withdrawal replays it
// (archive/backup/replay.go knows both):
//
//   - ItemConsentWithdraw: one record per customer and withdrawal (no
//     contact; detail names the consent). Replay sets the restored
//     customer's consent false: the old backup's consent=true must not
//     come back and gate new data in again.
//   - ItemDropPurpose: one record per contact that lost a purpose (detail:
//     JSON {"purpose", "retain_until"}, the date the withdrawal recomputed,
//     in micros or null). Per contact rather than per customer so that a
//     replay touches exactly the contacts the withdrawal touched: a
//     contact a hold kept, or captured later, keeps its purpose.
//
// Neither holds personal data: ids, a consent or purpose name, a date.
const (
	ItemConsentWithdraw = "consent_withdraw"
	ItemDropPurpose     = "drop_purpose"
)

// DropPurposeDetail is the detail of an ItemDropPurpose record.
type DropPurposeDetail struct {
	Purpose     string `json:"purpose"`
	RetainUntil *int64 `json:"retain_until"` // micros since the epoch, or null
}

// ConsentRule is the rule a consent withdrawal's dispositions record.
func ConsentRule(consent string) string { return "consent:" + consent }

// AuditConsentRedact is the audit action of one redaction by a withdrawal.
const AuditConsentRedact = "customer.consent_redact"

// ConsentOptions wires a Consents.
type ConsentOptions struct {
	// Holds keeps what an active hold covers (nil: no check; tests only).
	Holds *Holds
	// OnChange writes the audit event of each redaction, in its transaction.
	OnChange cases.TxHook
	// DigestKey keys the digests of what was redacted, as the sweeper's.
	DigestKey []byte
	// Fields opens what is digested (nil: digested as stored; tests).
	Fields *sqlstore.Fields
	// Policy gives the schedule in force, from which a contact's
	// retain_until is recomputed when a purpose is dropped (nil: the
	// stored schedule read through a policy of its own).
	Policy *Policy
	// Blobs removes the blobs of attachments of contacts deleted by a
	// withdrawal, after commit (nil: left to the reconciler).
	Blobs BlobRemover
	// Notify wakes the indexer after a batch appended outbox rows.
	Notify func()
	// Now is the clock of the disposition records (default: time.Now).
	Now func() time.Time
	// BatchSize bounds the contacts redacted per transaction (default 500).
	BatchSize int
}

// Consents applies a customer's withdrawn consents to what is stored.
type Consents struct {
	db   *sqldb.DB
	opts ConsentOptions
}

// NewConsents builds a Consents.
func NewConsents(db *sqldb.DB, opts ConsentOptions) *Consents {
	if opts.Notify == nil {
		opts.Notify = func() {}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Policy == nil {
		opts.Policy = NewPolicy(DefaultSchedule())
		opts.Policy.bind(db)
	}
	return &Consents{db: db, opts: opts}
}

// ConsentReport is what applying a customer's consents did.
type ConsentReport struct {
	// Redacted counts the contacts redacted per category.
	Redacted map[string]int `json:"redacted"`
	// PurposeDropped counts, per purpose, the contacts that kept other
	// purposes and lost that one (their retain_until recomputed).
	PurposeDropped map[string]int `json:"purpose_dropped"`
	// Deleted counts, per purpose, the contacts deleted because it was
	// their only purpose.
	Deleted map[string]int `json:"deleted"`
	// Held lists the contacts a legal hold kept unredacted: their value
	// stays until the hold ends; applying the consents again then redacts
	// it (the PATCH is idempotent).
	Held []HeldRedaction `json:"held"`
}

// HeldRedaction is a redaction a hold stopped.
type HeldRedaction struct {
	ContactID string `json:"contact_id"`
	CaseID    string `json:"case_id"`
	// Category is the category kept, or "" for a purpose gate.
	Category string `json:"category"`
	// Purpose is the purpose kept, or "" for a category gate.
	Purpose string   `json:"purpose,omitempty"`
	Holds   []string `json:"holds"`
}

// Apply redacts, from every contact of the customer's cases, the stored
// categories whose consent the customer does not give now (read in each
// batch's transaction, so a consent given again meanwhile stops it). Each
// batch of contacts is one transaction: disposition records (rule
// "consent:<name>", action redact, so a restore replays them), the
// redaction, an outbox row per case (re-indexed) and an audit event per
// contact; a contact an active hold covers is left as it is and reported.
// Applying twice redacts nothing more. An unknown customer is
// cases.ErrNotFound.
func (c *Consents) Apply(ctx context.Context, customerID string, actor cases.Actor) (ConsentReport, error) {
	rep := ConsentReport{Redacted: map[string]int{}, PurposeDropped: map[string]int{}, Deleted: map[string]int{}, Held: []HeldRedaction{}}
	for _, g := range consentGates {
		after := ""
		for {
			var n int
			var next string
			var err error
			if g.purpose == "" && g.category == "" {
				if err := c.recordOnly(ctx, customerID, g.consent, g.given); err != nil {
					return rep, err
				}
				break
			}
			if g.purpose != "" {
				n, next, err = c.purposeBatch(ctx, customerID, g.consent, g.given, g.purpose, after, actor, &rep)
			} else {
				n, next, err = c.batch(ctx, customerID, g.consent, g.given, g.category, after, actor, &rep)
			}
			if err != nil {
				return rep, err
			}
			if n < c.opts.BatchSize {
				break
			}
			after = next
		}
	}
	return rep, nil
}

// recordWithdrawal adds to w the customer's ItemConsentWithdraw record of
// consent, unless one was written since the customer record last changed
// (applying the same withdrawal again writes none; a consent given and
// withdrawn again, which changes the record, gets a new one).
func (c *Consents) recordWithdrawal(ctx context.Context, tx *sql.Tx, cust cases.Customer, consent string, now time.Time, w *batchWork) error {
	rule := ConsentRule(consent)
	var n int
	if err := tx.QueryRowContext(ctx, c.db.Rebind(`SELECT COUNT(*) FROM dispositions WHERE customer_id = ? AND at >= ? AND action = ? AND rule = ?`),
		cust.ID, sqldb.Micros(cust.UpdatedAt), ItemConsentWithdraw, rule).Scan(&n); err != nil {
		return sqldb.Fail("read withdrawals", err)
	}
	if n > 0 {
		return nil
	}
	w.disps = append(w.disps, disposition{id: cases.NewID(), customerID: cust.ID, purposes: []cases.Purpose{}, rule: rule,
		action: ItemConsentWithdraw, detail: consent, at: now})
	return nil
}

// recordOnly writes the withdrawal record of a consent that gates nothing
// stored, if the customer does not give it.
func (c *Consents) recordOnly(ctx context.Context, customerID, consent string, given func(cases.Consents) bool) error {
	return c.db.InTx(ctx, func(tx *sql.Tx) error {
		custs, err := sqlstore.CustomerRecords(ctx, c.db, tx, []string{customerID})
		if err != nil {
			return sqldb.Fail("read customer", err)
		}
		if len(custs) == 0 {
			return fmt.Errorf("customer %s: %w", customerID, cases.ErrNotFound)
		}
		if given(custs[0].Consents) {
			return nil
		}
		var w batchWork
		if err := c.recordWithdrawal(ctx, tx, custs[0], consent, c.opts.Now().UTC(), &w); err != nil {
			return err
		}
		return insertDispositions(ctx, c.db, tx, w.disps)
	})
}

// batch redacts up to BatchSize contacts after the id after; it returns
// how many it looked at and the last id.
func (c *Consents) batch(ctx context.Context, customerID, consent string, given func(cases.Consents) bool, category cases.Category,
	after string, actor cases.Actor, rep *ConsentReport) (int, string, error) {
	col := categoryColumns[category]
	var w batchWork
	var held []HeldRedaction
	var seen, redacted int
	last := after
	now := c.opts.Now().UTC()
	err := c.db.InTx(ctx, func(tx *sql.Tx) error {
		w, held, seen, redacted, last = batchWork{key: c.opts.DigestKey}, nil, 0, 0, after
		withdrawn, err := c.beginWithdrawal(ctx, tx, customerID, consent, given, after, now, &w)
		if err != nil || !withdrawn {
			return err
		}
		commit := func() error { return c.commitBatch(ctx, tx, &w) }

		keys, err := sqlstore.CustomerContactsHolding(ctx, c.db, tx, customerID, col.name, after, c.opts.BatchSize)
		if err != nil {
			return sqldb.Fail("read contacts", err)
		}
		seen = len(keys)
		if seen == 0 {
			return commit()
		}
		last = keys[len(keys)-1].ID
		caseIDs := make([]string, 0, len(keys))
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = k.ID
			caseIDs = append(caseIDs, k.CaseID)
		}
		if err := lockCases(ctx, c.db, tx, caseIDs); err != nil {
			return err
		}
		live, err := readContacts(ctx, c.db, tx, ids, c.opts.Fields)
		if err != nil {
			return err
		}

		var ev *evaluator
		if c.opts.Holds != nil {
			holds, err := c.opts.Holds.active(ctx, tx)
			if err != nil {
				return err
			}
			ev = newEvaluator(c.opts.Holds.matcher, holds).withRecorded(c.db, tx)
		}

		rule := ConsentRule(consent)
		var found []string
		for _, k := range keys {
			lc, ok := live[k.ID]
			val := col.value(lc)
			if !ok || !val.Valid {
				continue
			}
			if ev != nil {
				hs, err := ev.covering(ctx, contactRef(k))
				if err != nil {
					return err
				}
				if len(hs) > 0 {
					held = append(held, HeldRedaction{ContactID: k.ID, CaseID: k.CaseID, Category: string(category), Holds: holdIDs(hs)})
					continue
				}
			}
			d := contactDisposition(k.ID, lc, ItemRedact, rule, now, destroyedValue(val.String))
			d.detail = string(category)
			w.dispose(d, actor, AuditConsentRedact)
			found = append(found, k.ID)
		}
		if _, err := sqlstore.RedactContacts(ctx, c.db, tx, col.name, found); err != nil {
			return sqldb.Fail("redact "+col.name, err)
		}
		redacted = len(found)
		return commit()
	})
	if err != nil {
		return 0, "", err
	}

	if redacted > 0 {
		rep.Redacted[string(category)] += redacted
		c.opts.Notify()
	}
	rep.Held = append(rep.Held, held...)
	return seen, last, nil
}

// purposeBatch drops purpose from up to BatchSize contacts of the customer
// after the id after (deleting those it was the only purpose of); it
// returns how many it looked at and the last id.
func (c *Consents) purposeBatch(ctx context.Context, customerID, consent string, given func(cases.Consents) bool, purpose cases.Purpose,
	after string, actor cases.Actor, rep *ConsentReport) (int, string, error) {
	var w batchWork
	var held []HeldRedaction
	var seen, dropped, deleted int
	last := after
	now := c.opts.Now().UTC()
	err := c.db.InTx(ctx, func(tx *sql.Tx) error {
		w, held, seen, dropped, deleted, last = batchWork{key: c.opts.DigestKey}, nil, 0, 0, 0, after
		withdrawn, err := c.beginWithdrawal(ctx, tx, customerID, consent, given, after, now, &w)
		if err != nil || !withdrawn {
			return err
		}
		commit := func() error { return c.commitBatch(ctx, tx, &w) }

		keys, err := sqlstore.CustomerContactsWithPurpose(ctx, c.db, tx, customerID, purpose, after, c.opts.BatchSize)
		if err != nil {
			return sqldb.Fail("read contacts", err)
		}
		seen = len(keys)
		if seen == 0 {
			return commit()
		}
		last = keys[len(keys)-1].ID
		ids := make([]string, len(keys))
		caseIDs := make([]string, len(keys))
		for i, k := range keys {
			ids[i], caseIDs[i] = k.ID, k.CaseID
		}
		if err := lockCases(ctx, c.db, tx, caseIDs); err != nil {
			return err
		}
		live, err := readContacts(ctx, c.db, tx, ids, c.opts.Fields)
		if err != nil {
			return err
		}
		sc, err := c.opts.Policy.In(ctx, tx)
		if err != nil {
			return err
		}
		var ev *evaluator
		if c.opts.Holds != nil {
			holds, err := c.opts.Holds.active(ctx, tx)
			if err != nil {
				return err
			}
			ev = newEvaluator(c.opts.Holds.matcher, holds).withRecorded(c.db, tx)
		}

		rule := ConsentRule(consent)
		var dels []string
		for _, k := range keys {
			lc, ok := live[k.ID]
			if !ok || lc.Anonymized || !slices.Contains(lc.Purposes, purpose) {
				continue // the LIKE matched a longer name, or gone since
			}
			if ev != nil {
				hs, err := ev.covering(ctx, contactRef(k))
				if err != nil {
					return err
				}
				if len(hs) > 0 {
					held = append(held, HeldRedaction{ContactID: k.ID, CaseID: k.CaseID, Purpose: string(purpose), Holds: holdIDs(hs)})
					continue
				}
			}
			left := slices.DeleteFunc(slices.Clone(lc.Purposes), func(p cases.Purpose) bool { return p == purpose })
			if len(left) == 0 {
				dels = append(dels, k.ID)
				continue
			}
			until, _ := sc.RetainUntil(left, lc.OccurredAt, lc.CaseClosedAt)
			if err := sqlstore.SetPurposes(ctx, c.db, tx, k.ID, left, until); err != nil {
				return sqldb.Fail("drop purpose", err)
			}
			w.changes = append(w.changes, cases.Change{Actor: actor, Action: AuditConsentPurpose, TargetType: "contact", TargetID: k.ID,
				Detail: map[string]any{"case_id": lc.CaseID, "purpose": string(purpose), "rule": rule, "purposes": left, "retain_until": until}})
			// The record a restore replays (ItemDropPurpose); the audit
			// event above is the account of it.
			det := DropPurposeDetail{Purpose: string(purpose)}
			if until != nil {
				m := sqldb.Micros(*until)
				det.RetainUntil = &m
			}
			dj, err := json.Marshal(det)
			if err != nil {
				return fmt.Errorf("drop purpose record: %w", err)
			}
			w.disps = append(w.disps, disposition{id: cases.NewID(), contactID: k.ID, caseID: lc.CaseID, customerID: lc.CustomerID,
				purposes: lc.Purposes, rule: rule, action: ItemDropPurpose, detail: string(dj), at: now})
			w.touch(lc.CaseID)
			dropped++
		}

		if len(dels) > 0 {
			atts, err := attachmentsOf(ctx, c.db, tx, dels)
			if err != nil {
				return err
			}
			for _, id := range dels {
				lc := live[id]
				d := contactDisposition(id, lc, ItemDelete, rule, now, destroyedContact(lc, atts[id]))
				d.blobs = blobKeys(atts[id])
				w.dispose(d, actor, AuditConsentDelete)
			}
			if _, err := sqldb.ExecIn(ctx, c.db, tx, `DELETE FROM attachments WHERE `, "contact_id", dels); err != nil {
				return sqldb.Fail("delete attachments", err)
			}
			if _, err := sqlstore.DeleteContacts(ctx, c.db, tx, dels); err != nil {
				return sqldb.Fail("delete contacts", err)
			}
			deleted = len(dels)
		}
		return commit()
	})
	if err != nil {
		return 0, "", err
	}

	if dropped+deleted > 0 {
		if dropped > 0 {
			rep.PurposeDropped[string(purpose)] += dropped
		}
		if deleted > 0 {
			rep.Deleted[string(purpose)] += deleted
		}
		c.opts.Notify()
	}
	w.purgeBlobs(ctx, c.db, c.opts.Blobs, c.opts.Now().UTC())
	rep.Held = append(rep.Held, held...)
	return seen, last, nil
}

// beginWithdrawal is the start every gate's batch shares: the retention
// state's lock (a hold placed meanwhile waits for this batch, the same
// order as a sweep or a deletion), the customer as stored and, in the first
// batch, the withdrawal's record. False: the consent is given again and
// there is nothing to do.
func (c *Consents) beginWithdrawal(ctx context.Context, tx *sql.Tx, customerID, consent string, given func(cases.Consents) bool,
	after string, now time.Time, w *batchWork) (bool, error) {
	if _, err := lockState(ctx, c.db, tx); err != nil {
		return false, err
	}

	custs, err := sqlstore.CustomerRecords(ctx, c.db, tx, []string{customerID})
	if err != nil {
		return false, sqldb.Fail("read customer", err)
	}
	if len(custs) == 0 {
		return false, fmt.Errorf("customer %s: %w", customerID, cases.ErrNotFound)
	}
	if given(custs[0].Consents) {
		return false, nil
	}

	if after == "" {
		if err := c.recordWithdrawal(ctx, tx, custs[0], consent, now, w); err != nil {
			return false, err
		}
	}
	return true, nil
}

// commitBatch writes a batch's dispositions, audit events and outbox rows.
func (c *Consents) commitBatch(ctx context.Context, tx *sql.Tx, w *batchWork) error {
	return w.commit(ctx, c.db, tx, func(ctx context.Context, tx *sql.Tx, chs []cases.Change) error {
		return each(ctx, tx, c.opts.OnChange, chs)
	})
}
