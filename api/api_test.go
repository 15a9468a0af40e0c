package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/search"
)

func TestCaseLifecycle(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		admin := h.tokens[auth.RoleAdmin]
		agent := h.tokens[auth.RoleAgent]
		cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Li Wei", "email": "li@example.com",
			"consents": map[string]any{"location": false}})
		custID := cust["id"].(string)

		r := h.do("POST", "/api/v1/cases", agent, map[string]any{"customer_id": custID, "subject": "Refund for order 1234", "channel": "email", "tags": []string{"VIP", "refund", "vip"}})
		if r.status != 201 {
			t.Fatalf("create case = %d %s", r.status, r.body)
		}
		cs := r.json(t)
		caseID := cs["id"].(string)
		if cs["status"] != "open" || cs["priority"] != "normal" || cs["closed_at"] != nil {
			t.Fatalf("new case defaults wrong: %v", cs)
		}
		if tags := fmt.Sprint(cs["tags"]); tags != "[vip refund]" {
			t.Fatalf("tags not normalised and deduplicated: %s", tags)
		}
		if r.header.Get("Location") != "/api/v1/cases/"+caseID {
			t.Fatalf("Location = %q", r.header.Get("Location"))
		}

		card := "4111 1111 1111 1111"
		r = h.do("POST", "/api/v1/cases/"+caseID+"/contacts", agent, map[string]any{
			"channel": "phone", "direction": "inbound", "author": "Li Wei",
			"body":     "My card " + card + " was charged twice",
			"location": map[string]any{"lat": 31.2, "lon": 121.5},
			"purposes": []string{"customer_service", "fraud_monitoring"},
		})
		if r.status != 201 {
			t.Fatalf("create contact = %d %s", r.status, r.body)
		}
		ct := r.json(t)
		if strings.Contains(string(r.body), "4111") && strings.Contains(string(r.body), card) {
			t.Fatalf("card number returned unmasked: %s", r.body)
		}
		if body := ct["body"].(string); !strings.Contains(body, "1111") || strings.Contains(body, card) {
			t.Fatalf("body not masked to last 4: %q", body)
		}
		if ct["location"] != nil || ct["location_dropped"] != true {
			t.Fatalf("location must be dropped without consent: %v", ct)
		}
		if ct["retain_until"] == nil {
			t.Fatalf("retain_until missing: %v", ct)
		}
		// The stored row must not hold the original number either.
		var stored string
		if err := h.db.Read.QueryRow(h.db.Rebind(`SELECT body FROM contacts WHERE id = ?`), ct["id"]).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.ReplaceAll(stored, " ", ""), "4111111111111111") {
			t.Fatalf("stored body holds the card number: %q", stored)
		}

		// With consent, the location is kept.
		r = h.do("PATCH", "/api/v1/customers/"+custID, agent, map[string]any{"consents": map[string]any{"location": true}})
		if r.status != 200 || r.json(t)["consents"].(map[string]any)["location"] != true {
			t.Fatalf("patch consents = %d %s", r.status, r.body)
		}
		r = h.do("POST", "/api/v1/cases/"+caseID+"/contacts", agent, map[string]any{
			"channel": "chat", "direction": "outbound", "author": "Agent Smith", "body": "We refunded you",
			"occurred_at": "2026-01-02T03:04:05Z", "location": map[string]any{"lat": 1, "lon": 2},
		})
		if r.status != 201 || r.json(t)["location"] == nil {
			t.Fatalf("location with consent = %d %s", r.status, r.body)
		}

		// Timeline in time order (the second contact happened earlier).
		r = h.do("GET", "/api/v1/cases/"+caseID, agent, nil)
		if r.status != 200 {
			t.Fatalf("get case = %d", r.status)
		}
		contacts := r.json(t)["contacts"].([]any)
		if len(contacts) != 2 || contacts[0].(map[string]any)["author"] != "Agent Smith" {
			t.Fatalf("timeline not in time order: %s", r.body)
		}

		// Agents may not close; supervisors may, and closing moves retain_until.
		if r := h.do("PATCH", "/api/v1/cases/"+caseID, agent, map[string]any{"status": "closed"}); r.status != 403 {
			t.Fatalf("agent closing = %d, want 403", r.status)
		}
		if !h.audit.has("auth.forbidden:denied:PATCH /api/v1/cases/:id status=closed") {
			t.Fatal("the refused close was not audited")
		}
		// Agents may take an unassigned case but not give an assigned one
		// away; supervisors may.
		if r := h.do("PATCH", "/api/v1/cases/"+caseID, agent, map[string]any{"assignee": "ann"}); r.status != 200 {
			t.Fatalf("agent assigning an unassigned case = %d %s", r.status, r.body)
		}
		if r := h.do("PATCH", "/api/v1/cases/"+caseID, agent, map[string]any{"assignee": "bob", "priority": "high"}); r.status != 403 {
			t.Fatalf("agent reassigning = %d, want 403", r.status)
		}
		if !h.audit.has("auth.forbidden:denied:PATCH /api/v1/cases/:id assignee") {
			t.Fatal("the refused reassignment was not audited")
		}
		if r := h.do("GET", "/api/v1/cases/"+caseID, agent, nil); r.json(t)["assignee"] != "ann" || r.json(t)["priority"] == "high" {
			t.Fatalf("a refused reassignment changed the case: %s", r.body)
		}
		if r := h.do("PATCH", "/api/v1/cases/"+caseID, h.tokens[auth.RoleSupervisor], map[string]any{"assignee": "bob"}); r.status != 200 || r.json(t)["assignee"] != "bob" {
			t.Fatalf("supervisor reassigning = %d %s", r.status, r.body)
		}
		before := contactRetain(t, h, caseID)
		r = h.do("PATCH", "/api/v1/cases/"+caseID, h.tokens[auth.RoleSupervisor], map[string]any{"status": "closed"})
		if r.status != 200 || r.json(t)["closed_at"] == nil {
			t.Fatalf("supervisor close = %d %s", r.status, r.body)
		}
		if after := contactRetain(t, h, caseID); after == before {
			t.Fatalf("closing did not recompute retain_until (%s)", after)
		}
		r = h.do("PATCH", "/api/v1/cases/"+caseID, admin, map[string]any{"status": "open"})
		if r.status != 200 || r.json(t)["closed_at"] != nil {
			t.Fatalf("reopen = %d %s", r.status, r.body)
		}

		// Contacts are immutable.
		cid := ct["id"].(string)
		for _, m := range []string{"PATCH", "PUT", "DELETE"} {
			r := h.do(m, "/api/v1/contacts/"+cid, admin, map[string]any{"body": "x"})
			if r.status != 405 || r.header.Get("Allow") != "GET, HEAD" {
				t.Fatalf("%s contact = %d (Allow %q), want 405", m, r.status, r.header.Get("Allow"))
			}
		}
		if r := h.do("GET", "/api/v1/contacts/"+cid, agent, nil); r.status != 200 {
			t.Fatalf("get contact = %d", r.status)
		}
		// Every change went through the outbox.
		var n int
		if err := h.db.Read.QueryRow(h.db.Rebind(`SELECT COUNT(*) FROM outbox WHERE case_id = ?`), caseID).Scan(&n); err != nil || n < 5 {
			t.Fatalf("outbox rows for case = %d (%v), want >= 5", n, err)
		}
	})
}

