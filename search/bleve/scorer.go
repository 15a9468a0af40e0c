package bleve

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/blevesearch/bleve/v2/search/query"
	"github.com/blevesearch/bleve/v2/search/searcher"
	index "github.com/blevesearch/bleve_index_api"
	segment "github.com/blevesearch/scorch_segment_api/v2"
)

// The term-at-a-time scorer. A broad query ("refund", "damaged courier":
// 70,000–170,000 contacts) spent most of its time in Bleve's searcher
// tree: per matching document a DocumentMatch, an Advance or Next through
// every level, virtual calls per clause. For queries made of the clauses
// the postings bitmaps already answer (segBits.matches), the scores are
// computed here clause by clause over each segment's postings instead,
// into per-segment score arrays, with Bleve's TF-IDF arithmetic in the
// same floating-point order, so that each document's score is bit for bit
// the one Bleve's searchers give it (TestPrefilterMatchesWalk):
//
//   - a term (TermSearcher, TermQueryScorer): idf = 1 + ln(docCount /
//     (docFreq+1)) over the whole snapshot (live documents; docFreq is the
//     term's live postings in every segment), score = sqrt(freq) · norm ·
//     idf, times the query weight boost · idf · queryNorm unless that is
//     exactly 1;
//   - a fuzzy clause: its cached expansion (fuzzyCache), a disjunction of
//     terms boosted 1/(1+edit distance) (NewMultiTermSearcherBoosted), or
//     the term itself when the expansion is empty or only the term;
//   - a disjunction: the sum of the matching children's scores, in the
//     order of the children sorted by their Count (a stable sort, as
//     sort.Sort is for the few children these queries have), times
//     coord = matching / children;
//   - a conjunction: the sum of its children's scores in that order;
//   - must/must-not: the must clause's score (a match-all must scores
//     its constant);
//   - queryNorm = 1/sqrt(sum of the top clause's children's weights),
//     set on every scored term by the top clause only (each level's
//     SetQueryNorm overrides what the levels below set); a lone term at
//     the top gets none.
//
// One order is not reproducible this way: a disjunction of more than
// searcher.DisjunctionHeapTakeover children (a fuzzy term with many
// expansions) sums a document's matching children in the order its heap
// pops them, which depends on the walk's history. Two addends commute
// exactly, so such a disjunction is scored here as long as no document
// matches three or more of its children; otherwise the query falls back
// to Bleve's searchers.

// tkind is the searcher a clause becomes.
type tkind uint8

const (
	tNone tkind = iota // MatchNoneSearcher
	tTerm
	tAll // MatchAllSearcher (constant score)
	tOr
	tAnd
	tMustNot // BooleanSearcher with a must and a must-not clause
)

// tnode is one clause of a query as the searcher Bleve would build for it.
type tnode struct {
	kind   tkind
	boost  float64
	idf    float64
	count  uint64  // the searcher's Count()
	weight float64 // the searcher's Weight()
	qw     float64 // query weight of a term or constant; 1 until a norm is set
	kids   []*tnode
	not    *tnode // tMustNot: what must not match (unscored)
	heap   bool   // tOr: Bleve's heap disjunction (order of ties unknown)
	pls    []segment.PostingsList
}

// errHeapOrder: a document matches three or more children of a heap
// disjunction, whose sum order only Bleve's walk knows.
var errHeapOrder = fmt.Errorf("bleve: heap disjunction order")

// tbuild turns a query into tnodes over one snapshot.
type tbuild struct {
	r        index.IndexReader
	cache    *fuzzyCache
	segs     []*segBits
	docTotal uint64
}

