package bleve

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/mapping"
	bsearch "github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
	index "github.com/blevesearch/bleve_index_api"
	"golang.org/x/sync/errgroup"

	"github.com/casevault/casevault/search"
)

// Fuzziness follows Meilisearch's defaults: exact below 5 characters, one
// typo from 5, two from 9, where a typo on the first character counts as
// two. So a fuzzy term keeps its first character (prefix 1), except that a
// 9+ character word may also differ by one edit anywhere. Keeping the first
// character is also what keeps fuzzy matching fast: the automaton then
// walks one branch of the term dictionary instead of all of it (which,
// with CJK bigrams in the same field, is huge).
func fuzziness(term string) int {
	switch n := utf8.RuneCountInString(term); {
	case n >= 9:
		return 2
	case n >= 5:
		return 1
	default:
		return 0
	}
}

// hasCJK reports whether s holds ideographs or kana/hangul, which the
// analyzer turns into bigrams: those are matched as phrases, never fuzzily.
func hasCJK(s string) bool {
	for _, r := range s {
		if unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r) || unicode.Is(unicode.Hangul, r) {
			return true
		}
	}
	return false
}

var textFields = []string{fText}

func hasCJKBytes(b []byte) bool {
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r >= 0x2E80 && (unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r) || unicode.Is(unicode.Hangul, r)) {
			return true
		}
		b = b[size:]
	}
	return false
}

func disjunction(qs []query.Query) query.Query {
	if len(qs) == 1 {
		return qs[0]
	}
	return query.NewDisjunctionQuery(qs)
}

func conjunction(qs []query.Query) query.Query {
	if len(qs) == 1 {
		return qs[0]
	}
	return query.NewConjunctionQuery(qs)
}

func termsQuery(field string, vals []string) query.Query {
	qs := make([]query.Query, 0, len(vals))
	for _, v := range vals {
		tq := query.NewTermQuery(v)
		tq.SetField(field)
		qs = append(qs, tq)
	}
	return disjunction(qs)
}

// phraseQuery matches p's tokens at consecutive positions: Latin tokens in
// the text field, CJK bigrams in the CJK field. nil: nothing searchable.
func (e *Engine) phraseQuery(p string) query.Query {
	var latin, cjk []string
	for _, t := range e.text.Analyze([]byte(p)) {
		if hasCJKBytes(t.Term) {
			cjk = append(cjk, string(t.Term))
		} else {
			latin = append(latin, string(t.Term))
		}
	}
	var qs []query.Query
	for _, part := range []struct {
		terms []string
		field string
	}{{latin, fText}, {cjk, fTextCJK}} {
		switch len(part.terms) {
		case 0:
		case 1:
			if part.field == fTextCJK && utf8.RuneCountInString(part.terms[0]) == 1 {
				qs = append(qs, charQuery(part.terms[0]))
				continue
			}
			tq := query.NewTermQuery(part.terms[0])
			tq.SetField(part.field)
			qs = append(qs, tq)
		default:
			qs = append(qs, query.NewPhraseQuery(part.terms, part.field))
		}
	}
	if len(qs) == 0 {
		return nil
	}
	return conjunction(qs)
}

// charQuery matches one CJK character wherever it occurs: the index holds
// bigrams (a character alone only where it stands alone), so the character
// is the first or the second half of a bigram, or a term of its own. The
// regexp walks only the CJK field's dictionary.
func charQuery(c string) query.Query {
	c = regexp.QuoteMeta(c)
	rq := query.NewRegexpQuery(c + ".?|." + c)
	rq.SetField(fTextCJK)
	return rq
}

func fuzzyQuery(term, field string, fuzziness, prefix int) query.Query {
	fq := query.NewFuzzyQuery(term)
	fq.SetField(field)
	fq.SetFuzziness(fuzziness)
	fq.SetPrefix(prefix)
	return fq
}

