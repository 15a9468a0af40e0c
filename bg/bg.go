// Package bg runs the server's background work (the indexer, cron jobs,
// backup and retention runs, rebuilds) so that a panic in it is recovered,
// logged at ERROR with its stack, counted in a metric and reported to
// readiness, instead of ending the process. Every goroutine the server
// starts for background work goes through a Guard: one place recovers.
//
// A Guard may be nil: it still recovers and returns the panic as an error,
// it only has nobody to tell (tests, CLI commands).
package bg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrPanic matches (errors.Is) every error a Guard made of a panic.
var ErrPanic = errors.New("panic")

// PanicError is a recovered panic.
type PanicError struct {
	Job   string    // what was running, e.g. "indexer" or "cron.backup"
	Value any       // what was passed to panic
	Stack string    // the goroutine's stack at the panic
	At    time.Time // when
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("%s: recovered from panic: %v", e.Job, e.Value)
}

// Is makes errors.Is(err, ErrPanic) true; an error passed to panic stays
// reachable through Unwrap.
func (e *PanicError) Is(target error) bool { return target == ErrPanic }

// Unwrap returns the panic value when it was an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Guard recovers, logs, counts and remembers panics of background jobs.
type Guard struct {
	log    *slog.Logger
	panics *prometheus.CounterVec

	mu     sync.Mutex
	failed map[string]*PanicError // job → its last run's panic, until it runs cleanly

	// running counts the goroutines Go started that have not returned, so
	// that a server stops only after its background work (a rebuild still
	// writing into the data directory, say) has.
	running sync.WaitGroup
}

// New returns a Guard logging to log and registering
// casevault_background_panics_total{job} with reg (either may be nil).
func New(log *slog.Logger, reg prometheus.Registerer) *Guard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Guard{
		log: log,
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "casevault_background_panics_total",
			Help: "Panics recovered in background work (indexer, cron jobs, backup and retention runs, rebuilds), by job.",
		}, []string{"job"}),
		failed: map[string]*PanicError{},
	}
	if reg != nil {
		reg.MustRegister(g.panics)
	}
	return g
}

// Run runs fn and returns its error; a panic in fn is recovered and
// returned as a *PanicError (after being logged, counted and remembered as
// the job's state until the job next returns without panicking).
func (g *Guard) Run(job string, fn func() error) (err error) {
	defer g.Recover(job, &err)
	return fn()
}

// Recover, deferred directly (defer g.Recover(job, &err)), turns a panic
// of the function deferring it into *errp, a *PanicError, reported like
// Run's; a function whose own deferred bookkeeping must see the failure
// (a run record marked failed) defers it after that bookkeeping.
func (g *Guard) Recover(job string, errp *error) {
	v := recover()
	if v == nil {
		if g != nil {
			g.clear(job)
		}
		return
	}
	pe := &PanicError{Job: job, Value: v, Stack: string(debug.Stack()), At: time.Now()}
	if g != nil {
		g.report(pe)
	}
	*errp = pe
}

// Func wraps fn for a scheduler (cron) that calls it in its own goroutine.
func (g *Guard) Func(job string, fn func()) func() {
	return func() { _ = g.Run(job, func() error { fn(); return nil }) }
}

// Go runs fn in a new goroutine under Run; use it for every background
// goroutine, so that none can take the process down, and Wait can wait
// for it.
func (g *Guard) Go(job string, fn func()) {
	if g == nil {
		go g.Func(job, fn)()
		return
	}
	g.running.Add(1)
	go func() {
		defer g.running.Done()
		g.Func(job, fn)()
	}()
}

// Wait waits until every goroutine Go started has returned, or ctx ends
// (then it returns ctx's error; the goroutines run on). Whoever stops the
// work cancels it first: Wait only waits.
func (g *Guard) Wait(ctx context.Context) error {
	if g == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		g.running.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("background work still running: %w", context.Cause(ctx))
	}
}

func (g *Guard) report(pe *PanicError) {
	g.log.Error("background job panicked; recovered", "job", pe.Job, "panic", fmt.Sprint(pe.Value), "stack", pe.Stack)
	g.panics.WithLabelValues(pe.Job).Inc()
	g.mu.Lock()
	g.failed[pe.Job] = pe
	g.mu.Unlock()
}

func (g *Guard) clear(job string) {
	g.mu.Lock()
	delete(g.failed, job)
	g.mu.Unlock()
}

// Failed returns, by job name, the jobs whose last run panicked.
func (g *Guard) Failed() []*PanicError {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*PanicError, 0, len(g.failed))
	for _, pe := range g.failed {
		out = append(out, pe)
	}
	slices.SortFunc(out, func(a, b *PanicError) int { return strings.Compare(a.Job, b.Job) })
	return out
}