// build mirrors query.Query.Searcher for the clauses segBits.matches
// knows; false: q has another.
func (b *tbuild) build(q query.Query) (*tnode, bool, error) {
	switch q := q.(type) {
	case *query.TermQuery:
		if q.FieldVal == "" {
			return nil, false, nil
		}
		n, err := b.term(q.FieldVal, q.Term, q.BoostVal.Value())
		return n, err == nil, err
	case *cachedFuzzyQuery:
		if q.Fuzziness == 0 || q.FieldVal == "" {
			return nil, false, nil
		}
		ft, err := b.cache.get(b.r, q.key())
		if err != nil {
			return nil, false, err
		}
		boost := q.BoostVal.Value()
		if len(ft.terms) == 0 || len(ft.terms) == 1 && ft.terms[0] == q.Term {
			n, err := b.term(q.FieldVal, q.Term, boost)
			return n, err == nil, err
		}
		kids := make([]*tnode, len(ft.terms))
		for i, t := range ft.terms {
			// makeBatchSearchersBoosted
			editMultiplier := 1 / float64(ft.distances[i]+1)
			if kids[i], err = b.term(q.FieldVal, t, boost*editMultiplier); err != nil {
				return nil, false, err
			}
		}
		return b.or(kids)
	case *query.DisjunctionQuery:
		if q.Min > 1 {
			return nil, false, nil
		}
		kids := make([]*tnode, 0, len(q.Disjuncts))
		for _, d := range q.Disjuncts {
			k, ok, err := b.build(d)
			if !ok || err != nil {
				return nil, ok, err
			}
			kids = append(kids, k)
		}
		if len(kids) == 0 {
			return &tnode{kind: tNone}, true, nil
		}
		return b.or(kids)
	case *query.ConjunctionQuery:
		kids := make([]*tnode, 0, len(q.Conjuncts))
		for _, c := range q.Conjuncts {
			k, ok, err := b.build(c)
			if !ok || err != nil {
				return nil, ok, err
			}
			kids = append(kids, k)
		}
		if len(kids) == 0 {
			return &tnode{kind: tNone}, true, nil
		}
		if len(kids) > 12 {
			// sort.Sort is an insertion sort (stable) only up to 12
			return nil, false, nil
		}
		n := &tnode{kind: tAnd, kids: sortedByCount(kids)}
		for _, k := range n.kids {
			n.count += k.count
			n.weight += k.weight
		}
		return n, true, nil
	case *query.BooleanQuery:
		if q.Should != nil || q.Filter != nil || q.Must == nil {
			return nil, false, nil
		}
		var must, not *tnode
		if q.MustNot != nil {
			k, ok, err := b.build(q.MustNot)
			if !ok || err != nil {
				return nil, ok, err
			}
			if k.kind != tNone {
				not = k
			}
		}
		k, ok, err := b.build(q.Must)
		if !ok || err != nil {
			return nil, ok, err
		}
		if k.kind != tNone {
			must = k
		}
		switch {
		case must == nil && not == nil:
			return &tnode{kind: tNone}, true, nil
		case not == nil:
			return must, true, nil
		case must == nil:
			must = b.all(1)
		}
		return &tnode{kind: tMustNot, kids: []*tnode{must}, not: not, count: must.count, weight: 0 + must.weight}, true, nil
	case *query.MatchAllQuery:
		return b.all(q.BoostVal.Value()), true, nil
	case *query.MatchNoneQuery:
		return &tnode{kind: tNone}, true, nil
	}
	return nil, false, nil
}

// term is a TermSearcher's clause: its postings in every segment and its
// idf over the snapshot (NewTermQueryScorer, TF-IDF).
func (b *tbuild) term(field, term string, boost float64) (*tnode, error) {
	n := &tnode{kind: tTerm, boost: boost, qw: 1, pls: make([]segment.PostingsList, len(b.segs))}
	for i, s := range b.segs {
		pl, err := s.postings(field, term)
		if err != nil {
			return nil, err
		}
		if pl != nil {
			n.pls[i] = pl
			n.count += pl.Count()
		}
	}
	n.idf = 1.0 + math.Log(float64(b.docTotal)/float64(n.count+1.0))
	w := n.boost * n.idf
	n.weight = w * w
	return n, nil
}

// all is a MatchAllSearcher's clause.
func (b *tbuild) all(boost float64) *tnode {
	return &tnode{kind: tAll, boost: boost, qw: 1, count: b.docTotal, weight: boost * boost}
}