// wordQuery matches one typed word in the subject or the body, typo-tolerant
// per analyzed token. nil means the word has no searchable token.
func (e *Engine) wordQuery(w string, fuzzy bool) query.Query {
	toks := e.text.Analyze([]byte(w))
	if len(toks) == 0 {
		return nil
	}

	if hasCJK(w) || len(toks) > 1 && !fuzzy {
		return e.phraseQuery(w)
	}

	per := make([]query.Query, 0, len(toks))
	for _, t := range toks {
		term := string(t.Term)
		f := 0
		if fuzzy {
			f = fuzziness(term)
		}
		qs := make([]query.Query, 0, len(textFields)+1)
		// English inflections: refund finds "Refunded". Not for exact
		// words, which match as typed.
		if fuzzy {
			st, _ := e.stems.lookup(t.Term) // its form in the stemmed field
			tq := query.NewTermQuery(string(st))
			tq.SetField(fTextEN)
			qs = append(qs, tq)
		}
		for _, field := range textFields {
			switch f {
			case 0:
				tq := query.NewTermQuery(term)
				tq.SetField(field)
				qs = append(qs, tq)
			case 1:
				qs = append(qs, e.fuzzyQuery(term, field, 1, 1))
			default:
				qs = append(qs, e.fuzzyQuery(term, field, 2, 1), e.fuzzyQuery(term, field, 1, 0))
			}
		}
		per = append(per, disjunction(qs))
	}

	return conjunction(per)
}

