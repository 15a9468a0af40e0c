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
	"strings"
	"sync"
	"time"

	"github.com/casevault/casevault/bg"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// ErrSweepRunning is returned by Run while another sweep holds the lock
// (in this process, or on PostgreSQL in any replica).
var ErrSweepRunning = errors.New("a retention sweep is already running")

// errHoldsChanged aborts a batch whose hold snapshot went stale.
var errHoldsChanged = errors.New("holds changed during the batch")

// sweepLockKey is the PostgreSQL advisory lock class of the sweeper (the
// migration lock is 7345001). Advisory locks are per database, so the
// second key is the schema: installations (and test runs) sharing one
// database in separate schemas do not block each other.
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
	OnChange cases.TxHook
	// OnChanges, when set, replaces OnChange and receives all the changes of
	// a batch at once, so an audit trail able to append many events under
	// one head lock can (one event per statement is the sweep's bottleneck
	// on PostgreSQL).
	OnChanges func(ctx context.Context, tx *sql.Tx, chs []cases.Change) error
	// Blobs removes the blobs of deleted attachments (nil: left to the reconciler).
	Blobs BlobRemover
	// IndexLag reports how many changes the search index has not applied
	// yet. With an active query hold and a lagging index, nothing expires.
	IndexLag func(ctx context.Context) (pending int64, err error)
	// Notify wakes the indexer after a batch appended outbox rows.
	Notify func()
	// Actor is recorded on the audit events (default: system).
	Actor cases.Actor
	// Guard recovers and reports a panic in a sweep, which then fails
	// (nil: recovered only).
	Guard *bg.Guard
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
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, hashtext(current_schema()))`, sweepLockKey).Scan(&ok); err != nil {
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
		if _, err := conn.ExecContext(uctx, `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`, sweepLockKey); err != nil {
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
	rep, opts, unlock, err := s.begin(ctx, opts)
	if err != nil {
		return rep, err
	}
	defer unlock()
	return s.finish(ctx, opts, rep)
}

// Start begins a sweep and returns once it is registered (so GetRun finds
// it): the API answers 202 with the id, or 409 on ErrSweepRunning. The
// sweep goes on in the background, detached from ctx's cancellation but not
// its values; its report arrives on the channel when it ends.
func (s *Sweeper) Start(ctx context.Context, opts RunOptions) (string, <-chan RunReport, error) {
	rep, opts, unlock, err := s.begin(ctx, opts)
	if err != nil {
		return "", nil, err
	}
	done := make(chan RunReport, 1)
	go func() {
		defer unlock()
		r, _ := s.finish(context.WithoutCancel(ctx), opts, rep) // the error is in the report
		done <- r
	}()
	return rep.ID, done, nil
}

func (s *Sweeper) begin(ctx context.Context, opts RunOptions) (RunReport, RunOptions, func(), error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return RunReport{}, opts, nil, err
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	opts.BatchSize = min(opts.BatchSize, 2000) // bounds IN lists and statement parameters
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	opts.Now = opts.Now.UTC()
	if opts.ID == "" {
		opts.ID = cases.NewID()
	}
	rep := RunReport{ID: opts.ID, Status: StatusRunning, DryRun: opts.DryRun, StartedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := s.startRun(ctx, &rep); err != nil {
		unlock()
		return rep, opts, nil, err
	}
	return rep, opts, unlock, nil
}

func (s *Sweeper) finish(ctx context.Context, opts RunOptions, rep RunReport) (RunReport, error) {
	// a panic fails the run (recorded) instead of the process
	runErr := s.opts.Guard.Run("retention.sweep", func() error { return s.sweep(ctx, opts, &rep) })
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
		if _, err := s.markInterrupted(ctx, tx); err != nil {
			return err
		}
		doc, _ := json.Marshal(rep)
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO retention_runs (id, status, dry_run, started_at, report) VALUES (?, ?, ?, ?, ?)`),
			rep.ID, rep.Status, rep.DryRun, sqldb.Micros(rep.StartedAt), string(doc)); err != nil {
			return fmt.Errorf("sweep runs: %w", err)
		}
		return nil
	})
}

// errDied is the error recorded for a run whose process died.
const errDied = "interrupted: the process running it stopped before it finished (crash, kill or power loss)"

