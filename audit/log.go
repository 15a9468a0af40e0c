package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/casevault/casevault/sqldb"
)

// DefaultRetention is how long audit events are kept (purpose "security"):
// two years.
const DefaultRetention = 2 * 365 * 24 * time.Hour

// RetentionPurpose is the retention purpose the audit trail is kept for.
const RetentionPurpose = "security"

// DefaultMaxBatch bounds how many concurrent Record calls share one commit.
const DefaultMaxBatch = 256

// Log records, verifies, lists, exports and prunes the audit trail. It is
// safe for concurrent use; Close it to stop its batching goroutine.
type Log struct {
	db        *sqldb.DB
	now       func() time.Time
	retention time.Duration
	maxBatch  int
	pruneStep int64
	keep      KeepFunc
	// busy: see busyActor and exportQuery (query.go).
	busy int

	reqs      chan request
	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
	runCtx    context.Context
	cancelRun context.CancelFunc

	// Denied events: see denials.go.
	denyWindow  time.Duration
	denyKeys    int
	denied      denials
	denyStopped chan struct{}
	denyMu      sync.Mutex
	denyErr     error
	// after is how the denial loop waits for a window's end on l.now's
	// clock (time.After; tests fire it by hand with a clock they move).
	after func(time.Duration) <-chan time.Time

	// Deferred sequencing: see sequencer.go.
	deferred   bool
	seqEvery   time.Duration
	seqBatch   int
	seqStop    chan struct{}
	seqOnce    sync.Once
	seqStopped chan struct{}
	seqMu      sync.Mutex
	seqState   SequencerState
	observe    func(delay time.Duration)
	fault      func(point string)
	// vacuumEvery and pendingChurn: the sequencer vacuums audit_pending
	// (WithVacuumEvery).
	vacuumEvery  int64
	pendingChurn *sqldb.Churn
}

type request struct {
	ev   Event
	done chan error
}

// Option configures a Log.
type Option func(*Log)

// WithClock sets the clock used for event times and retention (default
// time.Now).
func WithClock(now func() time.Time) Option {
	return func(l *Log) {
		if now != nil {
			l.now = now
		}
	}
}

// KeepFunc returns a SQL condition on audit_events rows (with its
// arguments) naming the events Prune must keep for now, such as those
// about an active legal hold; "" keeps none. now is the log's clock.
type KeepFunc func(now time.Time) (cond string, args []any)

// WithKeep makes Prune keep the events keep names, and everything after
// the first of them (the trail is pruned as a prefix, so it stays one
// chain), until keep no longer names them.
func WithKeep(keep KeepFunc) Option {
	return func(l *Log) { l.keep = keep }
}

// WithRetention sets how long events are kept before PruneExpired removes
// them (default DefaultRetention). Non-positive values are ignored.
func WithRetention(d time.Duration) Option {
	return func(l *Log) {
		if d > 0 {
			l.retention = d
		}
	}
}

// WithMaxBatch bounds how many Record calls one commit may carry; 1 turns
// batching off.
func WithMaxBatch(n int) Option {
	return func(l *Log) {
		if n > 0 {
			l.maxBatch = n
		}
	}
}

// WithVacuumEvery sets how many sequenced events' pending rows the
// sequencer lets gather before it vacuums audit_pending on PostgreSQL
// (default sqldb.DefaultVacuumEvery).
func WithVacuumEvery(n int64) Option {
	return func(l *Log) { l.vacuumEvery = n }
}

// New builds a Log on a migrated database and starts the goroutine that
// groups concurrent Record calls into shared commits.
func New(db *sqldb.DB, opts ...Option) *Log {
	l := &Log{
		db:        db,
		now:       time.Now,
		retention: DefaultRetention,
		maxBatch:  DefaultMaxBatch,
		pruneStep: 50_000,
		busy:      busyEvents,
		reqs:      make(chan request),
		stop:      make(chan struct{}),
		stopped:   make(chan struct{}),

		denyWindow:  DefaultDenialWindow,
		denyKeys:    DefaultDenialKeys,
		denied:      denials{keys: map[denialKey]*denial{}},
		denyStopped: make(chan struct{}),
		after:       time.After,

		seqBatch:   DefaultSequenceBatch,
		seqStop:    make(chan struct{}),
		seqStopped: make(chan struct{}),
	}
	for _, o := range opts {
		o(l)
	}
	l.pendingChurn = sqldb.NewChurn(db, "audit_pending", l.vacuumEvery)
	l.runCtx, l.cancelRun = context.WithCancel(context.Background())
	go l.loop()
	if l.deferred && l.seqEvery > 0 {
		go l.sequencerLoop()
	} else {
		close(l.seqStopped)
	}
	if l.denyWindow > 0 {
		go l.denialLoop()
	} else {
		close(l.denyStopped)
	}
	return l
}

