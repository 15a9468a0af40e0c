package meili

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/meilisearch/meilisearch-go"

	"github.com/casevault/casevault/search"
)

// unionCase is one case found by some branch of an OR over text.
type unionCase struct {
	caseID    string
	status    string
	tags      []string
	channels  map[string]bool
	purposes  map[string]bool
	score     float64
	sortAt    int64 // newest (oldest, for SortOldest) matching contact
	updatedAt int64
	best      string // document id of the contact that represents it
	bestScore float64
	bestAt    int64
	branch    int // the branch that found best
}

// unionDoc is the part of a matching document the union needs.
type unionDoc struct {
	ID           string   `json:"id"`
	CaseID       string   `json:"case_id"`
	Status       string   `json:"status"`
	XTags        []string `json:"x_tags"`
	Channel      string   `json:"channel"`
	Purposes     []string `json:"purposes"`
	SortAt       int64    `json:"sort_at"`
	UpdatedAt    int64    `json:"updated_at"`
	RankingScore *float64 `json:"_rankingScore"`
}

type idHits struct {
	Hits []struct {
		hitDoc
		ID string `json:"id"`
	} `json:"hits"`
}

// multiSearchInto sends queries as one multi-search and decodes each
// result as a T.
func multiSearchInto[T any](ctx context.Context, e *Engine, queries []*meilisearch.SearchRequest) ([]*T, error) {
	if len(queries) == 0 {
		return nil, nil
	}
	cctx, cancel := e.call(ctx)
	defer cancel()
	mr, err := e.client.MultiSearch(cctx, &meilisearch.MultiSearchRequest{Queries: queries})
	if err != nil {
		return nil, wrap("multi-search", err)
	}
	if len(mr.Results) != len(queries) {
		return nil, &Error{Op: "multi-search", Message: fmt.Sprintf("%d results for %d queries", len(mr.Results), len(queries))}
	}
	out := make([]*T, len(queries))
	for i, r := range mr.Results {
		b, err := json.Marshal(r)
		if err == nil {
			out[i] = new(T)
			err = json.Unmarshal(b, out[i])
		}
		if err != nil {
			return nil, &Error{Op: "multi-search", Message: "decode response", Err: err}
		}
	}
	return out, nil
}

type unionResponse struct {
	Hits      []unionDoc `json:"hits"`
	TotalHits *int64     `json:"totalHits"`
}

// searchUnion answers a query whose OR spans texts: Meilisearch has one q
// per search, so each branch is a search of its own (all in one
// multi-search), each returning every matching contact (distinct per
// document, up to maxTotalHits); the union is grouped by case, ranked by
// the best score or sorted like a single search, and cut to the page.
// A second multi-search fetches the page's representing contacts with
// their match positions for the snippets. A branch matching more than
// maxTotalHits contacts is refused: its union would be incomplete.
// The disjunctive facets' counting requests (parts) go into the first
// multi-search.
func (e *Engine) searchUnion(ctx context.Context, q search.Query, bs []branch, parts []facetPart) (search.Result, error) {
	w, err := q.Window()
	if err != nil {
		return search.Result{}, fmt.Errorf("meili: %w", err)
	}

	var sortBy []string
	switch w.Sort {
	case search.SortNewest:
		sortBy = []string{"sort_at:desc"}
	case search.SortOldest:
		sortBy = []string{"sort_at:asc"}
	case search.SortUpdated:
		sortBy = []string{"updated_at:desc"}
	}

	reqs := e.unionRequests(bs, sortBy)
	raws, err := multiSearchInto[json.RawMessage](ctx, e, append(slices.Clone(reqs), partQueries(parts)...))
	if err != nil {
		return search.Result{}, err
	}
	raw := make([]*unionResponse, len(reqs))
	for i := range reqs {
		raw[i] = new(unionResponse)
		if err := json.Unmarshal(*raws[i], raw[i]); err != nil {
			return search.Result{}, &Error{Op: "multi-search", Message: "decode response", Err: err}
		}
	}

	byCase := map[string]*unionCase{}
	for bi, resp := range raw {
		if resp.TotalHits != nil && *resp.TotalHits > int64(len(resp.Hits)) {
			return search.Result{}, &search.QueryError{Message: fmt.Sprintf("an OR alternative matches more than %d contacts; narrow it", maxTotalHits)}
		}
		for _, d := range resp.Hits {
			addUnion(byCase, bi, d, w.Sort)
		}
	}

	cs := make([]*unionCase, 0, len(byCase))
	for _, c := range byCase {
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(a, b *unionCase) int { return compareUnion(w.Sort, q.HasText(), a, b) })

	res := search.Result{Total: int64(len(cs)), Hits: []search.Hit{}}
	if q.Facets {
		res.Facets = unionFacets(cs)
	}
	if err := readParts(parts, derefAll(raws[len(reqs):]), &res); err != nil {
		return search.Result{}, err
	}

	if w.Offset >= len(cs) {
		return res, nil
	}
	page := cs[w.Offset:min(w.Offset+w.Limit, len(cs))]
	res.Hits, err = e.hydrateUnion(ctx, q, bs, page)
	return res, err
}

// unionRequests are the branch searches of an OR over texts: every
// matching contact of each, with what grouping and facets need.
func (e *Engine) unionRequests(bs []branch, sortBy []string) []*meilisearch.SearchRequest {
	all := int64(maxTotalHits)
	reqs := make([]*meilisearch.SearchRequest, len(bs))
	for i, b := range bs {
		reqs[i] = &meilisearch.SearchRequest{
			IndexUID: e.IndexName(), Query: b.text(), MatchingStrategy: meilisearch.All,
			AttributesToRetrieve: []string{"id", "case_id", "status", "x_tags", "channel", "purposes", "sort_at", "updated_at"},
			ShowRankingScore:     true, Distinct: primaryKey, Page: 1, HitsPerPage: &all, Sort: sortBy,
		}
		if len(b.filters) > 0 {
			reqs[i].Filter = filterArray(b.filters...)
		}
	}
	return reqs
}

