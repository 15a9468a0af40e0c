package bleve

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/blevesearch/bleve/v2/index/scorch"
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
	field  string // tTerm
	term   string
}

// errHeapOrder: a document asked for matches three or more children of a
// heap disjunction, whose sum order only Bleve's walk knows. scoredMatches
// declines such queries before any score is computed, so this is an
// internal error.
var errHeapOrder = errors.New("bleve: heap disjunction order")

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
	n := &tnode{kind: tTerm, boost: boost, qw: 1, pls: make([]segment.PostingsList, len(b.segs)), field: field, term: term}
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

// arena lends the score arrays of one evaluation; kept between searches
// (Engine.arenas) since a compacted 200k-contact index needs arrays of
// 1.7 MB.
type arena struct {
	floats [][]float64
	counts [][]uint8
}

// scores returns an array of n undefined scores.
func (a *arena) scores(n int) []float64 {
	for i, s := range a.floats {
		if cap(s) >= n {
			a.floats = slices.Delete(a.floats, i, i+1)
			return s[:n]
		}
	}
	return make([]float64, n)
}

// counters returns an array of n undefined counts (give it back with
// freeCounters).
func (a *arena) counters(n int) []uint8 {
	for i, s := range a.counts {
		if cap(s) >= n {
			a.counts = slices.Delete(a.counts, i, i+1)
			return s[:n]
		}
	}
	return make([]uint8, n)
}

func (a *arena) free(s []float64) {
	if s != nil {
		a.floats = append(a.floats, s)
	}
}

func (a *arena) freeCounters(s []uint8) { a.counts = append(a.counts, s) }

// arenaPool is a bounded free list of arenas (a sync.Pool would drop them
// at every collection, which these large arrays make frequent).
type arenaPool chan *arena

func (e *Engine) getArena() *arena {
	select {
	case a := <-e.arenas:
		return a
	default:
		return &arena{}
	}
}

func (e *Engine) putArena(a *arena) {
	select {
	case e.arenas <- a:
	default:
	}
}

// segScorer evaluates tnodes on one segment: first which documents each
// clause matches (bits, on the postings bitmaps), then the scores of the
// documents asked for (score).
type segScorer struct {
	segment segment.Segment
	cols    *segColumns  // where the segment's decoded postings are kept
	cache   *columnCache // their budget
	// decodeMin: the shortest postings list kept decoded (Engine.decodeMin)
	decodeMin int
	snap      *scorch.IndexSnapshot // nil: nothing decoded in the background
	spawn     func(job string, fn func())
	seg       int
	n         uint64 // documents in the segment, deleted included
	del       *roaring.Bitmap
	memo      map[*tnode]*roaring.Bitmap // bits of each clause evaluated
	// documents matching three or more children of a heap disjunction:
	// their sum's order is the heap's
	thrice *roaring.Bitmap
}

// bits returns the documents of the segment n matches. The result may be
// shared with the segment or other clauses: never modify it.
func (s *segScorer) bits(n *tnode) (*roaring.Bitmap, error) {
	if bm, ok := s.memo[n]; ok {
		return bm, nil
	}
	var out *roaring.Bitmap
	switch n.kind {
	case tNone:
		out = roaring.New()
	case tTerm:
		pl := n.pls[s.seg]
		if pl == nil {
			out = roaring.New()
			break
		}
		var err error
		if out, err = postingsBits(pl.Iterator(false, false, false, nil)); err != nil {
			return nil, err
		}
	case tAll:
		out = roaring.New()
		out.AddRange(0, s.n)
		if s.del != nil {
			out.AndNot(s.del)
		}
	case tOr:
		out = roaring.New()
		var twice *roaring.Bitmap
		if n.heap {
			twice = roaring.New()
		}
		for _, k := range n.kids {
			bm, err := s.bits(k)
			if err != nil {
				return nil, err
			}
			if n.heap {
				// documents matching three or more children
				s.thrice.Or(roaring.And(twice, bm))
				twice.Or(roaring.And(out, bm))
			}
			out.Or(bm)
		}
	case tAnd:
		for _, k := range n.kids {
			bm, err := s.bits(k)
			if err != nil {
				return nil, err
			}
			if out == nil {
				out = bm.Clone()
			} else {
				out.And(bm)
			}
		}
	case tMustNot:
		must, err := s.bits(n.kids[0])
		if err != nil {
			return nil, err
		}
		not, err := s.bits(n.not)
		if err != nil {
			return nil, err
		}
		out = roaring.AndNot(must, not)
	default:
		return nil, fmt.Errorf("bleve: clause kind %d", n.kind)
	}
	s.memo[n] = out
	return out, nil
}

