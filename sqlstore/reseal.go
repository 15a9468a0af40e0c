package sqlstore

import (
	"context"
	"crypto/cipher"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/casevault/casevault/sqldb"
)

// The re-sealing pass (issue 15 §1, legacy rows): rows written before
// sealing existed keep their personal fields in clear (they read as they
// are, fields.go), and customers written before the lookup hashes
// (migration 0020) have none, so an exact lookup misses them. The pass
// walks customers, cases, case_history and contacts by id in batches; in
// each batch's transaction it seals every clear personal field under the
// row's customer's data key and fills the missing e-mail and phone hashes.
//
// Resumable: where it is (table, last id) and its counters are in the one
// row of reseal_state (migration 0029), moved in the batch's transaction,
// so a process killed mid-pass resumes after the last committed batch and
// a batch is never half done. One runner across replicas and the CLI: the
// row carries a lease (owner, lease_until) that every batch renews in its
// transaction and checks first, so a process that lost it stops before it
// writes (the same shape as the change feed's consumer leases).
//
// Idempotent and safe beside live writes: a value already sealed is left
// as it is, and each row is updated with a compare-and-set on the values
// it read, so a row another writer changed meanwhile is left (counted
// skipped; every live write seals anyway). The contents do not change, so
// nothing is enqueued for the index and no updated_at moves.

// Reseal phases, in the order the pass walks them.
const (
	ResealCustomers   = "customers"
	ResealCases       = "cases"
	ResealCaseHistory = "case_history"
	ResealContacts    = "contacts"
	ResealDone        = "done"
)

var resealPhases = []string{ResealCustomers, ResealCases, ResealCaseHistory, ResealContacts, ResealDone}

// ErrResealBusy: another process holds the pass's lease.
var ErrResealBusy = errors.New("the re-sealing pass is run by another process")

// ErrResealNoKeys: the pass needs the keyring and the lookup key (a store
// run without the master key cannot seal).
var ErrResealNoKeys = errors.New("re-sealing needs the master key")

// ResealStatus is where the pass is.
type ResealStatus struct {
	// Phase is the table being walked, "done" when finished, "" when no
	// pass ever started.
	Phase      string     `json:"phase"`
	Scanned    int64      `json:"scanned"`
	Sealed     int64      `json:"sealed"`
	Hashed     int64      `json:"hashed"`
	Skipped    int64      `json:"skipped"`
	Owner      string     `json:"owner,omitempty"`
	LeaseUntil *time.Time `json:"lease_until,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	UpdatedAt  *time.Time `json:"updated_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	after      string
}

// Done reports whether a pass ran to its end.
func (s ResealStatus) Done() bool { return s.Phase == ResealDone }

// ResealOptions configure one run of the pass.
type ResealOptions struct {
	// Owner names this process in the lease (a replica id).
	Owner string
	// Lease is how long a batch's renewal holds the pass (default 30 s).
	Lease time.Duration
	// BatchSize bounds the rows of one transaction (default 500).
	BatchSize int
	// Restart starts a new pass over every table when the last one is
	// done (the CLI: rows restored from an old backup, or written by a
	// tool run without the master key since). Without it a finished pass
	// is left finished.
	Restart bool
	// Progress is called after each committed batch (nil: nothing).
	Progress func(ResealStatus)
	// Pause is waited between batches, so a server's own writes get the
	// database (SQLite has one writer) while the pass runs (default 0).
	Pause time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// AfterBatch runs after each committed batch (tests stop a pass
	// there, as a kill would); an error ends the run with it.
	AfterBatch func(ResealStatus) error
}

const resealCols = `phase, after_id, scanned, sealed, hashed, skipped, owner, lease_until, started_at, updated_at, finished_at`

func scanReseal(row interface{ Scan(...any) error }) (ResealStatus, error) {
	var s ResealStatus
	var owner sql.NullString
	var lease, finished sql.NullInt64
	var started, updated int64
	if err := row.Scan(&s.Phase, &s.after, &s.Scanned, &s.Sealed, &s.Hashed, &s.Skipped, &owner, &lease, &started, &updated, &finished); err != nil {
		return s, err
	}
	s.Owner, s.LeaseUntil, s.FinishedAt = owner.String, sqldb.TimePtr(lease), sqldb.TimePtr(finished)
	st, up := sqldb.FromMicros(started), sqldb.FromMicros(updated)
	s.StartedAt, s.UpdatedAt = &st, &up
	return s, nil
}

