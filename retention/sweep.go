package retention

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// ErrSweepRunning is returned by Run while another sweep holds the lock
// (in this process, or on PostgreSQL in any replica).
var ErrSweepRunning = errors.New("a retention sweep is already running")

// errHoldsChanged aborts a batch whose hold snapshot went stale.
var errHoldsChanged = errors.New("holds changed during the batch")

// sweepLockKey is the PostgreSQL advisory lock of the sweeper (the
// migration lock is 7345001).
const sweepLockKey = 7345006

// Run statuses.
const (
	StatusRunning     = "running"
	StatusSucceeded   = "succeeded"
	StatusFailed      = "failed"
	StatusInterrupted = "interrupted"
	StatusDeferred    = "deferred: index behind"
)

// Item actions in a report.
const (
	ItemDelete     = "delete"
	ItemAnonymize  = "anonymize"
	ItemRedact     = "redact"
	ItemDeleteCase = "delete_case"
	ItemHeld       = "skip_held"
	ItemReschedule = "reschedule" // the stored date was stale; a new one was set
	ItemError      = "error"
)

// MaxReportItems bounds the items a report keeps; the counters stay exact.
const MaxReportItems = 1000

// BlobRemover deletes attachment blobs after the rows that named them are
// gone (archive.Blobs satisfies it). A blob left behind by a failure is an
// orphan the archive reconciler removes.
type BlobRemover interface {
	Delete(ctx context.Context, key string) error
}

// SweeperOptions wires a Sweeper.
type SweeperOptions struct {
	Policy *Policy
	Holds  *Holds
	// OnChange writes the audit event of each disposition, in its transaction.
	OnChange ChangeHook
	// Blobs removes the blobs of deleted attachments (nil: left to the reconciler).
	Blobs BlobRemover
	// IndexLag reports how many changes the search index has not applied
	// yet. With an active query hold and a lagging index, nothing expires.
	IndexLag func(ctx context.Context) (pending int64, err error)
	// Notify wakes the indexer after a batch appended outbox rows.
	Notify func()
	// Actor is recorded on the audit events (default: system).
	Actor cases.Actor
}

// Sweeper expires, anonymizes and minimizes contacts whose time has come.
type Sweeper struct {
	db   *sqldb.DB
	opts SweeperOptions
	mu   sync.Mutex // one sweep per process (the only lock on SQLite)
}

// NewSweeper builds a sweeper.
func NewSweeper(db *sqldb.DB, opts SweeperOptions) *Sweeper {
	if opts.Notify == nil {
		opts.Notify = func() {}
	}
	if opts.Actor == (cases.Actor{}) {
		opts.Actor = cases.Actor{Name: "retention-sweeper", Role: "system"}
	}
	return &Sweeper{db: db, opts: opts}
}

// RunOptions tunes one sweep.
type RunOptions struct {
	// ID names the run (default: a new id); the API creates it to answer 202.
	ID string
	// DryRun reports what would happen and changes nothing.
	DryRun bool
	// BatchSize bounds each selection and transaction (default 500).
	BatchSize int
	// Now is the sweep's clock (default: the current time).
	Now time.Time
}

// Item is one thing a sweep did (or, in a dry run, would do).
type Item struct {
	ContactID string   `json:"contact_id,omitempty"`
	CaseID    string   `json:"case_id"`
	Action    string   `json:"action"`
	Rule      string   `json:"rule,omitempty"`     // the deciding purpose
	Category  string   `json:"category,omitempty"` // for redactions
	HeldBy    []string `json:"held_by,omitempty"`
	Error     string   `json:"error,omitempty"`
}

// RunReport is the outcome of a sweep.
type RunReport struct {
	ID             string     `json:"id"`
	Status         string     `json:"status"`
	DryRun         bool       `json:"dry_run"`
	Examined       int        `json:"examined"`
	Deleted        int        `json:"deleted"`
	Anonymized     int        `json:"anonymized"`
	Redacted       int        `json:"redacted"`
	CasesDeleted   int        `json:"cases_deleted"`
	Rescheduled    int        `json:"rescheduled"`
	Recomputed     int        `json:"recomputed"` // dates brought up to the schedule first
	SkippedHeld    int        `json:"skipped_held"`
	Errors         int        `json:"errors"`
	Error          string     `json:"error,omitempty"`
	StartedAt      time.Time  `json:"started_at"`
	FinishedAt     *time.Time `json:"finished_at"`
	Items          []Item     `json:"items,omitempty"`
	ItemsTruncated bool       `json:"items_truncated,omitempty"`
}

