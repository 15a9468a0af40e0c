package bleve

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/mapping"
	bsearch "github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
	"github.com/blevesearch/bleve/v2/search/searcher"
	index "github.com/blevesearch/bleve_index_api"
	segment "github.com/blevesearch/scorch_segment_api/v2"
	"golang.org/x/sync/errgroup"
)

// The slow tail of the benchmark (issue 16, 18) was broad one-word queries
// ("the", "to", "with": 70,000–170,000 contacts) with two filters that
// are not selective, or are faceted fields and so checked on columns for
// the disjunctive facets: Bleve's searchers walked, scored and collected
// every posting of the word (twice: the word and its stem) to keep a few
// thousand, and each disjunctive collector looked at every one of them.
//
// A query made only of term, fuzzy, AND, OR, NOT and match-all clauses is
// instead first evaluated on the postings' bitmaps (what the searchers
// would match, without scores), per segment, and intersected there with
// the column filters of each view (the query's, and each disjunctive
// facet's filter without its own field). The disjunctive facets need no
// score, so their collectors are fed straight from those bitmaps; only
// the query's own matches are scored, by the term-at-a-time scorer
// (scorer.go), or, for what it declines, by Bleve's searchers each
// reached with one Advance (filteredEach). Scores, totals, facets and
// pages are exactly what the plain walk gives (TestPrefilterMatchesWalk).

// fuzzyCache keeps the dictionary terms each fuzzy clause expands to, for
// the newest snapshot: building a Levenshtein automaton and walking the
// dictionary cost about 0.4 MB and 0.1–1 ms per fuzzy clause. A snapshot's
// dictionaries never change, so its expansions stay valid while it is
// current; any write or merge makes a new snapshot, and the cache is then
// emptied (it holds the snapshot it belongs to, so that address cannot be
// reused by another while it is kept).
type fuzzyCache struct {
	mu    sync.Mutex
	snap  *scorch.IndexSnapshot
	terms map[fuzzyKey]*fuzzyTerms
}

type fuzzyKey struct {
	field, term       string
	fuzziness, prefix int
}

type fuzzyTerms struct {
	once      sync.Once
	terms     []string
	distances []uint8
	err       error
}

// get returns the candidate terms of a fuzzy clause on r, as Bleve's fuzzy
// searcher finds them (findFuzzyCandidateTerms).
func (c *fuzzyCache) get(r index.IndexReader, k fuzzyKey) (*fuzzyTerms, error) {
	ir, ok := r.(index.IndexReaderFuzzy)
	if !ok {
		return nil, fmt.Errorf("bleve: reader %T has no fuzzy dictionary", r)
	}
	snap, _ := r.(*scorch.IndexSnapshot)
	var ft *fuzzyTerms
	if snap != nil {
		c.mu.Lock()
		if c.snap != snap {
			c.snap, c.terms = snap, make(map[fuzzyKey]*fuzzyTerms)
		}
		ft = c.terms[k]
		if ft == nil {
			ft = &fuzzyTerms{}
			c.terms[k] = ft
		}
		c.mu.Unlock()
	} else {
		ft = &fuzzyTerms{}
	}
	ft.once.Do(func() {
		prefixTerm := k.term
		for i := range k.term {
			if i >= k.prefix {
				prefixTerm = k.term[:i]
				break
			}
		}
		fd, _, err := ir.FieldDictFuzzyAutomaton(k.field, k.term, k.fuzziness, prefixTerm)
		if err != nil {
			ft.err = fmt.Errorf("bleve: fuzzy %s: %w", k.field, err)
			return
		}
		defer fd.Close()
		for {
			e, err := fd.Next()
			if err != nil {
				ft.err = fmt.Errorf("bleve: fuzzy %s: %w", k.field, err)
				return
			}
			if e == nil {
				return
			}
			ft.terms = append(ft.terms, e.Term)
			ft.distances = append(ft.distances, e.EditDistance)
		}
	})
	if ft.err != nil {
		// not kept: a later query retries
		c.mu.Lock()
		if c.terms != nil && c.terms[k] == ft {
			delete(c.terms, k)
		}
		c.mu.Unlock()
		return nil, ft.err
	}
	return ft, nil
}

// cachedFuzzyQuery is a fuzzy clause whose searcher takes its terms from
// the engine's fuzzyCache; otherwise it is Bleve's fuzzy searcher (same
// candidates, same edit-distance boosts, so the same scores).
type cachedFuzzyQuery struct {
	query.FuzzyQuery
	cache *fuzzyCache
}

func (q *cachedFuzzyQuery) key() fuzzyKey {
	return fuzzyKey{field: q.FieldVal, term: q.Term, fuzziness: q.Fuzziness, prefix: q.Prefix}
}

