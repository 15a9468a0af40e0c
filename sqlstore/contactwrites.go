package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/google/uuid"
)

// The writes other packages make to the contacts and cases tables when they
// destroy data (a retention sweep, a backup restore replaying tombstones)
// go through here, so that what "anonymized" or "redacted" clears is
// written down once, in the tables' owner. Each runs in the caller's
// transaction and returns how many rows it changed.

// AnonymizeContacts makes contacts ids identify nobody. It blanks the
// personal columns (author, body, location, device), drops the retention
// date, replaces the customer by AnonymousCustomer(at) (one pseudonym per
// anonymizing run, holding no personal data), moves the contact out of its
// case into the run's statistics case for its channel (AnonymousCase,
// owned by the pseudonym, created here if need be), coarsens the capture
// and creation times to the first instant of their month (UTC), and stamps
// anonymized_at with at. What is left (channel, direction, purposes,
// categories, the month) serves statistics; nothing left leads to the
// person's customer or case: the person's case no longer lists the
// contact, and the outbox rows that named it for the index become plain
// re-indexes of that case. The search index leaves anonymized contacts out
// (LoadCaseDocs), so the outbox row the caller appends for the case drops
// them from every search. The same at gives the same pseudonym and cases,
// so replaying a disposition on a restore lands where the sweep did.
func AnonymizeContacts(ctx context.Context, db *sqldb.DB, tx *sql.Tx, at time.Time, ids []string) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	type row struct {
		id, channel       string
		occurred, created int64
	}
	cond, args := sqldb.AnyOf(db.Dialect, "id", ids)
	rs, err := sqldb.Collect(ctx, tx, db.Rebind(`SELECT id, channel, occurred_at, created_at FROM contacts WHERE `+cond), args,
		func(rows *sql.Rows) (row, error) {
			var r row
			return r, rows.Scan(&r.id, &r.channel, &r.occurred, &r.created)
		})
	if err != nil {
		return 0, err
	}

	n, err := sqldb.ExecIn(ctx, db, tx, `UPDATE contacts SET author = '', body = '', location = NULL, device = NULL, retain_until = NULL, anonymized_at = ?, customer_id = ? WHERE `, "id",
		ids, sqldb.Micros(at), AnonymousCustomer(at))
	if err != nil {
		return 0, err
	}

	// The outbox is the change feed: its rows keep their positions, but
	// one naming the contact would still tie it to the person's case.
	if _, err := sqldb.ExecIn(ctx, db, tx, `UPDATE outbox SET contact_id = NULL WHERE `, "contact_id", ids); err != nil {
		return 0, fmt.Errorf("outbox rows of anonymized contacts: %w", err)
	}

	made := map[string]bool{}
	for _, r := range rs {
		statsCase := AnonymousCase(at, r.channel)
		if !made[statsCase] {
			if err := ensureAnonymousCase(ctx, db, tx, at, r.channel); err != nil {
				return 0, err
			}
			made[statsCase] = true
		}
		occurred, created := monthOf(sqldb.FromMicros(r.occurred)), monthOf(sqldb.FromMicros(r.created))
		if _, err := db.Exec(ctx, tx, `UPDATE contacts SET case_id = ?, occurred_at = ?, created_at = ? WHERE id = ?`, statsCase, sqldb.Micros(occurred), sqldb.Micros(created), r.id); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// anonymousCaseSpace is the UUID namespace of the statistics cases: their
// ids must be UUIDs like every case id (the case list's cursor is one).
const anonymousCaseSpace = "4f1c2a6e-0d7b-4c53-9a0e-6b2f3c9d8e71"

// AnonymousCase is the id of the statistics case holding the contacts of
// channel anonymized at at: derived from both, so a run (and a restore
// replaying it) always finds the same case, and it names no person.
func AnonymousCase(at time.Time, channel string) string {
	return uuid.NewSHA1(uuid.MustParse(anonymousCaseSpace), []byte(AnonymousCustomer(at)+"/"+channel)).String()
}

// ensureAnonymousCase creates, unless it exists, the pseudonymous customer
// of at and its statistics case for channel: no subject, tags or assignee,
// closed, created at the run's month.
func ensureAnonymousCase(ctx context.Context, db *sqldb.DB, tx *sql.Tx, at time.Time, channel string) error {
	id, customer, month := AnonymousCase(at, channel), AnonymousCustomer(at), sqldb.Micros(monthOf(at))

	if _, err := db.Exec(ctx, tx, `INSERT INTO customers (id, name, created_at, updated_at) VALUES (?, '', ?, ?) ON CONFLICT (id) DO NOTHING`, customer, month, month); err != nil {
		return fmt.Errorf("pseudonymous customer: %w", err)
	}

	var found int
	err := tx.QueryRowContext(ctx, db.Rebind(`SELECT COUNT(*) FROM cases WHERE id = ?`), id).Scan(&found)
	if err != nil || found > 0 {
		return err
	}
	number, err := nextCaseNumber(ctx, db, tx)
	if err != nil {
		return fmt.Errorf("statistics case: %w", err)
	}
	_, err = db.Exec(ctx, tx, `INSERT INTO cases (`+caseCols+`) VALUES (?,?,?,'',?,?,?,'[]','',?,?,?)`,
		id, number, customer, cases.StatusClosed, cases.PriorityNormal, channel, month, month, month)
	if err != nil {
		return fmt.Errorf("statistics case: %w", err)
	}
	return nil
}

// AnonymousCustomer is the pseudonym that replaces the customer of the
// contacts anonymized at at: the same for all the contacts of one run, so
// it links them to no person and to each other only by the run.
func AnonymousCustomer(at time.Time) string {
	return "anonymized-" + at.UTC().Format("20060102T150405.000000Z")
}

// monthOf is the first instant of t's month, UTC.
func monthOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// DeleteContacts deletes contacts ids.
func DeleteContacts(ctx context.Context, db *sqldb.DB, tx *sql.Tx, ids []string) (int64, error) {
	return sqldb.ExecIn(ctx, db, tx, `DELETE FROM contacts WHERE `, "id", ids)
}

// ErrNotRedactable means a redaction names a category the contacts table
// has no column for (a newer casevault wrote it?).
var ErrNotRedactable = errors.New("no such redactable contact field")

// RedactContacts clears category ("location" or "device") on contacts ids
// that still hold it.
func RedactContacts(ctx context.Context, db *sqldb.DB, tx *sql.Tx, category string, ids []string) (int64, error) {
	switch category {
	case "location", "device":
	default:
		return 0, fmt.Errorf("%w: %q", ErrNotRedactable, category)
	}
	return sqldb.ExecIn(ctx, db, tx, `UPDATE contacts SET `+category+` = NULL WHERE `+category+` IS NOT NULL AND `, "id", ids)
}

// SetRetainUntil stores a contact's retention date as the schedule now
// decides it (nil: kept without a date).
func SetRetainUntil(ctx context.Context, db *sqldb.DB, tx *sql.Tx, id string, until *time.Time) error {
	if _, err := db.Exec(ctx, tx, `UPDATE contacts SET retain_until = ? WHERE id = ?`, sqldb.NullMicros(until), id); err != nil {
		return fmt.Errorf("retain_until of contact %s: %w", id, err)
	}
	return nil
}

// DeleteCase deletes case id with its contacts (its attachments are the
// caller's to remove first).
func DeleteCase(ctx context.Context, db *sqldb.DB, tx *sql.Tx, id string) (int64, error) {
	// The history holds the case's earlier subjects and tags: it goes too.
	for _, q := range []string{`DELETE FROM contacts WHERE case_id = ?`, `DELETE FROM case_history WHERE case_id = ?`} {
		if _, err := tx.ExecContext(ctx, db.Rebind(q), id); err != nil {
			return 0, fmt.Errorf("delete case %s: %w", id, err)
		}
	}
	return sqldb.ExecIn(ctx, db, tx, `DELETE FROM cases WHERE `, "id", []string{id})
}

// ContactOwner returns the case and customer of contact id, read from the
// pool; a missing contact is cases.ErrNotFound.
func ContactOwner(ctx context.Context, db *sqldb.DB, id string) (caseID, customerID string, err error) {
	err = db.Read.QueryRowContext(ctx, db.Rebind(`SELECT case_id, customer_id FROM contacts WHERE id = ?`), id).Scan(&caseID, &customerID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", fmt.Errorf("contact %q: %w", id, cases.ErrNotFound)
	}
	if err != nil {
		return "", "", sqldb.Fail("contact "+id, err)
	}
	return caseID, customerID, nil
}

// DeleteCustomerProfile deletes customer id's profile if no case of it is
// left (a case restored or created meanwhile keeps it); it returns how
// many rows went (0 or 1).
func DeleteCustomerProfile(ctx context.Context, db *sqldb.DB, tx *sql.Tx, id string) (int64, error) {
	res, err := tx.ExecContext(ctx, db.Rebind(`DELETE FROM customers WHERE id = ? AND NOT EXISTS (SELECT 1 FROM cases WHERE customer_id = ?)`), id, id)
	if err != nil {
		return 0, fmt.Errorf("delete customer %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil || n == 0 {
		return n, err
	}
	// the customer's document leaves the index (customerfeed.go)
	if err := EnqueueCustomers(ctx, db, tx, id); err != nil {
		return 0, fmt.Errorf("delete customer %s: %w", id, err)
	}
	return n, nil
}

// SetPurposes replaces a contact's purposes and its retention date (a
// withdrawn consent drops the purpose that rested on it; the date is the
// schedule's for the purposes left).
func SetPurposes(ctx context.Context, db *sqldb.DB, tx *sql.Tx, id string, purposes []cases.Purpose, until *time.Time) error {
	if _, err := db.Exec(ctx, tx, `UPDATE contacts SET purposes = ?, retain_until = ? WHERE id = ?`, sqldb.JSONText(purposes), sqldb.NullMicros(until), id); err != nil {
		return fmt.Errorf("purposes of contact %s: %w", id, err)
	}
	return nil
}
