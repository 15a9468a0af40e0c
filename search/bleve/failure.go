package bleve

import (
	"fmt"
	"sync/atomic"

	"github.com/blevesearch/bleve/v2/index/scorch"

	"github.com/casevault/casevault/search"
)

// Scorch persists and merges in its own goroutines and only reports their
// errors to a callback registered in a package-level map, and it retries a
// failed persist for ever without calling the batch's persisted callback.
// Worse, on a full disk its error paths close in-memory segments that the
// live snapshot still holds, and the next read of them panics inside zap
// ("assignment to entry in nil map"). So an engine watches scorch's error
// counter: the first asynchronous error since Open marks the engine broken,
// every later call answers search.ErrBroken without touching the index, and
// the indexer closes it and opens the index again from what reached the
// disk (search.Options.Reopen), replaying the outbox from there.

// asyncErrors returns scorch's count of asynchronous errors (persister,
// merger, introducer), or 0 for another index type.
func asyncErrors(st *scorch.Stats) uint64 {
	if st == nil {
		return 0
	}
	return atomic.LoadUint64(&st.TotOnErrors)
}

func scorchStats(adv any) *scorch.Stats {
	s, ok := adv.(*scorch.Scorch)
	if !ok {
		return nil
	}
	st, _ := s.Stats().(*scorch.Stats)
	return st
}

// failed returns the error that broke the engine, if any: an earlier one,
// or scorch having reported an asynchronous error since Open.
func (e *Engine) failed() error {
	if p := e.broken.Load(); p != nil {
		return *p
	}
	if n := asyncErrors(e.stats); n > e.errBase {
		return e.breakWith(fmt.Errorf("scorch reported %d background error(s) persisting or merging", n-e.errBase))
	}
	return nil
}

// breakWith marks the engine broken (the first cause wins) and returns the
// error every later call gets.
func (e *Engine) breakWith(cause error) error {
	err := fmt.Errorf("bleve: index %s: %w (%s): %w", e.name, search.ErrBroken, freeSpace(e.dir), cause)
	if e.broken.CompareAndSwap(nil, &err) {
		return err
	}
	return *e.broken.Load()
}
