package api_test

import (
	"context"
	"testing"

	"github.com/casevault/casevault/auth"
)

// TestRoleMatrix checks every route against every role, by hand-written
// expectation (api.md, Roles), plus no token and a revoked token.
func TestRoleMatrix(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Matrix"})
		cs := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust["id"], "subject": "s", "channel": "web"})
		ct := h.mustCreate("/api/v1/cases/"+cs["id"].(string)+"/contacts", map[string]any{"channel": "web", "direction": "note", "author": "a", "body": "b"})
		custID, caseID, contactID := cust["id"].(string), cs["id"].(string), ct["id"].(string)
		contact := map[string]any{"channel": "web", "direction": "note", "author": "a", "body": "b"}

		type row struct {
			method, path string
			body         any
			// agent, supervisor, legal, backup, admin
			want [5]int
		}
		rows := []row{
			{"POST", "/api/v1/tokens", map[string]any{"name": "n", "role": "agent"}, [5]int{403, 403, 403, 403, 201}},
			{"GET", "/api/v1/tokens", nil, [5]int{403, 403, 403, 403, 200}},
			{"DELETE", "/api/v1/tokens/{fresh}", nil, [5]int{403, 403, 403, 403, 204}},
			{"POST", "/api/v1/customers", map[string]any{"name": "n"}, [5]int{201, 201, 403, 403, 201}},
			{"GET", "/api/v1/customers/" + custID, nil, [5]int{200, 200, 200, 403, 200}},
			{"PATCH", "/api/v1/customers/" + custID, map[string]any{"locale": "zh-CN"}, [5]int{200, 200, 403, 403, 200}},
			{"GET", "/api/v1/customers/" + custID + "/cases", nil, [5]int{200, 200, 200, 403, 200}},
			{"POST", "/api/v1/cases", map[string]any{"customer_id": custID, "subject": "s", "channel": "web"}, [5]int{201, 201, 403, 403, 201}},
			{"GET", "/api/v1/cases", nil, [5]int{200, 200, 200, 403, 200}},
			{"GET", "/api/v1/cases/" + caseID, nil, [5]int{200, 200, 200, 403, 200}},
			{"PATCH", "/api/v1/cases/" + caseID, map[string]any{"priority": "high"}, [5]int{200, 200, 403, 403, 200}},
			{"PATCH", "/api/v1/cases/" + caseID, map[string]any{"status": "closed"}, [5]int{403, 200, 403, 403, 200}},
			{"POST", "/api/v1/cases/" + caseID + "/contacts", contact, [5]int{201, 201, 403, 403, 201}},
			{"GET", "/api/v1/contacts/" + contactID, nil, [5]int{200, 200, 200, 403, 200}},
		}
		roles := []auth.Role{auth.RoleAgent, auth.RoleSupervisor, auth.RoleLegal, auth.RoleBackup, auth.RoleAdmin}
		for _, r := range rows {
			for i, role := range roles {
				path := r.path
				if path == "/api/v1/tokens/{fresh}" {
					tok, _, err := auth.NewTokens(h.db).Create(context.Background(), "victim", auth.RoleAgent, nil)
					if err != nil {
						t.Fatal(err)
					}
					path = "/api/v1/tokens/" + tok.ID
				}
				if got := h.do(r.method, path, h.tokens[role], r.body); got.status != r.want[i] {
					t.Errorf("%s %s as %s = %d, want %d (%s)", r.method, r.path, role, got.status, r.want[i], got.body)
				}
				if r.body != nil && r.want[i] == 200 && r.method == "PATCH" && r.path == "/api/v1/cases/"+caseID {
					// reopen so the next role's close is a real change
					h.do("PATCH", r.path, h.tokens[auth.RoleAdmin], map[string]any{"status": "open"})
				}
			}
			for name, tok := range map[string]string{"no token": "", "revoked token": h.revokd, "garbage token": "cvt_garbage"} {
				if got := h.do(r.method, r.path, tok, r.body); got.status != 401 {
					t.Errorf("%s %s with %s = %d, want 401", r.method, r.path, name, got.status)
				}
			}
		}
	})
}