func (q *cachedFuzzyQuery) Searcher(ctx context.Context, r index.IndexReader, m mapping.IndexMapping, opts bsearch.SearcherOptions) (bsearch.Searcher, error) {
	if q.Fuzziness == 0 || q.FieldVal == "" {
		return q.FuzzyQuery.Searcher(ctx, r, m, opts)
	}
	ft, err := q.cache.get(r, q.key())
	if err != nil {
		return nil, err
	}
	if len(ft.terms) == 0 || len(ft.terms) == 1 && ft.terms[0] == q.Term {
		return searcher.NewTermSearcher(ctx, r, q.Term, q.FieldVal, q.BoostVal.Value(), opts)
	}
	return searcher.NewMultiTermSearcherBoosted(ctx, r, ft.terms, q.FieldVal, q.BoostVal.Value(), ft.distances, opts, true)
}

// fuzzyQuery is a fuzzy clause served from the engine's cache.
func (e *Engine) fuzzyQuery(term, field string, fuzziness, prefix int) query.Query {
	fq := query.NewFuzzyQuery(term)
	fq.SetField(field)
	fq.SetFuzziness(fuzziness)
	fq.SetPrefix(prefix)
	return &cachedFuzzyQuery{FuzzyQuery: *fq, cache: &e.fuzzy}
}

// segBits evaluates queries on the postings bitmaps of one segment.
type segBits struct {
	r     index.IndexReader
	cache *fuzzyCache
	seg   segment.Segment
	del   *roaring.Bitmap // deleted documents, nil: none
	dicts map[string]segment.TermDictionary
}

// matches returns the documents of the segment that q matches, or false
// when q has a clause this evaluation does not know (the caller then
// walks). The result may be shared with the segment: never modify it.
func (s *segBits) matches(q query.Query) (*roaring.Bitmap, bool, error) {
	switch q := q.(type) {
	case *query.TermQuery:
		if q.FieldVal == "" {
			return nil, false, nil
		}
		bm, err := s.term(q.FieldVal, q.Term)
		return bm, err == nil, err
	case *cachedFuzzyQuery:
		if q.Fuzziness == 0 || q.FieldVal == "" {
			return nil, false, nil
		}
		ft, err := s.cache.get(s.r, q.key())
		if err != nil {
			return nil, false, err
		}
		if len(ft.terms) == 0 {
			// Bleve's searcher then looks the term itself up
			bm, err := s.term(q.FieldVal, q.Term)
			return bm, err == nil, err
		}
		out := roaring.New()
		for _, t := range ft.terms {
			bm, err := s.term(q.FieldVal, t)
			if err != nil {
				return nil, false, err
			}
			out.Or(bm)
		}
		return out, true, nil
	case *query.DisjunctionQuery:
		if q.Min > 1 {
			return nil, false, nil
		}
		out := roaring.New()
		for _, d := range q.Disjuncts {
			bm, ok, err := s.matches(d)
			if !ok || err != nil {
				return nil, ok, err
			}
			out.Or(bm)
		}
		return out, true, nil
	case *query.ConjunctionQuery:
		var out *roaring.Bitmap
		for _, c := range q.Conjuncts {
			bm, ok, err := s.matches(c)
			if !ok || err != nil {
				return nil, ok, err
			}
			if out == nil {
				out = bm.Clone()
			} else {
				out.And(bm)
			}
		}
		if out == nil {
			return nil, false, nil
		}
		return out, true, nil
	case *query.BooleanQuery:
		if q.Should != nil || q.Filter != nil || q.Must == nil {
			return nil, false, nil
		}
		must, ok, err := s.matches(q.Must)
		if !ok || err != nil {
			return nil, ok, err
		}
		if q.MustNot == nil {
			return must, true, nil
		}
		not, ok, err := s.matches(q.MustNot)
		if !ok || err != nil {
			return nil, ok, err
		}
		return roaring.AndNot(must, not), true, nil
	case *query.MatchAllQuery:
		out := roaring.New()
		out.AddRange(0, s.seg.Count())
		if s.del != nil {
			out.AndNot(s.del)
		}
		return out, true, nil
	case *query.MatchNoneQuery:
		return roaring.New(), true, nil
	}
	return nil, false, nil
}

// term is the live documents of the segment holding term in field.
func (s *segBits) term(field, term string) (*roaring.Bitmap, error) {
	pl, err := s.postings(field, term)
	if err != nil {
		return nil, err
	}
	if pl == nil {
		return roaring.New(), nil
	}
	return postingsBits(pl.Iterator(false, false, false, nil))
}