func (r *RunReport) add(it Item) {
	switch it.Action {
	case ItemDelete:
		r.Deleted++
	case ItemAnonymize:
		r.Anonymized++
	case ItemRedact:
		r.Redacted++
	case ItemDeleteCase:
		r.CasesDeleted++
	case ItemHeld:
		r.SkippedHeld++
	case ItemReschedule:
		r.Rescheduled++
	case ItemError:
		r.Errors++
	}
	if len(r.Items) < MaxReportItems {
		r.Items = append(r.Items, it)
	} else {
		r.ItemsTruncated = true
	}
}

// lock takes the sweep lock; the returned function releases it.
func (s *Sweeper) lock(ctx context.Context) (func(), error) {
	if !s.mu.TryLock() {
		return nil, ErrSweepRunning
	}
	if s.db.Dialect != sqldb.Postgres {
		return s.mu.Unlock, nil
	}
	// A session lock on a dedicated connection: it lasts as long as the
	// connection, and dies with it if this process does.
	conn, err := s.db.Write.Conn(ctx)
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("sweep lock: %w: %w", sqldb.ErrUnavailable, err)
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, sweepLockKey).Scan(&ok); err != nil {
		conn.Close()
		s.mu.Unlock()
		return nil, fmt.Errorf("sweep lock: %w", err)
	}
	if !ok {
		conn.Close()
		s.mu.Unlock()
		return nil, ErrSweepRunning
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(uctx, `SELECT pg_advisory_unlock($1)`, sweepLockKey); err != nil {
			// Unlock failed: drop the connection so the server frees the lock.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
		s.mu.Unlock()
	}, nil
}

// Run sweeps once. Each batch commits on its own, so a sweep cut short (by
// ctx, a crash or an error) is simply resumed by the next one; running it
// again right after finds nothing. It returns ErrSweepRunning, without a
// report, when another sweep is running.
func (s *Sweeper) Run(ctx context.Context, opts RunOptions) (RunReport, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return RunReport{}, err
	}
	defer unlock()
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	opts.Now = opts.Now.UTC()
	if opts.ID == "" {
		opts.ID = cases.NewID()
	}
	rep := RunReport{ID: opts.ID, Status: StatusRunning, DryRun: opts.DryRun, StartedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := s.startRun(ctx, &rep); err != nil {
		return rep, err
	}
	runErr := s.sweep(ctx, opts, &rep)
	switch {
	case runErr != nil && (errors.Is(runErr, context.Canceled) || errors.Is(runErr, context.DeadlineExceeded)):
		rep.Status, rep.Error = StatusInterrupted, runErr.Error()
	case runErr != nil:
		rep.Status, rep.Error = StatusFailed, runErr.Error()
	case rep.Status == StatusRunning:
		rep.Status = StatusSucceeded
	}
	fin := time.Now().UTC().Truncate(time.Microsecond)
	rep.FinishedAt = &fin
	if err := s.finishRun(context.WithoutCancel(ctx), &rep); err != nil {
		return rep, errors.Join(runErr, err)
	}
	return rep, runErr
}

func (s *Sweeper) startRun(ctx context.Context, rep *RunReport) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		// We hold the sweep lock: any run still "running" died with its process.
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE retention_runs SET status = ? WHERE status = ?`), StatusInterrupted, StatusRunning); err != nil {
			return fmt.Errorf("sweep runs: %w", err)
		}
		doc, _ := json.Marshal(rep)
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO retention_runs (id, status, dry_run, started_at, report) VALUES (?, ?, ?, ?, ?)`),
			rep.ID, rep.Status, rep.DryRun, micros(rep.StartedAt), string(doc)); err != nil {
			return fmt.Errorf("sweep runs: %w", err)
		}
		return nil
	})
}

