package api_test

import (
	"fmt"
	"testing"

	"github.com/casevault/casevault/auth"
)

// A purpose resting on a consent the customer does not give is dropped at
// ingest, as a location without consent is (issue 15 §3); a contact left
// with no purpose is refused naming the purpose, and nothing is stored.
func TestConsentGatedPurposeAtIngest(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		agent := h.tokens[auth.RoleAgent]
		caseOf := func(personalization bool) string {
			cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Ada Obi", "consents": map[string]any{"personalization": personalization}})
			return h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust["id"], "subject": "s", "channel": "web"})["id"].(string)
		}
		without, with := caseOf(false), caseOf(true)
		tests := []struct {
			name         string
			caseID       string
			purposes     []string
			status       int
			wantPurposes string // stored and returned
			wantDropped  string
			field        string
		}{
			{"kept with consent", with, []string{"personalization", "customer_service"}, 201, "[personalization customer_service]", "[]", ""},
			{"dropped without consent", without, []string{"personalization", "customer_service"}, 201, "[customer_service]", "[personalization]", ""},
			{"duplicate dropped once", without, []string{"customer_service", "personalization", "personalization"}, 201, "[customer_service]", "[personalization]", ""},
			{"default purpose unaffected", without, nil, 201, "[customer_service]", "[]", ""},
			{"only purpose refused", without, []string{"personalization"}, 422, "", "", "purposes[0]"},
			{"only purpose, twice, refused", without, []string{"personalization", "personalization"}, 422, "", "", "purposes[1]"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				in := map[string]any{"channel": "email", "direction": "inbound", "author": "x", "body": "hello"}
				if tc.purposes != nil {
					in["purposes"] = tc.purposes
				}
				before := h.counts()
				r := h.do("POST", "/api/v1/cases/"+tc.caseID+"/contacts", agent, in)
				if r.status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
				}
				if tc.status != 201 {
					errs, _ := r.json(t)["errors"].([]any)
					found := false
					for _, e := range errs {
						found = found || e.(map[string]any)["field"] == tc.field
					}
					if !found {
						t.Fatalf("problem does not name %q: %s", tc.field, r.body)
					}
					if after := h.counts(); fmt.Sprint(before) != fmt.Sprint(after) {
						t.Fatalf("refused contact changed data: %v -> %v", before, after)
					}
					return
				}
				ct := r.json(t)
				if got := fmt.Sprint(ct["purposes"]); got != tc.wantPurposes {
					t.Errorf("purposes = %s, want %s", got, tc.wantPurposes)
				}
				if got := fmt.Sprint(ct["purposes_dropped"]); got != tc.wantDropped {
					t.Errorf("purposes_dropped = %s, want %s", got, tc.wantDropped)
				}
				var stored string
				if err := h.db.Read.QueryRow(h.db.Rebind(`SELECT purposes FROM contacts WHERE id = ?`), ct["id"]).Scan(&stored); err != nil {
					t.Fatal(err)
				}
				if g := h.do("GET", "/api/v1/contacts/"+ct["id"].(string), agent, nil); g.status != 200 || fmt.Sprint(g.json(t)["purposes"]) != tc.wantPurposes {
					t.Errorf("stored purposes %s, read back %d %s; want %s", stored, g.status, g.body, tc.wantPurposes)
				}
			})
		}
	})
}
