package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// What retention reads of the contacts table goes through here. Every
// function reads through q, the caller's transaction or the read pool, so
// that a caller deciding in a transaction decides on what it then changes.
// Queries are rebound here; arguments ids are never empty in the SQL (IN ()
// is an error on PostgreSQL), an empty list reads nothing.

// ContactKey is what identifies a contact for retention: its ids and its
// capture time (which hold scopes and redaction cut-offs compare).
type ContactKey struct {
	ID, CaseID, CustomerID string
	OccurredAt             time.Time
}

// DueContact is a sweep candidate: the contact and the value of the keyset
// column it was selected on (retain_until or occurred_at, in micros).
type DueContact struct {
	ContactKey
	Key int64
}

// keysetPage is a keyset-ordered sweep selection. Its query's placeholders
// are, in order: bound, key, key, id, limit.
func keysetPage(ctx context.Context, db *sqldb.DB, q sqldb.Querier, query string, bound, afterKey int64, afterID string, limit int) ([]DueContact, error) {
	return sqldb.Collect(ctx, q, db.Rebind(query), []any{bound, afterKey, afterKey, afterID, limit},
		func(rows *sql.Rows) (DueContact, error) {
			var c DueContact
			var occurred int64
			err := rows.Scan(&c.ID, &c.CaseID, &c.CustomerID, &occurred, &c.Key)
			c.OccurredAt = sqldb.FromMicros(occurred)
			return c, err
		})
}

// ExpiringContacts selects up to limit contacts whose retain_until is at or
// before bound, after (afterKey, afterID) in (retain_until, id) order. It
// is one range scan of the index contacts_retain_due, which the sweep's
// batches depend on (TestExpiringContactsUseTheIndex).
func ExpiringContacts(ctx context.Context, db *sqldb.DB, q sqldb.Querier, bound, afterKey int64, afterID string, limit int) ([]DueContact, error) {
	return keysetPage(ctx, db, q, expiringQuery, bound, afterKey, afterID, limit)
}

const expiringQuery = `SELECT id, case_id, customer_id, occurred_at, retain_until FROM contacts
		WHERE retain_until IS NOT NULL AND retain_until <= ? AND (retain_until > ? OR (retain_until = ? AND id > ?))
		ORDER BY retain_until, id LIMIT ?`

// redactableColumns are the category columns a redaction may null, each
// with its partial index (contacts_<column>_due) on (occurred_at, id).
var redactableColumns = map[string]bool{"location": true, "device": true}

// RedactableContacts selects up to limit contacts whose column (location or
// device) is set and which were captured at or before bound, after
// (afterKey, afterID) in (occurred_at, id) order; Key is occurred_at.
func RedactableContacts(ctx context.Context, db *sqldb.DB, q sqldb.Querier, column string, bound, afterKey int64, afterID string, limit int) ([]DueContact, error) {
	if !redactableColumns[column] {
		return nil, fmt.Errorf("redactable contacts: unknown column %q", column)
	}
	return keysetPage(ctx, db, q, `SELECT id, case_id, customer_id, occurred_at, occurred_at FROM contacts
		WHERE `+column+` IS NOT NULL AND occurred_at <= ? AND (occurred_at > ? OR (occurred_at = ? AND id > ?))
		ORDER BY occurred_at, id LIMIT ?`, bound, afterKey, afterID, limit)
}

// ContactScope selects contacts as a legal hold's scope does: any of the
// cases, any of the customers (an empty list does not restrict), captured
// in [From, To).
type ContactScope struct {
	CaseIDs, CustomerIDs []string
	From, To             *time.Time
}

// where returns the scope's conditions, in dialect d, on the columns
// named by prefix ("" or "a.") and on occurred, and their arguments.
func (s ContactScope) where(d sqldb.Dialect, prefix, occurred string) ([]string, []any) {
	var conds []string
	var args []any
	for _, in := range []struct {
		col string
		ids []string
	}{{"case_id", s.CaseIDs}, {"customer_id", s.CustomerIDs}} {
		if len(in.ids) > 0 {
			cond, a := sqldb.AnyOf(d, prefix+in.col, in.ids)
			conds, args = append(conds, cond), append(args, a...)
		}
	}
	if s.From != nil {
		conds, args = append(conds, occurred+" >= ?"), append(args, sqldb.Micros(*s.From))
	}
	if s.To != nil {
		conds, args = append(conds, occurred+" < ?"), append(args, sqldb.Micros(*s.To))
	}
	return conds, args
}

