package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
)

// Searcher answers searches and reports the index's health; the indexer
// implements it.
type Searcher interface {
	Search(ctx context.Context, q search.Query) (search.Result, error)
	Status(ctx context.Context) (search.Status, error)
}

func (s *Server) addSearchRoutes() {
	if s.d.Search == nil {
		return
	}
	s.add(route{method: "GET", path: "/api/v1/search", perm: auth.CaseRead, read: "search", target: "search", summary: "Search cases (free text and field terms)", h: s.search, ok: 200, paged: true,
		reply: searchReply{}, query: searchParams()})
	if s.d.Reindex != nil {
		s.add(route{method: "POST", path: "/api/v1/search/reindex", perm: auth.Admin, summary: "Rebuild the index into a new version in the background", h: s.reindex, ok: 202, bodyless: true, reply: reindexStarted{}})
	}
	s.add(route{method: "GET", path: "/api/v1/search/status", perm: auth.CaseRead, summary: "Index status: pending outbox rows and lag", h: s.searchStatus, ok: 200, reply: search.Status{}})
}

// maxOffset bounds deep paging; beyond it, narrow the query.
const maxOffset = 100_000

func encodeOffset(n int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("o:" + strconv.Itoa(n)))
}

func decodeOffset(c string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 3 || string(b[:2]) != "o:" {
		return 0, errors.New("malformed cursor")
	}
	n, err := strconv.Atoi(string(b[2:]))
	if err != nil || n < 0 || n > maxOffset {
		return 0, errors.New("malformed cursor")
	}
	return n, nil
}

func (s *Server) search(c *fiber.Ctx) error {
	start := time.Now()
	args := c.Context().QueryArgs()
	vals := url.Values{}
	args.VisitAll(func(k, v []byte) { vals.Add(string(k), string(v)) })
	p, err := page(c)
	if err != nil {
		return err
	}

	res, q, err := RunSearch(c.UserContext(), s.d.Search, vals, p.Limit)
	if err != nil {
		return err
	}

	var next *string
	if int64(q.Offset+len(res.Hits)) < res.Total && len(res.Hits) > 0 && q.Offset+q.Limit <= maxOffset {
		nc := encodeOffset(q.Offset + len(res.Hits))
		next = &nc
	}

	c.Locals(targetKey, "")
	c.Locals(detailKey, SearchAuditDetail(vals, res.Total))
	return c.JSON(searchReply{Hits: res.Hits, Total: res.Total, Facets: res.Facets,
		TookMS: time.Since(start).Milliseconds(), NextCursor: next})
}

