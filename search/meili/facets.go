package meili

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/meilisearch/meilisearch-go"

	"github.com/casevault/casevault/search"
)

// Disjunctive facets (issue 16 §4) in the same multi-search as the query:
// each facet the query's filter constrains is counted by the query without
// that filter, and those counting requests are appended to the query's own
// multi-search, so a search with facets is one round trip however many
// facet fields it filters on (it was one more multi-search per field).

// facetPart is the requests that count one disjunctive facet, and how to
// read their responses (in request order) into the facet's counts.
type facetPart struct {
	key     string
	queries []*meilisearch.SearchRequest
	read    func(resps []json.RawMessage) (map[string]int64, error)
}

// countRequest counts (and facets) the documents of one branch's text
// under filters, with no hits.
func (e *Engine) countRequest(text string, filters []filterExpr) *meilisearch.SearchRequest {
	zero := int64(0)
	c := &meilisearch.SearchRequest{IndexUID: e.IndexName(), Query: text, MatchingStrategy: meilisearch.All, Page: 1, HitsPerPage: &zero}
	if len(filters) > 0 {
		c.Filter = filterArray(filters...)
	}
	return c
}

// facetParts builds the counting requests of every disjunctive facet of q.
func (e *Engine) facetParts(q search.Query) ([]facetPart, error) {
	var out []facetPart
	for _, v := range search.DisjunctiveVariants(q) {
		p, err := e.facetPart(v)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func (e *Engine) facetPart(v search.FacetVariant) (facetPart, error) {
	p := facetPart{key: v.Key, read: func([]json.RawMessage) (map[string]int64, error) { return map[string]int64{}, nil }}
	bs, err := branches(v.Query, v.Query.Exact)
	if err != nil {
		return p, err
	}
	bs = slices.DeleteFunc(bs, func(b branch) bool { return !everyTermSearchable(b.words, b.phrases) })
	switch {
	case len(bs) == 0:
		return p, nil
	case len(bs) > 1:
		return e.unionFacetPart(v, bs), nil
	}
	b := bs[0]
	text := b.text()
	for _, f := range caseFacets {
		if f.key != v.Key {
			continue
		}
		c := e.countRequest(text, b.filters)
		c.Facets = []string{string(f.attr)}
		p.queries = []*meilisearch.SearchRequest{c}
		p.read = func(resps []json.RawMessage) (map[string]int64, error) {
			var r searchResponse
			if err := json.Unmarshal(resps[0], &r); err != nil {
				return nil, &Error{Op: "multi-search", Message: "decode facet counts", Err: err}
			}
			m := map[string]int64{}
			for val, n := range r.FacetDistribution[string(f.attr)] {
				m[decodeValue(val)] = n
			}
			return m, nil
		}
		return p, nil
	}
	for _, f := range contactFacets {
		if f.key != v.Key {
			continue
		}
		for _, val := range f.values {
			p.queries = append(p.queries, e.countRequest(text, append(slices.Clone(b.filters), eq(f.attr, encodeValue(val)))))
		}
		p.read = func(resps []json.RawMessage) (map[string]int64, error) {
			m := map[string]int64{}
			for i, val := range f.values {
				var r searchResponse
				if err := json.Unmarshal(resps[i], &r); err != nil {
					return nil, &Error{Op: "multi-search", Message: "decode facet counts", Err: err}
				}
				if r.TotalHits != nil && *r.TotalHits > 0 {
					m[val] = *r.TotalHits
				}
			}
			return m, nil
		}
		return p, nil
	}
	return p, fmt.Errorf("meili: no facet %q", v.Key)
}

// unionFacetPart counts a facet of an OR over texts as searchUnion does:
// every matching contact of every branch, grouped by case.
func (e *Engine) unionFacetPart(v search.FacetVariant, bs []branch) facetPart {
	reqs := e.unionRequests(bs, nil)
	return facetPart{key: v.Key, queries: reqs, read: func(resps []json.RawMessage) (map[string]int64, error) {
		byCase := map[string]*unionCase{}
		for bi, raw := range resps {
			var r unionResponse
			if err := json.Unmarshal(raw, &r); err != nil {
				return nil, &Error{Op: "multi-search", Message: "decode facet counts", Err: err}
			}
			if r.TotalHits != nil && *r.TotalHits > int64(len(r.Hits)) {
				return nil, &search.QueryError{Message: fmt.Sprintf("an OR alternative matches more than %d contacts; narrow it", maxTotalHits)}
			}
			for _, d := range r.Hits {
				addUnion(byCase, bi, d, search.SortRelevance)
			}
		}
		cs := make([]*unionCase, 0, len(byCase))
		for _, c := range byCase {
			cs = append(cs, c)
		}
		return unionFacets(cs)[v.Key], nil
	}}
}

// partQueries lists the requests of parts in order.
func partQueries(parts []facetPart) []*meilisearch.SearchRequest {
	var out []*meilisearch.SearchRequest
	for _, p := range parts {
		out = append(out, p.queries...)
	}
	return out
}

// readParts sets res's facet of each part from its responses (resps holds
// exactly partQueries(parts)'s answers).
func readParts(parts []facetPart, resps []json.RawMessage, res *search.Result) error {
	for _, p := range parts {
		n := len(p.queries)
		m, err := p.read(resps[:n])
		if err != nil {
			return err
		}
		resps = resps[n:]
		if res.Facets != nil {
			res.Facets[p.key] = m
		}
	}
	return nil
}
