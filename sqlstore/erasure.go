package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// What erasing a customer (retention.Eraser) reads and deletes of the
// store's tables goes through here. Everything runs in the erasure's
// transaction; the customer's rows are found through cases_customer and
// then the per-case and per-contact indexes (contacts and attachments have
// no customer index, and the customer_id they carry is not authoritative
// for anonymized contacts, which moved to a statistics customer).

// ErasedCase is a case of the customer being erased.
type ErasedCase struct {
	ID      string
	Subject string // opened
	Open    bool   // not closed
}

// ErasedAttachment is an attachment of the customer being erased.
type ErasedAttachment struct {
	ID, ContactID, CaseID, SHA256, BlobKey string
}

// ErasureSet is everything of one customer an erasure destroys.
type ErasureSet struct {
	Customer    cases.Customer // personal fields opened
	Cases       []ErasedCase
	Contacts    []ContactKey
	Attachments []ErasedAttachment
}

// ReadErasure reads, in tx, what erasing customerID destroys, the rows
// locked on PostgreSQL; with a nil f, personal fields as stored. An unknown customer is cases.ErrNotFound. Only the
// customer's name, e-mail, phone and case subjects are opened (their
// digests go into the disposition records); contacts are read without
// content: ten thousand of them must not cost ten thousand decryptions.
func ReadErasure(ctx context.Context, db *sqldb.DB, tx *sql.Tx, f *Fields, customerID string) (ErasureSet, error) {
	var set ErasureSet
	forUpdate := ""
	if db.Dialect == sqldb.Postgres {
		forUpdate = " FOR UPDATE"
	}

	var o *opener // nil Fields: the rows as stored (a restore's replay)
	if f != nil {
		o = f.opener(ctx)
	}
	c, err := scanCustomer(o, tx.QueryRowContext(ctx, db.Rebind(`SELECT `+customerCols+` FROM customers WHERE id = ?`+forUpdate), customerID))
	if errors.Is(err, sql.ErrNoRows) {
		return set, fmt.Errorf("customer %s: %w", customerID, cases.ErrNotFound)
	}
	if err != nil {
		return set, sqldb.Fail("read customer", err)
	}
	set.Customer = c

	set.Cases, err = sqldb.Collect(ctx, tx, db.Rebind(`SELECT id, customer_id, subject, closed_at FROM cases WHERE customer_id = ? ORDER BY id`+forUpdate), []any{customerID},
		func(rows *sql.Rows) (ErasedCase, error) {
			var k ErasedCase
			var owner string
			var closed sql.NullInt64
			if err := rows.Scan(&k.ID, &owner, &k.Subject, &closed); err != nil {
				return k, err
			}
			k.Open = !closed.Valid
			subject, err := o.open(owner, "cases", "subject", k.ID, k.Subject)
			k.Subject = subject
			return k, err
		})
	if err != nil {
		return set, sqldb.Fail("read cases", err)
	}

	set.Contacts, err = sqldb.Collect(ctx, tx, db.Rebind(`SELECT c.id, c.case_id, c.customer_id, c.occurred_at FROM contacts c JOIN cases k ON k.id = c.case_id WHERE k.customer_id = ? ORDER BY c.id`), []any{customerID},
		scanContactKey)
	if err != nil {
		return set, sqldb.Fail("read contacts", err)
	}

	set.Attachments, err = sqldb.Collect(ctx, tx, db.Rebind(`SELECT a.id, a.contact_id, c.case_id, a.sha256, a.blob_key FROM attachments a
		JOIN contacts c ON c.id = a.contact_id JOIN cases k ON k.id = c.case_id WHERE k.customer_id = ? ORDER BY a.id`), []any{customerID},
		func(rows *sql.Rows) (ErasedAttachment, error) {
			var a ErasedAttachment
			return a, rows.Scan(&a.ID, &a.ContactID, &a.CaseID, &a.SHA256, &a.BlobKey)
		})
	if err != nil {
		return set, sqldb.Fail("read attachments", err)
	}
	return set, nil
}

// DeleteCustomer deletes, in tx, the customer's attachments rows,
// contacts, case histories, cases and profile (blobs are the caller's to
// remove after commit).
func DeleteCustomer(ctx context.Context, db *sqldb.DB, tx *sql.Tx, customerID string) error {
	const ofCases = `(SELECT id FROM cases WHERE customer_id = ?)`
	for _, q := range []string{
		`DELETE FROM attachments WHERE contact_id IN (SELECT c.id FROM contacts c WHERE c.case_id IN ` + ofCases + `)`,
		`DELETE FROM contacts WHERE case_id IN ` + ofCases,
		`DELETE FROM case_history WHERE case_id IN ` + ofCases,
		`DELETE FROM cases WHERE customer_id = ?`,
		`DELETE FROM customers WHERE id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, db.Rebind(q), customerID); err != nil {
			return sqldb.Fail("erase customer", err)
		}
	}
	// the customer's document leaves the index (customerfeed.go)
	if err := EnqueueCustomers(ctx, db, tx, customerID); err != nil {
		return sqldb.Fail("erase customer", err)
	}
	return nil
}

// ErasedAt returns when the customer was erased (their data key
// destroyed), or nil. The customer_keys table is archive's (the keyring);
// the store reads it only to answer 410 for an erased customer, as it
// cannot import archive (archive imports the store).
func ErasedAt(ctx context.Context, db *sqldb.DB, q sqldb.Querier, customerID string) (*time.Time, error) {
	rows, err := sqldb.Collect(ctx, q, db.Rebind(`SELECT destroyed_at FROM customer_keys WHERE customer_id = ? AND destroyed_at IS NOT NULL`), []any{customerID},
		func(rows *sql.Rows) (int64, error) {
			var at int64
			return at, rows.Scan(&at)
		})
	if err != nil {
		return nil, sqldb.Fail("customer key", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	at := sqldb.FromMicros(rows[0])
	return &at, nil
}
