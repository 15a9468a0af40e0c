package api

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/savedsearch"
	"github.com/casevault/casevault/search"
)

// SavedSearches keeps saved searches per owner (savedsearch.Store).
type SavedSearches interface {
	Create(ctx context.Context, owner string, in savedsearch.Search, hook savedsearch.Hook) (savedsearch.Search, error)
	List(ctx context.Context, owner string) ([]savedsearch.Search, error)
	Delete(ctx context.Context, owner, id string, hook savedsearch.Hook) error
}

func (s *Server) addSavedSearchRoutes() {
	if s.d.SavedSearches == nil {
		return
	}
	const v1 = "/api/v1"
	s.add(route{method: "POST", path: v1 + "/searches", perm: auth.CaseRead, summary: "Save a search (a name, q and filters) for this token (audited)", h: s.createSavedSearch, ok: 201,
		request: savedSearchInput{}, reply: savedSearchReply{},
		example: map[string]any{"name": "VIP refunds", "q": "refund OR chargeback", "filters": map[string]any{"status": []any{"open", "pending"}, "tag": []any{"vip"}}}})
	s.add(route{method: "GET", path: v1 + "/searches", perm: auth.CaseRead, read: "saved_search.list", target: "saved_search", summary: "This token's saved searches, by name", h: s.listSavedSearches, ok: 200,
		reply: listBody[savedSearchReply]{}})
	s.add(route{method: "DELETE", path: v1 + "/searches/:id", perm: auth.CaseRead, summary: "Delete one of this token's saved searches (audited)", h: s.deleteSavedSearch, ok: 204})
}

type savedSearchInput struct {
	Name    *string             `json:"name" doc:"1 to 100 characters, unique per token."`
	Q       *string             `json:"q" doc:"The query, as GET /search takes it."`
	Filters map[string][]string `json:"filters" doc:"GET /search filter parameters to their values (status, channel, priority, purpose, customer_id, tag, assignee, from, to, sort)."`
}

// savedSearchReply is a saved search with the request that runs it.
type savedSearchReply struct {
	savedsearch.Search
	URL string `json:"url" doc:"GET this to run the search."`
}

// savedFilterParams are the GET /search parameters a saved search keeps:
// every one but the query (its own field) and the paging.
func savedFilterParams() []string {
	var out []string
	for _, p := range searchParams() {
		if !slices.Contains([]string{"q", "page", "limit", "cursor"}, p.name) {
			out = append(out, p.name)
		}
	}
	return out
}

func (s *Server) createSavedSearch(c *fiber.Ctx) error {
	var in savedSearchInput
	if err := s.decodeJSON(c, &in); err != nil {
		return err
	}

	if in.Name == nil {
		return cases.Invalid("name", "is required")
	}

	q := ""
	if in.Q != nil {
		q = *in.Q
	}

	if err := checkSavedSearch(q, in.Filters); err != nil {
		return err
	}

	a := actor(c)
	saved, err := s.d.SavedSearches.Create(c.UserContext(), a.TokenID, savedsearch.Search{Name: *in.Name, Q: q, Filters: in.Filters},
		s.savedSearchAudit(a, "saved_search.create"))
	if err != nil {
		return err
	}

	c.Location("/api/v1/searches/" + saved.ID)
	return c.Status(fiber.StatusCreated).JSON(savedReply(saved))
}

// checkSavedSearch applies GET /search's rules, so that a saved search
// always runs: an unknown filter, a malformed query or filter is a 422
// naming it now, not when the search is run.
func checkSavedSearch(q string, filters map[string][]string) error {
	valid := savedFilterParams()
	keys := make([]string, 0, len(filters))
	for k := range filters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(valid, k) {
			return cases.Invalid("filters."+k, "is not a search filter; valid: "+strings.Join(valid, ", "))
		}
	}

	if strings.TrimSpace(q) == "" && len(filters) == 0 {
		return cases.Invalid("q", "a saved search needs q or at least one filter")
	}

	var qe *search.QueryError
	if _, err := search.ParseQuery(q); errors.As(err, &qe) {
		return cases.Invalid("q", qe.Error())
	} else if err != nil {
		return err
	}

	if _, err := search.FilterFromValues(url.Values(filters)); errors.As(err, &qe) {
		return cases.Invalid("filters."+fieldOf(qe.Term), qe.Message)
	} else if err != nil {
		return err
	}

	if so := filters["sort"]; len(so) > 0 {
		switch search.SortOrder(so[len(so)-1]) {
		case search.SortNewest, search.SortOldest, search.SortUpdated:
		default:
			return cases.Invalid("filters.sort", "must be newest, oldest or updated")
		}
	}
	return nil
}

// savedSearchAudit records a saved search's creation or deletion in its
// transaction. The name and query may hold personal data; the trail keeps
// them masked, as it keeps searches.
func (s *Server) savedSearchAudit(a cases.Actor, action string) savedsearch.Hook {
	return func(ctx context.Context, tx *sql.Tx, saved savedsearch.Search) error {
		if s.d.AuditTx == nil {
			return nil
		}
		detail := map[string]any{}
		if saved.Name != "" {
			detail["name"], detail["q"] = maskedText(saved.Name), maskedText(saved.Q)
		}
		return s.d.AuditTx(ctx, tx, cases.Change{Actor: a, Action: action, TargetType: "saved_search", TargetID: saved.ID, Detail: detail})
	}
}

func savedReply(saved savedsearch.Search) savedSearchReply {
	v := url.Values{}
	if saved.Q != "" {
		v.Set("q", saved.Q)
	}
	for k, vs := range saved.Filters {
		for _, x := range vs {
			v.Add(k, x)
		}
	}
	return savedSearchReply{Search: saved, URL: "/api/v1/search?" + v.Encode()}
}

func (s *Server) listSavedSearches(c *fiber.Ctx) error {
	items, err := s.d.SavedSearches.List(c.UserContext(), actor(c).TokenID)
	if err != nil {
		return err
	}

	out := make([]savedSearchReply, len(items))
	for i, it := range items {
		out[i] = savedReply(it)
	}
	c.Locals(targetKey, "")
	c.Locals(detailKey, map[string]any{"count": len(out)})
	return list(c, out, "")
}

func (s *Server) deleteSavedSearch(c *fiber.Ctx) error {
	a := actor(c)
	if err := s.d.SavedSearches.Delete(c.UserContext(), a.TokenID, c.Params("id"), s.savedSearchAudit(a, "saved_search.delete")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