// or is a disjunction searcher's clause over kids in the given order.
func (b *tbuild) or(kids []*tnode) (*tnode, bool, error) {
	if len(kids) > math.MaxUint8 {
		return nil, false, nil
	}
	n := &tnode{kind: tOr, kids: kids}
	if len(kids) > searcher.DisjunctionHeapTakeover {
		n.heap = true // the heap searcher keeps its children's order
	} else {
		n.kids = sortedByCount(kids)
	}
	for _, k := range n.kids {
		n.count += k.count
		n.weight += k.weight
	}
	return n, true, nil
}

// sortedByCount orders clauses as OrderedSearcherList does (by Count,
// with sort.Sort's insertion sort: stable on these short lists).
func sortedByCount(kids []*tnode) []*tnode {
	out := slices.Clone(kids)
	slices.SortStableFunc(out, func(a, b *tnode) int {
		switch {
		case a.count < b.count:
			return -1
		case a.count > b.count:
			return 1
		}
		return 0
	})
	return out
}

// normalize sets the query norm the top searcher computes on every scored
// clause below it (computeQueryNorm); a term or match-all at the top
// keeps query weight 1.
func (n *tnode) normalize() {
	var kids []*tnode
	switch n.kind {
	case tOr, tAnd, tMustNot:
		kids = n.kids
	default:
		return
	}
	sumOfSquaredWeights := 0.0
	for _, k := range kids {
		sumOfSquaredWeights += k.weight
	}
	n.setQueryNorm(1.0 / math.Sqrt(sumOfSquaredWeights))
}

func (n *tnode) setQueryNorm(qn float64) {
	switch n.kind {
	case tTerm:
		n.qw = n.boost * n.idf * qn
	case tAll:
		n.qw = n.boost * qn
	case tOr, tAnd, tMustNot:
		for _, k := range n.kids {
			k.setQueryNorm(qn)
		}
	}
}

// arena lends the score arrays of one segment's evaluation.
type arena struct {
	n      int
	floats [][]float64
	counts [][]uint8
}

// scores returns an array of n zeros.
func (a *arena) scores() []float64 {
	if k := len(a.floats); k > 0 {
		s := a.floats[k-1]
		a.floats = a.floats[:k-1]
		clear(s)
		return s
	}
	return make([]float64, a.n)
}

func (a *arena) counters() []uint8 {
	if k := len(a.counts); k > 0 {
		s := a.counts[k-1]
		a.counts = a.counts[:k-1]
		clear(s)
		return s
	}
	return make([]uint8, a.n)
}

func (a *arena) free(s []float64) {
	if s != nil {
		a.floats = append(a.floats, s)
	}
}

// reset makes the arena serve segments of n documents.
func (a *arena) reset(n int) {
	if n != a.n {
		a.n, a.floats, a.counts = n, a.floats[:0], a.counts[:0]
	}
}

// segScorer evaluates tnodes on one segment.
type segScorer struct {
	seg   int
	n     uint64 // documents in the segment, deleted included
	del   *roaring.Bitmap
	arena *arena
}

// eval returns the documents of the segment n matches and, when scored,
// their scores by local document number (other entries undefined; the
// array is the caller's to give back to the arena). The bitmap may be
// shared with the segment: never modify it.
func (s *segScorer) eval(n *tnode, scored bool) (*roaring.Bitmap, []float64, error) {
	switch n.kind {
	case tNone:
		return roaring.New(), nil, nil
	case tTerm:
		bm, err := s.termBits(n)
		if err != nil || !scored {
			return bm, nil, err
		}
		sc := s.arena.scores()
		err = s.eachPosting(n, func(d uint64, v float64) { sc[d] = v })
		return bm, sc, err
	case tAll:
		bm := roaring.New()
		bm.AddRange(0, s.n)
		if s.del != nil {
			bm.AndNot(s.del)
		}
		if !scored {
			return bm, nil, nil
		}
		sc := s.arena.scores()
		v := 1.0
		if n.qw != 1.0 {
			v = v * n.qw
		}
		for i := range sc {
			sc[i] = v
		}
		return bm, sc, nil
	case tOr:
		return s.or(n, scored)
	case tAnd:
		return s.and(n, scored)
	case tMustNot:
		bm, sc, err := s.eval(n.kids[0], scored)
		if err != nil {
			return nil, nil, err
		}
		not, _, err := s.eval(n.not, false)
		if err != nil {
			return nil, nil, err
		}
		// ConjunctionQueryScorer over the must clause alone: 0 + score
		return roaring.AndNot(bm, not), sc, nil
	}
	return nil, nil, fmt.Errorf("bleve: clause kind %d", n.kind)
}