// buildQuery translates a search.Query. User text only ever becomes terms
// of typed queries (never query-string syntax), so it cannot widen a filter.
//
// Filters on fields with few distinct values (status, channel, tag, ...)
// and the date range match a large share of all contacts: as clauses of
// the conjunction they cost a postings skip (or, for the date range, a
// heap of dozens of numeric terms) on every candidate, which was most of
// the slow tail. Those that are not selective are checked instead on the
// decoded columns of each candidate (docFilter); the selective ones, and
// customer and case IDs, stay in the query where skipping pays.
//
// Fields in onColumns are always checked on the columns, never as clauses:
// the disjunctive facets' collectors each drop one of them (see search).
func (e *Engine) buildQuery(ctx context.Context, r index.IndexReader, q search.Query, onColumns map[string]bool) (query.Query, *docFilter, error) {
	var must []query.Query
	// Every word and phrase must match. One that analyzes to no token
	// ("４１１１", "²³" reach here only if a caller skipped ParseQuery) can
	// match nothing, so neither can the query: dropping it instead would
	// widen the query, down to match-all when it was the only term.
	for _, w := range q.Words {
		wq := e.wordQuery(w, !q.Exact)
		if wq == nil {
			return query.NewMatchNoneQuery(), nil, nil
		}
		must = append(must, wq)
	}

	for _, p := range q.Phrases {
		pq := e.phraseQuery(p)
		if pq == nil {
			return query.NewMatchNoneQuery(), nil, nil
		}
		must = append(must, pq)
	}

	f := q.Filter
	f.Tags, f.Assignees = search.FoldKeywords(f.Tags), search.FoldKeywords(f.Assignees)
	if len(f.Numbers) > 0 {
		must = append(must, termsQuery(fNumber, numberTerms(f.Numbers)))
	}

	for _, g := range q.Groups {
		gq := e.groupQuery(g, false)
		if g.Negated {
			must = append(must, mustNot(query.NewMatchAllQuery(), gq))
		} else {
			must = append(must, gq)
		}
	}

	df := &docFilter{}
	type candidate struct {
		field string
		vals  []string
		count uint64
	}

	var cands []candidate
	for _, c := range []struct {
		field string
		vals  []string
	}{
		{fStatus, f.Statuses}, {fChannel, f.Channels}, {fPriority, f.Priorities},
		{fCustomer, f.CustomerIDs}, {fAssignee, f.Assignees}, {fTags, f.Tags},
		{fPurposes, f.Purposes}, {fCaseID, f.CaseIDs},
	} {
		if len(c.vals) == 0 {
			continue
		}
		if !columnField(c.field) {
			must = append(must, termsQuery(c.field, c.vals))
			continue
		}
		if onColumns[c.field] {
			df.keywords = append(df.keywords, keywordFilter{field: c.field, values: c.vals})
			continue
		}
		var n uint64
		for _, v := range c.vals {
			tfr, err := r.TermFieldReader(ctx, []byte(v), c.field, false, false, false)
			if err != nil {
				return nil, nil, fmt.Errorf("bleve: %w", err)
			}
			n += tfr.Count()
			_ = tfr.Close()
		}
		cands = append(cands, candidate{c.field, c.vals, n})
	}

	total, err := r.DocCount()
	if err != nil {
		return nil, nil, fmt.Errorf("bleve: %w", err)
	}

	slices.SortFunc(cands, func(a, b candidate) int { return cmp.Compare(a.count, b.count) })
	for i, c := range cands {
		// selective (under an eighth of all documents), or the only thing
		// left to drive the search: a query clause
		if c.count*8 < total || i == 0 && len(must) == 0 {
			must = append(must, termsQuery(c.field, c.vals))
			continue
		}
		df.keywords = append(df.keywords, keywordFilter{field: c.field, values: c.vals})
	}

	// Negated field terms: on columns where the field has them, else as
	// clauses that must not match.
	var excl []query.Query
	n := q.Not
	n.Tags, n.Assignees = search.FoldKeywords(n.Tags), search.FoldKeywords(n.Assignees)
	for _, c := range []struct {
		field string
		vals  []string
	}{
		{fStatus, n.Statuses}, {fChannel, n.Channels}, {fPriority, n.Priorities},
		{fCustomer, n.CustomerIDs}, {fAssignee, n.Assignees}, {fTags, n.Tags},
		{fPurposes, n.Purposes}, {fCaseID, n.CaseIDs}, {fNumber, numberTerms(n.Numbers)},
	} {
		switch {
		case len(c.vals) == 0:
		case columnField(c.field):
			df.keywords = append(df.keywords, keywordFilter{field: c.field, values: c.vals, negated: true})
		default:
			excl = append(excl, termsQuery(c.field, c.vals))
		}
	}

	if !f.From.IsZero() || !f.To.IsZero() {
		df.dated = true
		df.from, df.to = math.MinInt64, math.MaxInt64
		if !f.From.IsZero() {
			df.from = int64(micros(f.From))
		}
		if !f.To.IsZero() {
			df.to = int64(micros(f.To))
		}
	}

	for _, x := range q.Excluded {
		if xq := e.wordQuery(x, false); xq != nil {
			excl = append(excl, xq)
		}
	}

	if len(must) == 0 {
		must = append(must, query.NewMatchAllQuery())
	}

	all := conjunction(must)
	if len(excl) > 0 {
		bq := query.NewBooleanQuery(nil, nil, nil)
		bq.AddMust(all)
		bq.AddMustNot(excl...)
		all = bq
	}

	if len(df.keywords) == 0 && !df.dated {
		df = nil
	}

	return all, df, nil
}

func numberTerms(ns []int64) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = strconv.FormatInt(n, 10)
	}
	return out
}

// mustNot is base without the documents excluded matches.
func mustNot(base query.Query, excluded ...query.Query) query.Query {
	bq := query.NewBooleanQuery(nil, nil, nil)
	bq.AddMust(base)
	bq.AddMustNot(excluded...)
	return bq
}

// groupQuery is the disjunction of a group's alternatives (the caller
// negates it when the group is negated). Inside a negated group words are
// exact, as excluded words are.
func (e *Engine) groupQuery(g search.Group, exact bool) query.Query {
	exact = exact || g.Negated
	alts := make([]query.Query, 0, len(g.Any))
	for _, a := range g.Any {
		alts = append(alts, e.clauseQuery(a, exact))
	}
	return disjunction(alts)
}

