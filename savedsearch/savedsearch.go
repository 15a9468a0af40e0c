// Package savedsearch keeps the searches agents save by name (issue 16 §2):
// a query and its filters, per owner (the token that saved it). It owns the
// saved_searches table. What a valid query and filter is stays the search
// package's rule; the API checks a search with it before saving.
package savedsearch

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// MaxPerOwner bounds how many searches one owner keeps: a list meant for a
// menu, not a store of arbitrary data.
const MaxPerOwner = 200

// Search is one saved search.
type Search struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Q    string `json:"q"`
	// Filters are GET /search parameters (status, tag, from, …) to values.
	Filters   map[string][]string `json:"filters"`
	CreatedAt time.Time           `json:"created_at"`
}

// Store reads and writes saved searches.
type Store struct{ db *sqldb.DB }

// New returns the store over db.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

// Hook runs in a write's transaction (the audit event).
type Hook func(ctx context.Context, tx *sql.Tx, s Search) error

// Create saves a search for owner. The name must be new for the owner
// (cases.ErrConflict otherwise); name and query are validated here for
// shape only (the caller has checked the query and filters with package
// search).
func (st *Store) Create(ctx context.Context, owner string, in Search, hook Hook) (Search, error) {
	in.Name = strings.TrimSpace(in.Name)
	if n := utf8.RuneCountInString(in.Name); n == 0 || n > 100 {
		return Search{}, cases.Invalid("name", "must be 1 to 100 characters")
	}
	if in.Filters == nil {
		in.Filters = map[string][]string{}
	}
	filters, err := json.Marshal(in.Filters)
	if err != nil {
		return Search{}, fmt.Errorf("saved search filters: %w", err)
	}

	in.ID = cases.NewID()
	in.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
	err = st.db.InTx(ctx, func(tx *sql.Tx) error {
		var taken, count int
		if err := tx.QueryRowContext(ctx, st.db.Rebind(`SELECT COUNT(*), COALESCE(SUM(CASE WHEN name = ? THEN 1 ELSE 0 END), 0) FROM saved_searches WHERE owner = ?`),
			in.Name, owner).Scan(&count, &taken); err != nil {
			return fmt.Errorf("count saved searches: %w", err)
		}
		if taken > 0 {
			return fmt.Errorf("a saved search named %q exists: %w", in.Name, cases.ErrConflict)
		}
		if count >= MaxPerOwner {
			return cases.Invalid("name", fmt.Sprintf("at most %d saved searches per token; delete one first", MaxPerOwner))
		}
		if _, err := tx.ExecContext(ctx, st.db.Rebind(`INSERT INTO saved_searches (id, owner, name, q, filters, created_at) VALUES (?,?,?,?,?,?)`),
			in.ID, owner, in.Name, in.Q, string(filters), sqldb.Micros(in.CreatedAt)); err != nil {
			return fmt.Errorf("insert saved search: %w", err)
		}
		if hook != nil {
			return hook(ctx, tx, in)
		}
		return nil
	})
	if err != nil {
		return Search{}, fail("save search", err)
	}
	return in, nil
}

// List returns owner's saved searches by name.
func (st *Store) List(ctx context.Context, owner string) ([]Search, error) {
	rows, err := st.db.Read.QueryContext(ctx, st.db.Rebind(`SELECT id, name, q, filters, created_at FROM saved_searches WHERE owner = ? ORDER BY name, id`), owner)
	if err != nil {
		return nil, sqldb.Fail("list saved searches", err)
	}
	defer rows.Close()

	out := []Search{}
	for rows.Next() {
		var s Search
		var filters string
		var created int64
		if err := rows.Scan(&s.ID, &s.Name, &s.Q, &filters, &created); err != nil {
			return nil, sqldb.Fail("list saved searches", err)
		}
		if err := json.Unmarshal([]byte(filters), &s.Filters); err != nil {
			return nil, fmt.Errorf("saved search %s filters: %w: %w", s.ID, sqldb.ErrBadRow, err)
		}
		s.CreatedAt = sqldb.FromMicros(created)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, sqldb.Fail("list saved searches", err)
	}
	return out, nil
}

// Delete removes one of owner's saved searches; another owner's search is
// cases.ErrNotFound, as if it did not exist.
func (st *Store) Delete(ctx context.Context, owner, id string, hook Hook) error {
	err := st.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, st.db.Rebind(`DELETE FROM saved_searches WHERE id = ? AND owner = ?`), id, owner)
		if err != nil {
			return fmt.Errorf("delete saved search: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("delete saved search: %w", err)
		} else if n == 0 {
			return fmt.Errorf("saved search %s: %w", id, cases.ErrNotFound)
		}
		if hook != nil {
			return hook(ctx, tx, Search{ID: id})
		}
		return nil
	})
	return fail("delete saved search", err)
}

// fail passes the domain's answers (409, 404, 422) through and marks the
// rest as the database's failures.
func fail(what string, err error) error {
	var invalid *cases.ValidationError
	if errors.Is(err, cases.ErrConflict) || errors.Is(err, cases.ErrNotFound) || errors.As(err, &invalid) {
		return err
	}
	return sqldb.Fail(what, err)
}
