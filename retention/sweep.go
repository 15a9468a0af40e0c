package retention

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/casevault/casevault/bg"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// The sweeper is split by concern: this file runs a sweep (options, the
// lock-run-record frame, the phases in order); runs.go keeps the run
// records; batch.go walks a phase in batches and commits each; expiry.go
// and redact.go are the two kinds of phase; disposition.go is what every
// act of destruction records.

// BlobRemover removes attachment blobs after the rows that named them are
// gone (archive.Blobs satisfies it): Purge removes every stored version
// (a plain delete on a versioned bucket leaves the data readable by version
// id) and returns nil only once none is left. A blob left behind by a
// failure is purged by the next sweep, which finishes the disposition, or
// by the archive reconciler.
type BlobRemover interface {
	Purge(ctx context.Context, key string) error
}

// SweeperActor is the default actor of a sweep's audit events: a system
// actor under its own name, so the trail tells sweeps from other
// background work.
func SweeperActor() cases.Actor {
	a := cases.SystemActor()
	a.Name = "retention-sweeper"
	return a
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
	// DigestKey keys the digests of what dispositions destroyed (DigestKey
	// of the master key); nil keeps no digest.
	DigestKey []byte
	// Fields opens the content a disposition digests (nil: digested as
	// stored; tests without keys).
	Fields *sqlstore.Fields
	// IndexLag reports how many changes, of those committed when the sweep
	// starts (the change feed's head), the search index answering query
	// holds has not applied. With an active query hold and a lagging index,
	// nothing expires.
	IndexLag func(ctx context.Context) (pending int64, err error)
	// Notify wakes the indexer after a batch appended outbox rows.
	Notify func()
	// LegalHolds clears the S3 legal-hold flags of holds whose release
	// grace has ended (nil: the bucket has no object lock).
	LegalHolds LegalHolder
	// Actor is recorded on the audit events (default: SweeperActor).
	Actor cases.Actor
	// Guard recovers and reports a panic in a sweep, which then fails
	// (nil: recovered only).
	Guard *bg.Guard
	// Now is the clock of the run records' start and finish times and of a
	// run without RunOptions.Now (default: time.Now).
	Now func() time.Time
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
		opts.Actor = SweeperActor()
	}
	if opts.Now == nil {
		opts.Now = time.Now
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
	// Through the Guard, so the server waits for the sweep before it
	// closes the store.
	s.opts.Guard.Go("retention.start", func() {
		defer unlock()
		r, _ := s.finish(context.WithoutCancel(ctx), opts, rep) // the error is in the report
		done <- r
	})
	return rep.ID, done, nil
}

// begin takes the lock, settles the options and records the run.
func (s *Sweeper) begin(ctx context.Context, opts RunOptions) (RunReport, RunOptions, func(), error) {
	unlock, err := s.lockWhenEnded(ctx)
	if err != nil {
		return RunReport{}, opts, nil, err
	}

	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	opts.BatchSize = min(opts.BatchSize, 2000) // bounds IN lists and statement parameters
	if opts.Now.IsZero() {
		opts.Now = s.opts.Now()
	}
	opts.Now = opts.Now.UTC()
	if opts.ID == "" {
		opts.ID = cases.NewID()
	}

	rep := RunReport{ID: opts.ID, Status: StatusRunning, DryRun: opts.DryRun, StartedAt: s.opts.Now().UTC().Truncate(time.Microsecond)}
	if err := s.startRun(ctx, &rep); err != nil {
		unlock()
		return rep, opts, nil, err
	}
	return rep, opts, unlock, nil
}

// finish sweeps and records how the run ended.
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

	fin := s.opts.Now().UTC().Truncate(time.Microsecond)
	rep.FinishedAt = &fin
	if err := s.finishRun(context.WithoutCancel(ctx), &rep); err != nil {
		return rep, errors.Join(runErr, err)
	}
	return rep, runErr
}