func (s *Sweeper) finishRun(ctx context.Context, rep *RunReport) error {
	doc, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("sweep report: %w", err)
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE retention_runs SET status = ?, finished_at = ?, report = ? WHERE id = ?`),
			rep.Status, nullMicros(rep.FinishedAt), string(doc), rep.ID); err != nil {
			return fmt.Errorf("sweep runs: %w", err)
		}
		return nil
	})
}

// GetRun reads a run's report; an unknown id gives cases.ErrNotFound.
func (s *Sweeper) GetRun(ctx context.Context, id string) (RunReport, error) {
	var doc string
	err := s.db.Read.QueryRowContext(ctx, s.db.Rebind(`SELECT report FROM retention_runs WHERE id = ?`), id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return RunReport{}, fmt.Errorf("retention run %s: %w", id, cases.ErrNotFound)
	}
	if err != nil {
		return RunReport{}, fmt.Errorf("retention run: %w: %w", sqldb.ErrUnavailable, err)
	}
	var rep RunReport
	if err := json.Unmarshal([]byte(doc), &rep); err != nil {
		return RunReport{}, fmt.Errorf("retention run %s: %w", id, err)
	}
	return rep, nil
}

// candidate is a contact selected for a disposition.
type candidate struct {
	id, caseID, customerID string
	occurred               time.Time
	key                    int64 // the keyset column: retain_until or occurred_at
	held                   []string
	holdErr                error
}

// snapshot is the hold state a batch was evaluated against.
type snapshot struct {
	version int64
	ev      *evaluator
}

func (s *Sweeper) loadHolds(ctx context.Context) (snapshot, error) {
	var v int64
	if err := s.db.Read.QueryRowContext(ctx, `SELECT holds_version FROM retention_state WHERE id = 1`).Scan(&v); err != nil {
		return snapshot{}, fmt.Errorf("holds: %w", err)
	}
	var holds []Hold
	var m QueryMatcher
	if s.opts.Holds != nil {
		var err error
		if holds, err = s.opts.Holds.active(ctx, nil); err != nil {
			return snapshot{}, err
		}
		m = s.opts.Holds.matcher
	} else if holds, err := (&Holds{db: s.db}).active(ctx, nil); err != nil {
		return snapshot{}, err
	} else if len(holds) > 0 {
		// Holds exist but nobody can evaluate queries: hold conservatively.
		return snapshot{version: v, ev: newEvaluator(nil, holds)}, nil
	}
	return snapshot{version: v, ev: newEvaluator(m, holds)}, nil
}

func (s *Sweeper) sweep(ctx context.Context, opts RunOptions, rep *RunReport) error {
	// After a schedule change, dates may be later than the schedule allows
	// until the recompute finished: finish it first, or due contacts would
	// not be selected.
	if pending, err := recomputePending(ctx, s.db, s.opts.Policy); err != nil {
		return err
	} else if pending && !opts.DryRun {
		res, err := Recompute(ctx, s.db, s.opts.Policy, RecomputeOptions{BatchSize: opts.BatchSize})
		rep.Recomputed = res.Changed
		if err != nil {
			return err
		}
	}
	snap, err := s.loadHolds(ctx)
	if err != nil {
		return err
	}
	if snap.ev.hasQueryHold() && s.opts.IndexLag != nil {
		pending, err := s.opts.IndexLag(ctx)
		if err != nil {
			return fmt.Errorf("index lag: %w", err)
		}
		if pending > 0 {
			rep.Status = StatusDeferred
			return nil
		}
	}
	// Expiry: the retain_until index, keyset on (retain_until, id) so that
	// held rows, which stay, are passed over rather than re-read.
	dry := &dryState{gone: map[string]bool{}, deleted: map[string]int{}}
	if err := s.phase(ctx, opts, rep, &snap, expiryPhase{now: opts.Now}, dry); err != nil {
		return err
	}
	sc := s.opts.Policy.Schedule()
	for _, r := range sc.Categories {
		col, ok := categoryColumns[r.Category]
		if !ok || !r.Keep.Valid() {
			continue
		}
		p := redactPhase{category: r.Category, column: col, cutoff: opts.Now.Add(-r.Keep.Std())}
		if err := s.phase(ctx, opts, rep, &snap, p, dry); err != nil {
			return err
		}
	}
	return nil
}

// categoryColumns maps the categories that live in a column of their own to
// it; other categories are part of the body and go with the contact.
var categoryColumns = map[cases.Category]string{
	cases.CategoryLocation: "location",
	cases.CategoryDevice:   "device",
}

// phase is one selection walked in batches.
type phase interface {
	// query selects the next batch after (key, id); args: key, key, id, limit.
	query() string
	bound() int64
	// apply handles one unheld candidate in tx (dry: decide only).
	apply(ctx context.Context, s *Sweeper, tx *sql.Tx, c candidate, runID string, now time.Time, dry bool, w *batchWork) (Item, error)
}

// batchWork collects what a batch must do once its items are applied.
type batchWork struct {
	cases   []string // outbox rows
	changes []cases.Change
	blobs   []string
	dry     *dryState
}

// dryState remembers what a dry run would have done so far, since the
// database cannot tell: contacts gone (deleted or anonymized, so later
// phases pass them over) and, per case, how many contacts were deleted.
type dryState struct {
	gone    map[string]bool
	deleted map[string]int
}

func (w *batchWork) touch(caseID string) {
	if !slices.Contains(w.cases, caseID) {
		w.cases = append(w.cases, caseID)
	}
}

func (s *Sweeper) phase(ctx context.Context, opts RunOptions, rep *RunReport, snap *snapshot, p phase, dry *dryState) error {
	lastKey, lastID := int64(-1<<63), ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch, err := s.selectBatch(ctx, p, lastKey, lastID, opts.BatchSize)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		full := len(batch) == opts.BatchSize
		lastKey, lastID = batch[len(batch)-1].key, batch[len(batch)-1].id
		batch = slices.DeleteFunc(batch, func(c candidate) bool { return dry.gone[c.id] })
		rep.Examined += len(batch)
		var items []Item
		for attempt := 0; ; attempt++ {
			if err := s.evaluate(ctx, snap, batch); err != nil {
				return err
			}
			items, err = s.applyBatch(ctx, p, snap, batch, opts, rep.ID, dry)
			if errors.Is(err, errHoldsChanged) && attempt < 3 {
				if *snap, err = s.loadHolds(ctx); err != nil {
					return err
				}
				continue
			}
			break
		}
		if err != nil && !errors.Is(err, errHoldsChanged) {
			// One bad row must not stop the rest: redo the batch one by one.
			items = items[:0]
			for _, c := range batch {
				its, err := s.applyBatch(ctx, p, snap, []candidate{c}, opts, rep.ID, dry)
				if err != nil {
					if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
						return err
					}
					its = []Item{{ContactID: c.id, CaseID: c.caseID, Action: ItemError, Error: err.Error()}}
				}
				items = append(items, its...)
			}
		} else if err != nil {
			return err
		}
		for _, it := range items {
			rep.add(it)
		}
		if !full {
			return nil
		}
	}
}

func (s *Sweeper) selectBatch(ctx context.Context, p phase, lastKey int64, lastID string, n int) ([]candidate, error) {
	rows, err := s.db.Read.QueryContext(ctx, s.db.Rebind(p.query()), p.bound(), lastKey, lastKey, lastID, n)
	if err != nil {
		return nil, fmt.Errorf("sweep select: %w", err)
	}
	defer rows.Close()
	var out []candidate
	for rows.Next() {
		var c candidate
		var occurred int64
		if err := rows.Scan(&c.id, &c.caseID, &c.customerID, &occurred, &c.key); err != nil {
			return nil, fmt.Errorf("sweep select: %w", err)
		}
		c.occurred = fromMicros(occurred)
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *Sweeper) evaluate(ctx context.Context, snap *snapshot, batch []candidate) error {
	for i := range batch {
		c := &batch[i]
		held, err := snap.ev.covering(ctx, ContactRef{ContactID: c.id, CaseID: c.caseID, CustomerID: c.customerID, OccurredAt: c.occurred})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.held, c.holdErr = holdIDs(held), err
	}
	return nil
}

// applyBatch applies one batch in one transaction (dry: without one).
func (s *Sweeper) applyBatch(ctx context.Context, p phase, snap *snapshot, batch []candidate, opts RunOptions, runID string, dry *dryState) ([]Item, error) {
	run := func(tx *sql.Tx, w *batchWork) ([]Item, error) {
		var items []Item
		for _, c := range batch {
			if len(c.held) > 0 {
				items = append(items, Item{ContactID: c.id, CaseID: c.caseID, Action: ItemHeld, HeldBy: c.held})
				continue
			}
			it, err := p.apply(ctx, s, tx, c, runID, opts.Now, opts.DryRun, w)
			if err != nil {
				return nil, fmt.Errorf("contact %s: %w", c.id, err)
			}
			if it.Action != "" {
				items = append(items, it)
			}
			if it.Action == ItemDelete {
				if gone, err := s.deleteCaseIfEmpty(ctx, tx, c, runID, opts.Now, opts.DryRun, w); err != nil {
					return nil, err
				} else if gone {
					items = append(items, Item{CaseID: c.caseID, Action: ItemDeleteCase, Rule: it.Rule})
				}
			}
		}
		return items, nil
	}
	if opts.DryRun {
		items, err := run(nil, &batchWork{dry: dry})
		for _, it := range items {
			if it.Action == ItemDelete || it.Action == ItemAnonymize {
				dry.gone[it.ContactID] = true
			}
		}
		return items, err
	}
	var items []Item
	w := &batchWork{}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		*w = batchWork{}
		v, err := lockState(ctx, s.db, tx)
		if err != nil {
			return err
		}
		if v != snap.version {
			return errHoldsChanged
		}
		var caseIDs []string
		for _, c := range batch {
			if len(c.held) == 0 && !slices.Contains(caseIDs, c.caseID) {
				caseIDs = append(caseIDs, c.caseID)
			}
		}
		slices.Sort(caseIDs)
		if err := lockCases(ctx, s.db, tx, caseIDs); err != nil {
			return err
		}
		if items, err = run(tx, w); err != nil {
			return err
		}
		now := micros(time.Now())
		for _, id := range w.cases {
			if _, err := s.db.Exec(ctx, tx, `INSERT INTO outbox (case_id, created_at) VALUES (?, ?)`, id, now); err != nil {
				return fmt.Errorf("outbox: %w", err)
			}
		}
		// Audit last: it takes the chain head lock, held until commit.
		if s.opts.OnChange != nil {
			for _, ch := range w.changes {
				if err := s.opts.OnChange(ctx, tx, ch); err != nil {
					return fmt.Errorf("audit: %w", err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(w.cases) > 0 {
		s.opts.Notify()
	}
	s.removeBlobs(ctx, w.blobs)
	return items, nil
}

func (s *Sweeper) removeBlobs(ctx context.Context, keys []string) {
	if s.opts.Blobs == nil || len(keys) == 0 {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	for _, k := range keys {
		_ = s.opts.Blobs.Delete(dctx, k) // an orphan is removed by the reconciler
	}
}

// liveContact is a contact as re-read inside the batch transaction.
type liveContact struct {
	caseID, customerID string
	author, body       string
	occurred           time.Time
	purposes           []cases.Purpose
	location, device   sql.NullString
	retainUntil        *time.Time
	closedAt           *time.Time
	anonymized         bool
}

func (s *Sweeper) readContact(ctx context.Context, tx *sql.Tx, id string) (liveContact, bool, error) {
	const q = `SELECT c.case_id, c.customer_id, c.author, c.body, c.occurred_at, c.purposes, c.location, c.device, c.retain_until, c.anonymized_at, k.closed_at
		FROM contacts c JOIN cases k ON k.id = c.case_id WHERE c.id = ?`
	var row *sql.Row
	if tx != nil {
		row = s.db.QueryRowTx(ctx, tx, q, id)
	} else {
		row = s.db.Read.QueryRowContext(ctx, s.db.Rebind(q), id)
	}
	var lc liveContact
	var occurred int64
	var ps string
	var until, anon, closed sql.NullInt64
	err := row.Scan(&lc.caseID, &lc.customerID, &lc.author, &lc.body, &occurred, &ps, &lc.location, &lc.device, &until, &anon, &closed)
	if errors.Is(err, sql.ErrNoRows) {
		return lc, false, nil
	}
	if err != nil {
		return lc, false, fmt.Errorf("read contact: %w", err)
	}
	if err := json.Unmarshal([]byte(ps), &lc.purposes); err != nil {
		return lc, false, fmt.Errorf("purposes: %w", err)
	}
	lc.occurred, lc.retainUntil, lc.closedAt, lc.anonymized = fromMicros(occurred), timePtr(until), timePtr(closed), anon.Valid
	return lc, true, nil
}

type attRef struct{ id, blobKey, sha string }

func (s *Sweeper) attachmentsOf(ctx context.Context, tx *sql.Tx, contactID string) ([]attRef, error) {
	const q = `SELECT id, blob_key, sha256 FROM attachments WHERE contact_id = ? ORDER BY id`
	var rows *sql.Rows
	var err error
	if tx != nil {
		rows, err = tx.QueryContext(ctx, s.db.Rebind(q), contactID)
	} else {
		rows, err = s.db.Read.QueryContext(ctx, s.db.Rebind(q), contactID)
	}
	if err != nil {
		return nil, fmt.Errorf("attachments: %w", err)
	}
	defer rows.Close()
	var out []attRef
	for rows.Next() {
		var a attRef
		if err := rows.Scan(&a.id, &a.blobKey, &a.sha); err != nil {
			return nil, fmt.Errorf("attachments: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// contentHash is the SHA-256 of what a disposition destroys, so that a
// later dispute can be settled by someone holding a copy, without the
// record itself keeping anything readable.
func contentHash(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (s *Sweeper) disposition(ctx context.Context, tx *sql.Tx, runID, contactID string, lc liveContact, rule, action, detail string, now time.Time, hash string, w *batchWork) error {
	id := cases.NewID()
	_, err := s.db.Exec(ctx, tx, `INSERT INTO dispositions (id, run_id, contact_id, case_id, customer_id, purposes, rule, action, detail, at, content_sha256)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, runID, contactID, lc.caseID, lc.customerID, mustJSON(lc.purposes), rule, action, detail, micros(now), hash)
	if err != nil {
		return fmt.Errorf("disposition: %w", err)
	}
	target, targetType := contactID, "contact"
	if action == ItemDeleteCase {
		target, targetType = lc.caseID, "case"
	}
	d := map[string]any{"case_id": lc.caseID, "rule": rule, "disposition_id": id, "run_id": runID}
	if detail != "" {
		d["category"] = detail
	}
	w.changes = append(w.changes, cases.Change{Actor: s.opts.Actor, Action: "retention." + action, TargetType: targetType, TargetID: target, Detail: d})
	w.touch(lc.caseID)
	return nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("retention: marshal %T: %v", v, err)) // only our own types reach here
	}
	return string(b)
}

