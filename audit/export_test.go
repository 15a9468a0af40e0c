package audit

import (
	"context"
	"time"

	"github.com/casevault/casevault/sqldb"
)

// SetPruneStep lets tests prune in small steps to exercise the batching.
func SetPruneStep(l *Log, n int64) { l.pruneStep = n }

// VerifySQL forces the database/sql walk (used on SQLite) on any engine.
var VerifySQL = (*Log).verifySQL

// WithDenialTimer replaces how the denial loop waits for a window's end, so
// a test can end a window by moving its clock and firing the timer.
func WithDenialTimer(after func(time.Duration) <-chan time.Time) Option {
	return func(l *Log) { l.after = after }
}

// OldestPendingQuery is the sequencer's look for pending events.
const OldestPendingQuery = qOldestPending

// InsertPendingQuery appends one event unsequenced (tests stage pending
// rows with it).
const InsertPendingQuery = insertPending

// ChainQuery is List's read of the chain for f, continuing from the
// sequenced event seq (at its time at, in a list in time order; 0: from
// the newest); busy as Log.busyActor decides, and actions, when not nil,
// the actions an action prefix is read as (Log.prefixActions).
func ChainQuery(f Filter, seq, at int64, limit int, busy bool, actions []string) (string, []any, error) {
	r := reads{timeIndex: busy, byActions: actions != nil, actions: actions}
	return f.chainQuery(position{seq: seq, at: at, timed: f.timed() && seq > 0}, limit, r)
}

// PrefixActions is Log.prefixActions: whether f's action prefix is read
// as the actions it matches, and which.
func PrefixActions(ctx context.Context, l *Log, q sqldb.Querier, f Filter) (bool, []string, error) {
	r, err := l.prefixActions(ctx, q, f)
	return r.byActions, r.actions, err
}

// BusyActor is Log.busyActor.
var BusyActor = (*Log).busyActor

// ExportQuery is Export's read of the trail for f (rebound).
var ExportQuery = (*Log).exportQuery

// SetBusy sets from how many events an actor or an action prefix counts
// as busy (Log.busyActor, Log.exportQuery), so a test trail can hold busy ones.
func SetBusy(l *Log, n int) { l.busy = n }