func derefAll(rs []*json.RawMessage) []json.RawMessage {
	out := make([]json.RawMessage, len(rs))
	for i, r := range rs {
		out[i] = *r
	}
	return out
}

func addUnion(byCase map[string]*unionCase, bi int, d unionDoc, sortBy search.SortOrder) {
	score := 0.0
	if d.RankingScore != nil {
		score = *d.RankingScore
	}
	c, ok := byCase[d.CaseID]
	if !ok {
		c = &unionCase{caseID: d.CaseID, status: d.Status, channels: map[string]bool{}, purposes: map[string]bool{},
			score: score, sortAt: d.SortAt, updatedAt: d.UpdatedAt, best: d.ID, bestScore: score, bestAt: d.SortAt, branch: bi}
		for _, t := range d.XTags {
			c.tags = append(c.tags, decodeValue(t))
		}
		byCase[d.CaseID] = c
	}
	if d.Channel != "" {
		c.channels[d.Channel] = true
	}
	for _, p := range d.Purposes {
		c.purposes[p] = true
	}
	c.score = max(c.score, score)
	c.updatedAt = max(c.updatedAt, d.UpdatedAt)
	if sortBy == search.SortOldest {
		c.sortAt = min(c.sortAt, d.SortAt)
	} else {
		c.sortAt = max(c.sortAt, d.SortAt)
	}
	better := score > c.bestScore || score == c.bestScore && d.SortAt > c.bestAt
	switch sortBy {
	case search.SortNewest:
		better = d.SortAt > c.bestAt || d.SortAt == c.bestAt && score > c.bestScore
	case search.SortOldest:
		better = d.SortAt < c.bestAt || d.SortAt == c.bestAt && score > c.bestScore
	}
	if better {
		c.best, c.bestScore, c.bestAt, c.branch = d.ID, score, d.SortAt, bi
	}
}

// compareUnion orders cases as one search would: by the sort, else by the
// best score (by recency without text); the case id breaks ties so that
// pages are cut from one stable order.
func compareUnion(sortBy search.SortOrder, text bool, a, b *unionCase) int {
	var c int
	switch {
	case sortBy == search.SortOldest:
		c = cmp.Compare(a.sortAt, b.sortAt)
	case sortBy == search.SortUpdated:
		c = cmp.Compare(b.updatedAt, a.updatedAt)
	case sortBy == search.SortNewest || !text:
		c = cmp.Compare(b.sortAt, a.sortAt)
	default:
		c = cmp.Compare(b.score, a.score)
		if c == 0 {
			c = cmp.Compare(b.sortAt, a.sortAt)
		}
	}
	if c != 0 {
		return c
	}
	return cmp.Compare(a.caseID, b.caseID)
}

func unionFacets(cs []*unionCase) map[string]map[string]int64 {
	out := map[string]map[string]int64{"status": {}, "channel": {}, "tag": {}, "purpose": {}}
	for _, c := range cs {
		if c.status != "" {
			out["status"][c.status]++
		}
		for _, t := range c.tags {
			out["tag"][t]++
		}
		for ch := range c.channels {
			out["channel"][ch]++
		}
		for p := range c.purposes {
			out["purpose"][p]++
		}
	}
	return out
}

// hydrateUnion fetches the page's representing contacts, each by its id
// through the branch that found it (so its match positions are that
// branch's), and builds the hits in page order.
func (e *Engine) hydrateUnion(ctx context.Context, q search.Query, bs []branch, page []*unionCase) ([]search.Hit, error) {
	ids := make([][]string, len(bs))
	for _, c := range page {
		ids[c.branch] = append(ids[c.branch], c.best)
	}

	var reqs []*meilisearch.SearchRequest
	for bi, b := range bs {
		if len(ids[bi]) == 0 {
			continue
		}
		n := int64(len(ids[bi]))
		reqs = append(reqs, &meilisearch.SearchRequest{
			IndexUID: e.IndexName(), Query: b.text(), MatchingStrategy: meilisearch.All,
			AttributesToRetrieve: append(slices.Clone(retrieved), "id"), ShowMatchesPosition: true,
			Distinct: primaryKey, Page: 1, HitsPerPage: &n,
			Filter: filterArray(append(slices.Clone(b.filters), in(attr(primaryKey), ids[bi]))...),
		})
	}

	raw, err := multiSearchInto[idHits](ctx, e, reqs)
	if err != nil {
		return nil, err
	}

	byID := map[string]hitDoc{}
	for _, resp := range raw {
		for _, h := range resp.Hits {
			byID[h.ID] = h.hitDoc
		}
	}

	runs := queryCJKRuns(q)
	hits := make([]search.Hit, 0, len(page))
	for _, c := range page {
		h, ok := byID[c.best]
		if !ok {
			// deleted between the two requests: the page is one shorter
			continue
		}
		addCJKMatches(&h, runs)
		hit := search.Hit{CaseID: h.CaseID, Number: h.Number, Subject: h.Subject, Status: h.Status,
			CustomerID: h.CustomerID, ContactID: h.ContactID, Score: c.score}
		hit.Snippet, hit.SnippetField = hitSnippet(h)
		hits = append(hits, hit)
	}
	return hits, nil
}
