package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// StoredContact is a contact row as retention acts on it or explains it: the columns as
// stored (location and device as their JSON text, which a disposition
// digests byte for byte), its stored retention date, whether it was
// anonymized, and its case's closing time (which moves case_closed clocks).
type StoredContact struct {
	ID, CaseID, CustomerID string
	Channel                string // read by ReadStoredContacts only
	Author, Body           string
	OccurredAt             time.Time
	Purposes               []cases.Purpose
	Categories             []cases.Category // read by ReadContact and ReadCaseContacts only
	Location, Device       sql.NullString
	RetainUntil            *time.Time
	Anonymized             bool
	CaseClosedAt           *time.Time
}

// ReadStoredContacts reads the contacts ids (in no particular order)
// through q: the caller's transaction, so that what it decides on is what
// it then changes, or the read pool. The contacts table is this package's;
// other packages read its rows through here rather than with a column list
// of their own.
func ReadStoredContacts(ctx context.Context, db *sqldb.DB, q sqldb.Querier, ids []string) ([]StoredContact, error) {
	if len(ids) == 0 {
		return nil, nil // nothing to read (AnyOf needs a value)
	}

	cond, args := sqldb.AnyOf(db.Dialect, "c.id", ids)
	query := `SELECT c.id, c.case_id, c.customer_id, c.channel, c.author, c.body, c.occurred_at, c.purposes, c.location, c.device, c.retain_until, c.anonymized_at, k.closed_at
		FROM contacts c JOIN cases k ON k.id = c.case_id WHERE ` + cond
	return sqldb.Collect(ctx, q, db.Rebind(query), args, func(rows *sql.Rows) (StoredContact, error) {
		var c StoredContact
		var ps string
		var occurred int64
		var until, anon, closed sql.NullInt64
		if err := rows.Scan(&c.ID, &c.CaseID, &c.CustomerID, &c.Channel, &c.Author, &c.Body, &occurred, &ps, &c.Location, &c.Device, &until, &anon, &closed); err != nil {
			return c, err
		}
		c.OccurredAt, c.RetainUntil = sqldb.FromMicros(occurred), sqldb.TimePtr(until)
		c.Anonymized, c.CaseClosedAt = anon.Valid, sqldb.TimePtr(closed)

		if err := json.Unmarshal([]byte(ps), &c.Purposes); err != nil {
			return c, fmt.Errorf("contact %s purposes: %w: %w", c.ID, sqldb.ErrBadRow, err)
		}
		return c, nil
	})
}

// explainedCols are what explaining a contact's retention needs: no
// content, the categories it was captured with.
const explainedCols = `c.id, c.case_id, c.customer_id, c.occurred_at, c.purposes, c.categories, c.location, c.device, c.retain_until, c.anonymized_at, k.closed_at
	FROM contacts c JOIN cases k ON k.id = c.case_id`

// ReadContact reads contact id with its categories and without its content
// (Author and Body are empty); an unknown id gives sql.ErrNoRows.
func ReadContact(ctx context.Context, db *sqldb.DB, q sqldb.Querier, id string) (StoredContact, error) {
	cs, err := sqldb.Collect(ctx, q, db.Rebind(`SELECT `+explainedCols+` WHERE c.id = ?`), []any{id}, scanExplained)
	if err != nil {
		return StoredContact{}, err
	}
	if len(cs) == 0 {
		return StoredContact{}, fmt.Errorf("contact %s: %w", id, sql.ErrNoRows)
	}
	return cs[0], nil
}

// ReadCaseContacts reads the contacts of a case as ReadContact does, in
// (occurred_at, id) order.
func ReadCaseContacts(ctx context.Context, db *sqldb.DB, q sqldb.Querier, caseID string) ([]StoredContact, error) {
	return sqldb.Collect(ctx, q, db.Rebind(`SELECT `+explainedCols+` WHERE c.case_id = ? ORDER BY c.occurred_at, c.id`), []any{caseID}, scanExplained)
}

// scanExplained scans a row of explainedCols; an empty purposes or
// categories text reads as an empty list.
func scanExplained(rows *sql.Rows) (StoredContact, error) {
	var c StoredContact
	var occurred int64
	var ps, cs string
	var until, anon, closed sql.NullInt64
	if err := rows.Scan(&c.ID, &c.CaseID, &c.CustomerID, &occurred, &ps, &cs, &c.Location, &c.Device, &until, &anon, &closed); err != nil {
		return c, err
	}
	c.OccurredAt, c.RetainUntil = sqldb.FromMicros(occurred), sqldb.TimePtr(until)
	c.Anonymized, c.CaseClosedAt = anon.Valid, sqldb.TimePtr(closed)

	if err := jsonList(ps, &c.Purposes); err != nil {
		return c, fmt.Errorf("contact %s purposes: %w", c.ID, err)
	}
	if err := jsonList(cs, &c.Categories); err != nil {
		return c, fmt.Errorf("contact %s categories: %w", c.ID, err)
	}
	return c, nil
}

// jsonList decodes a JSON list column; empty text is an empty list.
func jsonList[T any](s string, dst *[]T) error {
	if s == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(s), dst); err != nil {
		return fmt.Errorf("%w: %w", sqldb.ErrBadRow, err)
	}
	return nil
}