func (s *segScorer) or(n *tnode, scored bool) (*roaring.Bitmap, []float64, error) {
	out := roaring.New()
	if !scored {
		for _, k := range n.kids {
			bm, _, err := s.eval(k, false)
			if err != nil {
				return nil, nil, err
			}
			out.Or(bm)
		}
		return out, nil, nil
	}
	// DisjunctionQueryScorer: the matching children's scores summed in
	// their order, times matching/children
	acc, cnt := s.arena.scores(), s.arena.counters()
	defer func() { s.arena.counts = append(s.arena.counts, cnt) }()
	for _, k := range n.kids {
		if k.kind == tTerm {
			bm, err := s.termBits(k)
			if err != nil {
				return nil, nil, err
			}
			out.Or(bm)
			if err := s.eachPosting(k, func(d uint64, v float64) { acc[d] += v; cnt[d]++ }); err != nil {
				return nil, nil, err
			}
			continue
		}
		bm, sc, err := s.eval(k, true)
		if err != nil {
			return nil, nil, err
		}
		out.Or(bm)
		it := bm.Iterator()
		for it.HasNext() {
			d := it.Next()
			acc[d] += sc[d]
			cnt[d]++
		}
		s.arena.free(sc)
	}
	coord := make([]float64, len(n.kids)+1)
	for i := range coord {
		coord[i] = float64(i) / float64(len(n.kids))
	}
	it := out.Iterator()
	for it.HasNext() {
		d := it.Next()
		c := cnt[d]
		if n.heap && c >= 3 {
			return nil, nil, errHeapOrder
		}
		acc[d] = acc[d] * coord[c]
	}
	return out, acc, nil
}

func (s *segScorer) and(n *tnode, scored bool) (*roaring.Bitmap, []float64, error) {
	bms := make([]*roaring.Bitmap, len(n.kids))
	scs := make([][]float64, len(n.kids))
	var out *roaring.Bitmap
	for i, k := range n.kids {
		bm, sc, err := s.eval(k, scored)
		if err != nil {
			return nil, nil, err
		}
		bms[i], scs[i] = bm, sc
		if out == nil {
			out = bm.Clone()
		} else {
			out.And(bm)
		}
	}
	if !scored {
		return out, nil, nil
	}
	// ConjunctionQueryScorer: 0 + the first child's score (exact), plus
	// each next child's in order
	acc := scs[0]
	for _, sc := range scs[1:] {
		it := out.Iterator()
		for it.HasNext() {
			d := it.Next()
			acc[d] += sc[d]
		}
		s.arena.free(sc)
	}
	return out, acc, nil
}

// termBits is a term's live documents in the segment.
func (s *segScorer) termBits(n *tnode) (*roaring.Bitmap, error) {
	pl := n.pls[s.seg]
	if pl == nil {
		return roaring.New(), nil
	}
	return postingsBits(pl.Iterator(false, false, false, nil))
}

// eachPosting calls fn with each live document of a term and its score
// (TermQueryScorer.Score, TF-IDF).
func (s *segScorer) eachPosting(n *tnode, fn func(d uint64, score float64)) error {
	pl := n.pls[s.seg]
	if pl == nil {
		return nil
	}
	it := pl.Iterator(true, true, false, nil)
	idf, qw := n.idf, n.qw
	for {
		p, err := it.Next()
		if err != nil {
			return fmt.Errorf("bleve: postings: %w", err)
		}
		if p == nil {
			return nil
		}
		tf := math.Sqrt(float64(p.Frequency()))
		v := tf * p.Norm() * idf
		if qw != 1.0 {
			v = v * qw
		}
		fn(p.Number(), v)
	}
}