// ResealState reads where the pass is (Phase "" when none ever started).
func ResealState(ctx context.Context, db *sqldb.DB) (ResealStatus, error) {
	s, err := scanReseal(db.Read.QueryRowContext(ctx, `SELECT `+resealCols+` FROM reseal_state WHERE id = 1`))
	if errors.Is(err, sql.ErrNoRows) {
		return ResealStatus{}, nil
	}
	if err != nil {
		return s, sqldb.Fail("reseal state", err)
	}
	return s, nil
}

// Reseal runs the pass from where it stands to its end (or until ctx ends,
// or the lease is lost). A finished pass returns at once unless
// opts.Restart. Another process's live lease is ErrResealBusy.
func (s *Store) Reseal(ctx context.Context, opts ResealOptions) (ResealStatus, error) {
	if !s.fields.on() || len(s.fields.lookup) == 0 {
		return ResealStatus{}, ErrResealNoKeys
	}
	if opts.Owner == "" {
		return ResealStatus{}, errors.New("reseal: no owner")
	}
	if opts.Lease <= 0 {
		opts.Lease = 30 * time.Second
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}

	st, err := s.claimReseal(ctx, opts)
	if err != nil || st.Done() {
		return st, err
	}
	for !st.Done() {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if st, err = s.resealBatch(ctx, opts); err != nil {
			return st, err
		}
		if opts.Progress != nil {
			opts.Progress(st)
		}
		if opts.AfterBatch != nil {
			if err := opts.AfterBatch(st); err != nil {
				return st, err
			}
		}
		if opts.Pause > 0 && !st.Done() {
			select {
			case <-ctx.Done():
				return st, ctx.Err()
			case <-time.After(opts.Pause):
			}
		}
	}
	return st, nil
}

