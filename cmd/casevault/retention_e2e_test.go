package main

import (
	"strings"
	"testing"
)

// Legal hold, explain and a sweep through the running server.
func TestRetentionThroughTheAPI(t *testing.T) {
	dir := t.TempDir()
	p, tok := startAdmin(t, dir)
	base := p.api()
	_, cust := call(t, "POST", base+"/customers", tok, map[string]any{"name": "Held"})
	_, cs := call(t, "POST", base+"/cases", tok, map[string]any{"customer_id": cust["id"], "subject": "dispute", "channel": "email"})
	caseID := cs["id"].(string)
	_, ct := call(t, "POST", base+"/cases/"+caseID+"/contacts", tok, map[string]any{"channel": "email", "direction": "inbound", "author": "a", "body": "login code", "purposes": []string{"authentication"}})

	code, sched := call(t, "GET", base+"/retention/schedule", tok, nil)
	if code != 200 || len(sched["purposes"].([]any)) != 9 {
		t.Fatalf("schedule: %d %v", code, sched)
	}
	if code, _ := call(t, "PUT", base+"/retention/schedule", tok, map[string]any{"purposes": []any{}}); code != 422 {
		t.Fatalf("incomplete schedule accepted: %d", code)
	}
	code, hold := call(t, "POST", base+"/holds", tok, map[string]any{"matter": "Smith v. Shop", "reason": "litigation", "scope": map[string]any{"case_ids": []string{caseID}}})
	if code != 201 {
		t.Fatalf("place hold: %d %v", code, hold)
	}
	holdID := hold["id"].(string)
	if code, _ := call(t, "POST", base+"/holds", tok, map[string]any{"matter": "m", "reason": "r", "scope": map[string]any{}}); code != 422 {
		t.Fatalf("empty scope accepted: %d", code)
	}
	code, x := call(t, "GET", base+"/contacts/"+ct["id"].(string)+"/retention", tok, nil)
	if code != 200 || !strings.Contains(strings.ToLower(strings.Join(strings.Fields(toJSON(x)), "")), strings.ToLower(holdID)) {
		t.Fatalf("explain does not name the hold: %d %v", code, x)
	}
	code, run := call(t, "POST", base+"/retention/runs", tok, map[string]any{"dry_run": true})
	if code != 202 {
		t.Fatalf("start run: %d %v", code, run)
	}
	if rep := waitRun(t, base+"/retention/runs/"+run["id"].(string), tok); rep["dry_run"] != true {
		t.Fatalf("run report: %v", rep)
	}
	// Deleting held data is refused, naming the hold.
	code, prob := call(t, "DELETE", base+"/cases/"+caseID, tok, nil)
	if code != 409 || !strings.Contains(toJSON(prob), holdID) {
		t.Fatalf("delete of a held case: %d %v, want 409 naming %s", code, prob, holdID)
	}
	code, rel := call(t, "POST", base+"/holds/"+holdID+"/release", tok, map[string]any{"reason": "settled"})
	if code != 200 || rel["released_at"] == nil {
		t.Fatalf("release: %d %v", code, rel)
	}
	if code, _ := call(t, "POST", base+"/holds/"+holdID+"/release", tok, map[string]any{"reason": "again"}); code != 409 {
		t.Fatalf("second release: %d, want 409", code)
	}
	// Released, but preserved for the grace (30 days by default), and
	// reinstated; released again under a schedule without a grace.
	if code, _ := call(t, "DELETE", base+"/cases/"+caseID, tok, nil); code != 409 {
		t.Fatalf("delete during the release grace: %d, want 409", code)
	}
	if code, r := call(t, "POST", base+"/holds/"+holdID+"/reinstate", tok, nil); code != 200 || r["active"] != true {
		t.Fatalf("reinstate: %d %v", code, r)
	}
	sched["hold_release_grace"] = "0s"
	if code, r := call(t, "PUT", base+"/retention/schedule", tok, sched); code != 200 {
		t.Fatalf("schedule without grace: %d %v", code, r)
	}
	if code, r := call(t, "POST", base+"/holds/"+holdID+"/release", tok, map[string]any{"reason": "settled"}); code != 200 || r["preserving"] != false {
		t.Fatalf("release without grace: %d %v", code, r)
	}
	// Released: the case can go, and is gone everywhere.
	if code, _ := call(t, "DELETE", base+"/cases/"+caseID, tok, nil); code != 204 {
		t.Fatalf("delete after release: %d", code)
	}
	if code, _ := call(t, "GET", base+"/cases/"+caseID, tok, nil); code != 404 {
		t.Fatalf("deleted case still readable: %d", code)
	}
	if code, _ := call(t, "GET", base+"/contacts/"+ct["id"].(string), tok, nil); code != 404 {
		t.Fatalf("deleted contact still readable: %d", code)
	}
	if code, ev := call(t, "GET", base+"/audit?action=case.delete", tok, nil); code != 200 || len(ev["items"].([]any)) == 0 {
		t.Fatalf("no audit event for the deletion: %d %v", code, ev)
	}
	// An agent cannot place holds.
	out, _ := runCLI(t, "token", "create", "--data-dir", dir, "--name", "ag", "--role", "agent")
	if code, _ := call(t, "POST", base+"/holds", strings.TrimSpace(out), map[string]any{"matter": "m", "reason": "r", "scope": map[string]any{"case_ids": []string{caseID}}}); code != 403 {
		t.Fatalf("agent placing a hold: %d", code)
	}
}