func contactRetain(t *testing.T, h *harness, caseID string) string {
	t.Helper()
	var v any
	if err := h.db.Read.QueryRow(h.db.Rebind(`SELECT MAX(retain_until) FROM contacts WHERE case_id = ?`), caseID).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(v)
}

func TestListPaginationReachesEveryCase(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Paging"})
		want := map[string]bool{}
		for i := 0; i < 23; i++ {
			tags := []string{}
			if i%2 == 0 {
				tags = []string{"even"}
			}
			cs := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust["id"], "subject": fmt.Sprint("case ", i), "channel": "web", "tags": tags})
			want[cs["id"].(string)] = i%2 == 0
		}
		for _, tc := range []struct {
			query string
			n     int
		}{{"", 23}, {"&tag=even", 12}, {"&customer_id=" + cust["id"].(string), 23}, {"&status=closed", 0}} {
			seen := map[string]bool{}
			cursor := ""
			var prev string
			for pages := 0; ; pages++ {
				if pages > 10 {
					t.Fatal("pagination does not end")
				}
				r := h.do("GET", "/api/v1/cases?limit=5"+tc.query+cursor, h.tokens[auth.RoleAgent], nil)
				if r.status != 200 {
					t.Fatalf("list = %d %s", r.status, r.body)
				}
				m := r.json(t)
				for _, it := range m["items"].([]any) {
					id := it.(map[string]any)["id"].(string)
					if seen[id] {
						t.Fatalf("case %s listed twice", id)
					}
					if prev != "" && id > prev {
						t.Fatalf("not newest first: %s after %s", id, prev)
					}
					prev = id
					seen[id] = true
				}
				if m["next_cursor"] == nil {
					break
				}
				cursor = "&cursor=" + m["next_cursor"].(string)
			}
			if len(seen) != tc.n {
				t.Fatalf("%q: listed %d cases, want %d", tc.query, len(seen), tc.n)
			}
		}
		r := h.do("GET", "/api/v1/customers/"+cust["id"].(string)+"/cases?limit=500", h.tokens[auth.RoleAgent], nil)
		if r.status != 200 || len(r.json(t)["items"].([]any)) != 23 {
			t.Fatalf("customer cases = %d %s", r.status, r.body)
		}
	})
}

