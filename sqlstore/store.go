// Package sqlstore implements cases.Store and the search indexer's Source on
// SQLite and PostgreSQL. Every write runs in one transaction that also
// appends an outbox row (so the index can never miss it) and the audit event.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// Store is the SQL store.
type Store struct {
	db       *sqldb.DB
	policy   cases.RetentionPolicy
	onChange cases.TxHook
	// onChanges, when set, replaces onChange for a contact batch.
	onChanges func(ctx context.Context, tx *sql.Tx, chs []cases.Change) error
	// contacts gathers concurrent contact writes (contactbatch.go).
	contacts *contactBatcher
	// beforeCaseUpdate runs in a case update's transaction, the row locked
	// and not yet changed (nil: nothing).
	beforeCaseUpdate func(ctx context.Context, tx *sql.Tx, caseID string) error
	// notify is called after a commit that appended outbox rows, to wake the
	// indexer early; it must not block.
	notify func()
	// fields seals the personal columns (fields.go); nil: clear text.
	fields *Fields
	// feedChurn vacuums the outbox, whose rows the feed's numbering and
	// pruning leave dead (outbox.go).
	feedChurn *sqldb.Churn
}

// Options wires the store's collaborators.
type Options struct {
	Policy   cases.RetentionPolicy
	OnChange cases.TxHook
	// OnChanges, when set, is called instead of OnChange with the changes
	// of a contact batch, in its transaction, in order: the hooks' reads
	// (active holds) and inserts (audit events) then serve the whole batch.
	OnChanges func(ctx context.Context, tx *sql.Tx, chs []cases.Change) error
	// ContactBatches is how many contact batches may be in flight at once
	// (0: 1 on SQLite, DefaultPostgresContactBatches on PostgreSQL).
	ContactBatches int
	// ContactBatchStall is how long the batches in flight must all have
	// run before another starts beside them (0: DefaultContactBatchStall).
	ContactBatchStall time.Duration
	Notify            func()
	// BeforeCaseUpdate runs in every case update's transaction after the
	// case row is locked and before it changes: retention records there
	// what legal holds cover the case as it still is
	// (retention.Holds.RecordCase), so no edit takes a case out of a hold.
	BeforeCaseUpdate func(ctx context.Context, tx *sql.Tx, caseID string) error
	// Fields seals personal fields under the customers' data keys (nil:
	// they are written in clear, as by tools run without the master key).
	Fields *Fields
	// VacuumEvery is how many dead outbox rows gather before the feed
	// vacuums the outbox on PostgreSQL (0: sqldb.DefaultVacuumEvery).
	VacuumEvery int64
}

// New builds a Store on an open, migrated database.
func New(db *sqldb.DB, opts Options) *Store {
	if opts.Notify == nil {
		opts.Notify = func() {}
	}
	s := &Store{db: db, policy: opts.Policy, onChange: opts.OnChange, onChanges: opts.OnChanges, notify: opts.Notify, beforeCaseUpdate: opts.BeforeCaseUpdate, fields: opts.Fields}
	slots := opts.ContactBatches
	if slots <= 0 {
		slots = 1
		if db.Dialect == sqldb.Postgres {
			slots = DefaultPostgresContactBatches
		}
	}
	stall := opts.ContactBatchStall
	if stall <= 0 {
		stall = DefaultContactBatchStall
	}
	s.contacts = &contactBatcher{s: s, slots: slots, stall: stall}
	s.feedChurn = sqldb.NewChurn(db, "outbox", opts.VacuumEvery)
	return s
}

// DefaultPostgresContactBatches is how many contact batches may run at
// once on PostgreSQL by default (SQLite: 1, its one writer runs them in
// turn). The second starts only beside a stalled first one
// (DefaultContactBatchStall): one slot measured fastest in process
// (BenchmarkAddContact, 32 writers: 1 slot 1,850 / 1,940 contacts/s, 2:
// 1,468 / 1,313, 4: 679 / 859, 8: 520 / 487), but with no second one a
// slow batch (a case row locked by a long transaction) stalls every
// contact write of the replica: TestWritesShareNoRow hangs.
const DefaultPostgresContactBatches = 2

