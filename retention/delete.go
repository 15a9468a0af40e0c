package retention

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// ActionManualDelete is the rule name recorded for deletions asked for
// through the API rather than decided by the schedule.
const ActionManualDelete = "manual"

// Audit actions of a manual deletion: one event per contact, one for the case.
const (
	AuditDeleteContact = "case.delete"
	AuditDeleteCase    = "case.delete_case"
)

// DeleterOptions wires a Deleter.
type DeleterOptions struct {
	// Holds refuses the deletion of anything an active hold covers (nil: no
	// check; only tests run without holds).
	Holds *Holds
	// OnChange writes the audit event of each disposition, in its transaction.
	OnChange cases.TxHook
	// Blobs removes the blobs of deleted attachments (nil: left to the reconciler).
	Blobs BlobRemover
	// DigestKey keys the digests of what the records destroyed, as the
	// sweeper's (the same content must leave the same digest).
	DigestKey []byte
	// Fields opens what is digested (nil: digested as stored; tests).
	Fields *sqlstore.Fields
	// Notify wakes the indexer after a deletion appended its outbox row.
	Notify func()
	// Now is the clock of the disposition records (default: time.Now).
	Now func() time.Time
}

// Deleter deletes a case on request (the API's DELETE /cases/{id}),
// leaving the same disposition records a sweep leaves.
type Deleter struct {
	db   *sqldb.DB
	opts DeleterOptions
}

// NewDeleter builds a Deleter.
func NewDeleter(db *sqldb.DB, opts DeleterOptions) *Deleter {
	if opts.Notify == nil {
		opts.Notify = func() {}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Deleter{db: db, opts: opts}
}

// DeleteCase removes a case, its contacts and attachments (rows now, blobs
// after commit), leaving a disposition record per contact and for the case,
// an outbox row (the index drops the case) and audit events, all in one
// transaction. Any active hold covering the case or one of its contacts
// refuses the deletion with a *HeldError naming the holds; the check runs
// under the same lock that placing a hold takes, so a hold cannot slip in.
func (d *Deleter) DeleteCase(ctx context.Context, caseID string, actor cases.Actor) error {
	var w batchWork
	now := d.opts.Now().UTC()
	err := d.db.InTx(ctx, func(tx *sql.Tx) error {
		w = batchWork{key: d.opts.DigestKey}
		if _, err := lockState(ctx, d.db, tx); err != nil {
			return err
		}
		if err := lockCases(ctx, d.db, tx, []string{caseID}); err != nil {
			return err
		}

		var customerID, subject string
		err := tx.QueryRowContext(ctx, d.db.Rebind(`SELECT customer_id, subject FROM cases WHERE id = ?`), caseID).Scan(&customerID, &subject)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("case %s: %w", caseID, cases.ErrNotFound)
		}
		if err != nil {
			return sqldb.Fail("read case", err)
		}

		ids, live, err := d.contactsOf(ctx, tx, caseID)
		if err != nil {
			return err
		}

		if err := d.checkHolds(ctx, caseID, customerID, ids, live); err != nil {
			return err
		}

		atts, err := attachmentsOf(ctx, d.db, tx, ids)
		if err != nil {
			return err
		}
		for _, id := range ids {
			lc := live[id]
			cd := contactDisposition(id, lc, ItemDelete, ActionManualDelete, now, destroyedContact(lc, atts[id]))
			cd.blobs = blobKeys(atts[id])
			w.dispose(cd, actor, AuditDeleteContact)
		}
		if subject, err = d.opts.Fields.OpenSubject(ctx, customerID, caseID, subject); err != nil {
			return fmt.Errorf("open subject: %w", err)
		}
		w.dispose(caseDisposition(caseID, customerID, ActionManualDelete, now, subject), actor, AuditDeleteCase)

		if _, err := tx.ExecContext(ctx, d.db.Rebind(`DELETE FROM attachments WHERE case_id = ?`), caseID); err != nil {
			return sqldb.Fail("delete case", err)
		}
		if _, err := sqlstore.DeleteCase(ctx, d.db, tx, caseID); err != nil {
			return sqldb.Fail("delete case", err)
		}

		return w.commit(ctx, d.db, tx, func(ctx context.Context, tx *sql.Tx, chs []cases.Change) error {
			return each(ctx, tx, d.opts.OnChange, chs)
		})
	})
	if err != nil {
		return err
	}

	d.opts.Notify()
	w.purgeBlobs(ctx, d.db, d.opts.Blobs, d.opts.Now().UTC())
	return nil
}

// contactsOf reads the case's contacts, ids in order.
func (d *Deleter) contactsOf(ctx context.Context, tx *sql.Tx, caseID string) ([]string, map[string]liveContact, error) {
	ids, err := sqlstore.CaseContactIDs(ctx, d.db, tx, caseID)
	if err != nil {
		return nil, nil, sqldb.Fail("read contacts", err)
	}
	if len(ids) == 0 { // IN () is an error on PostgreSQL
		return nil, map[string]liveContact{}, nil
	}

	live, err := readContacts(ctx, d.db, tx, ids, d.opts.Fields)
	return ids, live, err
}

// checkHolds refuses with a *HeldError when a hold covers the case (by case
// or customer, even without contacts) or one of its contacts.
func (d *Deleter) checkHolds(ctx context.Context, caseID, customerID string, ids []string, live map[string]liveContact) error {
	if d.opts.Holds == nil {
		return nil
	}

	refs := []ContactRef{{CaseID: caseID, CustomerID: customerID}}
	for _, id := range ids {
		refs = append(refs, ContactRef{ContactID: id, CaseID: caseID, CustomerID: customerID, OccurredAt: live[id].OccurredAt})
	}
	held, err := d.opts.Holds.HeldBy(ctx, refs)
	if err != nil {
		return err
	}
	if len(held) > 0 {
		return &HeldError{HoldIDs: held}
	}
	return nil
}