// ContactsInScope reads up to limit contacts of the scope after the id
// afterID, in id order: one page of a walk over the scope.
func ContactsInScope(ctx context.Context, db *sqldb.DB, q sqldb.Querier, s ContactScope, afterID string, limit int) ([]ContactKey, error) {
	conds, args := s.where(db.Dialect, "", "occurred_at")
	query := `SELECT id, case_id, customer_id, occurred_at FROM contacts WHERE ` + strings.Join(append([]string{"id > ?"}, conds...), " AND ") + ` ORDER BY id LIMIT ?`
	args = append(append([]any{afterID}, args...), limit)
	return sqldb.Collect(ctx, q, db.Rebind(query), args, scanContactKey)
}

func scanContactKey(rows *sql.Rows) (ContactKey, error) {
	var c ContactKey
	var occurred int64
	err := rows.Scan(&c.ID, &c.CaseID, &c.CustomerID, &occurred)
	c.OccurredAt = sqldb.FromMicros(occurred)
	return c, err
}

// ScopedAttachment is a stored blob with the contact it is attached to (its
// case and customer as the attachment records them).
type ScopedAttachment struct {
	BlobKey string
	Contact ContactKey
}

// AttachmentsInScope reads the attachments of the scope's contacts (case
// and customer as the attachment records them), in attachment id order.
func AttachmentsInScope(ctx context.Context, db *sqldb.DB, q sqldb.Querier, s ContactScope) ([]ScopedAttachment, error) {
	query := `SELECT a.blob_key, a.contact_id, a.case_id, a.customer_id, c.occurred_at
		FROM attachments a JOIN contacts c ON c.id = a.contact_id`
	conds, args := s.where(db.Dialect, "a.", "c.occurred_at")
	if len(conds) > 0 {
		query += " WHERE " + strings.Join(conds, " AND ")
	}
	return sqldb.Collect(ctx, q, db.Rebind(query+" ORDER BY a.id"), args, func(rows *sql.Rows) (ScopedAttachment, error) {
		var a ScopedAttachment
		var occurred int64
		err := rows.Scan(&a.BlobKey, &a.Contact.ID, &a.Contact.CaseID, &a.Contact.CustomerID, &occurred)
		a.Contact.OccurredAt = sqldb.FromMicros(occurred)
		return a, err
	})
}

// ContactTimes reads when each of the contacts ids was captured; ids no
// longer in the table are absent from the map.
func ContactTimes(ctx context.Context, db *sqldb.DB, q sqldb.Querier, ids []string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	if len(ids) == 0 {
		return out, nil
	}
	type occ struct {
		id string
		at int64
	}
	cond, args := sqldb.AnyOf(db.Dialect, "id", ids)
	rows, err := sqldb.Collect(ctx, q, db.Rebind(`SELECT id, occurred_at FROM contacts WHERE `+cond), args,
		func(rows *sql.Rows) (occ, error) {
			var o occ
			return o, rows.Scan(&o.id, &o.at)
		})
	for _, o := range rows {
		out[o.id] = sqldb.FromMicros(o.at)
	}
	return out, err
}

// CaseContactTimes reads the ids and capture times of a case's contacts
// (in no particular order), as keys of that case and customerID.
func CaseContactTimes(ctx context.Context, db *sqldb.DB, q sqldb.Querier, caseID, customerID string) ([]ContactKey, error) {
	return sqldb.Collect(ctx, q, db.Rebind(`SELECT id, occurred_at FROM contacts WHERE case_id = ?`), []any{caseID},
		func(rows *sql.Rows) (ContactKey, error) {
			c := ContactKey{CaseID: caseID, CustomerID: customerID}
			var at int64
			err := rows.Scan(&c.ID, &at)
			c.OccurredAt = sqldb.FromMicros(at)
			return c, err
		})
}

// CaseContactIDs reads the ids of a case's contacts in id order.
func CaseContactIDs(ctx context.Context, db *sqldb.DB, q sqldb.Querier, caseID string) ([]string, error) {
	return sqldb.Collect(ctx, q, db.Rebind(`SELECT id FROM contacts WHERE case_id = ? ORDER BY id`), []any{caseID},
		func(rows *sql.Rows) (string, error) {
			var id string
			return id, rows.Scan(&id)
		})
}

// CountCaseContacts counts the contacts of each of the cases; a case without
// contacts is absent from the map.
func CountCaseContacts(ctx context.Context, db *sqldb.DB, q sqldb.Querier, caseIDs []string) (map[string]int, error) {
	out := map[string]int{}
	if len(caseIDs) == 0 {
		return out, nil
	}
	type count struct {
		id string
		n  int
	}
	cond, args := sqldb.AnyOf(db.Dialect, "case_id", caseIDs)
	counts, err := sqldb.Collect(ctx, q, db.Rebind(`SELECT case_id, COUNT(*) FROM contacts WHERE `+cond+` GROUP BY case_id`),
		args, func(rows *sql.Rows) (count, error) {
			var c count
			return c, rows.Scan(&c.id, &c.n)
		})
	for _, c := range counts {
		out[c.id] = c.n
	}
	return out, err
}

