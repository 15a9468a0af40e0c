package retention_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
	"github.com/casevault/casevault/testkit"
)

const day = 24 * time.Hour

// testDigestKey is the disposition digest key of the test environments, as
// the server derives it from its master key.
var testDigestKey, _ = retention.DigestKey([]byte("0123456789abcdef0123456789abcdef"))

// base is the test calendar's origin; every clock in these tests is explicit.
var base = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// forEachDialect runs fn on a fresh environment over every engine.
func forEachDialect(t *testing.T, fn func(t *testing.T, e *env)) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) { fn(t, newEnv(t, db)) })
}

// bodyMatcher is the test stand-in for the search engine: a case matches
// when one of its contacts in the query's date range has a body holding
// every word of the query. It reads
// the database at call time, so later contacts start matching.
type bodyMatcher struct {
	db    *sqldb.DB
	calls int
	mu    sync.Mutex
	block chan struct{} // when set, Matches waits on it
	err   error
}

func (m *bodyMatcher) Matches(ctx context.Context, q search.Query, caseID string) (bool, error) {
	m.mu.Lock()
	m.calls++
	block, err := m.block, m.err
	m.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	if err != nil {
		return false, err
	}
	if len(q.Filter.CaseIDs) != 1 || q.Filter.CaseIDs[0] != caseID {
		return false, fmt.Errorf("matcher got filter %v for case %s", q.Filter.CaseIDs, caseID)
	}
	if !q.Exact {
		return false, fmt.Errorf("hold query for case %s not exact", caseID)
	}
	if len(q.Filter.Tags) > 0 {
		ok, err := m.hasTag(ctx, caseID, q.Filter.Tags)
		if err != nil || !ok {
			return false, err
		}
	}
	rows, err := m.db.Read.QueryContext(ctx, m.db.Rebind(`SELECT body, occurred_at FROM contacts WHERE case_id = ?`), caseID)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	for rows.Next() {
		var body string
		var occurred int64
		if err := rows.Scan(&body, &occurred); err != nil {
			return false, err
		}
		at := sqldb.FromMicros(occurred)
		if (!q.Filter.From.IsZero() && at.Before(q.Filter.From)) || (!q.Filter.To.IsZero() && !at.Before(q.Filter.To)) {
			continue
		}
		all := true
		for _, w := range q.Words {
			if !strings.Contains(strings.ToLower(body), w) {
				all = false
			}
		}
		if all {
			return true, nil
		}
	}
	return false, rows.Err()
}

// hasTag reports whether the case carries one of tags (a tag: filter).
func (m *bodyMatcher) hasTag(ctx context.Context, caseID string, tags []string) (bool, error) {
	var raw string
	if err := m.db.Read.QueryRowContext(ctx, m.db.Rebind(`SELECT tags FROM cases WHERE id = ?`), caseID).Scan(&raw); err != nil {
		return false, err
	}
	var have []string
	if err := json.Unmarshal([]byte(raw), &have); err != nil {
		return false, err
	}
	return slices.ContainsFunc(tags, func(t string) bool { return slices.Contains(have, t) }), nil
}

// memBlobs records the blobs purged; while down, every purge fails.
type memBlobs struct {
	mu      sync.Mutex
	deleted []string
	down    bool
}

func (b *memBlobs) Purge(_ context.Context, key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return errors.New("blob store down")
	}
	b.deleted = append(b.deleted, key)
	return nil
}

func (b *memBlobs) setDown(down bool) {
	b.mu.Lock()
	b.down = down
	b.mu.Unlock()
}

func (b *memBlobs) keys() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.deleted)
}

type env struct {
	t       testing.TB
	ctx     context.Context
	db      *sqldb.DB
	store   *sqlstore.Store
	policy  *retention.Policy
	sched   *retention.Schedules
	holds   *retention.Holds
	clock   *testkit.Clock // the holds' clock (release grace)
	sweeper *retention.Sweeper
	deleter *retention.Deleter
	explain *retention.Explainer
	matcher *bodyMatcher
	blobs   *memBlobs
	lag     int64
	lagMu   sync.Mutex
}

// auditHook appends the change to the real hash-chained audit trail.
func auditHook(d sqldb.Dialect) cases.TxHook {
	return func(ctx context.Context, tx *sql.Tx, ch cases.Change) error {
		_, err := audit.AppendTx(ctx, tx, d, audit.FromChange(ch, audit.OutcomeOK))
		return err
	}
}

