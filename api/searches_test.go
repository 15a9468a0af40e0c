package api_test

import (
	"strings"
	"testing"

	"github.com/casevault/casevault/auth"
)

// TestSavedSearches: a token saves, lists and deletes its own searches;
// another token sees none of them; bad input is a 422 naming the field;
// creation and deletion are in the audit trail (issue 16 §2).
func TestSavedSearches(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		agent, super := h.tokens[auth.RoleAgent], h.tokens[auth.RoleSupervisor]
		save := func(tok string, body any) resp {
			t.Helper()
			return h.do("POST", "/api/v1/searches", tok, body)
		}

		r := save(agent, map[string]any{"name": "VIP refunds", "q": "refund", "filters": map[string]any{"status": []string{"open", "pending"}, "tag": []string{"vip"}}})
		if r.status != 201 {
			t.Fatalf("save = %d %s", r.status, r.body)
		}
		saved := r.json(t)
		id, _ := saved["id"].(string)
		if id == "" || saved["name"] != "VIP refunds" || r.header.Get("Location") != "/api/v1/searches/"+id {
			t.Fatalf("saved = %v (Location %q)", saved, r.header.Get("Location"))
		}

		// The saved URL runs the search.
		run := h.do("GET", saved["url"].(string), agent, nil)
		if run.status != 200 || !strings.Contains(saved["url"].(string), "status=open") {
			t.Errorf("running %s = %d %s", saved["url"], run.status, run.body)
		}

		if r := save(agent, map[string]any{"name": "open only", "filters": map[string]any{"status": []string{"open"}}}); r.status != 201 {
			t.Fatalf("save with filters only = %d %s", r.status, r.body)
		}

		bad := []struct {
			name  string
			body  any
			code  int
			field string
		}{
			{"name missing", map[string]any{"q": "x"}, 422, "name"},
			{"name empty", map[string]any{"name": "  ", "q": "x"}, 422, "name"},
			{"name too long", map[string]any{"name": strings.Repeat("n", 101), "q": "x"}, 422, "name"},
			{"nothing to search", map[string]any{"name": "empty"}, 422, "q"},
			{"unknown filter", map[string]any{"name": "p", "q": "x", "filters": map[string]any{"priority2": []string{"high"}}}, 422, "filters.priority2"},
			{"bad filter value", map[string]any{"name": "p", "q": "x", "filters": map[string]any{"status": []string{"lost"}}}, 422, "filters.status"},
			{"bad date", map[string]any{"name": "p", "q": "x", "filters": map[string]any{"from": []string{"yesterday-ish"}}}, 422, "filters.from"},
			{"bad sort", map[string]any{"name": "p", "q": "x", "filters": map[string]any{"sort": []string{"random"}}}, 422, "filters.sort"},
			{"paging is not a filter", map[string]any{"name": "p", "q": "x", "filters": map[string]any{"cursor": []string{"abc"}}}, 422, "filters.cursor"},
			{"unknown member", map[string]any{"name": "p", "q": "x", "colour": "red"}, 422, "colour"},
			{"filters of the wrong type", map[string]any{"name": "p", "filters": map[string]any{"status": "open"}}, 422, "filters"},
			{"name taken", map[string]any{"name": "VIP refunds", "q": "other"}, 409, ""},
		}
		for _, b := range bad {
			r := save(agent, b.body)
			if r.status != b.code || (b.field != "" && !strings.Contains(string(r.body), `"field":"`+b.field+`"`)) {
				t.Errorf("%s: = %d %s, want %d naming %q", b.name, r.status, r.body, b.code, b.field)
			}
		}

		// Another token has its own list and cannot delete this one's.
		if r := save(super, map[string]any{"name": "VIP refunds", "q": "refund"}); r.status != 201 {
			t.Fatalf("the same name for another token = %d %s", r.status, r.body)
		}
		names := func(tok string) []string {
			t.Helper()
			r := h.do("GET", "/api/v1/searches", tok, nil)
			if r.status != 200 {
				t.Fatalf("list = %d %s", r.status, r.body)
			}
			var out []string
			for _, it := range r.json(t)["items"].([]any) {
				out = append(out, it.(map[string]any)["name"].(string))
			}
			return out
		}
		if got := strings.Join(names(agent), "|"); got != "VIP refunds|open only" {
			t.Errorf("agent's searches = %q", got)
		}
		if got := strings.Join(names(super), "|"); got != "VIP refunds" {
			t.Errorf("supervisor's searches = %q", got)
		}
		if r := h.do("DELETE", "/api/v1/searches/"+id, super, nil); r.status != 404 {
			t.Errorf("deleting another token's search = %d", r.status)
		}
		if r := h.do("DELETE", "/api/v1/searches/"+id, agent, nil); r.status != 204 {
			t.Errorf("delete = %d %s", r.status, r.body)
		}
		if r := h.do("DELETE", "/api/v1/searches/"+id, agent, nil); r.status != 404 {
			t.Errorf("delete twice = %d", r.status)
		}
		if got := strings.Join(names(agent), "|"); got != "open only" {
			t.Errorf("after delete = %q", got)
		}
		if r := h.do("GET", "/api/v1/searches", h.tokens[auth.RoleBackup], nil); r.status != 403 {
			t.Errorf("backup role listing saved searches = %d", r.status)
		}

		// Audited: creation and deletion in their transactions, the list as
		// a read.
		for _, ev := range []struct{ action, target string }{{"saved_search.create", id}, {"saved_search.delete", id}} {
			var n int
			if err := h.db.Read.QueryRow(h.db.Rebind(`SELECT COUNT(*) FROM audit_events WHERE action = ? AND target_id = ?`), ev.action, ev.target).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Errorf("%s of %s recorded %d times", ev.action, ev.target, n)
			}
		}
		if !h.audit.has("saved_search.list:ok:") {
			t.Error("listing saved searches not audited")
		}
	})
}