// clauseQuery is one alternative of a group as a single query: every part
// a clause (the top-level column filters of buildQuery are an
// optimisation for the common flat query only).
func (e *Engine) clauseQuery(q search.Query, exact bool) query.Query {
	var must, not []query.Query
	for _, w := range q.Words {
		wq := e.wordQuery(w, !exact)
		if wq == nil {
			return query.NewMatchNoneQuery()
		}
		must = append(must, wq)
	}

	for _, p := range q.Phrases {
		pq := e.phraseQuery(p)
		if pq == nil {
			return query.NewMatchNoneQuery()
		}
		must = append(must, pq)
	}

	for _, x := range q.Excluded {
		if xq := e.wordQuery(x, false); xq != nil {
			not = append(not, xq)
		}
	}

	must = append(must, filterClauses(q.Filter)...)
	nf := q.Not
	nf.From, nf.To, nf.UpdatedFrom, nf.UpdatedTo = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if fc := filterClauses(nf); len(fc) > 0 {
		// each negated field is a clause of its own: none of its values
		not = append(not, fc...)
	}

	for _, g := range q.Groups {
		gq := e.groupQuery(g, exact)
		if g.Negated {
			not = append(not, gq)
		} else {
			must = append(must, gq)
		}
	}

	if len(must) == 0 {
		must = append(must, query.NewMatchAllQuery())
	}
	if len(not) == 0 {
		return conjunction(must)
	}
	return mustNot(conjunction(must), not...)
}

// filterClauses turns a filter into query clauses, one per constrained
// field; dates as term ranges over the fixed-width keys (contact dates only
// on contact documents). The case's updated_at is no document's field (see
// collector.keepUpdated): the parser refuses updated: inside a group.
func filterClauses(f search.Filter) []query.Query {
	var out []query.Query
	for _, c := range []struct {
		field string
		vals  []string
	}{
		{fStatus, f.Statuses}, {fChannel, f.Channels}, {fPriority, f.Priorities},
		{fCustomer, f.CustomerIDs}, {fAssignee, search.FoldKeywords(f.Assignees)}, {fTags, search.FoldKeywords(f.Tags)},
		{fPurposes, f.Purposes}, {fCaseID, f.CaseIDs}, {fNumber, numberTerms(f.Numbers)},
	} {
		if len(c.vals) > 0 {
			out = append(out, termsQuery(c.field, c.vals))
		}
	}

	keyRange := func(field string, from, to time.Time) query.Query {
		lo, hi := microsKey(math.MinInt64), microsKey(math.MaxInt64)
		if !from.IsZero() {
			lo = sortKey(from)
		}
		if !to.IsZero() {
			hi = sortKey(to)
		}
		incl, excl := true, false
		rq := query.NewTermRangeInclusiveQuery(lo, hi, &incl, &excl)
		rq.SetField(field)
		return rq
	}

	if !f.From.IsZero() || !f.To.IsZero() {
		tq := query.NewTermQuery("1")
		tq.SetField(fContact)
		out = append(out, tq, keyRange(fSortAt, f.From, f.To))
	}
	return out
}

type matchInfo struct {
	id    index.IndexInternalID // valid only during the callback
	score float64
}

// each runs q against the snapshot r and calls fn for every matching
// document, without Bleve's top-N collector: the callers need every match.
func each(ctx context.Context, r index.IndexReader, m mapping.IndexMapping, q query.Query, score bool, fn func(matchInfo) error) error {
	s, err := newSearcher(ctx, r, m, q, score)
	if err != nil {
		return err
	}
	defer s.Close()
	return walkRange(ctx, r, s, 0, math.MaxUint64, fn)
}