func newEnv(t testing.TB, db *sqldb.DB) *env {
	e := &env{t: t, ctx: context.Background(), db: db, blobs: &memBlobs{}}
	e.policy = retention.NewPolicy(retention.DefaultSchedule())
	// As the server wires it: a case update first records what holds cover
	// the case as it is, and every write keeps hold_items current.
	audited := auditHook(db.Dialect)
	e.store = sqlstore.New(db, sqlstore.Options{Policy: e.policy,
		OnChange: func(ctx context.Context, tx *sql.Tx, ch cases.Change) error {
			if err := e.holds.RecordWrite(ctx, tx, ch); err != nil {
				return err
			}
			return audited(ctx, tx, ch)
		},
		BeforeCaseUpdate: func(ctx context.Context, tx *sql.Tx, caseID string) error { return e.holds.RecordCase(ctx, tx, caseID) }})
	e.sched = retention.NewSchedules(db, e.policy)
	e.matcher = &bodyMatcher{db: db}
	e.clock = testkit.NewClock(time.Now().UTC())
	e.holds = retention.NewHoldsWith(db, retention.HoldsOptions{Matcher: e.matcher, Policy: e.policy, Now: e.clock.Now, IndexLag: e.indexLag})
	e.explain = retention.NewExplainer(db, e.policy, e.holds)
	e.sweeper = e.newSweeper(db)
	e.deleter = retention.NewDeleter(db, retention.DeleterOptions{Holds: e.holds, OnChange: auditHook(db.Dialect), Blobs: e.blobs, DigestKey: testDigestKey})
	return e
}

func (e *env) newSweeper(db *sqldb.DB) *retention.Sweeper {
	return retention.NewSweeper(db, retention.SweeperOptions{
		Policy: e.policy, Holds: e.holds, OnChange: auditHook(db.Dialect), Blobs: e.blobs, IndexLag: e.indexLag, DigestKey: testDigestKey,
	})
}

// indexLag is the stand-in index's backlog (setLag).
func (e *env) indexLag(context.Context) (int64, error) {
	e.lagMu.Lock()
	defer e.lagMu.Unlock()
	return e.lag, nil
}

// pastGrace moves the holds' clock to the end of a release grace: the
// holds released just before stop preserving.
// place places a hold with scope s and returns its id.
func (e *env) place(s retention.HoldScope) string {
	e.t.Helper()
	h, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "M", Reason: "r", Scope: s}, cases.Actor{}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return h.ID
}

func (e *env) pastGrace() { e.clock.Advance(retention.DefaultHoldReleaseGrace) }

func (e *env) setLag(n int64) {
	e.lagMu.Lock()
	e.lag = n
	e.lagMu.Unlock()
}

func (e *env) customer() string {
	e.t.Helper()
	c := cases.Customer{ID: cases.NewID(), Name: "Li Lei", CreatedAt: base, UpdatedAt: base}
	if err := e.store.CreateCustomer(e.ctx, c, cases.Change{Action: "customer.create", TargetType: "customer", TargetID: c.ID}); err != nil {
		e.t.Fatal(err)
	}
	return c.ID
}

func (e *env) newCase(customerID string) string {
	e.t.Helper()
	c := cases.Case{ID: cases.NewID(), CustomerID: customerID, Subject: "Parcel lost", Status: cases.StatusOpen,
		Priority: cases.PriorityNormal, Channel: cases.ChannelEmail, CreatedAt: base, UpdatedAt: base}
	if err := e.store.CreateCase(e.ctx, &c, cases.Change{Action: "case.create", TargetType: "case", TargetID: c.ID}); err != nil {
		e.t.Fatal(err)
	}
	return c.ID
}

type contactOpt struct {
	body     string
	location bool
	device   bool
}

