package search

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// PoisonError reports cases an engine could not index however the batch
// was cut: a case too large for the engine's request limit, or one the
// engine rejects for good. Every other case of the batch was indexed. The
// indexer parks the named cases (alert and metric) and goes on with the
// feed instead of retrying the batch for ever.
type PoisonError struct {
	CaseIDs []string
	Err     error // the engine's error for the first of them
}

func (e *PoisonError) Error() string {
	return fmt.Sprintf("search: %d case(s) set aside, the engine rejects them (%s): %v",
		len(e.CaseIDs), strings.Join(e.CaseIDs, ", "), e.Err)
}

func (e *PoisonError) Unwrap() error { return e.Err }

// setAside parks the cases of a *PoisonError: they are logged at error
// level (the alert) and counted (SetAside, the metric), and the batch
// counts as done, so the feed goes on behind them. A later change of such
// a case brings it back through the feed. Any other error is returned.
func (ix *Indexer) setAside(ctx context.Context, err error) error {
	var pe *PoisonError
	if !errors.As(err, &pe) {
		return err
	}
	ix.poisoned.Add(int64(len(pe.CaseIDs)))
	ix.log.ErrorContext(ctx, "search: cases set aside, the engine rejects them; they stay unsearchable until changed or reindexed",
		"cases", pe.CaseIDs, "err", pe.Err)
	return nil
}

// SetAside reports how many cases were set aside as poison since start
// (casevault_index_set_aside_total).
func (ix *Indexer) SetAside() int64 { return ix.poisoned.Load() }