// walk feeds every match of q to each collector, in document order. When
// q may match at least splitMin documents (its searcher's count, an upper
// bound) and a core is free of other searches (spare), the documents are
// walked in two halves by number on two goroutines, each half into its
// own collectors, merged after
// (collector.merge): the unfiltered broad queries of the console's search
// page ("refund", "damaged courier": 15,000 of 20,000 cases) spent 80% of
// their time in this walk.
func (e *Engine) walk(ctx context.Context, r index.IndexReader, sv *snapshotColumns, q query.Query, score bool, cs []*collector) error {
	s, err := newSearcher(ctx, r, e.m, q, score)
	if err != nil {
		return err
	}
	defer s.Close()
	total := sv.offsets[len(sv.offsets)-1]
	if s.Count() < uint64(e.splitMin) || total < 2 || !e.spare.take() {
		return walkRange(ctx, r, s, 0, math.MaxUint64, feedAll(cs))
	}
	defer e.spare.give()

	s2, err := newSearcher(ctx, r, e.m, q, score)
	if err != nil {
		return err
	}
	defer s2.Close()
	twins := make([]*collector, len(cs))
	for i, c := range cs {
		twins[i] = newCollector(sv, c.filter, c.sortBy, c.facets)
	}
	mid := total / 2
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return walkRange(gctx, r, s, 0, mid, feedAll(cs)) })
	g.Go(func() error { return walkRange(gctx, r, s2, mid, math.MaxUint64, feedAll(twins)) })
	if err := g.Wait(); err != nil {
		return err
	}
	for i, c := range cs {
		c.merge(twins[i])
	}
	return nil
}

// feedAll adds each match to every collector.
func feedAll(cs []*collector) func(matchInfo) error {
	if len(cs) == 1 {
		return cs[0].add
	}
	return func(m matchInfo) error {
		for _, c := range cs {
			if err := c.add(m); err != nil {
				return err
			}
		}
		return nil
	}
}

// newSearcher is q's searcher on r, unscored unless score.
func newSearcher(ctx context.Context, r index.IndexReader, m mapping.IndexMapping, q query.Query, score bool) (bsearch.Searcher, error) {
	opts := bsearch.SearcherOptions{}
	if !score {
		opts.Score = "none"
	}
	s, err := q.Searcher(ctx, r, m, opts)
	if err != nil {
		return nil, fmt.Errorf("bleve: searcher: %w", err)
	}
	return s, nil
}

// walkRange calls fn for each match of s numbered in [from, to).
func walkRange(ctx context.Context, r index.IndexReader, s bsearch.Searcher, from, to uint64, fn func(matchInfo) error) error {
	sctx := &bsearch.SearchContext{
		DocumentMatchPool: bsearch.NewDocumentMatchPool(s.DocumentMatchPoolSize()+1, 0),
		IndexReader:       r,
	}
	var dm *bsearch.DocumentMatch
	var err error
	if from > 0 {
		dm, err = s.Advance(sctx, index.NewIndexInternalID(nil, from))
	} else {
		dm, err = s.Next(sctx)
	}
	for n := 0; ; n++ {
		if err != nil {
			return fmt.Errorf("bleve: search: %w", err)
		}
		if dm == nil || dm.IndexInternalID.Value() >= to {
			return nil
		}
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := fn(matchInfo{id: dm.IndexInternalID, score: dm.Score}); err != nil {
			return err
		}
		sctx.DocumentMatchPool.Put(dm)
		dm, err = s.Next(sctx)
	}
}

// Search implements search.Engine; facets are disjunctive within a field
// (search.DisjunctiveFacets).
//
// They are counted in the same walk as the hits: the query is walked once
// with the constrained facet fields' filters checked on the columns, each
// match goes to the query's collector and to one collector per such
// field whose filter lacks that field's values, and each of those counts
// its own field's facet. Re-running the query once per field (what
// search.DisjunctiveFacets does) cost 1.7× the query on the benchmark
// corpus; see docs/ARCHITECTURE.md for the figures.
func (e *Engine) Search(ctx context.Context, q search.Query) (search.Result, error) {
	return e.search(ctx, q, true)
}

