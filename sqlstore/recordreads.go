package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// What an e-discovery export reads of the store's tables goes through here:
// rows as stored, JSON columns as their text, so that a package carries
// them byte for byte (personal fields sealed: Fields.OpenContacts and its
// siblings open them). Every function reads through q (the export's
// read-only snapshot transaction) in chunks of ids (sqldb.CollectIn).

// ContactRecord is a contact row as stored.
type ContactRecord struct {
	ID, CaseID, CustomerID string
	Channel, Direction     string
	Author, Body           string
	OccurredAt, CreatedAt  time.Time
	Purposes, Categories   string // JSON text
	Location, Device       sql.NullString
	Anonymized             bool
	RetainUntil            *time.Time
	Corrects               string // "" unless the contact is a correction
}

const contactRecordQuery = `SELECT id, case_id, customer_id, channel, direction, author, body, occurred_at, created_at, purposes, categories, location, device, anonymized_at, retain_until, corrects FROM contacts WHERE %s`

func scanContactRecord(rows *sql.Rows) (ContactRecord, error) {
	var c ContactRecord
	var occurred, created int64
	var anon, until sql.NullInt64
	var corrects sql.NullString
	err := rows.Scan(&c.ID, &c.CaseID, &c.CustomerID, &c.Channel, &c.Direction, &c.Author, &c.Body, &occurred, &created, &c.Purposes, &c.Categories, &c.Location, &c.Device, &anon, &until, &corrects)
	c.OccurredAt, c.CreatedAt, c.Anonymized = sqldb.FromMicros(occurred), sqldb.FromMicros(created), anon.Valid
	c.RetainUntil, c.Corrects = sqldb.TimePtr(until), corrects.String
	return c, err
}

// ContactRecordsOfCases reads every contact of the cases, in no particular
// order.
func ContactRecordsOfCases(ctx context.Context, db *sqldb.DB, q sqldb.Querier, caseIDs []string) ([]ContactRecord, error) {
	return sqldb.CollectIn(ctx, db, q, contactRecordQuery, "case_id", caseIDs, scanContactRecord)
}

// ContactRecords reads the contacts ids still stored, in no particular
// order.
func ContactRecords(ctx context.Context, db *sqldb.DB, q sqldb.Querier, ids []string) ([]ContactRecord, error) {
	return sqldb.CollectIn(ctx, db, q, contactRecordQuery, "id", ids, scanContactRecord)
}

// CaseRecord is a case row as stored.
type CaseRecord struct {
	ID                        string
	Number                    int64
	CustomerID, Subject       string
	Status, Priority, Channel string
	Tags                      string // JSON text
	Assignee                  string
	CreatedAt, UpdatedAt      time.Time
	ClosedAt                  *time.Time
}

// CaseRecords reads the cases ids still stored, in no particular order.
func CaseRecords(ctx context.Context, db *sqldb.DB, q sqldb.Querier, ids []string) ([]CaseRecord, error) {
	return sqldb.CollectIn(ctx, db, q, `SELECT `+caseCols+` FROM cases WHERE %s`, "id", ids,
		func(rows *sql.Rows) (CaseRecord, error) {
			var c CaseRecord
			var created, updated int64
			var closed sql.NullInt64
			err := rows.Scan(&c.ID, &c.Number, &c.CustomerID, &c.Subject, &c.Status, &c.Priority, &c.Channel, &c.Tags, &c.Assignee, &created, &updated, &closed)
			c.CreatedAt, c.UpdatedAt, c.ClosedAt = sqldb.FromMicros(created), sqldb.FromMicros(updated), sqldb.TimePtr(closed)
			return c, err
		})
}

// CustomerRecords reads the customers ids still stored, in no particular
// order.
func CustomerRecords(ctx context.Context, db *sqldb.DB, q sqldb.Querier, ids []string) ([]cases.Customer, error) {
	return sqldb.CollectIn(ctx, db, q, `SELECT `+customerCols+` FROM customers WHERE %s`, "id", ids,
		func(rows *sql.Rows) (cases.Customer, error) { return scanCustomer(nil, rows) })
}

// CustomerCaseIDs reads the ids of a customer's cases, oldest first.
func CustomerCaseIDs(ctx context.Context, db *sqldb.DB, q sqldb.Querier, customerID string) ([]string, error) {
	return sqldb.Collect(ctx, q, db.Rebind(`SELECT id FROM cases WHERE customer_id = ? ORDER BY id`), []any{customerID},
		func(rows *sql.Rows) (string, error) {
			var id string
			return id, rows.Scan(&id)
		})
}

// CaselessCustomer is a customer profile with no case left.
type CaselessCustomer struct {
	ID        string
	UpdatedAt time.Time
}

// CustomersWithoutCases reads up to limit customers after the id after,
// in id order, that have no case and were last updated at or before
// updatedBy: the candidates of the customer_profile rule.
func CustomersWithoutCases(ctx context.Context, db *sqldb.DB, q sqldb.Querier, updatedBy time.Time, after string, limit int) ([]CaselessCustomer, error) {
	return sqldb.Collect(ctx, q, db.Rebind(`SELECT u.id, u.updated_at FROM customers u
		WHERE u.id > ? AND u.updated_at <= ? AND NOT EXISTS (SELECT 1 FROM cases k WHERE k.customer_id = u.id)
		ORDER BY u.id LIMIT ?`), []any{after, sqldb.Micros(updatedBy), limit},
		func(rows *sql.Rows) (CaselessCustomer, error) {
			var c CaselessCustomer
			var at int64
			err := rows.Scan(&c.ID, &at)
			c.UpdatedAt = sqldb.FromMicros(at)
			return c, err
		})
}