// expiryPhase deletes or anonymizes contacts past retain_until.
type expiryPhase struct{ now time.Time }

func (p expiryPhase) bound() int64 { return micros(p.now) }

func (p expiryPhase) query() string {
	return `SELECT id, case_id, customer_id, occurred_at, retain_until FROM contacts
		WHERE retain_until IS NOT NULL AND retain_until <= ? AND (retain_until > ? OR (retain_until = ? AND id > ?))
		ORDER BY retain_until, id LIMIT ?`
}

func (p expiryPhase) apply(ctx context.Context, s *Sweeper, tx *sql.Tx, c candidate, runID string, now time.Time, dry bool, w *batchWork) (Item, error) {
	lc, ok, err := s.readContact(ctx, tx, c.id)
	if err != nil || !ok {
		return Item{}, err // already gone: another run finished it
	}
	// Decide on the schedule in force and the case as it is now, never on a
	// stored date that a schedule change or a reopen made stale.
	until, rule := s.opts.Policy.Schedule().RetainUntil(lc.purposes, lc.occurred, lc.closedAt)
	if lc.anonymized {
		until = nil
	}
	if until == nil || until.After(now) {
		if !dry {
			if _, err := s.db.Exec(ctx, tx, `UPDATE contacts SET retain_until = ? WHERE id = ?`, nullMicros(until), c.id); err != nil {
				return Item{}, fmt.Errorf("reschedule: %w", err)
			}
		}
		return Item{ContactID: c.id, CaseID: lc.caseID, Action: ItemReschedule, Rule: string(rule.Purpose)}, nil
	}
	it := Item{ContactID: c.id, CaseID: lc.caseID, Action: ItemDelete, Rule: string(rule.Purpose)}
	if rule.Action == ActionAnonymize {
		it.Action = ItemAnonymize
	}
	if dry {
		return it, nil
	}
	atts, err := s.attachmentsOf(ctx, tx, c.id)
	if err != nil {
		return Item{}, err
	}
	attSums := make([]string, len(atts))
	for i, a := range atts {
		attSums[i] = a.sha
		w.blobs = append(w.blobs, a.blobKey)
	}
	destroyed := map[string]any{"author": lc.author, "body": lc.body, "location": lc.location.String, "device": lc.device.String, "attachments": attSums}
	if _, err := s.db.Exec(ctx, tx, `DELETE FROM attachments WHERE contact_id = ?`, c.id); err != nil {
		return Item{}, fmt.Errorf("delete attachments: %w", err)
	}
	if it.Action == ItemAnonymize {
		if _, err := s.db.Exec(ctx, tx, `UPDATE contacts SET author = '', body = '', location = NULL, device = NULL, retain_until = NULL, anonymized_at = ? WHERE id = ?`,
			micros(now), c.id); err != nil {
			return Item{}, fmt.Errorf("anonymize: %w", err)
		}
	} else if _, err := s.db.Exec(ctx, tx, `DELETE FROM contacts WHERE id = ?`, c.id); err != nil {
		return Item{}, fmt.Errorf("delete contact: %w", err)
	}
	if err := s.disposition(ctx, tx, runID, c.id, lc, string(rule.Purpose), it.Action, "", now, contentHash(destroyed), w); err != nil {
		return Item{}, err
	}
	return it, nil
}