// claimReseal takes the lease (creating the row, or restarting a finished
// pass when asked) and returns the state.
func (s *Store) claimReseal(ctx context.Context, opts ResealOptions) (ResealStatus, error) {
	var st ResealStatus
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		now := opts.Now().UTC()
		nowM, until := sqldb.Micros(now), sqldb.Micros(now.Add(opts.Lease))
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO reseal_state (id, phase, after_id, started_at, updated_at) VALUES (1, ?, '', ?, ?) ON CONFLICT (id) DO NOTHING`),
			ResealCustomers, nowM, nowM); err != nil {
			return sqldb.Fail("reseal claim", err)
		}
		res, err := tx.ExecContext(ctx, s.q(`UPDATE reseal_state SET owner = ?, lease_until = ? WHERE id = 1 AND (owner IS NULL OR owner = ? OR lease_until < ?)`),
			opts.Owner, until, opts.Owner, nowM)
		if err != nil {
			return sqldb.Fail("reseal claim", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrResealBusy
		}
		if st, err = scanReseal(tx.QueryRowContext(ctx, `SELECT `+resealCols+` FROM reseal_state WHERE id = 1`)); err != nil {
			return sqldb.Fail("reseal claim", err)
		}
		switch {
		case st.Done() && opts.Restart:
			_, err = tx.ExecContext(ctx, s.q(`UPDATE reseal_state SET phase = ?, after_id = '', scanned = 0, sealed = 0, hashed = 0, skipped = 0, started_at = ?, updated_at = ?, finished_at = NULL WHERE id = 1`),
				ResealCustomers, nowM, nowM)
			st = ResealStatus{Phase: ResealCustomers, Owner: opts.Owner, StartedAt: &now, UpdatedAt: &now}
		case st.Done():
			// Nothing to do: give the lease back.
			_, err = tx.ExecContext(ctx, `UPDATE reseal_state SET owner = NULL, lease_until = NULL WHERE id = 1`)
			st.Owner, st.LeaseUntil = "", nil
		}
		if err != nil {
			return sqldb.Fail("reseal claim", err)
		}
		return nil
	})
	return st, err
}

// resealRow is one row of a phase's table as read: its id, the customer
// whose key seals it, and its sealed columns as stored (nil: NULL).
type resealRow struct {
	id, customerID string
	vals           []*string
	hashes         [2]sql.NullString // customers: email_hash, phone_hash
}

// resealTables describes how each phase reads its rows and which columns
// are sealed.
var resealTables = map[string]struct {
	table string
	cols  []string
	query string // rows after ?, by id, LIMIT ?: id, customer id, cols (and the hashes for customers)
}{
	ResealCustomers: {"customers", []string{"name", "email", "phone"},
		`SELECT id, id, name, email, phone, email_hash, phone_hash FROM customers WHERE id > ? ORDER BY id LIMIT ?`},
	ResealCases: {"cases", []string{"subject"},
		`SELECT id, customer_id, subject FROM cases WHERE id > ? ORDER BY id LIMIT ?`},
	ResealCaseHistory: {"case_history", []string{"changes"},
		`SELECT h.id, k.customer_id, h.changes FROM case_history h JOIN cases k ON k.id = h.case_id WHERE h.id > ? ORDER BY h.id LIMIT ?`},
	ResealContacts: {"contacts", []string{"author", "body", "location", "device"},
		`SELECT id, customer_id, author, body, location, device FROM contacts WHERE id > ? ORDER BY id LIMIT ?`},
}

// resealBatch does one batch of the current phase in one transaction:
// renew the lease (or stop), read the rows, seal and hash what is clear,
// move the cursor and the counters.
func (s *Store) resealBatch(ctx context.Context, opts ResealOptions) (ResealStatus, error) {
	var st ResealStatus
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		now := opts.Now().UTC()
		res, err := tx.ExecContext(ctx, s.q(`UPDATE reseal_state SET lease_until = ? WHERE id = 1 AND owner = ?`), sqldb.Micros(now.Add(opts.Lease)), opts.Owner)
		if err != nil {
			return sqldb.Fail("reseal lease", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrResealBusy // the lease expired and another process took it
		}
		if st, err = scanReseal(tx.QueryRowContext(ctx, `SELECT `+resealCols+` FROM reseal_state WHERE id = 1`)); err != nil {
			return sqldb.Fail("reseal state", err)
		}
		if st.Done() {
			return nil
		}
		t, ok := resealTables[st.Phase]
		if !ok {
			return fmt.Errorf("reseal: unknown phase %q", st.Phase)
		}

		rows, err := sqldb.Collect(ctx, tx, s.q(t.query), []any{st.after, opts.BatchSize}, func(rows *sql.Rows) (resealRow, error) {
			r := resealRow{vals: make([]*string, len(t.cols))}
			vals := make([]sql.NullString, len(t.cols))
			dest := []any{&r.id, &r.customerID}
			for i := range vals {
				dest = append(dest, &vals[i])
			}
			if st.Phase == ResealCustomers {
				dest = append(dest, &r.hashes[0], &r.hashes[1])
			}
			if err := rows.Scan(dest...); err != nil {
				return r, err
			}
			for i, v := range vals {
				if v.Valid {
					r.vals[i] = &v.String
				}
			}
			return r, nil
		})
		if err != nil {
			return sqldb.Fail("reseal read "+t.table, err)
		}

		sealers := map[string]cipher.AEAD{}
		var sealed, hashed, skipped int64
		for _, r := range rows {
			did, hash, err := s.resealRow(ctx, tx, t.table, t.cols, r, sealers)
			switch {
			case err != nil && (errors.Is(err, sqldb.ErrUnavailable) || ctx.Err() != nil):
				return err
			case err != nil:
				skipped++ // no key (destroyed), or a value that does not open
			case did == rowChanged:
				skipped++
			case did == rowSealed:
				sealed++
			}
			if hash {
				hashed++
			}
		}

		phase, after := st.Phase, st.after
		if len(rows) > 0 {
			after = rows[len(rows)-1].id
		}
		var finished any
		if len(rows) < opts.BatchSize {
			phase, after = resealPhases[indexOf(resealPhases, st.Phase)+1], ""
			if phase == ResealDone {
				finished = sqldb.Micros(now)
			}
		}
		owner := any(opts.Owner)
		var lease any = sqldb.Micros(now.Add(opts.Lease))
		if phase == ResealDone {
			owner, lease = nil, nil // give the lease back
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE reseal_state SET phase = ?, after_id = ?, scanned = scanned + ?, sealed = sealed + ?, hashed = hashed + ?, skipped = skipped + ?,
			owner = ?, lease_until = ?, updated_at = ?, finished_at = ? WHERE id = 1`),
			phase, after, len(rows), sealed, hashed, skipped, owner, lease, sqldb.Micros(now), finished)
		if err != nil {
			return sqldb.Fail("reseal state", err)
		}
		st.Phase, st.after = phase, after
		st.Scanned += int64(len(rows))
		st.Sealed, st.Hashed, st.Skipped = st.Sealed+sealed, st.Hashed+hashed, st.Skipped+skipped
		st.UpdatedAt = &now
		if phase == ResealDone {
			st.FinishedAt, st.Owner, st.LeaseUntil = &now, "", nil
		}
		return nil
	})
	return st, err
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return len(xs) - 2 // unknown: the next is done
}

