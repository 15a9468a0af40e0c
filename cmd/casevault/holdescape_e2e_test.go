package main

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/testkit"
)

// Issue 14's escape, against the served binary with its real index: legal
// holds `tag:litigation`; an agent removes the tag. The hold keeps covering
// the case (its coverage was recorded when it was placed), so a supervisor
// cannot delete it. Before sticky coverage the hold's counts dropped to 0
// once the index caught up with the edit, and the deletion went through.
func TestQueryHoldSurvivesAgentEdit(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	admin := adminToken(t, dir)
	base := "http://" + p.addr + "/api/v1"
	token := func(role string) string {
		code, tok := call(t, "POST", base+"/tokens", admin, map[string]any{"name": role + "-hold", "role": role})
		if code != 201 {
			t.Fatalf("create %s token: %d %v", role, code, tok)
		}
		return tok["token"].(string)
	}
	agent, legal, supervisor := token("agent"), token("legal"), token("supervisor")

	_, cust := call(t, "POST", base+"/customers", agent, map[string]any{"name": "Held"})
	_, cs := call(t, "POST", base+"/cases", agent, map[string]any{"customer_id": cust["id"], "subject": "dispute", "channel": "email", "tags": []string{"litigation"}})
	caseID := cs["id"].(string)
	if code, _ := call(t, "POST", base+"/cases/"+caseID+"/contacts", agent, map[string]any{"channel": "email", "direction": "inbound", "author": "c", "body": "I will see you in court"}); code != 201 {
		t.Fatalf("contact: %d", code)
	}
	found := func(want float64) func() bool {
		return func() bool {
			_, res := call(t, "GET", base+"/search?q="+url.QueryEscape("tag:litigation"), agent, nil)
			return res["total"] == want
		}
	}
	testkit.Eventually(t, 30*time.Second, "the index to hold the tagged case", found(1))

	code, hold := call(t, "POST", base+"/holds", legal, map[string]any{"matter": "M-1", "reason": "litigation", "scope": map[string]any{"query": "tag:litigation"}})
	if code != 201 {
		t.Fatalf("place hold: %d %v", code, hold)
	}
	holdID := hold["id"].(string)
	counts := func() map[string]any {
		_, h := call(t, "GET", base+"/holds/"+holdID, legal, nil)
		c, _ := h["counts"].(map[string]any)
		return c
	}
	if c := counts(); c["cases"] != float64(1) || c["contacts"] != float64(1) {
		t.Fatalf("hold counts after placing: %v, want 1 case and 1 contact", c)
	}

	if code, body := call(t, "PATCH", base+"/cases/"+caseID, agent, map[string]any{"tags": []string{}}); code != 200 {
		t.Fatalf("agent edit: %d %v", code, body)
	}
	testkit.Eventually(t, 30*time.Second, "the index to see the edit", found(0))

	if c := counts(); c["cases"] != float64(1) || c["contacts"] != float64(1) {
		t.Fatalf("hold counts after the agent removed the tag: %v, want still 1 case and 1 contact", c)
	}
	code, body := call(t, "DELETE", base+"/cases/"+caseID, supervisor, nil)
	if code != 409 || !strings.Contains(toJSON(body), holdID) {
		t.Fatalf("deleting the held case: %d %v, want 409 naming %s", code, body, holdID)
	}
	if code, _ := call(t, "GET", base+"/cases/"+caseID, legal, nil); code != 200 {
		t.Fatalf("held case gone: %d", code)
	}
}