// markInterrupted marks every run still "running" interrupted, in its
// status column and in its stored report (which GetRun returns). The
// caller holds the sweep lock, so none of them is alive.
func (s *Sweeper) markInterrupted(ctx context.Context, tx *sql.Tx) (int, error) {
	rows, err := tx.QueryContext(ctx, s.db.Rebind(`SELECT id, report FROM retention_runs WHERE status = ?`), StatusRunning)
	if err != nil {
		return 0, fmt.Errorf("sweep runs: %w", err)
	}
	type dead struct{ id, report string }
	var ds []dead
	for rows.Next() {
		var d dead
		if err := rows.Scan(&d.id, &d.report); err != nil {
			rows.Close()
			return 0, fmt.Errorf("sweep runs: %w", err)
		}
		ds = append(ds, d)
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("sweep runs: %w", err)
	}
	for _, d := range ds {
		var rep RunReport
		// A report that does not parse is replaced by a minimal one.
		_ = json.Unmarshal([]byte(d.report), &rep)
		rep.ID, rep.Status, rep.Error = d.id, StatusInterrupted, errDied
		doc, _ := json.Marshal(rep)
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE retention_runs SET status = ?, report = ? WHERE id = ? AND status = ?`),
			StatusInterrupted, string(doc), d.id, StatusRunning); err != nil {
			return 0, fmt.Errorf("sweep runs: %w", err)
		}
	}
	return len(ds), nil
}

// RecoverRuns marks the sweeps a crashed process left "running" as
// interrupted; the server calls it at start-up (a sweep marks them too
// when it starts, but the next one may be a day away). When another sweep
// holds the lock it does nothing: that sweep marked them when it began.
// On SQLite the lock is per process, so a sweep running in a separate CLI
// process at that moment would be marked too.
func (s *Sweeper) RecoverRuns(ctx context.Context) (int, error) {
	unlock, err := s.lock(ctx)
	if errors.Is(err, ErrSweepRunning) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer unlock()
	var n int
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = s.markInterrupted(ctx, tx)
		return err
	})
	return n, err
}

func (s *Sweeper) finishRun(ctx context.Context, rep *RunReport) error {
	doc, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("sweep report: %w", err)
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE retention_runs SET status = ?, finished_at = ?, report = ? WHERE id = ?`),
			rep.Status, sqldb.NullMicros(rep.FinishedAt), string(doc), rep.ID); err != nil {
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
	// query selects the next batch after (key, id); args: bound, key, key, id, limit.
	query() string
	bound() int64
	// apply handles the unheld candidates of a batch in tx; with tx nil (a
	// dry run) it only decides, reading from the read pool.
	apply(ctx context.Context, s *Sweeper, tx *sql.Tx, cands []candidate, runID string, now time.Time, w *batchWork) ([]Item, error)
}

