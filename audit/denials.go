package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Denied events are aggregated so that nobody can flood the trail: a client
// without a valid token can send thousands of requests a second, and one
// durable row (and one fsync) for each let 8 clients write 11,221 rows in 5 s.
//
// Per source (client IP), action and actor, the first denial of a window is
// recorded at once and durably, as before (so a single failed attempt is on
// record before its 401 leaves); the further ones of that window are counted
// in memory and written as one event when the window ends, or when the Log
// closes. That event is the first repeat's (its actor, target, request id)
// with Detail {"count": further denials, "first": , "last": , "window": ,
// "routes": {route: n}}. So a source costs at most two rows per action and
// window whatever its rate, and the sum over rows (1 for a plain event,
// count for an aggregate) is the number of denials.
//
// What a crash loses is the count of the current window's repeats, never the
// first denial. Memory is bounded by DefaultDenialKeys: past it, new sources
// share one key (client IP "*").

// DefaultDenialWindow is how long repeats of a denial are counted before
// their aggregate is written.
const DefaultDenialWindow = time.Minute

// DefaultDenialKeys bounds the sources counted in one window.
const DefaultDenialKeys = 10_000

// maxDenialRoutes bounds the routes listed in an aggregate.
const maxDenialRoutes = 32

// WithDenialWindow sets the aggregation window of denied events (default
// DefaultDenialWindow); 0 or less records every denial on its own.
func WithDenialWindow(d time.Duration) Option {
	return func(l *Log) { l.denyWindow = d }
}

// WithDenialKeys bounds how many sources are counted per window (default
// DefaultDenialKeys).
func WithDenialKeys(n int) Option {
	return func(l *Log) {
		if n > 0 {
			l.denyKeys = n
		}
	}
}

type denialKey struct {
	clientIP, action, actorID string
	window                    int64 // window start, Unix microseconds
}

type denial struct {
	ev          Event // the first repeat, the aggregate's template
	count       int
	first, last time.Time
	routes      map[string]int
	otherRoutes int
}

// denials counts repeated denials per key and window.
type denials struct {
	mu     sync.Mutex
	keys   map[denialKey]*denial
	closed bool // after the final flush nothing more is counted
}

// absorb counts ev when an earlier denial of its key and window was already
// recorded, and reports whether it did; false means ev is the first and must
// be recorded by the caller.
func (l *Log) absorb(ev Event) bool {
	// The event outlives the call (kept until its window is written), and a
	// caller's strings may point into a request buffer the next request on
	// the connection reuses (Fiber): keep copies.
	ev = detached(ev)
	win := ev.Time.Truncate(l.denyWindow).UnixMicro()
	k := denialKey{clientIP: ev.ClientIP, action: ev.Action, actorID: ev.ActorID, window: win}
	d := &l.denied
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	e, ok := d.keys[k]
	if !ok && len(d.keys) >= l.denyKeys {
		k.clientIP, k.actorID = "*", "*"
		e, ok = d.keys[k]
	}
	if !ok {
		d.keys[k] = &denial{}
		return false
	}
	if e.count == 0 {
		e.ev, e.first, e.routes = ev, ev.Time, map[string]int{}
	}
	e.count++
	e.last = ev.Time
	route := ev.TargetType + " " + ev.TargetID
	if _, seen := e.routes[route]; seen || len(e.routes) < maxDenialRoutes {
		e.routes[route]++
	} else {
		e.otherRoutes++
	}
	return true
}

// take removes the keys of windows that ended before now (all of them when
// all is set) and returns the aggregate events of those that had repeats.
func (l *Log) take(now time.Time, all bool) ([]Event, error) {
	cur := now.Truncate(l.denyWindow).UnixMicro()
	d := &l.denied
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = d.closed || all
	var evs []Event
	for k, e := range d.keys {
		if !all && k.window >= cur {
			continue
		}
		delete(d.keys, k)
		if e.count == 0 {
			continue
		}
		detail := map[string]any{
			"count": e.count, "first": e.first.Format(time.RFC3339Nano), "last": e.last.Format(time.RFC3339Nano),
			"window": time.UnixMicro(k.window).UTC().Format(time.RFC3339), "routes": e.routes,
		}
		if e.otherRoutes > 0 {
			detail["other_routes"] = e.otherRoutes
		}
		if k.clientIP == "*" {
			detail["sources"] = "many"
		}
		raw, err := json.Marshal(detail)
		if err != nil {
			return nil, fmt.Errorf("audit: denial detail: %w", err)
		}
		ev := e.ev
		ev.Time, ev.Detail = e.last, raw
		if ev, err = normalize(ev, l.now); err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}

	return evs, nil
}

// flushDenials writes the aggregates of the windows that ended (all of them
// when all is set) in one transaction.
func (l *Log) flushDenials(ctx context.Context, all bool) error {
	if l.denyWindow <= 0 {
		return nil
	}
	evs, err := l.take(l.now(), all)
	if err != nil || len(evs) == 0 {
		return err
	}
	if err := l.db.InTx(ctx, func(tx *sql.Tx) error {
		return appendNormalized(ctx, tx, l.runner(), evs)
	}); err != nil {
		return fmt.Errorf("audit: write %d denial aggregates: %w", len(evs), err)
	}
	return nil
}

// denialLoop writes each window's aggregates when it ends. A failed write is
// kept for Close to report: the counts are lost, the first denials are not.
func (l *Log) denialLoop() {
	defer close(l.denyStopped)
	for {
		now := l.now()
		next := now.Truncate(l.denyWindow).Add(l.denyWindow)
		select {
		case <-l.stop:
			return
		case <-l.after(next.Sub(now) + time.Millisecond):
		}
		if err := l.flushDenials(l.runCtx, false); err != nil {
			l.denyMu.Lock()
			l.denyErr = err
			l.denyMu.Unlock()
		}
	}
}

// detached is ev with its strings copied, so that nothing it holds shares
// memory with the caller's.
func detached(ev Event) Event {
	for _, f := range []*string{&ev.ActorID, &ev.ActorName, &ev.Role, &ev.Action, &ev.TargetType, &ev.TargetID, &ev.RequestID, &ev.ClientIP, &ev.Outcome} {
		*f = strings.Clone(*f)
	}
	return ev
}
