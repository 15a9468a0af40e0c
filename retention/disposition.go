package retention

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// disposition is the record of one act of destruction: what went (as a
// digest only), why, when, and in which run.
type disposition struct {
	id         string // set by dispose
	runID      string // "" for a manual deletion
	contactID  string // "" when the act is the case's
	caseID     string
	customerID string
	purposes   []cases.Purpose
	rule       string
	action     string // an Item action: ItemDelete, ItemRedact, ...
	detail     string // the category of a redaction
	at         time.Time
	digest     string // what was destroyed, by destroyedContact, destroyedCase or destroyedValue
}

// contactDisposition is the disposition of one act on a contact as read
// in the act's transaction.
func contactDisposition(contactID string, lc liveContact, action, rule string, at time.Time, digest string) disposition {
	return disposition{contactID: contactID, caseID: lc.CaseID, customerID: lc.CustomerID, purposes: lc.Purposes,
		rule: rule, action: action, at: at, digest: digest}
}

// caseDisposition is the disposition of deleting a case.
func caseDisposition(caseID, customerID, rule string, at time.Time, subject string) disposition {
	return disposition{caseID: caseID, customerID: customerID, purposes: []cases.Purpose{},
		rule: rule, action: ItemDeleteCase, at: at, digest: destroyedCase(subject)}
}

// The digests below are the SHA-256 of what a disposition destroys, so
// that a later dispute can be settled by someone holding a copy, without
// the record itself keeping anything readable. Whoever destroys a thing
// (a sweep, a manual deletion) must use the same function for it, or the
// same content would leave different digests.

// destroyedContact digests a deleted or anonymized contact: its free text,
// location, device and its attachments' SHA-256 sums (in attachment order).
func destroyedContact(lc liveContact, atts []attRef) string {
	sums := make([]string, 0, len(atts))
	for _, a := range atts {
		sums = append(sums, a.sha)
	}
	return digest(map[string]any{"author": lc.Author, "body": lc.Body, "location": lc.Location.String, "device": lc.Device.String, "attachments": sums})
}

// destroyedCase digests a deleted case.
func destroyedCase(subject string) string { return digest(map[string]any{"subject": subject}) }

// destroyedValue digests a redacted column's value.
func destroyedValue(val string) string { return digest(val) }

func digest(v any) string {
	b, _ := json.Marshal(v) // maps, strings and slices of strings: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// batchWork collects what a transaction must write once its acts are
// decided: disposition rows, outbox rows, audit changes, and the blobs to
// remove after commit.
type batchWork struct {
	cases   []string // outbox rows
	disps   []disposition
	changes []cases.Change
	blobs   []string
}

func (w *batchWork) touch(caseID string) {
	if !slices.Contains(w.cases, caseID) {
		w.cases = append(w.cases, caseID)
	}
}

// dispose queues d, its audit change (auditAction by actor) and its
// case's outbox row.
func (w *batchWork) dispose(d disposition, actor cases.Actor, auditAction string) {
	d.id = cases.NewID()
	w.disps = append(w.disps, d)

	target, targetType := d.contactID, "contact"
	if d.action == ItemDeleteCase {
		target, targetType = d.caseID, "case"
	}
	detail := map[string]any{"case_id": d.caseID, "rule": d.rule, "disposition_id": d.id, "run_id": d.runID}
	if d.detail != "" {
		detail["category"] = d.detail
	}
	w.changes = append(w.changes, cases.Change{Actor: actor, Action: auditAction, TargetType: targetType, TargetID: target, Detail: detail})

	w.touch(d.caseID)
}

// commit writes what w collected into tx: the disposition rows, the outbox
// rows, then the audit events through audit — last, because appending
// takes the chain head lock, held until commit.
func (w *batchWork) commit(ctx context.Context, db *sqldb.DB, tx *sql.Tx, audit func(ctx context.Context, tx *sql.Tx, chs []cases.Change) error) error {
	if err := insertDispositions(ctx, db, tx, w.disps); err != nil {
		return err
	}

	if err := sqlstore.Enqueue(ctx, db, tx, w.cases...); err != nil {
		return err
	}

	if err := audit(ctx, tx, w.changes); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

func insertDispositions(ctx context.Context, db *sqldb.DB, tx *sql.Tx, ds []disposition) error {
	const perStmt, cols = 500, 11
	for start := 0; start < len(ds); start += perStmt {
		chunk := ds[start:min(len(ds), start+perStmt)]
		args := make([]any, 0, len(chunk)*cols)
		for _, d := range chunk {
			args = append(args, d.id, d.runID, d.contactID, d.caseID, d.customerID, sqldb.JSONText(d.purposes),
				d.rule, d.action, d.detail, sqldb.Micros(d.at), d.digest)
		}

		q := `INSERT INTO dispositions (id, run_id, contact_id, case_id, customer_id, purposes, rule, action, detail, at, content_sha256) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?,?,?,?),", len(chunk)), ",")
		if _, err := tx.ExecContext(ctx, db.Rebind(q), args...); err != nil {
			return sqldb.Fail("disposition", err)
		}
	}
	return nil
}