// batchWork collects what a batch must write once its items are decided.
type batchWork struct {
	cases   []string // outbox rows
	disps   [][]any  // disposition rows
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
		c.occurred = sqldb.FromMicros(occurred)
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
	var items []Item
	var free []candidate
	for _, c := range batch {
		if len(c.held) > 0 {
			items = append(items, Item{ContactID: c.id, CaseID: c.caseID, Action: ItemHeld, HeldBy: c.held})
		} else {
			free = append(free, c)
		}
	}
	if len(free) == 0 {
		return items, nil
	}
	if opts.DryRun {
		its, err := p.apply(ctx, s, nil, free, runID, opts.Now, &batchWork{dry: dry})
		if err != nil {
			return nil, err
		}
		for _, it := range its {
			if it.Action == ItemDelete || it.Action == ItemAnonymize {
				dry.gone[it.ContactID] = true
			}
		}
		return append(items, its...), nil
	}
	var done []Item
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
		for _, c := range free {
			if !slices.Contains(caseIDs, c.caseID) {
				caseIDs = append(caseIDs, c.caseID)
			}
		}
		slices.Sort(caseIDs)
		if err := lockCases(ctx, s.db, tx, caseIDs); err != nil {
			return err
		}
		if done, err = p.apply(ctx, s, tx, free, runID, opts.Now, w); err != nil {
			return err
		}
		if err := s.insertDispositions(ctx, tx, w.disps); err != nil {
			return err
		}
		if err := sqlstore.Enqueue(ctx, s.db, tx, w.cases...); err != nil {
			return err
		}
		// Audit last: it takes the chain head lock, held until commit.
		if s.opts.OnChanges != nil && len(w.changes) > 0 {
			if err := s.opts.OnChanges(ctx, tx, w.changes); err != nil {
				return fmt.Errorf("audit: %w", err)
			}
		} else if s.opts.OnChange != nil {
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
	return append(items, done...), nil
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

// query runs q in tx, or on the read pool when tx is nil (dry run).
func (s *Sweeper) query(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	if tx != nil {
		return tx.QueryContext(ctx, s.db.Rebind(q), args...)
	}
	return s.db.Read.QueryContext(ctx, s.db.Rebind(q), args...)
}

func (s *Sweeper) execIn(ctx context.Context, tx *sql.Tx, q string, ids []string, pre ...any) error {
	if len(ids) == 0 {
		return nil
	}
	args := append(pre, sqldb.Args(ids)...)
	_, err := tx.ExecContext(ctx, s.db.Rebind(strings.Replace(q, "(?*)", "("+sqldb.Placeholders(len(ids))+")", 1)), args...)
	return err
}

// liveContact is a contact as re-read inside the batch transaction.
type liveContact struct {
	caseID, customerID string
	author, body       string
	occurred           time.Time
	purposes           []cases.Purpose
	location, device   sql.NullString
	closedAt           *time.Time
	anonymized         bool
}

func (s *Sweeper) readContacts(ctx context.Context, tx *sql.Tx, ids []string) (map[string]liveContact, error) {
	rows, err := s.query(ctx, tx, `SELECT c.id, c.case_id, c.customer_id, c.author, c.body, c.occurred_at, c.purposes, c.location, c.device, c.anonymized_at, k.closed_at
		FROM contacts c JOIN cases k ON k.id = c.case_id WHERE c.id IN (`+sqldb.Placeholders(len(ids))+`)`, sqldb.Args(ids)...)
	if err != nil {
		return nil, fmt.Errorf("read contacts: %w", err)
	}
	defer rows.Close()
	out := make(map[string]liveContact, len(ids))
	for rows.Next() {
		var id, ps string
		var lc liveContact
		var occurred int64
		var anon, closed sql.NullInt64
		if err := rows.Scan(&id, &lc.caseID, &lc.customerID, &lc.author, &lc.body, &occurred, &ps, &lc.location, &lc.device, &anon, &closed); err != nil {
			return nil, fmt.Errorf("read contacts: %w", err)
		}
		if err := json.Unmarshal([]byte(ps), &lc.purposes); err != nil {
			return nil, fmt.Errorf("contact %s purposes: %w", id, err)
		}
		lc.occurred, lc.closedAt, lc.anonymized = sqldb.FromMicros(occurred), sqldb.TimePtr(closed), anon.Valid
		out[id] = lc
	}
	return out, rows.Err()
}

type attRef struct{ blobKey, sha string }

func (s *Sweeper) attachmentsOf(ctx context.Context, tx *sql.Tx, contactIDs []string) (map[string][]attRef, error) {
	out := map[string][]attRef{}
	if len(contactIDs) == 0 {
		return out, nil
	}
	rows, err := s.query(ctx, tx, `SELECT contact_id, blob_key, sha256 FROM attachments WHERE contact_id IN (`+sqldb.Placeholders(len(contactIDs))+`) ORDER BY id`, sqldb.Args(contactIDs)...)
	if err != nil {
		return nil, fmt.Errorf("attachments: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var a attRef
		if err := rows.Scan(&id, &a.blobKey, &a.sha); err != nil {
			return nil, fmt.Errorf("attachments: %w", err)
		}
		out[id] = append(out[id], a)
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

// disposition queues the disposition record, audit event and outbox row of
// one act.
func (s *Sweeper) disposition(runID, contactID string, lc liveContact, rule, action, detail string, now time.Time, hash string, w *batchWork) {
	id := cases.NewID()
	w.disps = append(w.disps, []any{id, runID, contactID, lc.caseID, lc.customerID, mustJSON(lc.purposes), rule, action, detail, sqldb.Micros(now), hash})
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
}

func (s *Sweeper) insertDispositions(ctx context.Context, tx *sql.Tx, rows [][]any) error {
	const perStmt = 500
	for start := 0; start < len(rows); start += perStmt {
		chunk := rows[start:min(len(rows), start+perStmt)]
		args := make([]any, 0, len(chunk)*11)
		for _, r := range chunk {
			args = append(args, r...)
		}
		q := `INSERT INTO dispositions (id, run_id, contact_id, case_id, customer_id, purposes, rule, action, detail, at, content_sha256) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?,?,?,?),", len(chunk)), ",")
		if _, err := tx.ExecContext(ctx, s.db.Rebind(q), args...); err != nil {
			return fmt.Errorf("disposition: %w", err)
		}
	}
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

func (p expiryPhase) bound() int64 { return sqldb.Micros(p.now) }

func (p expiryPhase) query() string {
	return `SELECT id, case_id, customer_id, occurred_at, retain_until FROM contacts
		WHERE retain_until IS NOT NULL AND retain_until <= ? AND (retain_until > ? OR (retain_until = ? AND id > ?))
		ORDER BY retain_until, id LIMIT ?`
}

func (p expiryPhase) apply(ctx context.Context, s *Sweeper, tx *sql.Tx, cands []candidate, runID string, now time.Time, w *batchWork) ([]Item, error) {
	ids := make([]string, len(cands))
	for i, c := range cands {
		ids[i] = c.id
	}
	live, err := s.readContacts(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	sc := s.opts.Policy.Schedule()
	var items []Item
	var dels, anons, delCases []string
	rules := map[string]string{}
	for _, c := range cands {
		lc, ok := live[c.id]
		if !ok {
			continue // already gone: another run finished it
		}
		// Decide on the schedule in force and the case as it is now, never
		// on a stored date that a schedule change or a reopen made stale.
		until, rule := sc.RetainUntil(lc.purposes, lc.occurred, lc.closedAt)
		if lc.anonymized {
			until = nil
		}
		if until == nil || until.After(now) {
			if tx != nil {
				if _, err := s.db.Exec(ctx, tx, `UPDATE contacts SET retain_until = ? WHERE id = ?`, sqldb.NullMicros(until), c.id); err != nil {
					return nil, fmt.Errorf("reschedule: %w", err)
				}
			}
			items = append(items, Item{ContactID: c.id, CaseID: lc.caseID, Action: ItemReschedule, Rule: string(rule.Purpose)})
			continue
		}
		it := Item{ContactID: c.id, CaseID: lc.caseID, Action: ItemDelete, Rule: string(rule.Purpose)}
		if rule.Action == ActionAnonymize {
			it.Action = ItemAnonymize
			anons = append(anons, c.id)
		} else {
			dels = append(dels, c.id)
			if !slices.Contains(delCases, lc.caseID) {
				delCases = append(delCases, lc.caseID)
			}
			rules[lc.caseID] = it.Rule
		}
		items = append(items, it)
	}
	gone, err := s.emptyCases(ctx, tx, delCases, dels, live, w)
	if err != nil {
		return nil, err
	}
	for _, id := range gone {
		items = append(items, Item{CaseID: id, Action: ItemDeleteCase, Rule: rules[id]})
	}
	if tx == nil {
		return items, nil
	}
	both := append(slices.Clone(dels), anons...)
	atts, err := s.attachmentsOf(ctx, tx, both)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if it.Action != ItemDelete && it.Action != ItemAnonymize {
			continue
		}
		lc := live[it.ContactID]
		sums := []string{}
		for _, a := range atts[it.ContactID] {
			sums = append(sums, a.sha)
			w.blobs = append(w.blobs, a.blobKey)
		}
		destroyed := map[string]any{"author": lc.author, "body": lc.body, "location": lc.location.String, "device": lc.device.String, "attachments": sums}
		s.disposition(runID, it.ContactID, lc, it.Rule, it.Action, "", now, contentHash(destroyed), w)
	}
	if err := s.execIn(ctx, tx, `DELETE FROM attachments WHERE contact_id IN (?*)`, both); err != nil {
		return nil, fmt.Errorf("delete attachments: %w", err)
	}
	if err := s.execIn(ctx, tx, `DELETE FROM contacts WHERE id IN (?*)`, dels); err != nil {
		return nil, fmt.Errorf("delete contacts: %w", err)
	}
	if err := s.execIn(ctx, tx, `UPDATE contacts SET author = '', body = '', location = NULL, device = NULL, retain_until = NULL, anonymized_at = ? WHERE id IN (?*)`, anons, sqldb.Micros(now)); err != nil {
		return nil, fmt.Errorf("anonymize: %w", err)
	}
	if err := s.deleteCases(ctx, tx, gone, runID, now, w); err != nil {
		return nil, err
	}
	return items, nil
}

// emptyCases returns the cases of caseIDs that deleting dels leaves without
// contacts (a dry run counts what it would have deleted so far).
func (s *Sweeper) emptyCases(ctx context.Context, tx *sql.Tx, caseIDs, dels []string, live map[string]liveContact, w *batchWork) ([]string, error) {
	if len(caseIDs) == 0 {
		return nil, nil
	}
	rows, err := s.query(ctx, tx, `SELECT case_id, COUNT(*) FROM contacts WHERE case_id IN (`+sqldb.Placeholders(len(caseIDs))+`) GROUP BY case_id`, sqldb.Args(caseIDs)...)
	if err != nil {
		return nil, fmt.Errorf("case contacts: %w", err)
	}
	left := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("case contacts: %w", err)
		}
		left[id] = n
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("case contacts: %w", err)
	}
	for _, id := range dels {
		cs := live[id].caseID
		left[cs]--
		if w.dry != nil {
			w.dry.deleted[cs]++
		}
	}
	var out []string
	for _, cs := range caseIDs {
		n := left[cs]
		if w.dry != nil {
			n = left[cs] + countOf(dels, live, cs) - w.dry.deleted[cs]
		}
		if n == 0 {
			out = append(out, cs)
		}
	}
	return out, nil
}

func countOf(dels []string, live map[string]liveContact, caseID string) int {
	n := 0
	for _, id := range dels {
		if live[id].caseID == caseID {
			n++
		}
	}
	return n
}

func (s *Sweeper) deleteCases(ctx context.Context, tx *sql.Tx, ids []string, runID string, now time.Time, w *batchWork) error {
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.QueryContext(ctx, s.db.Rebind(`SELECT id, subject, customer_id FROM cases WHERE id IN (`+sqldb.Placeholders(len(ids))+`)`), sqldb.Args(ids)...)
	if err != nil {
		return fmt.Errorf("read cases: %w", err)
	}
	for rows.Next() {
		var id, subject, customerID string
		if err := rows.Scan(&id, &subject, &customerID); err != nil {
			rows.Close()
			return fmt.Errorf("read cases: %w", err)
		}
		lc := liveContact{caseID: id, customerID: customerID, purposes: []cases.Purpose{}}
		s.disposition(runID, "", lc, "", ItemDeleteCase, "", now, contentHash(map[string]any{"subject": subject}), w)
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("read cases: %w", err)
	}
	if err := s.execIn(ctx, tx, `DELETE FROM cases WHERE id IN (?*)`, ids); err != nil {
		return fmt.Errorf("delete cases: %w", err)
	}
	return nil
}

// redactPhase nulls one category column of contacts captured before cutoff.
type redactPhase struct {
	category cases.Category
	column   string
	cutoff   time.Time
}

func (p redactPhase) bound() int64 { return sqldb.Micros(p.cutoff) }

func (p redactPhase) query() string {
	return `SELECT id, case_id, customer_id, occurred_at, occurred_at FROM contacts
		WHERE ` + p.column + ` IS NOT NULL AND occurred_at <= ? AND (occurred_at > ? OR (occurred_at = ? AND id > ?))
		ORDER BY occurred_at, id LIMIT ?`
}

func (p redactPhase) apply(ctx context.Context, s *Sweeper, tx *sql.Tx, cands []candidate, runID string, now time.Time, w *batchWork) ([]Item, error) {
	ids := make([]string, len(cands))
	for i, c := range cands {
		ids[i] = c.id
	}
	rows, err := s.query(ctx, tx, `SELECT id, case_id, customer_id, purposes, `+p.column+` FROM contacts WHERE `+p.column+` IS NOT NULL AND id IN (`+sqldb.Placeholders(len(ids))+`) ORDER BY occurred_at, id`, sqldb.Args(ids)...)
	if err != nil {
		return nil, fmt.Errorf("redact %s: %w", p.column, err)
	}
	var items []Item
	var found []string
	rule := "category:" + string(p.category)
	for rows.Next() {
		var id, ps, val string
		var lc liveContact
		if err := rows.Scan(&id, &lc.caseID, &lc.customerID, &ps, &val); err != nil {
			rows.Close()
			return nil, fmt.Errorf("redact %s: %w", p.column, err)
		}
		if err := json.Unmarshal([]byte(ps), &lc.purposes); err != nil {
			rows.Close()
			return nil, fmt.Errorf("contact %s purposes: %w", id, err)
		}
		items = append(items, Item{ContactID: id, CaseID: lc.caseID, Action: ItemRedact, Category: string(p.category), Rule: rule})
		found = append(found, id)
		if tx != nil {
			s.disposition(runID, id, lc, rule, ItemRedact, string(p.category), now, contentHash(val), w)
		}
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("redact %s: %w", p.column, err)
	}
	if tx != nil {
		if err := s.execIn(ctx, tx, `UPDATE contacts SET `+p.column+` = NULL WHERE id IN (?*)`, found); err != nil {
			return nil, fmt.Errorf("redact %s: %w", p.column, err)
		}
	}
	return items, nil
}