// score returns the scores of the documents in within, which n matches
// (a subset of bits(n), already computed), by local document number; the
// other entries are undefined. The array comes from a and is the
// caller's to give back. Safe for concurrent use on disjoint withins,
// each with its own arena, once bits are computed.
func (s *segScorer) score(n *tnode, within *roaring.Bitmap, a *arena) ([]float64, error) {
	switch n.kind {
	case tNone:
		return nil, nil
	case tTerm:
		sc := a.scores(int(s.n))
		return sc, s.eachPosting(n, within, sc, nil)
	case tAll:
		sc := a.scores(int(s.n))
		v := 1.0
		if n.qw != 1.0 {
			v = v * n.qw
		}
		var buf [256]uint32
		it := within.ManyIterator()
		for k := it.NextMany(buf[:]); k > 0; k = it.NextMany(buf[:]) {
			for _, d := range buf[:k] {
				sc[d] = v
			}
		}
		return sc, nil
	case tOr:
		return s.or(n, within, a)
	case tAnd:
		// ConjunctionQueryScorer: 0 + the first child's score (exact),
		// plus each next child's, in their order
		acc, err := s.score(n.kids[0], within, a)
		if err != nil {
			return nil, err
		}
		for _, k := range n.kids[1:] {
			sc, err := s.score(k, within, a)
			if err != nil {
				return nil, err
			}
			var buf [256]uint32
			it := within.ManyIterator()
			for k := it.NextMany(buf[:]); k > 0; k = it.NextMany(buf[:]) {
				for _, d := range buf[:k] {
					acc[d] += sc[d]
				}
			}
			a.free(sc)
		}
		return acc, nil
	case tMustNot:
		// ConjunctionQueryScorer over the must clause alone: 0 + score
		return s.score(n.kids[0], within, a)
	}
	return nil, fmt.Errorf("bleve: clause kind %d", n.kind)
}

// or is DisjunctionQueryScorer: the matching children's scores summed in
// their order, times matching/children.
func (s *segScorer) or(n *tnode, within *roaring.Bitmap, a *arena) ([]float64, error) {
	acc, cnt := a.scores(int(s.n)), a.counters(int(s.n))
	defer a.freeCounters(cnt)
	// the sums start at zero for the documents asked for (the arrays
	// come uncleared: clearing them whole cost more than the scoring of
	// a selective query)
	if within.GetCardinality()*16 > s.n {
		clear(acc)
		clear(cnt)
	} else {
		var buf [256]uint32
		it := within.ManyIterator()
		for k := it.NextMany(buf[:]); k > 0; k = it.NextMany(buf[:]) {
			for _, d := range buf[:k] {
				acc[d], cnt[d] = 0, 0
			}
		}
	}
	for _, k := range n.kids {
		kb, err := s.bits(k)
		if err != nil {
			return nil, err
		}
		kw := roaring.And(within, kb)
		if kw.IsEmpty() {
			continue
		}
		if k.kind == tTerm {
			if err := s.eachPosting(k, kw, acc, cnt); err != nil {
				return nil, err
			}
			continue
		}
		sc, err := s.score(k, kw, a)
		if err != nil {
			return nil, err
		}
		var buf [256]uint32
		it := kw.ManyIterator()
		for k := it.NextMany(buf[:]); k > 0; k = it.NextMany(buf[:]) {
			for _, d := range buf[:k] {
				acc[d] += sc[d]
				cnt[d]++
			}
		}
		a.free(sc)
	}
	coord := make([]float64, len(n.kids)+1)
	for i := range coord {
		coord[i] = float64(i) / float64(len(n.kids))
	}
	var buf [256]uint32
	it := within.ManyIterator()
	for k := it.NextMany(buf[:]); k > 0; k = it.NextMany(buf[:]) {
		for _, d := range buf[:k] {
			c := cnt[d]
			if n.heap && c >= 3 {
				// scoredMatches declines such queries
				return nil, errHeapOrder
			}
			acc[d] = acc[d] * coord[c]
		}
	}
	return acc, nil
}

// normBits is the posting's raw norm (zap: the field length), from which
// Norm() computes float64(float32(1/sqrt(bits))): looked up in a table
// (normOf) instead of a square root per posting.
type normBits interface{ NormUint64() uint64 }

// normTable holds float64(float32(1/sqrt(i))) for the common field
// lengths: exactly what zap's Posting.Norm computes.
var normTable = func() [4096]float64 {
	var t [4096]float64
	for i := range t {
		t[i] = float64(float32(1.0 / math.Sqrt(float64(i))))
	}
	return t
}()

// sqrtTable holds sqrt(i) for small term frequencies, as Bleve's
// SqrtCache does.
var sqrtTable = func() [64]float64 {
	var t [64]float64
	for i := range t {
		t[i] = math.Sqrt(float64(i))
	}
	return t
}()

