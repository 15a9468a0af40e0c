package api_test

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/casevault/casevault/auth"
)

// TestConsentWithdrawalRedactsStoredLocations (issue 15 §3): withdrawing
// location consent redacts the locations already stored for the
// customer's contacts, with a disposition record and an audit event each,
// except where a legal hold covers the contact (kept and reported);
// another customer's locations stay; repeating the PATCH redacts nothing
// more; withdrawing marketing or personalization redacts nothing.
func TestConsentWithdrawalRedactsStoredLocations(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		agent, legal := h.tokens[auth.RoleAgent], h.tokens[auth.RoleLegal]
		loc := map[string]any{"lat": 52.52, "lon": 13.4, "label": "Alexanderplatz"}
		newCust := func(name string) (string, string, string) {
			cust := h.mustCreate("/api/v1/customers", map[string]any{"name": name, "consents": map[string]any{"location": true, "marketing": true, "personalization": true}})["id"].(string)
			c1 := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust, "subject": "delivery", "channel": "phone"})["id"].(string)
			c2 := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust, "subject": "held matter", "channel": "phone"})["id"].(string)
			return cust, c1, c2
		}
		cust, free, held := newCust("Ada Obi")
		_, otherCase, _ := newCust("Li Wei")
		contact := func(caseID string) string {
			r := h.do("POST", "/api/v1/cases/"+caseID+"/contacts", agent, map[string]any{"channel": "phone", "direction": "inbound", "author": "x", "body": "where is it", "location": loc})
			if r.status != 201 || r.json(t)["location"] == nil {
				t.Fatalf("contact = %d %s", r.status, r.body)
			}
			return r.json(t)["id"].(string)
		}
		freeCts := []string{contact(free), contact(free)}
		heldCt := contact(held)
		otherCt := contact(otherCase)
		if r := h.do("POST", "/api/v1/holds", legal, map[string]any{"matter": "M-1", "reason": "litigation", "scope": map[string]any{"case_ids": []string{held}}}); r.status != 201 {
			t.Fatalf("hold = %d %s", r.status, r.body)
		}

		for _, consent := range []string{"marketing", "personalization"} {
			r := h.do("PATCH", "/api/v1/customers/"+cust, agent, map[string]any{"consents": map[string]any{consent: false}})
			if r.status != 200 {
				t.Fatalf("withdraw %s = %d %s", consent, r.status, r.body)
			}
			var got struct {
				W struct {
					Redacted map[string]int `json:"redacted"`
				} `json:"consent_withdrawal"`
			}
			if err := json.Unmarshal(r.body, &got); err != nil || len(got.W.Redacted) != 0 {
				t.Fatalf("withdrawing %s redacted %s, want nothing (it gates no stored field)", consent, r.body)
			}
		}

		outboxOf := func(caseID string) int {
			var n int
			if err := h.db.Read.QueryRowContext(context.Background(), h.db.Rebind(`SELECT COUNT(*) FROM outbox WHERE case_id = ? AND contact_id IS NULL`), caseID).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		reindexed := outboxOf(free)
		r := h.do("PATCH", "/api/v1/customers/"+cust, agent, map[string]any{"consents": map[string]any{"location": false}})
		if r.status != 200 {
			t.Fatalf("withdraw location = %d %s", r.status, r.body)
		}
		if outboxOf(free) != reindexed+1 {
			t.Fatalf("the redacted case was not queued for re-indexing (%d outbox rows, had %d)", outboxOf(free), reindexed)
		}
		var got struct {
			Consents map[string]bool `json:"consents"`
			W        struct {
				Redacted map[string]int `json:"redacted"`
				Held     []struct {
					ContactID string   `json:"contact_id"`
					Holds     []string `json:"holds"`
				} `json:"held"`
			} `json:"consent_withdrawal"`
		}
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		if got.Consents["location"] || got.W.Redacted["location"] != 2 || len(got.W.Held) != 1 || got.W.Held[0].ContactID != heldCt || len(got.W.Held[0].Holds) != 1 {
			t.Fatalf("withdrawal answered %s: want location off, 2 redacted, the held contact reported", r.body)
		}

		locationOf := func(id string) any {
			r := h.do("GET", "/api/v1/contacts/"+id, agent, nil)
			if r.status != 200 {
				t.Fatalf("GET contact = %d %s", r.status, r.body)
			}
			return r.json(t)["location"]
		}
		for _, id := range freeCts {
			if l := locationOf(id); l != nil {
				t.Errorf("contact %s still has location %v", id, l)
			}
		}
		if locationOf(heldCt) == nil {
			t.Error("the held contact's location was redacted")
		}
		if locationOf(otherCt) == nil {
			t.Error("another customer's location was redacted")
		}

		var disps, events int
		if err := h.db.Read.QueryRowContext(context.Background(), h.db.Rebind(`SELECT COUNT(*) FROM dispositions WHERE rule = 'consent:location' AND action = 'redact' AND detail = 'location' AND customer_id = ?`), cust).Scan(&disps); err != nil {
			t.Fatal(err)
		}
		if err := h.db.Read.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM audit_events WHERE action = 'customer.consent_redact'`).Scan(&events); err != nil {
			t.Fatal(err)
		}
		if disps != 2 || events != 2 {
			t.Fatalf("dispositions %d, audit events %d; want 2 each", disps, events)
		}

		r = h.do("PATCH", "/api/v1/customers/"+cust, agent, map[string]any{"consents": map[string]any{"location": false}})
		got.W.Redacted = nil
		if err := json.Unmarshal(r.body, &got); err != nil || r.status != 200 || got.W.Redacted["location"] != 0 || len(got.W.Held) != 1 {
			t.Fatalf("repeated withdrawal = %d %s, want nothing more redacted, the held one reported again", r.status, r.body)
		}
	})
}

// TestCustomerExport (issue 15 §2): the access export is a ZIP with the
// profile, every case and contact (with purposes and retention), the
// attachments decrypted, and who read the customer's data; agents may not
// have it, an unknown customer is 404, and the export is audited.
func TestCustomerExport(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		agent, sup := h.tokens[auth.RoleAgent], h.tokens[auth.RoleSupervisor]
		cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Ada Obi", "email": "ada@example.com"})["id"].(string)
		other := h.mustCreate("/api/v1/customers", map[string]any{"name": "Li Wei"})["id"].(string)
		caseID := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust, "subject": "broken kettle", "channel": "email"})["id"].(string)
		otherCase := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": other, "subject": "not hers", "channel": "email"})["id"].(string)
		ct := h.mustCreate("/api/v1/cases/"+caseID+"/contacts", map[string]any{"channel": "email", "direction": "inbound", "author": "Ada", "body": "the kettle leaks", "purposes": []string{"notification", "legal_obligation"}})["id"].(string)
		fix := h.mustCreate("/api/v1/cases/"+caseID+"/contacts", map[string]any{"channel": "email", "author": "agent", "body": "it is a teapot", "corrects": ct})["id"].(string)
		h.mustCreate("/api/v1/cases/"+otherCase+"/contacts", map[string]any{"channel": "email", "direction": "inbound", "author": "Li", "body": "someone else's words"})
		att := h.mustCreateRaw("/api/v1/contacts/"+ct+"/attachments?filename=photo.txt", "attachment bytes of the kettle")["id"].(string)
		if r := h.do("GET", "/api/v1/cases/"+caseID, agent, nil); r.status != 200 {
			t.Fatalf("read case = %d", r.status)
		}

		if r := h.do("GET", "/api/v1/customers/"+cust+"/export", agent, nil); r.status != 403 {
			t.Fatalf("agent export = %d, want 403", r.status)
		}
		if r := h.do("GET", "/api/v1/customers/0192a3b4-0000-7000-8000-000000000000/export", sup, nil); r.status != 404 {
			t.Fatalf("unknown customer export = %d, want 404", r.status)
		}
		r := h.do("GET", "/api/v1/customers/"+cust+"/export", sup, nil)
		if r.status != 200 || r.header.Get("Content-Type") != "application/zip" {
			t.Fatalf("export = %d %s", r.status, r.header.Get("Content-Type"))
		}
		zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
		if err != nil {
			t.Fatalf("not a ZIP: %v", err)
		}
		files := map[string][]byte{}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatalf("%s: %v", f.Name, err)
			}
			files[f.Name] = b
		}

		var m struct {
			Format  string `json:"format"`
			Version int    `json:"version"`
			Files   []struct {
				Path string `json:"path"`
			} `json:"files"`
		}
		if err := json.Unmarshal(files["manifest.json"], &m); err != nil || m.Format != "casevault-subject-access" || m.Version != 1 || len(m.Files) != len(files)-1 {
			t.Fatalf("manifest %s (%v); files %d", files["manifest.json"], err, len(files))
		}
		var profile map[string]any
		if err := json.Unmarshal(files["customer.json"], &profile); err != nil || profile["email"] != "ada@example.com" {
			t.Fatalf("customer.json %s", files["customer.json"])
		}
		var cs []map[string]any
		if err := json.Unmarshal(files["cases.json"], &cs); err != nil || len(cs) != 1 || cs[0]["id"] != caseID {
			t.Fatalf("cases.json %s: want only her case", files["cases.json"])
		}
		type line struct {
			ID        string   `json:"id"`
			Body      string   `json:"body"`
			Purposes  []string `json:"purposes"`
			Corrects  string   `json:"corrects"`
			Retention struct {
				RetainUntil *string `json:"retain_until"`
				Rule        *struct {
					Purpose string `json:"purpose"`
				} `json:"rule"`
			} `json:"retention"`
			Attachments []struct {
				ID, Path, Filename string
			} `json:"attachments"`
		}
		var lines []line
		sc := bufio.NewScanner(bytes.NewReader(files["contacts.ndjson"]))
		for sc.Scan() {
			var l line
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("contacts.ndjson: %v", err)
			}
			lines = append(lines, l)
		}
		if len(lines) != 2 || lines[0].ID != ct || lines[0].Body != "the kettle leaks" || lines[1].ID != fix || lines[1].Corrects != ct {
			t.Fatalf("contacts.ndjson %s", files["contacts.ndjson"])
		}
		l := lines[0]
		if len(l.Purposes) != 2 || l.Retention.RetainUntil == nil || l.Retention.Rule == nil || l.Retention.Rule.Purpose != "legal_obligation" {
			t.Fatalf("contact retention %+v: want both purposes, a date and the deciding rule legal_obligation (7y beats 90d)", l)
		}
		if len(l.Attachments) != 1 || l.Attachments[0].ID != att || l.Attachments[0].Filename != "photo.txt" {
			t.Fatalf("attachments %+v", l.Attachments)
		}
		if got := string(files[l.Attachments[0].Path]); got != "attachment bytes of the kettle" {
			t.Fatalf("attachment file %q, want the decrypted bytes", got)
		}
		if strings.Contains(string(r.body), "someone else") {
			t.Fatal("another customer's contact is in the export")
		}
		readers := map[string]bool{}
		sc = bufio.NewScanner(bytes.NewReader(files["access_log.ndjson"]))
		for sc.Scan() {
			var e struct {
				Actor    string `json:"actor"`
				Action   string `json:"action"`
				TargetID string `json:"target_id"`
			}
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatal(err)
			}
			readers[e.Actor+" "+e.Action+" "+e.TargetID] = true
		}
		if !readers["test-agent case.read "+caseID] {
			t.Fatalf("access log %s lacks the agent's read of the case", files["access_log.ndjson"])
		}

		var n int
		if err := h.db.Read.QueryRowContext(context.Background(), h.db.Rebind(`SELECT COUNT(*) FROM audit_events WHERE action = 'customer.export' AND target_id = ? AND actor_name = 'test-supervisor'`), cust).Scan(&n); err != nil || n != 1 {
			t.Fatalf("export audit events %d (%v), want 1", n, err)
		}
	})
}
