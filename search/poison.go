package search

import (
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