// sweep runs the phases in order: expiry, then one redaction per category
// that lives in a column of its own.
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

	// Released holds whose grace has ended stop preserving now: their
	// storage flags go first, while their blobs are still known (this run
	// may delete them). A flag that cannot be cleared is counted and tried
	// again next run; it keeps a blob longer, it never loses one.
	if s.opts.LegalHolds != nil && s.opts.Holds != nil && !opts.DryRun {
		n, err := s.opts.Holds.ClearEndedGraceFlags(ctx, s.opts.LegalHolds)
		rep.FlagsCleared = n
		if err != nil {
			rep.Errors++
			rep.Error = fmt.Sprintf("legal-hold flags: %v", err)
		}
	}

	// Query holds record the cases written since their mark (their
	// reports then read less, and hold_changes is pruned); a failure here
	// only leaves that to the next report or sweep.
	if s.opts.Holds != nil && !opts.DryRun {
		_ = s.opts.Holds.CatchUp(ctx)
	}

	// Disposals whose blobs were not verified gone (the store was down)
	// are finished before new ones begin.
	if s.opts.Blobs != nil && !opts.DryRun {
		n, err := finishPurges(ctx, s.db, s.opts.Blobs, s.opts.Now().UTC(), opts.BatchSize)
		rep.PurgesFinished = n
		if err != nil {
			rep.Errors++
			rep.Error = fmt.Sprintf("blob purge: %v", err)
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
			// Query holds are judged by the index; one behind the feed head
			// recorded at the start (changes committed on any replica) could
			// miss a held contact, so nothing is decided this run.
			rep.Status = StatusDeferred
			rep.Error = fmt.Sprintf("query holds not evaluated: the search index is %d changes behind the change feed head recorded at the start of the sweep", pending)
			return nil
		}
	}

	// Expiry: the retain_until index, keyset on (retain_until, id) so that
	// held rows, which stay, are passed over rather than re-read.
	w := &walk{s: s, opts: opts, rep: rep, snap: &snap, dry: newDryState()}
	if err := w.phase(ctx, expiryPhase{now: opts.Now}); err != nil {
		return err
	}

	// The phases to walk follow the schedule in force now; each batch
	// re-decides under the one its transaction sees (expiry.go, redact.go).
	sc, err := s.opts.Policy.In(ctx, s.db.Read)
	if err != nil {
		return err
	}
	for _, r := range sc.Categories {
		col, ok := categoryColumns[r.Category]
		if !ok || !r.Keep.Valid() {
			continue
		}
		p := redactPhase{category: r.Category, column: col, cutoff: opts.Now.Add(-r.Keep.Std())}
		if err := w.phase(ctx, p); err != nil {
			return err
		}
	}

	// Last, the profiles this run (or an earlier one) left without a case.
	return s.sweepProfiles(ctx, opts, rep, sc.ProfileKeep())
}

// snapshot is the hold state a batch was evaluated against.
type snapshot struct {
	version int64
	ev      *evaluator
}

func (s *Sweeper) loadHolds(ctx context.Context) (snapshot, error) {
	var v int64
	if err := s.db.Read.QueryRowContext(ctx, `SELECT holds_version FROM retention_state WHERE id = 1`).Scan(&v); err != nil {
		return snapshot{}, sqldb.Fail("holds", err)
	}

	if s.opts.Holds != nil {
		holds, err := s.opts.Holds.active(ctx, nil)
		if err != nil {
			return snapshot{}, err
		}
		return snapshot{version: v, ev: newEvaluator(s.opts.Holds.matcher, holds).withRecorded(s.db, s.db.Read)}, nil
	}

	// Holds exist but nobody can evaluate queries: hold conservatively
	// (an evaluator without a matcher counts every query hold as covering).
	holds, err := (&Holds{db: s.db}).active(ctx, nil)
	if err != nil {
		return snapshot{}, err
	}
	return snapshot{version: v, ev: newEvaluator(nil, holds).withRecorded(s.db, s.db.Read)}, nil
}

// QueryHoldsInForce counts the holds preserving now (active, or released
// within their grace) whose scope has a query. Only a search index can
// tell what such a hold covers: a process without one must not sweep.
func (h *Holds) QueryHoldsInForce(ctx context.Context) (int, error) {
	holds, err := h.active(ctx, nil)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, x := range holds {
		if x.Scope.Query != "" {
			n++
		}
	}
	return n, nil
}