// columnBits returns, per value ord of a column, the documents holding it,
// built once per segment and column.
func (sc *segColumns) columnBits(field string) []*roaring.Bitmap {
	sc.bitsOnce.Do(func() {
		sc.bits = make(map[string][]*roaring.Bitmap)
		for _, f := range []string{fStatus, fChannel, fPurposes, fTags, fPriority, fAssignee} {
			c := sc.col(f)
			bms := make([]*roaring.Bitmap, len(c.dict))
			for o := range bms {
				bms[o] = roaring.New()
			}
			for d := range sc.n {
				for _, o := range c.values(uint32(d)) {
					bms[o].Add(uint32(d))
				}
			}
			for _, bm := range bms {
				bm.RunOptimize()
			}
			sc.bits[f] = bms
		}
	})
	return sc.bits[field]
}

// restrict narrows bm (owned by the caller) to the documents of the
// segment that pass the filter's keyword conditions; the date condition
// stays with the collectors (docFilter.match).
func (f *docFilter) restrict(sc *segColumns, bm *roaring.Bitmap) {
	if f == nil {
		return
	}
	for _, k := range f.keywords {
		c := sc.col(k.field)
		bms := sc.columnBits(k.field)
		holding := roaring.New()
		for o, v := range c.dict {
			if slices.Contains(k.values, v) {
				holding.Or(bms[o])
			}
		}
		if k.negated {
			bm.AndNot(holding)
		} else {
			bm.And(holding)
		}
	}
}

// prefiltered answers a search from the postings bitmaps: the query's own
// matches (those passing mainFilter) are scored into main, by the
// term-at-a-time scorer (scorer.go) or else by advancing Bleve's searcher
// to each; each of the others collectors gets, unscored, the matches
// passing its own filter. false: the query has a clause the bitmaps
// cannot answer, or it is scored, has no filter nor facet views, and the
// term-at-a-time scorer cannot score it (Bleve's plain walk is then
// cheaper than advancing to every match).
func (e *Engine) prefiltered(ctx context.Context, r index.IndexReader, sv *snapshotColumns, q query.Query, score bool, main *collector, others []*collector) (bool, error) {
	segs := sv.snap.Segments()
	var matched []*roaring.Bitmap
	var scored []scoredSegment
	if score && !e.bleveScores {
		var ok bool
		var err error
		if scored, ok, err = e.scoredMatches(r, sv, q); err != nil {
			return false, err
		}
		if ok {
			matched = make([]*roaring.Bitmap, len(segs))
			for i, ss := range scored {
				matched[i] = ss.bits
			}
		}
	}
	if matched == nil {
		// without the scorer, bitmaps pay only to narrow by filters or
		// to feed facet views; a plain scored query is walked
		if score && main.filter == nil && len(others) == 0 {
			return false, nil
		}
		matched = make([]*roaring.Bitmap, len(segs))
		for i, ss := range segs {
			sb := &segBits{r: r, cache: &e.fuzzy, seg: ss.Segment(), del: ss.Deleted(), dicts: map[string]segment.TermDictionary{}}
			t, ok, err := sb.matches(q)
			if !ok || err != nil {
				return false, err
			}
			matched[i] = t
		}
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}

	feed := func(c *collector, i int, bm *roaring.Bitmap) error {
		var id index.IndexInternalID
		it := bm.Iterator()
		for it.HasNext() {
			id = index.NewIndexInternalID(id[:0], sv.offsets[i]+uint64(it.Next()))
			if err := c.add(matchInfo{id: id}); err != nil {
				return err
			}
		}
		return nil
	}
	mainBits := make([]*roaring.Bitmap, len(segs))
	var n uint64
	for i, t := range matched {
		if main.filter == nil {
			mainBits[i] = t
		} else {
			mainBits[i] = t.Clone()
			main.filter.restrict(sv.cols[i], mainBits[i])
		}
		n += mainBits[i].GetCardinality()
	}
	if !score {
		// unscored: the bitmaps are the whole answer
		for i, bm := range mainBits {
			if err := feed(main, i, bm); err != nil {
				return false, err
			}
		}
		return true, e.facetViews(ctx, sv, matched, others)
	}
	// a broad query groups thousands of cases: room for them up front
	// instead of growing the groups (and copying them) a dozen times
	var nCases uint64
	for _, sc := range sv.cols {
		nCases += uint64(len(sc.caseID.dict))
	}
	main.groups = slices.Grow(main.groups, int(min(n, nCases)))
	each := func(ctx context.Context, bits []*roaring.Bitmap, fn func(matchInfo) error) error {
		if scored != nil {
			return e.scoredEach(ctx, sv, scored, bits, fn)
		}
		return filteredEach(ctx, r, e.m, q, sv, bits, fn)
	}

	// A broad query is split (see splitMin) when a core is free of other
	// searches (spare): each disjunctive view's collector is fed on its
	// own goroutine, and the scored walk runs in two halves of the
	// documents on two more, merged after. Measured on the 2-vCPU VM, whose
	// two vCPUs give about 1.25× one (docs/ARCHITECTURE.md): latency −15 to
	// −25% on the broadest queries, CPU +25–30%, hence only with a spare.
	if n < uint64(e.splitMin) || !e.spare.take() {
		if err := e.facetViews(ctx, sv, matched, others); err != nil {
			return false, err
		}
		return true, each(ctx, mainBits, main.add)
	}
	defer e.spare.give()
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range others {
		g.Go(func() error { return e.facetViews(gctx, sv, matched, []*collector{c}) })
	}
	lo, hi := splitBits(mainBits, n/2)
	second := newCollector(sv, main.filter, main.sortBy, main.facets)
	second.groups = slices.Grow(second.groups, int(min(n-n/2, nCases)))
	g.Go(func() error { return each(gctx, lo, main.add) })
	g.Go(func() error { return each(gctx, hi, second.add) })
	if err := g.Wait(); err != nil {
		return false, err
	}
	main.merge(second)
	return true, nil
}