// DefaultContactBatchStall is how long a contact batch runs before
// another may start beside it. Until then the contacts that arrive queue
// for the next batch, so a busy replica writes few, large batches: each
// batch costs its round trips, statements and commit whatever its size
// (issue 19: with a second batch started at once, batches held half the
// contacts, and PostgreSQL's CPU per contact was 1.3-1.6 times as high).
// Batches under load take a few milliseconds; one that runs for this
// long is waiting on something, and the contacts of other cases go round
// it in a batch of their own.
const DefaultContactBatchStall = 25 * time.Millisecond

// Prepare readies the statements of the contact-ingest path, the hottest
// write (see sqldb.PrepareWrite).
func (s *Store) Prepare(ctx context.Context) error {
	if err := s.db.PrepareWrite(ctx, qTouchCase); err != nil {
		return err
	}

	type rowsQuery struct {
		text string
		cols int
	}
	rows := []rowsQuery{{qEnqueue, 3}, {qInsertContact, 15}}
	if s.db.Dialect == sqldb.SQLite {
		rows = append(rows, rowsQuery{qTouchCasesSQLite, 2})
	}
	for _, q := range rows {
		if err := s.db.PrepareRows(ctx, q.text, q.cols); err != nil {
			return err
		}
	}
	return nil
}

const (
	qEnqueue       = `INSERT INTO outbox (case_id, contact_id, created_at) VALUES (?, ?, ?)`
	qInsertContact = `INSERT INTO contacts (` + contactCols + `) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`
	// qTouchCase moves the case's updated_at and, in the same statement,
	// locks the row until commit and reads what the new contact needs of
	// it: one round trip where a SELECT … FOR UPDATE and an UPDATE were two
	// (issue 19: the lock is per case, and held one statement less). It
	// also reads the customer's wrapped data key that seals the contact
	// (customer_keys' primary key; the keyring owns the table and judges the
	// row: Fields.sealerFromRow): one read less per contact is a tenth of
	// ingest on PostgreSQL, where each statement is a round trip
	// (scripts/bench.sh, sealing's cost).
	// A batch of contacts on several cases touches them all in one
	// statement (touchCases).
	qTouchCase = `UPDATE cases SET updated_at = ? WHERE id = ? RETURNING cases.id, ` + touchReturning
)

func (s *Store) q(query string) string { return s.db.Rebind(query) }

// write runs fn in a transaction, then the change hook with ch as fn left it
// (an update fills in what it changed; nil: fn ran the hooks), and wakes
// the indexer.
func (s *Store) write(ctx context.Context, ch *cases.Change, fn func(tx *sql.Tx) error) error {
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if ch != nil && s.onChange != nil {
			if err := s.onChange(ctx, tx, *ch); err != nil {
				return fmt.Errorf("audit: %w", err)
			}
		}
		return nil
	})
	if err == nil {
		s.notify()
	}
	return err
}

// enqueue tells the indexer that the case changed: wholly when contactID is
// "", else only by that new contact.
func (s *Store) enqueue(ctx context.Context, tx *sql.Tx, caseID, contactID string) error {
	return enqueueRow(ctx, s.db, tx, caseID, contactID)
}

// Enqueue tells the indexer, in the caller's transaction, that these cases
// changed as a whole (deleted, redacted, restored): it reloads each one. The
// store owns the outbox table; other packages write it only through here.
// A sweep batch enqueues hundreds of cases: one multi-row INSERT per chunk.
func Enqueue(ctx context.Context, db *sqldb.DB, tx *sql.Tx, caseIDs ...string) error {
	return enqueueIDs(ctx, db, tx, `INSERT INTO outbox (case_id, created_at) VALUES `, "(?, ?)", caseIDs)
}