// deleteCaseIfEmpty removes a case whose last contact this sweep deleted.
// In a dry run it counts the case's contacts this batch would delete.
func (s *Sweeper) deleteCaseIfEmpty(ctx context.Context, tx *sql.Tx, c candidate, runID string, now time.Time, dry bool, w *batchWork) (bool, error) {
	var left int
	if dry {
		var total int
		if err := s.db.Read.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM contacts WHERE case_id = ?`), c.caseID).Scan(&total); err != nil {
			return false, fmt.Errorf("case contacts: %w", err)
		}
		w.dry.deleted[c.caseID]++
		return total-w.dry.deleted[c.caseID] == 0, nil
	}
	if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM contacts WHERE case_id = ?`), c.caseID).Scan(&left); err != nil {
		return false, fmt.Errorf("case contacts: %w", err)
	}
	if left > 0 {
		return false, nil
	}
	var subject string
	var customerID string
	if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT subject, customer_id FROM cases WHERE id = ?`), c.caseID).Scan(&subject, &customerID); err != nil {
		return false, fmt.Errorf("read case: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM cases WHERE id = ?`), c.caseID); err != nil {
		return false, fmt.Errorf("delete case: %w", err)
	}
	lc := liveContact{caseID: c.caseID, customerID: customerID, purposes: []cases.Purpose{}}
	if err := s.disposition(ctx, tx, runID, "", lc, "", ItemDeleteCase, "", now, contentHash(map[string]any{"subject": subject}), w); err != nil {
		return false, err
	}
	return true, nil
}

