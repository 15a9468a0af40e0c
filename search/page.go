package search

import "fmt"

// Page size bounds every engine applies. Deep pages are reached with
// Offset; there is no cap on it, every page is cut from the full set of
// matching cases.
const (
	DefaultLimit = 20
	MaxLimit     = 1000
)

// Window is the order and page a query asks for, normalised the same way
// for every engine.
type Window struct {
	Sort   SortOrder
	Offset int
	Limit  int
}

// Window normalises the query's order and page: relevance without words
// or phrases has nothing to rank, so such a query is ordered newest first;
// a limit of zero or less is DefaultLimit, one above MaxLimit is MaxLimit,
// a negative offset is 0. An unknown sort order is an error.
func (q Query) Window() (Window, error) {
	w := Window{Sort: q.Sort, Offset: max(q.Offset, 0), Limit: q.Limit}
	if w.Sort == SortRelevance && !q.HasText() {
		w.Sort = SortNewest
	}

	switch w.Sort {
	case SortRelevance, SortNewest, SortOldest, SortUpdated:
	default:
		return Window{}, fmt.Errorf("unknown sort order %q", q.Sort)
	}

	if w.Limit <= 0 {
		w.Limit = DefaultLimit
	}
	w.Limit = min(w.Limit, MaxLimit)
	return w, nil
}
