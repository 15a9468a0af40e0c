package sqlstore

import (
	"context"
	"database/sql"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/sqldb"
)

// Customer entries of the change feed (issue 16 §2, search/customers.go):
// the search index keeps a document per named customer, with or without a
// case, because names are sealed here and searched there. Every write that
// creates a customer, changes a name, or deletes a customer appends an
// outbox row naming the customer (customer_id, migration 0034) with an
// empty case_id, in the write's transaction.

var _ search.CustomerSource = (*Store)(nil)

// EnqueueCustomers tells the indexer, in the caller's transaction, that
// these customers' names changed or that they are gone: it reloads each
// one and writes or deletes their document. The store owns the outbox
// table; other packages write it only through here.
func EnqueueCustomers(ctx context.Context, db *sqldb.DB, tx *sql.Tx, customerIDs ...string) error {
	return enqueueIDs(ctx, db, tx, `INSERT INTO outbox (case_id, customer_id, created_at) VALUES `, "('', ?, ?)", customerIDs)
}

// LoadCustomerDocs implements search.CustomerSource: the customers' names,
// opened; a customer without a row (erased, deleted) is absent.
func (s *Store) LoadCustomerDocs(ctx context.Context, ids []string) (map[string]search.CustomerDoc, error) {
	o := s.fields.opener(ctx)
	custs, err := sqldb.CollectIn(ctx, s.db, s.db.Read, `SELECT `+customerCols+` FROM customers WHERE %s`, "id", ids,
		func(rows *sql.Rows) (cases.Customer, error) { return scanCustomer(o, rows) })
	if err != nil {
		return nil, s.fail("load customers", err)
	}
	out := make(map[string]search.CustomerDoc, len(custs))
	for _, c := range custs {
		out[c.ID] = search.CustomerDoc{CustomerID: c.ID, Name: c.Name}
	}
	return out, nil
}

// ListCustomerIDs implements search.CustomerSource.
func (s *Store) ListCustomerIDs(ctx context.Context, after string, limit int) ([]string, error) {
	out, err := sqldb.Collect(ctx, s.db.Read, s.q(`SELECT id FROM customers WHERE id > ? ORDER BY id LIMIT ?`), []any{after, limit},
		func(rows *sql.Rows) (string, error) {
			var id string
			return id, rows.Scan(&id)
		})
	if err != nil {
		return nil, s.fail("customer ids", err)
	}
	return out, nil
}
