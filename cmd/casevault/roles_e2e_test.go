package main

import (
	"testing"
)

// The served binary enforces the case-manager rule (closing and reassigning
// need a supervisor): the rule lives in cases.Service and is switched on by
// the server's wiring, which in-process API tests do not exercise.
func TestServerWiresCaseManagerRule(t *testing.T) {
	dir := t.TempDir()
	p, admin := startAdmin(t, dir)
	base := p.api()
	token := func(role string) string {
		code, tok := call(t, "POST", base+"/tokens", admin, map[string]any{"name": role + "-e2e", "role": role})
		if code != 201 {
			t.Fatalf("create %s token: %d %v", role, code, tok)
		}
		return tok["token"].(string)
	}
	agent, supervisor := token("agent"), token("supervisor")
	_, cust := call(t, "POST", base+"/customers", agent, map[string]any{"name": "Rule"})
	_, cs := call(t, "POST", base+"/cases", agent, map[string]any{"customer_id": cust["id"], "subject": "rule", "channel": "chat"})
	caseURL := base + "/cases/" + cs["id"].(string)

	for _, c := range []struct {
		name  string
		token string
		patch map[string]any
		want  int
	}{
		{"agent closes", agent, map[string]any{"status": "closed"}, 403},
		{"agent takes the unassigned case", agent, map[string]any{"assignee": "agent-a"}, 200},
		{"agent reassigns", agent, map[string]any{"assignee": "someone-else"}, 403},
		{"agent changes priority", agent, map[string]any{"priority": "high"}, 200},
		{"supervisor reassigns", supervisor, map[string]any{"assignee": "someone-else"}, 200},
		{"supervisor closes", supervisor, map[string]any{"status": "closed"}, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			if code, body := call(t, "PATCH", caseURL, c.token, c.patch); code != c.want {
				t.Fatalf("PATCH %v: %d %v, want %d", c.patch, code, body, c.want)
			}
		})
	}
}