func (e *env) contact(caseID string, occurred time.Time, purposes []cases.Purpose, o contactOpt) cases.Contact {
	e.t.Helper()
	cs, err := e.store.GetCase(e.ctx, caseID)
	if err != nil {
		e.t.Fatal(err)
	}
	if o.body == "" {
		o.body = "my parcel never arrived, tracking says delivered"
	}
	c := cases.Contact{ID: cases.NewID(), CaseID: caseID, CustomerID: cs.CustomerID, Channel: cases.ChannelChat,
		Direction: cases.DirectionInbound, Author: "Li Lei", Body: o.body, OccurredAt: occurred, CreatedAt: occurred,
		Purposes: purposes, Categories: []cases.Category{cases.CategorySupportContent}}
	if o.location {
		c.Location = &cases.Location{Lat: 31.2, Lon: 121.5, Label: "Shanghai"}
		c.Categories = append(c.Categories, cases.CategoryLocation)
	}
	if o.device {
		c.Device = &cases.Device{IP: "203.0.113.7", UserAgent: "Firefox"}
		c.Categories = append(c.Categories, cases.CategoryDevice)
	}
	if err := e.store.CreateContact(e.ctx, &c, cases.Change{Action: "contact.create", TargetType: "contact", TargetID: c.ID}); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) attachment(c cases.Contact) string {
	e.t.Helper()
	id := cases.NewID()
	key := "attachments/" + c.CustomerID + "/" + id
	_, err := e.db.Write.ExecContext(e.ctx, e.db.Rebind(`INSERT INTO attachments (id, contact_id, case_id, customer_id, filename, content_type, size, sha256, blob_key, created_at)
		VALUES (?, ?, ?, ?, 'label.pdf', 'application/pdf', 3, 'abc', ?, 0)`), id, c.ID, c.CaseID, c.CustomerID, key)
	if err != nil {
		e.t.Fatal(err)
	}
	return key
}

func (e *env) setClosed(caseID string, at *time.Time) {
	e.t.Helper()
	_, err := e.store.UpdateCase(e.ctx, caseID, func(c *cases.Case) error {
		if at != nil {
			c.Status, c.ClosedAt = cases.StatusClosed, at
		} else {
			c.Status, c.ClosedAt = cases.StatusOpen, nil
		}
		return nil
	}, cases.Change{Action: "case.update", TargetType: "case", TargetID: caseID})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) sweep(now time.Time, dry bool) retention.RunReport {
	e.t.Helper()
	rep, err := e.sweeper.Run(e.ctx, retention.RunOptions{Now: now, DryRun: dry, BatchSize: 3})
	if err != nil {
		e.t.Fatalf("sweep at %s: %v", now.Format(time.DateOnly), err)
	}
	return rep
}

func (e *env) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.db.Read.QueryRowContext(e.ctx, e.db.Rebind(q), args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

func (e *env) exists(contactID string) bool {
	return e.count(`SELECT COUNT(*) FROM contacts WHERE id = ?`, contactID) == 1
}

type contactState struct {
	body, author     string
	location, device sql.NullString
	retainUntil      sql.NullInt64
	anonymized       sql.NullInt64
}

func (e *env) state(contactID string) (contactState, bool) {
	e.t.Helper()
	var s contactState
	err := e.db.Read.QueryRowContext(e.ctx, e.db.Rebind(`SELECT body, author, location, device, retain_until, anonymized_at FROM contacts WHERE id = ?`), contactID).
		Scan(&s.body, &s.author, &s.location, &s.device, &s.retainUntil, &s.anonymized)
	if err == sql.ErrNoRows {
		return s, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return s, true
}

// snapshot dumps the tables a sweep may change, for before/after comparison.
func (e *env) snapshot() string {
	e.t.Helper()
	var b strings.Builder
	for _, table := range []string{"customers", "cases", "contacts", "attachments", "outbox", "dispositions", "legal_holds", "audit_events", "retention_schedules"} {
		rows, err := e.db.Read.QueryContext(e.ctx, `SELECT * FROM `+table+` ORDER BY 1`)
		if err != nil {
			e.t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				e.t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %v\n", table, vals)
		}
		rows.Close()
	}
	return b.String()
}

func purposes(ps ...cases.Purpose) []cases.Purpose { return ps }

func tp(t time.Time) *time.Time { return &t }

type txT = *sql.Tx

// MatchingCases makes bodyMatcher a retention.BulkMatcher: sweeps and
// recording ask it once per batch (the per-case path stays in use by
// explain, deletions and edits).
func (m *bodyMatcher) MatchingCases(ctx context.Context, q search.Query, caseIDs []string) ([]string, error) {
	var out []string
	for _, id := range caseIDs {
		one := q
		one.Filter.CaseIDs = []string{id}
		ok, err := m.Matches(ctx, one, id)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, id)
		}
	}
	return out, nil
}
