package api_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/casevault/casevault/auth"
)

// problemNames reports whether a problem+json body names field.
func problemNames(t *testing.T, r resp, field string) bool {
	t.Helper()
	errs, _ := r.json(t)["errors"].([]any)
	for _, e := range errs {
		if e.(map[string]any)["field"] == field {
			return true
		}
	}
	return false
}

// TestCorrectionLinksContacts (issue 15 §3): a correction is a new contact
// naming the one it corrects; the original is left as it was, both show the
// link (GET of either contact, the case's contacts and timeline), and a
// correction of a contact not in the case is 422 naming "corrects".
func TestCorrectionLinksContacts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		agent := h.tokens[auth.RoleAgent]
		cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Ada Obi"})
		caseID := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust["id"], "subject": "parcel", "channel": "email"})["id"].(string)
		other := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust["id"], "subject": "other", "channel": "chat"})["id"].(string)
		orig := h.mustCreate("/api/v1/cases/"+caseID+"/contacts", map[string]any{"channel": "phone", "direction": "inbound", "author": "Ada", "body": "my address is 12 Oak Road"})
		elsewhere := h.mustCreate("/api/v1/cases/"+other+"/contacts", map[string]any{"channel": "chat", "direction": "inbound", "author": "Ada", "body": "hello"})

		bad := []struct{ name, corrects string }{
			{"unknown contact", "0192a3b4-0000-7000-8000-000000000000"},
			{"contact of another case", elsewhere["id"].(string)},
			{"not an id", "12 Oak Road"},
			{"the case's id", caseID},
		}
		for _, tc := range bad {
			t.Run(tc.name, func(t *testing.T) {
				before := h.counts()
				r := h.do("POST", "/api/v1/cases/"+caseID+"/contacts", agent, map[string]any{"channel": "phone", "author": "agent", "body": "fix", "corrects": tc.corrects})
				if r.status != 422 || !problemNames(t, r, "corrects") {
					t.Fatalf("status %d %s, want 422 naming corrects", r.status, r.body)
				}
				if after := h.counts(); after["contacts"] != before["contacts"] {
					t.Fatalf("a refused correction was stored: %v -> %v", before, after)
				}
			})
		}

		r := h.do("POST", "/api/v1/cases/"+caseID+"/contacts", agent, map[string]any{"channel": "phone", "author": "agent", "body": "the address is 21 Oak Road", "corrects": orig["id"]})
		if r.status != 201 {
			t.Fatalf("correction = %d %s", r.status, r.body)
		}
		fix := r.json(t)
		if fix["corrects"] != orig["id"] || fix["direction"] != "note" {
			t.Fatalf("correction %v: want corrects %v and direction note (an annotation)", fix, orig["id"])
		}

		var got struct {
			Body        string   `json:"body"`
			Corrects    string   `json:"corrects"`
			CorrectedBy []string `json:"corrected_by"`
		}
		r = h.do("GET", "/api/v1/contacts/"+orig["id"].(string), agent, nil)
		if err := json.Unmarshal(r.body, &got); err != nil || r.status != 200 {
			t.Fatalf("GET original = %d %s", r.status, r.body)
		}
		if got.Body != "my address is 12 Oak Road" || !slices.Equal(got.CorrectedBy, []string{fix["id"].(string)}) {
			t.Fatalf("original after correction %+v: want its body unchanged and corrected_by [%v]", got, fix["id"])
		}
		got = struct {
			Body        string   `json:"body"`
			Corrects    string   `json:"corrects"`
			CorrectedBy []string `json:"corrected_by"`
		}{}
		r = h.do("GET", "/api/v1/contacts/"+fix["id"].(string), agent, nil)
		if err := json.Unmarshal(r.body, &got); err != nil || got.Corrects != orig["id"] || got.CorrectedBy != nil {
			t.Fatalf("GET correction = %d %s", r.status, r.body)
		}

		var cs struct {
			Contacts []struct {
				ID          string   `json:"id"`
				Corrects    string   `json:"corrects"`
				CorrectedBy []string `json:"corrected_by"`
			} `json:"contacts"`
			Timeline []struct {
				ContactID   string   `json:"contact_id"`
				Corrects    string   `json:"corrects"`
				CorrectedBy []string `json:"corrected_by"`
			} `json:"timeline"`
		}
		r = h.do("GET", "/api/v1/cases/"+caseID, h.tokens[auth.RoleLegal], nil)
		if err := json.Unmarshal(r.body, &cs); err != nil || len(cs.Timeline) != 2 || len(cs.Contacts) != 2 {
			t.Fatalf("GET case = %d %s", r.status, r.body)
		}
		links := map[string][2]any{}
		for _, e := range cs.Timeline {
			links[e.ContactID] = [2]any{e.Corrects, e.CorrectedBy}
		}
		if l := links[orig["id"].(string)]; l[0] != "" || !slices.Equal(l[1].([]string), []string{fix["id"].(string)}) {
			t.Errorf("timeline entry of the original %v, want corrected_by the correction", l)
		}
		if l := links[fix["id"].(string)]; l[0] != orig["id"] || l[1].([]string) != nil {
			t.Errorf("timeline entry of the correction %v, want corrects the original", l)
		}
		for _, c := range cs.Contacts {
			if c.ID == orig["id"] && !slices.Equal(c.CorrectedBy, []string{fix["id"].(string)}) {
				t.Errorf("contacts[] original %+v lacks corrected_by", c)
			}
		}
	})
}