// ContactCase is a contact id with its case's.
type ContactCase struct{ ID, CaseID string }

// ContactsAfter reads up to n contacts after the id after, in id order: one
// page of a walk over the whole table.
func ContactsAfter(ctx context.Context, db *sqldb.DB, q sqldb.Querier, after string, n int) ([]ContactCase, error) {
	return sqldb.Collect(ctx, q, db.Rebind(`SELECT id, case_id FROM contacts WHERE id > ? ORDER BY id LIMIT ?`), []any{after, n},
		func(rows *sql.Rows) (ContactCase, error) {
			var r ContactCase
			return r, rows.Scan(&r.ID, &r.CaseID)
		})
}

// ContactDue is a contact id with its stored retention date.
type ContactDue struct {
	ID          string
	RetainUntil time.Time
}

// ContactsDueBy reads which of the contacts ids have a stored retention date
// at or before now, in id order.
func ContactsDueBy(ctx context.Context, db *sqldb.DB, q sqldb.Querier, now time.Time, ids []string) ([]ContactDue, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cond, args := sqldb.AnyOf(db.Dialect, "id", ids)
	return sqldb.Collect(ctx, q, db.Rebind(`SELECT id, retain_until FROM contacts WHERE retain_until <= ? AND `+cond+` ORDER BY id`),
		append([]any{sqldb.Micros(now)}, args...), func(rows *sql.Rows) (ContactDue, error) {
			var d ContactDue
			var until int64
			err := rows.Scan(&d.ID, &until)
			d.RetainUntil = sqldb.FromMicros(until)
			return d, err
		})
}

// ContactKeyOf reads one contact's key (retention records a new contact's
// hold coverage from it in the contact's write transaction).
func ContactKeyOf(ctx context.Context, db *sqldb.DB, q sqldb.Querier, id string) (ContactKey, error) {
	rows, err := sqldb.Collect(ctx, q, db.Rebind(`SELECT id, case_id, customer_id, occurred_at FROM contacts WHERE id = ?`), []any{id}, scanContactKey)
	if err != nil {
		return ContactKey{}, err
	}
	if len(rows) == 0 {
		return ContactKey{}, fmt.Errorf("contact %s: %w", id, sql.ErrNoRows)
	}
	return rows[0], nil
}

// CustomerContactsHolding reads up to limit contacts of the customer's
// cases, after the id after in id order, whose column ("location" or
// "device") still holds a value: what withdrawing a consent redacts. The
// customer's contacts are found through its cases (cases_customer, then
// contacts_case), as an anonymized contact has left them.
func CustomerContactsHolding(ctx context.Context, db *sqldb.DB, q sqldb.Querier, customerID, column, after string, limit int) ([]ContactKey, error) {
	switch column {
	case "location", "device":
	default:
		return nil, fmt.Errorf("%w: %q", ErrNotRedactable, column)
	}
	return sqldb.Collect(ctx, q, db.Rebind(`SELECT c.id, c.case_id, c.customer_id, c.occurred_at FROM contacts c JOIN cases k ON k.id = c.case_id
		WHERE k.customer_id = ? AND c.`+column+` IS NOT NULL AND c.id > ? ORDER BY c.id LIMIT ?`), []any{customerID, after, limit}, scanContactKey)
}

// CustomerContactsWithPurpose reads up to limit contacts of the customer's
// cases, after the id after in id order, captured for purpose (not
// anonymized): what withdrawing the consent that purpose rests on acts on.
// Found through the customer's cases as CustomerContactsHolding; the
// purposes column is JSON text, matched on the quoted name.
func CustomerContactsWithPurpose(ctx context.Context, db *sqldb.DB, q sqldb.Querier, customerID string, purpose cases.Purpose, after string, limit int) ([]ContactKey, error) {
	return sqldb.Collect(ctx, q, db.Rebind(`SELECT c.id, c.case_id, c.customer_id, c.occurred_at FROM contacts c JOIN cases k ON k.id = c.case_id
		WHERE k.customer_id = ? AND c.anonymized_at IS NULL AND c.purposes LIKE ? AND c.id > ? ORDER BY c.id LIMIT ?`),
		[]any{customerID, `%"` + string(purpose) + `"%`, after, limit}, scanContactKey)
}