// eachPosting scores the documents in within (all of them hold the term)
// by TermQueryScorer.Score (TF-IDF): into set[d] when cnt is nil, else
// added to set[d] with cnt[d] incremented (a disjunction's sum).
func (s *segScorer) eachPosting(n *tnode, within *roaring.Bitmap, set []float64, cnt []uint8) error {
	pl := n.pls[s.seg]
	if pl == nil {
		return nil
	}
	dp, err := s.decoded(n, pl)
	if err != nil {
		return err
	}
	if dp != nil {
		dp.score(within, n.idf, n.qw, set, cnt)
		return nil
	}
	it := pl.Iterator(true, true, false, nil)
	// Visit only the documents asked for. When they are all the term's
	// documents in a range of numbers (the whole list, or one half of a
	// split search) the iterator is advanced to the range and stopped
	// after it; otherwise it is narrowed to them, as Bleve's conjunction
	// optimization does, and then steps through the others' postings.
	from, to := uint64(0), uint64(math.MaxUint64)
	if o, ok := it.(segment.OptimizablePostingsIterator); ok {
		if all := o.ActualBitmap(); all != nil && all.GetCardinality() != within.GetCardinality() {
			lo, hi := within.Minimum(), within.Maximum()
			inRange := all.Rank(hi)
			if lo > 0 {
				inRange -= all.Rank(lo - 1)
			}
			if inRange == within.GetCardinality() {
				from, to = uint64(lo), uint64(hi)
			} else {
				o.ReplaceActual(within)
			}
		}
	}
	idf, qw := n.idf, n.qw
	table, checked := true, false
	for first := true; ; first = false {
		var p segment.Posting
		var err error
		if first && from > 0 {
			p, err = it.Advance(from)
		} else {
			p, err = it.Next()
		}
		if err != nil {
			return fmt.Errorf("bleve: postings: %w", err)
		}
		if p == nil || p.Number() > to {
			return nil
		}
		var tf, norm float64
		if f := p.Frequency(); f < uint64(len(sqrtTable)) {
			tf = sqrtTable[f]
		} else {
			tf = math.Sqrt(float64(f))
		}
		norm = -1
		if table {
			if nb, ok := p.(normBits); ok {
				if b := nb.NormUint64(); b < uint64(len(normTable)) {
					norm = normTable[b]
					if !checked {
						// the table is zap v15+'s formula: trust it only
						// once this segment's postings agree
						checked, table = true, norm == p.Norm()
						norm = p.Norm()
					}
				}
			}
		}
		if norm < 0 {
			norm = p.Norm()
		}
		v := tf * norm * idf
		if qw != 1.0 {
			v = v * qw
		}
		d := p.Number()
		if cnt == nil {
			set[d] = v
		} else {
			set[d] += v
			cnt[d]++
		}
	}
}

// scoredSegment is one segment's evaluation: what the query matches
// there (bits), and the scorer to score documents of it.
type scoredSegment struct {
	root *tnode
	s    *segScorer
	bits *roaring.Bitmap
}

// scoredMatches evaluates q on the postings of every segment of the
// snapshot. false: q has a clause this does not know, or a matching
// document's score depends on a heap disjunction's order; the caller then
// lets Bleve's searchers score.
func (e *Engine) scoredMatches(r index.IndexReader, sv *snapshotColumns, q query.Query) ([]scoredSegment, bool, error) {
	segs := sv.snap.Segments()
	docTotal, err := r.DocCount()
	if err != nil {
		return nil, false, fmt.Errorf("bleve: %w", err)
	}
	b := &tbuild{r: r, cache: &e.fuzzy, segs: make([]*segBits, len(segs)), docTotal: docTotal}
	for i, ss := range segs {
		b.segs[i] = &segBits{r: r, cache: &e.fuzzy, seg: ss.Segment(), del: ss.Deleted(), dicts: map[string]segment.TermDictionary{}}
	}
	root, ok, err := b.build(q)
	if !ok || err != nil {
		return nil, ok, err
	}
	root.normalize()
	out := make([]scoredSegment, len(segs))
	for i, ss := range segs {
		s := &segScorer{seg: i, n: ss.Segment().Count(), del: ss.Deleted(), memo: map[*tnode]*roaring.Bitmap{}, thrice: roaring.New(),
			segment: ss.Segment(), cols: sv.cols[i], cache: &e.cols, decodeMin: e.decodeMin,
			snap: sv.snap, spawn: e.guard.Go}
		bm, err := s.bits(root)
		if err != nil {
			return nil, false, err
		}
		if s.thrice.Intersects(bm) {
			return nil, false, nil
		}
		out[i] = scoredSegment{root: root, s: s, bits: bm}
	}
	return out, true, nil
}

// scoredEach calls fn for each document in bits (per segment, local
// numbers, each a subset of what the query matches there) with its score,
// in document order.
func (e *Engine) scoredEach(ctx context.Context, sv *snapshotColumns, segs []scoredSegment, bits []*roaring.Bitmap, fn func(matchInfo) error) error {
	a := e.getArena()
	defer e.putArena(a)
	var id index.IndexInternalID
	n := 0
	for i, bm := range bits {
		if bm.IsEmpty() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		sc, err := segs[i].s.score(segs[i].root, bm, a)
		if err != nil {
			return err
		}
		var buf [256]uint32
		it := bm.ManyIterator()
		for k := it.NextMany(buf[:]); k > 0; k = it.NextMany(buf[:]) {
			for _, d := range buf[:k] {
				if n++; n%4096 == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
				}
				id = index.NewIndexInternalID(id[:0], sv.offsets[i]+uint64(d))
				if err := fn(matchInfo{id: id, score: sc[d]}); err != nil {
					return err
				}
			}
		}
		a.free(sc)
	}
	return nil
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
