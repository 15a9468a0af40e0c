package retention

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// What each consent gates among the data already stored (issue 15 §3).
// Only location consent conditions a stored field: ingest keeps a contact's
// location only while the customer consents (cases.Service.AddContact), so
// withdrawing it redacts the locations stored before. Marketing and
// personalization consents condition no stored field: casevault keeps no
// column collected under them, and a contact's purposes are the record of
// why it was captured, which a later withdrawal does not rewrite. Their
// withdrawal is recorded by the customer's update event and redacts
// nothing (ConsentReport says so: no category).
var consentGates = []struct {
	consent  string
	given    func(cases.Consents) bool
	category cases.Category
}{
	{"location", func(c cases.Consents) bool { return c.Location }, cases.CategoryLocation},
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
	return &Consents{db: db, opts: opts}
}

// ConsentReport is what applying a customer's consents did.
type ConsentReport struct {
	// Redacted counts the contacts redacted per category.
	Redacted map[string]int `json:"redacted"`
	// Held lists the contacts a legal hold kept unredacted: their value
	// stays until the hold ends; applying the consents again then redacts
	// it (the PATCH is idempotent).
	Held []HeldRedaction `json:"held"`
}

// HeldRedaction is a redaction a hold stopped.
type HeldRedaction struct {
	ContactID string   `json:"contact_id"`
	CaseID    string   `json:"case_id"`
	Category  string   `json:"category"`
	Holds     []string `json:"holds"`
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
	rep := ConsentReport{Redacted: map[string]int{}, Held: []HeldRedaction{}}
	for _, g := range consentGates {
		after := ""
		for {
			n, next, err := c.batch(ctx, customerID, g.consent, g.given, g.category, after, actor, &rep)
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

// batch redacts up to BatchSize contacts after the id after; it returns
// how many it looked at and the last id.
func (c *Consents) batch(ctx context.Context, customerID, consent string, given func(cases.Consents) bool, category cases.Category,
	after string, actor cases.Actor, rep *ConsentReport) (int, string, error) {
	col := categoryColumns[category]
	var w batchWork
	var held []HeldRedaction
	var seen int
	last := after
	now := c.opts.Now().UTC()
	err := c.db.InTx(ctx, func(tx *sql.Tx) error {
		w, held, seen, last = batchWork{key: c.opts.DigestKey}, nil, 0, after
		// The retention state's lock: a hold placed meanwhile waits for
		// this batch (the same order as a sweep or a deletion).
		if _, err := lockState(ctx, c.db, tx); err != nil {
			return err
		}
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

		keys, err := sqlstore.CustomerContactsHolding(ctx, c.db, tx, customerID, col.name, after, c.opts.BatchSize)
		if err != nil {
			return sqldb.Fail("read contacts", err)
		}
		seen = len(keys)
		if seen == 0 {
			return nil
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
		return w.commit(ctx, c.db, tx, func(ctx context.Context, tx *sql.Tx, chs []cases.Change) error {
			return each(ctx, tx, c.opts.OnChange, chs)
		})
	})
	if err != nil {
		return 0, "", err
	}

	if len(w.disps) > 0 {
		rep.Redacted[string(category)] += len(w.disps)
		c.opts.Notify()
	}
	rep.Held = append(rep.Held, held...)
	return seen, last, nil
}