func TestRequestIDAndProblemOnEveryResponse(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		for _, tc := range []struct {
			method, path, token string
			status              int
		}{
			{"GET", "/healthz", "", 200},
			{"GET", "/api/v1/cases", "", 401},
			{"GET", "/api/v1/cases/nope", h.tokens[auth.RoleAgent], 404},
			{"GET", "/api/v1/nothing-here", h.tokens[auth.RoleAgent], 404},
			{"POST", "/api/v1/cases", h.tokens[auth.RoleAgent], 400},
		} {
			r := h.do(tc.method, tc.path, tc.token, nil)
			if r.status != tc.status {
				t.Errorf("%s %s = %d, want %d (%s)", tc.method, tc.path, r.status, tc.status, r.body)
			}
			if r.header.Get("X-Request-Id") == "" {
				t.Errorf("%s %s: no X-Request-Id", tc.method, tc.path)
			}
			if tc.status >= 400 {
				if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("%s %s: content type %q", tc.method, tc.path, ct)
				}
				if p := r.json(t); int(p["status"].(float64)) != tc.status || p["title"] == "" {
					t.Errorf("%s %s: problem %v", tc.method, tc.path, p)
				}
			}
		}
	})
}

func TestReadsAndDenialsAreAudited(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Audited"})
		id := cust["id"].(string)
		h.do("GET", "/api/v1/customers/"+id, h.tokens[auth.RoleAgent], nil)
		h.do("GET", "/api/v1/customers/"+id, h.tokens[auth.RoleBackup], nil)
		h.do("GET", "/api/v1/customers/"+id, "", nil)
		got := strings.Join(h.audit.events, "\n")
		for _, want := range []string{"customer.read:ok:" + id, "auth.forbidden:denied:", "auth.missing:denied:"} {
			if !strings.Contains(got, want) {
				t.Errorf("audit lacks %q; have:\n%s", want, got)
			}
		}
		// A read whose audit event cannot be stored is not served.
		h.audit.fail = true
		r := h.do("GET", "/api/v1/customers/"+id, h.tokens[auth.RoleAgent], nil)
		if r.status != http.StatusServiceUnavailable || strings.Contains(string(r.body), "Audited") || r.header.Get("Retry-After") == "" {
			t.Fatalf("read with audit down = %d %s", r.status, r.body)
		}
	})
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	h := newHarness(t, "sqlite")
	r := h.do("GET", "/openapi.json", "", nil)
	if r.status != 200 {
		t.Fatalf("openapi = %d", r.status)
	}
	doc := r.json(t)
	paths := doc["paths"].(map[string]any)
	for _, rt := range h.srv.App().GetRoutes(true) {
		if rt.Path == "/" || rt.Method == "HEAD" {
			continue
		}
		p := rt.Path
		for _, seg := range strings.Split(p, "/") {
			if strings.HasPrefix(seg, ":") {
				p = strings.Replace(p, seg, "{"+seg[1:]+"}", 1)
			}
		}
		item, ok := paths[p].(map[string]any)
		if !ok || item[strings.ToLower(rt.Method)] == nil {
			t.Errorf("route %s %s missing from openapi.json", rt.Method, rt.Path)
		}
	}
	for _, want := range []string{"/api/v1/cases/{id}/contacts", "/api/v1/tokens/{id}", "/readyz"} {
		if paths[want] == nil {
			t.Errorf("openapi.json lacks %s", want)
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	h := newHarness(t, "sqlite")
	r := h.do("GET", "/readyz", "", nil)
	if r.status != 200 {
		t.Fatalf("readyz = %d %s", r.status, r.body)
	}
	checks := r.json(t)["checks"].(map[string]any)
	if checks["database"].(map[string]any)["status"] != "ok" {
		t.Fatalf("database check: %v", checks)
	}
	h.db.Read.Close()
	r = h.do("GET", "/readyz", "", nil)
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("readyz with the database closed = %d", r.status)
	}
	r = h.do("GET", "/metrics", "", nil)
	if r.status != 200 || !strings.Contains(string(r.body), "casevault_http_requests_total") || !strings.Contains(string(r.body), "casevault_http_request_duration_seconds") {
		t.Fatalf("metrics = %d %.300s", r.status, r.body)
	}
}

func TestReindexWhileRunningIsAConflict(t *testing.T) {
	h := newHarness(t, "sqlite")
	if r := h.do("POST", "/api/v1/search/reindex", h.tokens[auth.RoleAdmin], nil); r.status != 202 {
		t.Fatalf("reindex = %d", r.status)
	}
	*h.reindexErr = search.ErrReindexRunning
	if r := h.do("POST", "/api/v1/search/reindex", h.tokens[auth.RoleAdmin], nil); r.status != 409 {
		t.Fatalf("reindex while running = %d, want 409", r.status)
	}
}
