package bleve

import (
	"context"
	"math"
	"sync/atomic"
	"time"

	bv "github.com/blevesearch/bleve/v2"

	"github.com/casevault/casevault/search"
)

// Stats exposes Bleve's index statistics to the benchmark.
func (e *Engine) Stats() map[string]any { return e.idx.StatsMap() }

// InternalKeys counts the entries of scorch's internal store, which scorch
// copies on every batch and merge: it must not grow with the corpus.
func (e *Engine) InternalKeys() (int, error) {
	r, err := e.reader()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	sv, err := e.cols.forReader(context.Background(), r)
	if err != nil {
		return 0, err
	}
	return len(sv.snap.Internal()), nil
}

// DocCount is the number of Bleve documents (contacts and case-only
// documents), where Count is the number of cases.
func (e *Engine) DocCount() (uint64, error) { return e.idx.DocCount() }

// RawIndex is the Bleve index itself, for the benchmark's reference
// (bleve.Search on the same index, no engine in between).
func (e *Engine) RawIndex() bv.Index { return e.idx }

// SearchWithoutDisjunctiveFacets is Search without the re-runs that make
// facets disjunctive, for the benchmark's cost of those.
func (e *Engine) SearchWithoutDisjunctiveFacets(ctx context.Context, q search.Query) (search.Result, error) {
	return e.search(ctx, q, false)
}

// SearchByWalk is Search with every match walked by Bleve's searchers in
// one goroutine (no bitmap prefilter, no split): the reference for the
// prefilter's and the split walk's results.
func (e *Engine) SearchByWalk(ctx context.Context, q search.Query) (search.Result, error) {
	old := e.splitMin
	e.splitMin = math.MaxInt
	defer func() { e.splitMin = old }()
	return e.searchWith(ctx, q, true, false)
}

// SearchBySplitWalk is SearchByWalk with every query walked in two halves
// on two goroutines (walk), however few its matches.
func (e *Engine) SearchBySplitWalk(ctx context.Context, q search.Query) (search.Result, error) {
	old := e.splitMin
	e.splitMin = 1
	defer func() { e.splitMin = old }()
	return e.searchWith(ctx, q, true, false)
}

// SetSplitMin sets how many matches make a query run on several goroutines
// (1: every query with a match), so that tests cover the split on small
// corpora.
func (e *Engine) SetSplitMin(n int) { e.splitMin = n }

// SetDecodeMin sets the shortest postings list the scorer keeps decoded
// (1: every list), so that tests cover decoded postings on small corpora.
func (e *Engine) SetDecodeMin(n int) { e.decodeMin = n }

// SetBatchBounds sets the documents and contact text a Bleve batch of
// Index or AddContacts takes before it is applied, so that tests cover the
// split on small corpora.
func (e *Engine) SetBatchBounds(docs, text int) { e.batchDocs, e.batchText = docs, text }

// Batches is how many batches scorch has applied since the index opened.
func (e *Engine) Batches() uint64 { return atomic.LoadUint64(&e.stats.TotBatches) }

// SparesTaken is how many spare cores searches hold now (0 between
// searches: a split search gives its core back).
func (e *Engine) SparesTaken() int { return len(e.spare) }

// SearchByBleveScores is Search with the matches scored by Bleve's
// searchers (the prefilter advancing them to each match, or the plain walk)
// instead of the term-at-a-time scorer.
func (e *Engine) SearchByBleveScores(ctx context.Context, q search.Query) (search.Result, error) {
	e.bleveScores = true
	defer func() { e.bleveScores = false }()
	return e.searchWith(ctx, q, true, true)
}

// ScoresByTerms reports whether the term-at-a-time scorer scores q's
// matches (rather than leaving them to Bleve's searchers).
func (e *Engine) ScoresByTerms(ctx context.Context, q search.Query) (bool, error) {
	r, err := e.reader()
	if err != nil {
		return false, err
	}
	defer r.Close()
	sv, err := e.cols.forReader(ctx, r)
	if err != nil {
		return false, err
	}
	all, _, err := e.buildQuery(ctx, r, q, map[string]bool{})
	if err != nil {
		return false, err
	}
	_, ok, err := e.scoredMatches(r, sv, all)
	return ok, err
}

// WaitDecodes waits until no postings are being decoded in the background
// (postings.go), so that the next search scores from the decoded ones.
func (e *Engine) WaitDecodes() {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		e.cols.mu.Lock()
		busy := 0
		for _, c := range e.cols.segs {
			cols := c.builtColumns()
			if cols == nil {
				continue
			}
			cols.decoded.mu.Lock()
			busy += len(cols.decoded.pending)
			cols.decoded.mu.Unlock()
		}
		e.cols.mu.Unlock()
		if busy == 0 {
			return
		}
	}
}

// builtColumns is the entry's columns once its build has finished, nil
// before. It reads them under the entry's lock: a warming or searching
// goroutine's build writes them, and reading them bare was a data race
// (TestDecodedBudgetFollowsSegments failed under -race in CI once).
func (c *cachedColumns) builtColumns() *segColumns {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cols
}