// Retention reports how long events are kept.
func (l *Log) Retention() time.Duration { return l.retention }

// Record appends ev in its own transaction and returns once it is committed
// (durably: SQLite runs with synchronous=FULL), so a read is on record before
// its response is sent. Use it for reads and for authentication and
// authorization failures; changes use AppendTx or Change inside their own
// transaction instead.
//
// Concurrent calls are grouped into one transaction by a single goroutine
// (group commit: a batch is whatever queued up while the previous commit
// ran, so a lone call waits for nothing). Every caller of a batch gets the
// batch's commit result; none is told ok before the commit succeeded. When
// ctx ends first Record returns ctx.Err(), and the event may still be
// committed.
//
// Denied events (outcome denied) are the exception: only the first of its
// source, action and actor in a window is recorded this way; the rest are
// counted and written as one aggregate event when the window ends or the Log
// closes (see denials.go), and Record returns nil for them at once.
//
// Never call Record from inside a write transaction (InTx): on SQLite that
// transaction holds the only write connection Record needs. Use AppendTx
// there.
func (l *Log) Record(ctx context.Context, ev Event) error {
	ev, err := normalizeCaller(ev, l.now)
	if err != nil {
		return err
	}
	r := request{ev: ev, done: make(chan error, 1)}
	select {
	case <-l.stop:
		return ErrClosed
	default:
	}
	if ev.Outcome == OutcomeDenied && l.denyWindow > 0 && l.absorb(ev) {
		return nil
	}
	select {
	case l.reqs <- r:
	case <-l.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Log) loop() {
	defer close(l.stopped)
	batch := make([]request, 0, l.maxBatch)
	evs := make([]Event, 0, l.maxBatch)
	for {
		select {
		case <-l.stop:
			return
		case r := <-l.reqs:
			batch = append(batch[:0], r)
		}
	fill:
		for len(batch) < l.maxBatch {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		evs = evs[:0]
		for _, r := range batch {
			evs = append(evs, r.ev)
		}
		err := l.db.InTx(l.runCtx, func(tx *sql.Tx) error {
			return l.appendEvents(l.runCtx, tx, evs)
		})
		for _, r := range batch {
			r.done <- err
		}
	}
}

// Close stops accepting Record calls, lets the batch in flight commit and
// waits for the batching goroutine, then writes the aggregates of the denied
// events still being counted. When ctx ends first, the batch in flight is
// cancelled (its callers get an error: nothing acknowledged is lost) and
// ctx.Err() is returned. With WithSequencer, the sequencer then makes a
// last pass (what it leaves, the next replica or start sequences). Close is
// idempotent; it does not close the database.
func (l *Log) Close(ctx context.Context) error {
	l.closeOnce.Do(func() { close(l.stop) })
	select {
	case <-l.stopped:
	case <-ctx.Done():
		l.cancelRun()
		<-l.stopped
		<-l.denyStopped
		l.seqOnce.Do(func() { close(l.seqStop) })
		<-l.seqStopped
		return ctx.Err()
	}
	<-l.denyStopped
	err := l.flushDenials(ctx, true)
	// The sequencer's last pass numbers what the denials just wrote too.
	l.seqOnce.Do(func() { close(l.seqStop) })
	<-l.seqStopped
	l.cancelRun()
	l.denyMu.Lock()
	err, l.denyErr = errors.Join(l.denyErr, err), nil
	l.denyMu.Unlock()
	return err
}

// Change runs fn in a write transaction and appends ev in the same
// transaction after it, so the change and its audit event commit together or
// not at all. fn may fill in ev (the id of a created record, counts). When fn
// fails, nothing of the change is kept, ev is recorded with outcome error in
// its own transaction, and fn's error is returned.
func (l *Log) Change(ctx context.Context, ev Event, fn func(tx *sql.Tx, ev *Event) error) error {
	if ev.Outcome == "" {
		ev.Outcome = OutcomeOK
	}
	if _, err := normalizeCaller(ev, l.now); err != nil {
		return err
	}
	err := l.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := fn(tx, &ev); err != nil {
			return &fnError{err}
		}
		n, err := normalizeCaller(ev, l.now)
		if err != nil {
			return err
		}
		return l.appendEvents(ctx, tx, []Event{n})
	})
	var fe *fnError
	if errors.As(err, &fe) {
		ev.Outcome = OutcomeError
		if rerr := l.Record(ctx, ev); rerr != nil {
			return errors.Join(fe.err, fmt.Errorf("audit: record failed change: %w", rerr))
		}
		return fe.err
	}
	return err
}

type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }
func (e *fnError) Unwrap() error { return e.err }