// facetViews feeds each disjunctive view's collector, unscored, the
// matches passing its own filter.
func (e *Engine) facetViews(ctx context.Context, sv *snapshotColumns, matched []*roaring.Bitmap, views []*collector) error {
	for _, c := range views {
		bits := make([]*roaring.Bitmap, len(matched))
		for i, t := range matched {
			bits[i] = t.Clone()
			c.filter.restrict(sv.cols[i], bits[i])
		}
		if c.countOnly {
			if err := c.countFacet(bits); err != nil {
				return err
			}
		} else {
			for i, bm := range bits {
				if err := c.addBits(i, bm); err != nil {
					return err
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// splitBits cuts per-segment document sets at their k-th document in
// global order: lo holds the first k, hi the rest (segments outside a half
// are empty in it).
func splitBits(bits []*roaring.Bitmap, k uint64) (lo, hi []*roaring.Bitmap) {
	lo, hi = make([]*roaring.Bitmap, len(bits)), make([]*roaring.Bitmap, len(bits))
	var seen uint64
	for i, bm := range bits {
		n := bm.GetCardinality()
		switch {
		case seen+n <= k:
			lo[i], hi[i] = bm, roaring.New()
		case seen >= k:
			lo[i], hi[i] = roaring.New(), bm
		default:
			cut, err := bm.Select(uint32(k - seen))
			if err != nil { // cannot happen: k-seen < n
				cut = 0
			}
			lo[i], hi[i] = bm.Clone(), bm.Clone()
			lo[i].RemoveRange(uint64(cut), math.MaxUint32+1)
			hi[i].RemoveRange(0, uint64(cut))
		}
		seen += n
	}
	return lo, hi
}

// filteredEach is each, scored, over the documents of q's matches that are
// in bits (per segment; every one of them must match q): q's searcher is
// advanced to each, so it scores only those.
func filteredEach(ctx context.Context, r index.IndexReader, m mapping.IndexMapping, q query.Query, sv *snapshotColumns, bits []*roaring.Bitmap, fn func(matchInfo) error) error {
	s, err := q.Searcher(ctx, r, m, bsearch.SearcherOptions{})
	if err != nil {
		return fmt.Errorf("bleve: searcher: %w", err)
	}
	defer s.Close()
	sctx := &bsearch.SearchContext{
		DocumentMatchPool: bsearch.NewDocumentMatchPool(s.DocumentMatchPoolSize()+1, 0),
		IndexReader:       r,
	}
	var target index.IndexInternalID
	n := 0
	for i, bm := range bits {
		it := bm.Iterator()
		for it.HasNext() {
			if n++; n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			num := sv.offsets[i] + uint64(it.Next())
			target = index.NewIndexInternalID(target[:0], num)
			dm, err := s.Advance(sctx, target)
			if err != nil {
				return fmt.Errorf("bleve: search: %w", err)
			}
			if dm == nil {
				return fmt.Errorf("bleve: document %d of the prefilter not matched", num)
			}
			if got := dm.IndexInternalID.Value(); got != num {
				return fmt.Errorf("bleve: document %d of the prefilter not matched (next %d)", num, got)
			}
			if err := fn(matchInfo{id: dm.IndexInternalID, score: dm.Score}); err != nil {
				return err
			}
			sctx.DocumentMatchPool.Put(dm)
		}
	}
	return nil
}
