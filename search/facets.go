package search

import "context"

// facetFields are the facets whose counts are disjunctive within their own
// field: each is counted with every filter of the query except its own, so
// that selecting status:open still shows how many cases are pending or
// closed (the usual helpdesk and shop behaviour). Only the top-level filter
// counts as "the field's filter"; field terms inside OR groups are part of
// the query.
var facetFields = []struct {
	key   string
	clear func(*Filter) bool
}{
	{"status", func(f *Filter) bool { had := len(f.Statuses) > 0; f.Statuses = nil; return had }},
	{"channel", func(f *Filter) bool { had := len(f.Channels) > 0; f.Channels = nil; return had }},
	{"tag", func(f *Filter) bool { had := len(f.Tags) > 0; f.Tags = nil; return had }},
	{"purpose", func(f *Filter) bool { had := len(f.Purposes) > 0; f.Purposes = nil; return had }},
}

// FacetVariant is one disjunctive facet to count: Query is the query
// without the filter of the field Key (no hits needed beyond the first).
type FacetVariant struct {
	Key   string
	Query Query
}

// DisjunctiveVariants lists the facets of q that its top-level filter
// constrains, each with the query that counts it. None when q asks for no
// facets. Engines that can count them all in one round trip (Meilisearch:
// one multi-search) use this; others use DisjunctiveFacets.
func DisjunctiveVariants(q Query) []FacetVariant {
	if !q.Facets {
		return nil
	}
	var out []FacetVariant
	for _, f := range facetFields {
		q2 := q
		if !f.clear(&q2.Filter) {
			continue
		}
		q2.Offset, q2.Limit = 0, 1
		out = append(out, FacetVariant{Key: f.key, Query: q2})
	}
	return out
}

// DisjunctiveFacets replaces res's facet counts of every faceted field that
// q filters on by the counts of q without that field's filter, each from
// one more run (no hits needed beyond the first). run is the engine's
// search without this step. Engines call it from Search, so the rule lives
// here once.
func DisjunctiveFacets(ctx context.Context, q Query, res *Result, run func(context.Context, Query) (Result, error)) error {
	if res.Facets == nil {
		return nil
	}

	for _, v := range DisjunctiveVariants(q) {
		r, err := run(ctx, v.Query)
		if err != nil {
			return err
		}
		res.Facets[v.Key] = r.Facets[v.Key]
	}
	return nil
}