// facetColumn is the indexed field of each disjunctive facet key.
var facetColumn = map[string]string{"status": fStatus, "channel": fChannel, "tag": fTags, "purpose": fPurposes}

// search answers q, with facets disjunctive within their field when
// disjunctive is set.
func (e *Engine) search(ctx context.Context, q search.Query, disjunctive bool) (search.Result, error) {
	return e.searchWith(ctx, q, disjunctive, true)
}

// searchWith is search, walking every match with Bleve's searchers when
// prefilter is off (the reference the prefilter's tests compare with).
func (e *Engine) searchWith(ctx context.Context, q search.Query, disjunctive, prefilter bool) (search.Result, error) {
	w, err := q.Window()
	if err != nil {
		return search.Result{}, fmt.Errorf("bleve: %w", err)
	}

	r, err := e.reader()
	if err != nil {
		return search.Result{}, err
	}
	defer r.Close()
	sv, err := e.cols.forReader(ctx, r)
	if err != nil {
		return search.Result{}, err
	}
	var variants []search.FacetVariant
	onColumns := map[string]bool{}
	if disjunctive {
		variants = search.DisjunctiveVariants(q)
		for _, v := range variants {
			onColumns[facetColumn[v.Key]] = true
		}
	}
	all, df, err := e.buildQuery(ctx, r, q, onColumns)
	if err != nil {
		return search.Result{}, err
	}

	// the query's collector counts the facets no variant replaces
	var mainFacets facetSet
	if q.Facets {
		mainFacets = allFacets
		for _, v := range variants {
			mainFacets &^= facetKeySet(v.Key)
		}
	}
	c := newCollector(sv, df, w.Sort, mainFacets)
	collectors := []*collector{c}
	updatedWindow := !q.Filter.UpdatedFrom.IsZero() || !q.Filter.UpdatedTo.IsZero()
	for _, v := range variants {
		vc := newCollector(sv, df.without(facetColumn[v.Key]), w.Sort, facetKeySet(v.Key))
		// an updated-at window is applied to the cases after the walk
		// (keepUpdated), so such a view needs its groups
		vc.countOnly = !updatedWindow
		collectors = append(collectors, vc)
	}
	// With filters on columns (or disjunctive facets) the match set is
	// narrowed on bitmaps first, see prefilter.go.
	done := false
	// A scored query without either goes the same way when the
	// term-at-a-time scorer can score it (scorer.go).
	if prefilter && (df != nil || len(variants) > 0 || q.HasText() && !e.bleveScores) {
		if done, err = e.prefiltered(ctx, r, sv, all, q.HasText(), c, collectors[1:]); err != nil {
			return search.Result{}, err
		}
	}
	if !done {
		if err := e.walk(ctx, r, sv, all, q.HasText(), collectors); err != nil {
			return search.Result{}, err
		}
	}

	if f := q.Filter; updatedWindow {
		from, to := int64(math.MinInt64), int64(math.MaxInt64)
		if !f.UpdatedFrom.IsZero() {
			from = f.UpdatedFrom.UnixMicro()
		}
		if !f.UpdatedTo.IsZero() {
			to = f.UpdatedTo.UnixMicro()
		}
		for _, c := range collectors {
			c.keepUpdated(from, to)
		}
	}

	res := search.Result{Total: int64(len(c.groups)), Hits: []search.Hit{}}
	if q.Facets {
		res.Facets = c.facetCounts()
		for i, v := range variants {
			res.Facets[v.Key] = collectors[i+1].facetCounts()[v.Key]
		}
	}
	page := c.page(w.Offset, w.Limit)
	if len(page) == 0 {
		return res, nil
	}
	res.Hits, err = e.hydrate(ctx, r, page, e.newHighlighter(q))
	return res, err
}