// RunSearch is the search of GET /api/v1/search and of the console: vals
// are the request's parameters (q, the filter fields, cursor or page,
// sort), limit the page size. It returns the page with every facet key
// present and the query it ran (its Offset and Limit say where the page
// is). Client mistakes are 422 errors naming the field.
func RunSearch(ctx context.Context, sr Searcher, vals url.Values, limit int) (search.Result, search.Query, error) {
	q, err := search.ParseQuery(vals.Get("q"))
	var qe *search.QueryError
	var ue *search.UnknownFieldError
	switch {
	case errors.As(err, &ue):
		return search.Result{}, q, fieldError(ue.Error(), "q", fmt.Sprintf("unknown field %q in %q; valid fields: %s", ue.Field, ue.Term, strings.Join(ue.Valid, ", ")))
	case errors.As(err, &qe):
		return search.Result{}, q, fieldError(qe.Error(), "q", qe.Error())
	}

	if err != nil {
		return search.Result{}, q, err
	}

	// customer: finds customers by name, e-mail or phone where the
	// searcher can resolve them (CustomerSearch), before the URL's
	// customer_id= (exact IDs) is merged in.
	if r, ok := sr.(customerResolver); ok {
		err := resolveCustomers(ctx, r, &q)
		if errors.As(err, &qe) {
			return search.Result{}, q, fieldError(qe.Error(), "q", qe.Error())
		}
		if err != nil {
			return search.Result{}, q, err
		}
	}

	uf, err := search.FilterFromValues(vals)
	if errors.As(err, &qe) {
		return search.Result{}, q, fieldError(qe.Error(), fieldOf(qe.Term), qe.Message)
	}

	if err != nil {
		return search.Result{}, q, err
	}

	q.Limit = limit
	switch {
	case vals.Get("cursor") != "":
		off, err := decodeOffset(vals.Get("cursor"))
		if err != nil {
			return search.Result{}, q, fieldError("malformed cursor", "cursor", "malformed cursor")
		}
		q.Offset = off
	case vals.Get("page") != "":
		n, err := strconv.Atoi(vals.Get("page"))
		if err != nil || n < 1 || (n-1)*q.Limit > maxOffset {
			return search.Result{}, q, fieldError("bad page", "page", "must be a positive integer within the paging limit")
		}
		q.Offset = (n - 1) * q.Limit
	}

	switch so := search.SortOrder(vals.Get("sort")); so {
	case search.SortRelevance, search.SortNewest, search.SortOldest, search.SortUpdated:
		q.Sort = so
	default:
		return search.Result{}, q, fieldError("bad sort", "sort", "must be newest, oldest or updated")
	}

	q.Facets = true
	merged, ok := search.MergeFilter(q.Filter, uf)
	q.Filter = merged
	res := search.Result{Hits: []search.Hit{}, Facets: map[string]map[string]int64{}}
	if ok {
		res, err = sr.Search(ctx, q)
		if errors.As(err, &qe) {
			// what one engine cannot answer (Meilisearch: too many OR
			// alternatives over text) is the query's to narrow
			return search.Result{}, q, fieldError(qe.Error(), "q", qe.Error())
		}
		if err != nil {
			return search.Result{}, q, err
		}
	}

	if res.Hits == nil {
		res.Hits = []search.Hit{}
	}

	if res.Facets == nil {
		res.Facets = map[string]map[string]int64{}
	}
	for _, k := range []string{"status", "channel", "tag", "purpose"} {
		if res.Facets[k] == nil {
			res.Facets[k] = map[string]int64{}
		}
	}
	return res, q, nil
}

// SearchAuditDetail is the detail of a search's audit event: the query
// text and the hit count (never bodies), with card and identity numbers
// masked as they are in everything stored: the trail must not keep what
// the archive masks.
func SearchAuditDetail(vals url.Values, hits int64) map[string]any {
	return map[string]any{"q": maskedText(vals.Get("q")), "hits": hits, "filters": maskedValues(vals).Encode()}
}

func maskedText(s string) string {
	m, _ := cases.MaskSensitive(s)
	return m
}

// maskedValues masks every parameter value (any of them may hold a number:
// assignee=4111…).
func maskedValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		for _, x := range vs {
			out.Add(maskedText(k), maskedText(x))
		}
	}
	return out
}

// fieldOf maps a FilterFromValues term ("status=zzz") to its parameter.
func fieldOf(term string) string {
	for i := 0; i < len(term); i++ {
		if term[i] == '=' {
			return term[:i]
		}
	}
	return "q"
}

func (s *Server) searchStatus(c *fiber.Ctx) error {
	st, err := s.d.Search.Status(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(st)
}

func (s *Server) reindex(c *fiber.Ctx) error {
	a := actor(c)
	if err := s.d.Reindex(c.UserContext()); errors.Is(err, search.ErrReindexRunning) {
		return errStatus(fiber.StatusConflict, "a reindex is already running")
	} else if err != nil {
		return err
	}
	if s.d.Audit != nil {
		if err := s.d.Audit.Record(c.UserContext(), cases.Change{Actor: a, Action: "search.reindex", TargetType: "index"}, "ok"); err != nil {
			return err
		}
	}
	return c.Status(fiber.StatusAccepted).JSON(reindexStarted{Status: "started"})
}
