package api_test

import (
	"encoding/json"
	"testing"

	"github.com/casevault/casevault/auth"
)

// TestCaseTimelineShowsChanges (issue 14 §1): every change of a case is in
// its timeline, old → new with who, interleaved with the contacts, and legal
// reads it; "contacts" stays as it was.
func TestCaseTimelineShowsChanges(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		agent, legal := h.tokens[auth.RoleAgent], h.tokens[auth.RoleLegal]
		cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Ada Obi"})
		r := h.do("POST", "/api/v1/cases", agent, map[string]any{"customer_id": cust["id"], "subject": "Lagos delivery", "channel": "email", "tags": []string{"litigation"}})
		if r.status != 201 {
			t.Fatalf("create case = %d %s", r.status, r.body)
		}
		caseID := r.json(t)["id"].(string)
		if r := h.do("POST", "/api/v1/cases/"+caseID+"/contacts", agent, map[string]any{"channel": "chat", "direction": "inbound", "author": "Ada", "body": "the box was open"}); r.status != 201 {
			t.Fatalf("contact = %d %s", r.status, r.body)
		}
		if r := h.do("PATCH", "/api/v1/cases/"+caseID, agent, map[string]any{"tags": []string{}, "subject": "Delivery"}); r.status != 200 {
			t.Fatalf("patch = %d %s", r.status, r.body)
		}
		if r := h.do("PATCH", "/api/v1/cases/"+caseID, agent, map[string]any{"tags": []string{}}); r.status != 200 {
			t.Fatalf("no-op patch = %d %s", r.status, r.body)
		}

		r = h.do("GET", "/api/v1/cases/"+caseID, legal, nil)
		if r.status != 200 {
			t.Fatalf("legal GET = %d %s", r.status, r.body)
		}
		var got struct {
			Contacts []map[string]any `json:"contacts"`
			Timeline []struct {
				Type      string                     `json:"type"`
				At        string                     `json:"at"`
				ContactID string                     `json:"contact_id"`
				Actor     string                     `json:"actor"`
				Role      string                     `json:"role"`
				Changes   map[string]json.RawMessage `json:"changes"`
			} `json:"timeline"`
		}
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Contacts) != 1 || len(got.Timeline) != 2 {
			t.Fatalf("contacts %d, timeline %+v; want 1 contact and one contact + one change (no entry for a no-op)", len(got.Contacts), got.Timeline)
		}
		ct, ch := got.Timeline[0], got.Timeline[1]
		if ct.Type != "contact" || ct.ContactID != got.Contacts[0]["id"] || ct.At == "" {
			t.Fatalf("first entry %+v, want the contact", ct)
		}
		if ch.Type != "change" || ch.Actor != "test-agent" || ch.Role != "agent" || ch.At < ct.At {
			t.Fatalf("second entry %+v, want the agent's change after the contact", ch)
		}
		for field, want := range map[string]string{
			"tags":    `{"from":["litigation"],"to":[]}`,
			"subject": `{"from":"Lagos delivery","to":"Delivery"}`,
		} {
			if string(ch.Changes[field]) != want {
				t.Errorf("change %s = %s, want %s", field, ch.Changes[field], want)
			}
		}
		if len(ch.Changes) != 2 {
			t.Errorf("changes %v, want tags and subject only", ch.Changes)
		}
	})
}
