package api_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/casevault/casevault/auth"
)

// TestCustomerLookupAndErasure: exact lookup by e-mail and phone, and the
// erasure's answers: 403 for an agent, 422 without a reason, 409 with an
// open case (without force) and with a hold (naming it), 200 and then 410
// for the customer, 404 for an unknown one.
func TestCustomerLookupAndErasure(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		agent, sup, legal := h.tokens[auth.RoleAgent], h.tokens[auth.RoleSupervisor], h.tokens[auth.RoleLegal]
		cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Chen Jing", "email": "Chen.Jing@Example.org", "phone": "+86 10 6552 9999"})["id"].(string)
		held := h.mustCreate("/api/v1/customers", map[string]any{"name": "Held Person", "email": "held@example.org"})["id"].(string)
		cs := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust, "subject": "Broken screen", "channel": "email"})["id"].(string)
		h.mustCreate("/api/v1/cases/"+cs+"/contacts", map[string]any{"channel": "email", "direction": "inbound", "author": "Chen Jing", "body": "The screen cracked"})
		h.mustCreate("/api/v1/cases", map[string]any{"customer_id": held, "subject": "Held case", "channel": "email"})

		for _, c := range []struct {
			name, query string
			status      int
			found       string
		}{
			{"email other case", "email=" + url.QueryEscape(" chen.jing@EXAMPLE.org"), 200, cust},
			{"phone punctuated", "phone=" + url.QueryEscape("86-10-65529999"), 200, cust},
			{"email and phone", "email=chen.jing%40example.org&phone=861065529999", 200, cust},
			{"no match", "email=nobody%40example.org", 200, ""},
			{"nothing asked", "", 422, ""},
			{"q is not combined with email", "q=Chen&email=chen.jing%40example.org", 422, ""},
		} {
			t.Run("lookup "+c.name, func(t *testing.T) {
				r := h.do("GET", "/api/v1/customers?"+c.query, agent, nil)
				if r.status != c.status {
					t.Fatalf("status %d %s, want %d", r.status, r.body, c.status)
				}
				if c.status != 200 {
					return
				}
				items := r.json(t)["items"].([]any)
				if (c.found == "") != (len(items) == 0) || (c.found != "" && items[0].(map[string]any)["id"] != c.found) {
					t.Errorf("items %v, want %q", items, c.found)
				}
			})
		}
		if !h.audit.has("customer.lookup:ok:") {
			t.Error("the lookup was not audited as a read")
		}

		hold := h.mustCreate("/api/v1/holds", map[string]any{"matter": "m-15", "reason": "litigation", "scope": map[string]any{"customer_ids": []string{held}}})["id"].(string)
		reason := map[string]any{"reason": "GDPR Art. 17 request #77"}
		for _, c := range []struct {
			name, token, path string
			body              any
			status            int
			says              string
		}{
			{"agent may not erase", agent, "/api/v1/customers/" + cust, reason, 403, ""},
			{"legal may not erase", legal, "/api/v1/customers/" + cust, reason, 403, ""},
			{"no reason", sup, "/api/v1/customers/" + cust, map[string]any{}, 422, "reason"},
			{"bad force", sup, "/api/v1/customers/" + cust + "?force=yes", reason, 422, "force"},
			{"open case without force", sup, "/api/v1/customers/" + cust, reason, 409, "force=true"},
			{"held", sup, "/api/v1/customers/" + held + "?force=true", reason, 409, hold},
			{"unknown", sup, "/api/v1/customers/0190f1d2-0000-7000-8000-000000000000?force=true", reason, 404, ""},
			{"erased", sup, "/api/v1/customers/" + cust + "?force=true", reason, 200, ""},
			{"erased already", sup, "/api/v1/customers/" + cust + "?force=true", reason, 410, "erased"},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := h.do("DELETE", c.path, c.token, c.body)
				if r.status != c.status || !strings.Contains(string(r.body), c.says) {
					t.Fatalf("status %d %s, want %d saying %q", r.status, r.body, c.status, c.says)
				}
			})
		}

		for _, path := range []string{"/api/v1/customers/" + cust} {
			if r := h.do("GET", path, agent, nil); r.status != 410 || !strings.Contains(string(r.body), "erased") {
				t.Errorf("GET %s after erasure = %d %s, want 410 erased", path, r.status, r.body)
			}
		}
		if r := h.do("GET", "/api/v1/cases/"+cs, agent, nil); r.status != 404 {
			t.Errorf("GET the erased customer's case = %d, want 404", r.status)
		}
		if r := h.do("GET", "/api/v1/customers?email=chen.jing%40example.org", agent, nil); r.status != 200 || len(r.json(t)["items"].([]any)) != 0 {
			t.Errorf("lookup after erasure = %d %s, want no items", r.status, r.body)
		}
		if r := h.do("GET", "/api/v1/customers/"+held, agent, nil); r.status != 200 {
			t.Errorf("the held customer = %d, want still there", r.status)
		}
	})
}
