package retention

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqlstore"
)

// ActionManualDelete is the rule name recorded for deletions asked for
// through the API rather than decided by the schedule.
const ActionManualDelete = "manual"

// DeleteCase removes a case, its contacts and attachments (rows now, blobs
// after commit), leaving a disposition record per contact and for the case,
// an outbox row (the index drops the case) and audit events, all in one
// transaction. Any active hold covering the case or one of its contacts
// refuses the deletion with a *HeldError naming the holds; the check runs
// under the same lock that placing a hold takes, so a hold cannot slip in.
func (s *Sweeper) DeleteCase(ctx context.Context, caseID string, actor cases.Actor) error {
	w := &batchWork{}
	now := time.Now().UTC()
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		*w = batchWork{}
		if _, err := lockState(ctx, s.db, tx); err != nil {
			return err
		}
		if err := lockCases(ctx, s.db, tx, []string{caseID}); err != nil {
			return err
		}
		var customerID, subject string
		err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT customer_id, subject FROM cases WHERE id = ?`), caseID).Scan(&customerID, &subject)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("case %s: %w", caseID, cases.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read case: %w", err)
		}
		rows, err := tx.QueryContext(ctx, s.db.Rebind(`SELECT id FROM contacts WHERE case_id = ? ORDER BY id`), caseID)
		if err != nil {
			return fmt.Errorf("read contacts: %w", err)
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("read contacts: %w", err)
			}
			ids = append(ids, id)
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("read contacts: %w", err)
		}
		live := map[string]liveContact{}
		if len(ids) > 0 { // IN () is an error on PostgreSQL
			if live, err = s.readContacts(ctx, tx, ids); err != nil {
				return err
			}
		}
		// Holds: by case/customer even without contacts, and per contact.
		refs := []ContactRef{{CaseID: caseID, CustomerID: customerID}}
		for _, id := range ids {
			refs = append(refs, ContactRef{ContactID: id, CaseID: caseID, CustomerID: customerID, OccurredAt: live[id].occurred})
		}
		var held []string
		if s.opts.Holds != nil {
			if held, err = s.opts.Holds.HeldBy(ctx, refs); err != nil {
				return err
			}
		}
		if len(held) > 0 {
			return &HeldError{HoldIDs: held}
		}
		atts, err := s.attachmentsOf(ctx, tx, ids)
		if err != nil {
			return err
		}
		for _, id := range ids {
			lc := live[id]
			for _, a := range atts[id] {
				w.blobs = append(w.blobs, a.blobKey)
			}
			s.disposition("", id, lc, ActionManualDelete, ItemDelete, "", now,
				contentHash(map[string]any{"author": lc.author, "body": lc.body, "location": lc.location.String, "device": lc.device.String, "attachments": atts[id]}), w)
		}
		lc := liveContact{caseID: caseID, customerID: customerID, purposes: []cases.Purpose{}}
		s.disposition("", "", lc, ActionManualDelete, ItemDeleteCase, "", now, contentHash(map[string]any{"subject": subject}), w)
		for _, stmt := range []string{`DELETE FROM attachments WHERE case_id = ?`, `DELETE FROM contacts WHERE case_id = ?`, `DELETE FROM cases WHERE id = ?`} {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(stmt), caseID); err != nil {
				return fmt.Errorf("delete case: %w", err)
			}
		}
		if err := s.insertDispositions(ctx, tx, w.disps); err != nil {
			return err
		}
		if err := sqlstore.Enqueue(ctx, s.db, tx, caseID); err != nil {
			return err
		}
		if s.opts.OnChange != nil {
			for _, ch := range w.changes {
				ch.Actor = actor
				ch.Action = strings.Replace(ch.Action, "retention.", "case.", 1)
				if err := s.opts.OnChange(ctx, tx, ch); err != nil {
					return fmt.Errorf("audit: %w", err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.opts.Notify()
	s.removeBlobs(ctx, w.blobs)
	return nil
}