// redactPhase nulls one category column of contacts captured before cutoff.
type redactPhase struct {
	category cases.Category
	column   string
	cutoff   time.Time
}

func (p redactPhase) bound() int64 { return micros(p.cutoff) }

func (p redactPhase) query() string {
	return `SELECT id, case_id, customer_id, occurred_at, occurred_at FROM contacts
		WHERE ` + p.column + ` IS NOT NULL AND occurred_at <= ? AND (occurred_at > ? OR (occurred_at = ? AND id > ?))
		ORDER BY occurred_at, id LIMIT ?`
}

func (p redactPhase) apply(ctx context.Context, s *Sweeper, tx *sql.Tx, c candidate, runID string, now time.Time, dry bool, w *batchWork) (Item, error) {
	it := Item{ContactID: c.id, CaseID: c.caseID, Action: ItemRedact, Category: string(p.category), Rule: "category:" + string(p.category)}
	if dry {
		return it, nil
	}
	lc, ok, err := s.readContact(ctx, tx, c.id)
	if err != nil || !ok {
		return Item{}, err
	}
	val := lc.location
	if p.column == "device" {
		val = lc.device
	}
	if !val.Valid {
		return Item{}, nil // done by an earlier run
	}
	if _, err := s.db.Exec(ctx, tx, `UPDATE contacts SET `+p.column+` = NULL WHERE id = ?`, c.id); err != nil {
		return Item{}, fmt.Errorf("redact %s: %w", p.column, err)
	}
	if err := s.disposition(ctx, tx, runID, c.id, lc, it.Rule, ItemRedact, string(p.category), now, contentHash(val.String), w); err != nil {
		return Item{}, err
	}
	return it, nil
}