// scoredMatches evaluates q on every segment of the snapshot: per segment
// the matching documents and their scores by local document number, as
// Bleve's searchers score them. false: q has a clause this does not know,
// or a document's score depends on a heap disjunction's order; the caller
// then lets Bleve's searchers score. arena is given back by the caller
// (putArena) once the scores are read.
func (e *Engine) scoredMatches(ctx context.Context, r index.IndexReader, sv *snapshotColumns, q query.Query) ([]*roaring.Bitmap, [][]float64, []*arena, bool, error) {
	segs := sv.snap.Segments()
	docTotal, err := r.DocCount()
	if err != nil {
		return nil, nil, nil, false, fmt.Errorf("bleve: %w", err)
	}
	b := &tbuild{r: r, cache: &e.fuzzy, segs: make([]*segBits, len(segs)), docTotal: docTotal}
	for i, ss := range segs {
		b.segs[i] = &segBits{r: r, cache: &e.fuzzy, seg: ss.Segment(), del: ss.Deleted(), dicts: map[string]segment.TermDictionary{}}
	}
	root, ok, err := b.build(q)
	if !ok || err != nil {
		return nil, nil, nil, ok, err
	}
	root.normalize()
	matched := make([]*roaring.Bitmap, len(segs))
	scores := make([][]float64, len(segs))
	arenas := make([]*arena, len(segs))
	for i, ss := range segs {
		if err := ctx.Err(); err != nil {
			e.putArenas(arenas)
			return nil, nil, nil, false, err
		}
		a := e.getArena(int(ss.Segment().Count()))
		arenas[i] = a
		s := &segScorer{seg: i, n: ss.Segment().Count(), del: ss.Deleted(), arena: a}
		bm, sc, err := s.eval(root, true)
		if err == errHeapOrder {
			e.putArenas(arenas)
			return nil, nil, nil, false, nil
		}
		if err != nil {
			e.putArenas(arenas)
			return nil, nil, nil, false, err
		}
		matched[i], scores[i] = bm, sc
	}
	return matched, scores, arenas, true, nil
}

// arenaPool keeps score arrays between searches: a broad query on a
// compacted 200k-contact index needs a few arrays of 1.7 MB.
type arenaPool struct{ p sync.Pool }

func (e *Engine) getArena(n int) *arena {
	a, _ := e.arenas.p.Get().(*arena)
	if a == nil {
		a = &arena{}
	}
	a.reset(n)
	return a
}

// putArenas returns the arenas, and the score arrays handed out of them
// (scores[i] from as[i], nil ones skipped), which the caller no longer
// reads, to the pool.
func (e *Engine) putArenas(as []*arena, scores ...[]float64) {
	for i, a := range as {
		if a == nil {
			continue
		}
		if i < len(scores) {
			a.free(scores[i])
		}
		e.arenas.p.Put(a)
	}
}

// postings returns the postings list of term in field on the segment,
// live documents only, nil when the segment has no such field.
func (s *segBits) postings(field, term string) (segment.PostingsList, error) {
	d, ok := s.dicts[field]
	if !ok {
		var err error
		if d, err = s.seg.Dictionary(field); err != nil {
			return nil, fmt.Errorf("bleve: dictionary %s: %w", field, err)
		}
		s.dicts[field] = d
	}
	if d == nil {
		return nil, nil
	}
	pl, err := d.PostingsList([]byte(term), s.del, nil)
	if err != nil {
		return nil, fmt.Errorf("bleve: postings %s: %w", field, err)
	}
	return pl, nil
}

// postingsBits is the bitmap of an (unscored) postings iterator.
func postingsBits(it segment.PostingsIterator) (*roaring.Bitmap, error) {
	o, ok := it.(segment.OptimizablePostingsIterator)
	if !ok {
		return nil, fmt.Errorf("bleve: postings iterator %T has no bitmap", it)
	}
	if n, ok := o.DocNum1Hit(); ok {
		return roaring.BitmapOf(uint32(n)), nil
	}
	if bm := o.ActualBitmap(); bm != nil {
		return bm, nil
	}
	return roaring.New(), nil
}