// enqueueIDs writes one outbox row per id, row (two placeholders: the id
// and the time) after insert, in multi-row INSERTs of up to 500 rows.
func enqueueIDs(ctx context.Context, db *sqldb.DB, tx *sql.Tx, insert, row string, ids []string) error {
	const chunk = 500
	now := sqldb.Micros(time.Now())
	for len(ids) > 0 {
		n := min(len(ids), chunk)
		args := make([]any, 0, 2*n)
		for _, id := range ids[:n] {
			args = append(args, id, now)
		}
		q := insert + strings.TrimSuffix(strings.Repeat(row+",", n), ",")
		if _, err := tx.ExecContext(ctx, db.Rebind(q), args...); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		ids = ids[n:]
	}
	return nil
}

func enqueueRow(ctx context.Context, db *sqldb.DB, tx *sql.Tx, caseID, contactID string) error {
	_, err := db.Exec(ctx, tx, qEnqueue, caseID, sql.NullString{String: contactID, Valid: contactID != ""}, sqldb.Micros(time.Now()))
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// --- customers ---

const customerCols = `id, external_ref, name, email, phone, locale, consent_location, consent_marketing, consent_personalization, created_at, updated_at`

func scanCustomer(o *opener, row interface{ Scan(...any) error }) (cases.Customer, error) {
	var c cases.Customer
	var created, updated int64
	err := row.Scan(&c.ID, &c.ExternalRef, &c.Name, &c.Email, &c.Phone, &c.Locale,
		&c.Consents.Location, &c.Consents.Marketing, &c.Consents.Personalization, &created, &updated)
	if err != nil {
		return c, err
	}
	c.CreatedAt, c.UpdatedAt = sqldb.FromMicros(created), sqldb.FromMicros(updated)
	return c, openCustomer(o, &c)
}

// openCustomer opens a customer's sealed columns in place.
func openCustomer(o *opener, c *cases.Customer) error {
	for _, f := range []struct {
		col string
		v   *string
	}{{"name", &c.Name}, {"email", &c.Email}, {"phone", &c.Phone}} {
		var err error
		if *f.v, err = o.open(c.ID, "customers", f.col, c.ID, *f.v); err != nil {
			return err
		}
	}
	return nil
}

// customerValues are the sealed name, email and phone of c, and the keyed
// hashes of its e-mail and phone.
func (s *Store) customerValues(ctx context.Context, tx *sql.Tx, c cases.Customer) ([]any, error) {
	sl, err := s.fields.sealerTx(ctx, tx, c.ID)
	if err != nil {
		return nil, err
	}
	return []any{sl.seal("customers", "name", c.ID, c.Name), sl.seal("customers", "email", c.ID, c.Email), sl.seal("customers", "phone", c.ID, c.Phone),
		s.fields.emailHash(c.Email), s.fields.phoneHash(c.Phone)}, nil
}

// CreateCustomer implements cases.Store.
func (s *Store) CreateCustomer(ctx context.Context, c cases.Customer, ch cases.Change) error {
	return s.write(ctx, &ch, func(tx *sql.Tx) error {
		v, err := s.customerValues(ctx, tx, c)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO customers (`+customerCols+`, email_hash, phone_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`),
			c.ID, c.ExternalRef, v[0], v[1], v[2], c.Locale,
			c.Consents.Location, c.Consents.Marketing, c.Consents.Personalization, sqldb.Micros(c.CreatedAt), sqldb.Micros(c.UpdatedAt), v[3], v[4])
		if err != nil {
			return fmt.Errorf("insert customer: %w", err)
		}
		// the index keeps a document per named customer (customerfeed.go)
		return EnqueueCustomers(ctx, s.db, tx, c.ID)
	})
}

// GetCustomer implements cases.Store.
func (s *Store) GetCustomer(ctx context.Context, id string) (cases.Customer, error) {
	c, err := scanCustomer(s.fields.opener(ctx), s.db.QueryRow(ctx, `SELECT `+customerCols+` FROM customers WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return cases.Customer{}, s.missingCustomer(ctx, id)
	}
	if err != nil {
		return cases.Customer{}, s.fail("get customer", err)
	}
	return c, nil
}

// missingCustomer is the error for a customer id without a row: erased
// (cases.ErrErased) when their key was destroyed, else not found.
func (s *Store) missingCustomer(ctx context.Context, id string) error {
	at, err := ErasedAt(ctx, s.db, s.db.Read, id)
	if err != nil {
		return err
	}
	if at != nil {
		return fmt.Errorf("customer %s erased %s: %w", id, at.UTC().Format(time.RFC3339), cases.ErrErased)
	}
	return fmt.Errorf("customer %s: %w", id, cases.ErrNotFound)
}

// UpdateCustomer implements cases.Store.
func (s *Store) UpdateCustomer(ctx context.Context, id string, fn func(*cases.Customer) error, ch cases.Change) (cases.Customer, error) {
	var out cases.Customer
	err := s.write(ctx, &ch, func(tx *sql.Tx) error {
		c, err := scanCustomer(s.fields.opener(ctx), tx.QueryRowContext(ctx, s.q(`SELECT `+customerCols+` FROM customers WHERE id = ?`+s.forUpdate()), id))
		if errors.Is(err, sql.ErrNoRows) {
			return s.missingCustomer(ctx, id)
		}
		if err != nil {
			return fmt.Errorf("get customer: %w", err)
		}
		old := c
		if err := fn(&c); err != nil {
			return err
		}
		ch.Detail = withChanges(ch.Detail, cases.CustomerChanges(old, c))
		v, err := s.customerValues(ctx, tx, c)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE customers SET external_ref=?, name=?, email=?, phone=?, locale=?,
			consent_location=?, consent_marketing=?, consent_personalization=?, updated_at=?, email_hash=?, phone_hash=? WHERE id=?`),
			c.ExternalRef, v[0], v[1], v[2], c.Locale,
			c.Consents.Location, c.Consents.Marketing, c.Consents.Personalization, sqldb.Micros(c.UpdatedAt), v[3], v[4], id)
		if err != nil {
			return fmt.Errorf("update customer: %w", err)
		}
		// The name is in every index document of the customer's cases
		// (the index is where names are searched): a new name reindexes
		// them, in this transaction, like any other case change.
		if c.Name != old.Name {
			ids, err := CustomerCaseIDs(ctx, s.db, tx, id)
			if err != nil {
				return fmt.Errorf("update customer: cases: %w", err)
			}
			if err := Enqueue(ctx, s.db, tx, ids...); err != nil {
				return err
			}
			if err := EnqueueCustomers(ctx, s.db, tx, id); err != nil {
				return err
			}
		}
		out = c
		return nil
	})
	return out, err
}

// withChanges adds what an update changed to the detail its caller gave
// (the caller's keys win; the map is copied, never shared).
func withChanges(detail, changes map[string]any) map[string]any {
	for k, v := range detail {
		changes[k] = v
	}
	return changes
}

func (s *Store) forUpdate() string {
	if s.db.Dialect == sqldb.Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// fail classifies a read error (sqldb.Fail: outage → 503, a data
// exception stays a plain error that input validation should have caught).
func (s *Store) fail(what string, err error) error { return sqldb.Fail(what, err) }

// --- cases ---

const caseCols = `id, number, customer_id, subject, status, priority, channel, tags, assignee, created_at, updated_at, closed_at`

func scanCase(o *opener, row interface{ Scan(...any) error }) (cases.Case, error) {
	var c cases.Case
	var tags string
	var created, updated int64
	var closed sql.NullInt64
	err := row.Scan(&c.ID, &c.Number, &c.CustomerID, &c.Subject, &c.Status, &c.Priority, &c.Channel,
		&tags, &c.Assignee, &created, &updated, &closed)
	if err != nil {
		return c, err
	}
	c.CreatedAt, c.UpdatedAt, c.ClosedAt = sqldb.FromMicros(created), sqldb.FromMicros(updated), sqldb.TimePtr(closed)
	if c.Subject, err = o.open(c.CustomerID, "cases", "subject", c.ID, c.Subject); err != nil {
		return c, err
	}
	if err := json.Unmarshal([]byte(tags), &c.Tags); err != nil {
		return c, fmt.Errorf("case %s tags: %w: %w", c.ID, sqldb.ErrBadRow, err)
	}
	if c.Tags == nil {
		c.Tags = []string{}
	}
	return c, nil
}

// nextCaseNumber takes the next case number in tx. On PostgreSQL it is the
// case_numbers SEQUENCE (migration 0031): no row lock, so case creations on
// every replica commit in parallel; a rolled-back creation leaves a gap.
// On SQLite, whose one writer serializes creations anyway, the counters row
// counts, never below the highest number stored (a backup restored from
// PostgreSQL carries a counters row the sequence left behind).
func nextCaseNumber(ctx context.Context, db *sqldb.DB, tx *sql.Tx) (int64, error) {
	q := `UPDATE counters SET value = MAX(value, (SELECT COALESCE(MAX(number), 0) FROM cases)) + 1 WHERE name = 'case_number' RETURNING value`
	if db.Dialect == sqldb.Postgres {
		q = `SELECT nextval('case_numbers')`
	}
	var n int64
	if err := tx.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("case number: %w", err)
	}
	return n, nil
}

// CreateCase implements cases.Store; it assigns the case number.
func (s *Store) CreateCase(ctx context.Context, c *cases.Case, ch cases.Change) error {
	if c.Tags == nil {
		c.Tags = []string{}
	}
	return s.write(ctx, &ch, func(tx *sql.Tx) error {
		var err error
		if c.Number, err = nextCaseNumber(ctx, s.db, tx); err != nil {
			return err
		}
		sl, err := s.fields.sealerTx(ctx, tx, c.CustomerID)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO cases (`+caseCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`),
			c.ID, c.Number, c.CustomerID, sl.seal("cases", "subject", c.ID, c.Subject), c.Status, c.Priority, c.Channel, sqldb.JSONText(c.Tags), c.Assignee,
			sqldb.Micros(c.CreatedAt), sqldb.Micros(c.UpdatedAt), sqldb.NullMicros(c.ClosedAt))
		if err != nil {
			return fmt.Errorf("insert case: %w", err)
		}
		return s.enqueue(ctx, tx, c.ID, "")
	})
}

// GetCase implements cases.Store (without the timeline).
func (s *Store) GetCase(ctx context.Context, id string) (cases.Case, error) {
	c, err := scanCase(s.fields.opener(ctx), s.db.QueryRow(ctx, `SELECT `+caseCols+` FROM cases WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return cases.Case{}, fmt.Errorf("case %s: %w", id, cases.ErrNotFound)
	}
	if err != nil {
		return cases.Case{}, s.fail("get case", err)
	}
	return c, nil
}

// CaseIDByNumber implements cases.Store (cases.number is UNIQUE).
func (s *Store) CaseIDByNumber(ctx context.Context, number int64) (string, error) {
	var id string
	err := s.db.QueryRow(ctx, `SELECT id FROM cases WHERE number = ?`, number).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("case number %d: %w", number, cases.ErrNotFound)
	}
	if err != nil {
		return "", s.fail("case by number", err)
	}
	return id, nil
}

// UpdateCase implements cases.Store. When closed_at changes, every contact's
// retain_until is recomputed in the same transaction, because the
// case_closed clock starts (or stops) exactly then. An update that changes a
// recorded field (cases.CaseChanges) adds a row to the case's history in the
// same transaction: earlier values stay readable (legal holds preserve them).
func (s *Store) UpdateCase(ctx context.Context, id string, fn func(*cases.Case) error, ch cases.Change) (cases.Case, error) {
	var out cases.Case
	err := s.write(ctx, &ch, func(tx *sql.Tx) error {
		c, err := scanCase(s.fields.opener(ctx), tx.QueryRowContext(ctx, s.q(`SELECT `+caseCols+` FROM cases WHERE id = ?`+s.forUpdate()), id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("case %s: %w", id, cases.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("get case: %w", err)
		}
		if s.beforeCaseUpdate != nil {
			if err := s.beforeCaseUpdate(ctx, tx, id); err != nil {
				return err
			}
		}

		old := c
		old.Tags = slices.Clone(c.Tags)
		before := c.ClosedAt
		if err := fn(&c); err != nil {
			return err
		}

		sl, err := s.fields.sealerTx(ctx, tx, c.CustomerID)
		if err != nil {
			return err
		}
		changes := cases.CaseChanges(old, c)
		// The audit trail outlives an erasure: it names a changed subject
		// (in "fields") without its text, which the sealed history keeps.
		audited := maps.Clone(changes)
		delete(audited, "subject")
		ch.Detail = withChanges(ch.Detail, audited)
		if err := s.addHistory(ctx, tx, sl, id, c.UpdatedAt, ch.Actor, changes); err != nil {
			return err
		}

		_, err = tx.ExecContext(ctx, s.q(`UPDATE cases SET subject=?, status=?, priority=?, tags=?, assignee=?, updated_at=?, closed_at=? WHERE id=?`),
			sl.seal("cases", "subject", id, c.Subject), c.Status, c.Priority, sqldb.JSONText(c.Tags), c.Assignee, sqldb.Micros(c.UpdatedAt), sqldb.NullMicros(c.ClosedAt), id)
		if err != nil {
			return fmt.Errorf("update case: %w", err)
		}
		if !sameTime(before, c.ClosedAt) {
			if err := s.recomputeRetention(ctx, tx, id, c.ClosedAt); err != nil {
				return err
			}
		}
		out = c
		return s.enqueue(ctx, tx, id, "")
	})
	return out, err
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func (s *Store) recomputeRetention(ctx context.Context, tx *sql.Tx, caseID string, closedAt *time.Time) error {
	if s.policy == nil {
		return nil
	}
	rules, err := s.policy.RulesIn(ctx, tx)
	if err != nil {
		return fmt.Errorf("recompute retention: %w", err)
	}
	type upd struct {
		id    string
		until *time.Time
	}
	// An anonymized contact is kept without a date: no clock applies to it.
	ups, err := sqldb.Collect(ctx, tx, s.q(`SELECT id, purposes, occurred_at FROM contacts WHERE case_id = ? AND anonymized_at IS NULL`), []any{caseID},
		func(rows *sql.Rows) (upd, error) {
			var id, ps string
			var occurred int64
			if err := rows.Scan(&id, &ps, &occurred); err != nil {
				return upd{}, err
			}
			var purposes []cases.Purpose
			if err := json.Unmarshal([]byte(ps), &purposes); err != nil {
				return upd{}, fmt.Errorf("contact %s purposes: %w: %w", id, sqldb.ErrBadRow, err)
			}
			return upd{id, rules.RetainUntil(purposes, sqldb.FromMicros(occurred), closedAt)}, nil
		})
	if err != nil {
		return fmt.Errorf("recompute retention: %w", err)
	}

	for _, u := range ups {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE contacts SET retain_until = ? WHERE id = ?`), sqldb.NullMicros(u.until), u.id); err != nil {
			return fmt.Errorf("recompute retention: %w", err)
		}
	}
	return nil
}

// ListCases implements cases.Store: newest first, keyset-paginated on id
// (UUIDv7 sorts by creation time).
func (s *Store) ListCases(ctx context.Context, f cases.CaseFilter, p cases.Page) ([]cases.Case, string, error) {
	limit := p.Limit
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", cases.Invalid("cursor", "malformed cursor")
	}
	var where []string
	var args []any
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, string(f.Status))
	}
	if f.CustomerID != "" {
		where, args = append(where, "customer_id = ?"), append(args, f.CustomerID)
	}
	if f.Assignee != "" {
		where, args = append(where, "assignee = ?"), append(args, f.Assignee)
	}
	if f.Tag != "" {
		// Tags are stored as a JSON array of validated strings; matching the
		// quoted element with LIKE is exact because tags cannot hold quotes.
		where, args = append(where, `tags LIKE ? ESCAPE '\'`), append(args, "%"+likeEscape(sqldb.JSONText(strings.ToLower(f.Tag)))+"%")
	}
	if after != "" {
		where, args = append(where, "id < ?"), append(args, after)
	}
	q := `SELECT ` + caseCols + ` FROM cases`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	o := s.fields.opener(ctx)
	out, more, err := sqldb.Page(ctx, s.db.Read, s.q(q), args, limit, func(rows *sql.Rows) (cases.Case, error) { return scanCase(o, rows) })
	if err != nil {
		return nil, "", s.fail("list cases", err)
	}

	next := ""
	if more {
		next = encodeCursor(out[len(out)-1].ID)
	}
	return out, next, nil
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func encodeCursor(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

// decodeCursor accepts only what encodeCursor produces: the id of a case,
// a UUID in canonical form. Anything else (junk bytes would reach the query,
// and PostgreSQL rejects invalid UTF-8 where SQLite compares it) is
// malformed, on both engines alike.
func decodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", errors.New("malformed cursor")
	}
	id, err := uuid.Parse(string(b))
	if err != nil || id.String() != string(b) {
		return "", errors.New("malformed cursor")
	}
	return string(b), nil
}

// --- contacts ---

// contactCols are the columns read into cases.Contact: the first ones of
// the table, then those later migrations added (corrects, 0021), which
// the table has after contactExtraCols.
const contactCols = contactCoreCols + `, ` + contactAddedCols

const (
	contactCoreCols  = `id, case_id, customer_id, channel, direction, author, body, occurred_at, created_at, purposes, categories, location, device, retain_until`
	contactAddedCols = `corrects`
)

func scanContact(o *opener, row interface{ Scan(...any) error }) (cases.Contact, error) {
	var c cases.Contact
	var occurred, created int64
	var ps, cs string
	var loc, dev sql.NullString
	var until sql.NullInt64
	var corrects sql.NullString
	err := row.Scan(&c.ID, &c.CaseID, &c.CustomerID, &c.Channel, &c.Direction, &c.Author, &c.Body,
		&occurred, &created, &ps, &cs, &loc, &dev, &until, &corrects)
	if err != nil {
		return c, err
	}
	c.Corrects = corrects.String
	c.OccurredAt, c.CreatedAt, c.RetainUntil = sqldb.FromMicros(occurred), sqldb.FromMicros(created), sqldb.TimePtr(until)
	if err := openContact(o, c.CustomerID, c.ID, &c.Author, &c.Body, &loc, &dev); err != nil {
		return c, err
	}
	if err := json.Unmarshal([]byte(ps), &c.Purposes); err != nil {
		return c, fmt.Errorf("contact %s purposes: %w: %w", c.ID, sqldb.ErrBadRow, err)
	}
	if err := json.Unmarshal([]byte(cs), &c.Categories); err != nil {
		return c, fmt.Errorf("contact %s categories: %w: %w", c.ID, sqldb.ErrBadRow, err)
	}
	if loc.Valid {
		c.Location = &cases.Location{}
		if err := json.Unmarshal([]byte(loc.String), c.Location); err != nil {
			return c, fmt.Errorf("contact %s location: %w: %w", c.ID, sqldb.ErrBadRow, err)
		}
	}
	if dev.Valid {
		c.Device = &cases.Device{}
		if err := json.Unmarshal([]byte(dev.String), c.Device); err != nil {
			return c, fmt.Errorf("contact %s device: %w: %w", c.ID, sqldb.ErrBadRow, err)
		}
	}
	c.Attachments = []cases.Attachment{}
	return c, nil
}

// openContact opens a contact row's sealed columns in place.
func openContact(o *opener, customerID, id string, author, body *string, loc, dev *sql.NullString) error {
	var err error
	if *author, err = o.open(customerID, "contacts", "author", id, *author); err != nil {
		return err
	}
	if *body, err = o.open(customerID, "contacts", "body", id, *body); err != nil {
		return err
	}
	if err := o.openNull(customerID, "contacts", "location", id, loc); err != nil {
		return err
	}
	return o.openNull(customerID, "contacts", "device", id, dev)
}

func jsonOrNull[T any](v *T) any {
	if v == nil {
		return nil
	}
	return sqldb.JSONText(v)
}

// CreateContact implements cases.Store. retain_until is computed inside the
// transaction from the case's closed_at as it is at commit time. Concurrent
// calls share transactions (contactbatch.go); each still gets its own
// verdict.
func (s *Store) CreateContact(ctx context.Context, c *cases.Contact, ch cases.Change) error {
	return s.contacts.submit(ctx, c, ch)
}

// checkCorrects refuses, as a 422 on "corrects", a correction of a contact
// that is not in the correction's case (unknown, elsewhere, or itself),
// read in the write's transaction under the case's lock.
func (s *Store) checkCorrects(ctx context.Context, tx *sql.Tx, c *cases.Contact) error {
	if c.Corrects == "" {
		return nil
	}
	if c.Corrects == c.ID {
		return cases.Invalid("corrects", "a contact cannot correct itself")
	}
	var caseID string
	err := tx.QueryRowContext(ctx, s.q(`SELECT case_id FROM contacts WHERE id = ?`), c.Corrects).Scan(&caseID)
	if errors.Is(err, sql.ErrNoRows) {
		return cases.Invalid("corrects", "no such contact")
	}
	if err != nil {
		return fmt.Errorf("corrected contact: %w", err)
	}
	if caseID != c.CaseID {
		return cases.Invalid("corrects", "the contact belongs to another case")
	}
	return nil
}

// GetContact implements cases.Store.
func (s *Store) GetContact(ctx context.Context, id string) (cases.Contact, error) {
	c, err := scanContact(s.fields.opener(ctx), s.db.QueryRow(ctx, `SELECT `+contactCols+` FROM contacts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return cases.Contact{}, fmt.Errorf("contact %s: %w", id, cases.ErrNotFound)
	}
	if err != nil {
		return cases.Contact{}, s.fail("get contact", err)
	}
	c.CorrectedBy, err = sqldb.Collect(ctx, s.db.Read, s.q(`SELECT id FROM contacts WHERE corrects = ? ORDER BY occurred_at, id`), []any{id},
		func(rows *sql.Rows) (string, error) {
			var s string
			return s, rows.Scan(&s)
		})
	if err != nil {
		return cases.Contact{}, s.fail("get contact", err)
	}
	atts, err := s.attachments(ctx, `contact_id = ?`, id)
	if err != nil {
		return cases.Contact{}, err
	}
	c.Attachments = append(c.Attachments, atts...)
	return c, nil
}

// Timeline implements cases.Store: a case's contacts in time order, each
// with its attachments.
func (s *Store) Timeline(ctx context.Context, caseID string) ([]cases.Contact, error) {
	o := s.fields.opener(ctx)
	out, err := sqldb.Collect(ctx, s.db.Read, s.q(`SELECT `+contactCols+` FROM contacts WHERE case_id = ? ORDER BY occurred_at, id`), []any{caseID},
		func(rows *sql.Rows) (cases.Contact, error) { return scanContact(o, rows) })
	if err != nil {
		return nil, s.fail("timeline", err)
	}
	if out == nil {
		out = []cases.Contact{}
	}

	idx := make(map[string]int, len(out))
	for i, c := range out {
		idx[c.ID] = i
	}
	// A correction is always in its original's case (checkCorrects).
	for _, c := range out {
		if i, ok := idx[c.Corrects]; ok {
			out[i].CorrectedBy = append(out[i].CorrectedBy, c.ID)
		}
	}
	atts, err := s.attachments(ctx, `case_id = ?`, caseID)
	if err != nil {
		return nil, err
	}
	for _, a := range atts {
		if i, ok := idx[a.ContactID]; ok {
			out[i].Attachments = append(out[i].Attachments, a)
		}
	}
	return out, nil
}

func (s *Store) attachments(ctx context.Context, where string, arg any) ([]cases.Attachment, error) {
	out, err := sqldb.Collect(ctx, s.db.Read, s.q(`SELECT id, contact_id, filename, content_type, size, sha256, created_at FROM attachments WHERE `+where+` ORDER BY id`), []any{arg},
		func(rows *sql.Rows) (cases.Attachment, error) {
			var a cases.Attachment
			var created int64
			err := rows.Scan(&a.ID, &a.ContactID, &a.Filename, &a.ContentType, &a.Size, &a.SHA256, &created)
			a.CreatedAt = sqldb.FromMicros(created)
			return a, err
		})
	if err != nil {
		return nil, s.fail("attachments", err)
	}
	return out, nil
}