type rowOutcome int

const (
	rowUntouched rowOutcome = iota // nothing clear, no hash missing
	rowSealed                      // updated
	rowChanged                     // changed by another writer since read: left
)

// resealRow seals row r's clear columns of table (and, for a customer,
// fills missing lookup hashes) with one compare-and-set UPDATE. It reports
// what it did and whether it added a hash.
func (s *Store) resealRow(ctx context.Context, tx *sql.Tx, table string, cols []string, r resealRow, aeads map[string]cipher.AEAD) (rowOutcome, bool, error) {
	var clear bool
	for _, v := range r.vals {
		if v != nil && *v != "" && !IsSealed(*v) {
			clear = true
		}
	}
	needHash := table == "customers" && ((!r.hashes[0].Valid && r.vals[1] != nil && *r.vals[1] != "") || (!r.hashes[1].Valid && r.vals[2] != nil && *r.vals[2] != ""))
	if !clear && !needHash {
		return rowUntouched, false, nil
	}

	a, ok := aeads[r.customerID]
	if !ok {
		sl, err := s.fields.sealerTx(ctx, tx, r.customerID)
		if err != nil {
			return rowUntouched, false, err
		}
		a, aeads[r.customerID] = sl.aead, sl.aead
	}
	sl := sealer{a}

	sets, args, where := "", []any{}, []any{}
	for i, c := range cols {
		v := r.vals[i]
		if v == nil {
			where = append(where, nil)
			continue
		}
		where = append(where, *v)
		if *v != "" && !IsSealed(*v) {
			sets += c + " = ?, "
			args = append(args, sl.seal(table, c, r.id, *v))
		}
	}
	hashAdded := false
	if table == "customers" {
		for i, kind := range []string{"email", "phone"} {
			v := r.vals[1+i]
			if r.hashes[i].Valid || v == nil || *v == "" {
				continue
			}
			plain, err := openWith(a, table, kind, r.id, *v)
			if err != nil {
				return rowUntouched, false, err
			}
			h := s.fields.emailHash(plain)
			if kind == "phone" {
				h = s.fields.phoneHash(plain)
			}
			if h == nil {
				continue // a phone without digits: nothing to look up
			}
			sets += kind + "_hash = ?, "
			args = append(args, h)
			hashAdded = true
		}
	}
	if sets == "" {
		return rowUntouched, false, nil
	}

	// Compare-and-set on every sealed column as read.
	cond := "id = ?"
	args = append(args, r.id)
	for i, c := range cols {
		if where[i] == nil {
			cond += " AND " + c + " IS NULL"
			continue
		}
		cond += " AND " + c + " = ?"
		args = append(args, where[i])
	}
	res, err := tx.ExecContext(ctx, s.q(`UPDATE `+table+` SET `+sets[:len(sets)-2]+` WHERE `+cond), args...)
	if err != nil {
		return rowUntouched, false, sqldb.Fail("reseal "+table, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return rowChanged, false, nil
	}
	if !clear {
		return rowUntouched, hashAdded, nil // only a hash was missing
	}
	return rowSealed, hashAdded, nil
}

// openWith opens a stored value with the customer's field cipher a; a
// clear value is returned as it is.
func openWith(a cipher.AEAD, table, column, id, stored string) (string, error) {
	if !IsSealed(stored) {
		return stored, nil
	}
	raw, err := base64.RawStdEncoding.DecodeString(stored[len(sealedPrefix):])
	if err != nil || len(raw) < a.NonceSize()+a.Overhead() {
		return "", fmt.Errorf("%s.%s of %s: %w: malformed sealed value", table, column, id, sqldb.ErrBadRow)
	}
	plain, err := a.Open(nil, raw[:a.NonceSize()], raw[a.NonceSize():], fieldAD(table, column, id))
	if err != nil {
		return "", fmt.Errorf("%s.%s of %s: %w: sealed value does not open", table, column, id, sqldb.ErrBadRow)
	}
	return string(plain), nil
}