// hydrate turns the page's groups into hits: stored fields of each best
// contact and a snippet. Matches are found by re-analyzing the shown text
// and applying the query's own matching rules (highlighter), which is far
// cheaper than a second search with term locations.
func (e *Engine) hydrate(_ context.Context, r index.IndexReader, page []group, hl *highlighter) ([]search.Hit, error) {
	hits := make([]search.Hit, len(page))
	for i := range page {
		id, err := r.ExternalID(index.NewIndexInternalID(nil, page[i].best))
		if err != nil {
			return nil, fmt.Errorf("bleve: %w", err)
		}
		hits[i] = search.Hit{CaseID: page[i].caseID, ContactID: contactOf(id), Score: page[i].bestScore}
		doc, err := r.Document(id)
		if err != nil {
			return nil, fmt.Errorf("bleve: load %s: %w", id, err)
		}
		var subject, body string
		if doc != nil {
			doc.VisitFields(func(f index.Field) {
				v := string(f.Value())
				switch f.Name() {
				case fNumber:
					hits[i].Number, _ = strconv.ParseInt(v, 10, 64)
				case fSubject:
					subject = v
				case fStatus:
					hits[i].Status = v
				case fCustomer:
					hits[i].CustomerID = v
				case fBody:
					body = v
				}
			})
		}
		hits[i].Subject = subject
		bodySpans := hl.spans(body)
		if body == "" || len(bodySpans) == 0 && subject != "" && len(hl.spans(subject)) > 0 {
			hits[i].Snippet, hits[i].SnippetField = search.Snippet(subject, hl.spans(subject), search.SnippetRunes), "subject"
		} else {
			hits[i].Snippet, hits[i].SnippetField = search.Snippet(body, bodySpans, search.SnippetRunes), "body"
		}
	}

	return hits, nil
}

// highlighter marks the tokens of a text that the query's words and
// phrases match, under the same rules as the search (fuzziness by length,
// first character kept).
type highlighter struct {
	analyzer interface {
		Analyze([]byte) analysis.TokenStream
	}
	fuzzy []string        // word tokens matched with typo tolerance
	exact map[string]bool // CJK bigrams and phrase tokens
}

func (e *Engine) newHighlighter(q search.Query) *highlighter {
	h := &highlighter{analyzer: e.text, exact: map[string]bool{}}
	h.add(q)
	return h
}

// add takes the words and phrases of q and of its groups that are not
// negated (a negated group's words are what the hit does not hold).
func (h *highlighter) add(q search.Query) {
	for _, w := range q.Words {
		toks := h.analyzer.Analyze([]byte(w))
		cjkWord := hasCJK(w)
		for _, t := range toks {
			if cjkWord {
				h.exact[string(t.Term)] = true
			} else {
				h.fuzzy = append(h.fuzzy, string(t.Term))
			}
		}
	}
	for _, p := range q.Phrases {
		for _, t := range h.analyzer.Analyze([]byte(p)) {
			h.exact[string(t.Term)] = true
		}
	}
	for _, g := range q.Groups {
		if !g.Negated {
			for _, a := range g.Any {
				h.add(a)
			}
		}
	}
}

func (h *highlighter) matches(tok string) bool {
	if h.exact[tok] {
		return true
	}
	for _, w := range h.fuzzy {
		if tok == w {
			return true
		}
		f := fuzziness(w)
		if f == 0 {
			continue
		}
		d, exceeded := bsearch.LevenshteinDistanceMax(tok, w, f)
		if exceeded || d > f {
			continue
		}
		tr, _ := utf8.DecodeRuneInString(tok)
		wr, _ := utf8.DecodeRuneInString(w)
		if tr == wr || d <= 1 && f == 2 {
			return true
		}
	}
	return false
}

func (h *highlighter) spans(text string) []search.Span {
	if text == "" || len(h.fuzzy) == 0 && len(h.exact) == 0 {
		return nil
	}
	var out []search.Span
	for _, t := range h.analyzer.Analyze([]byte(text)) {
		if h.matches(string(t.Term)) {
			out = append(out, search.Span{Start: t.Start, End: t.End})
		}
	}
	return out
}
