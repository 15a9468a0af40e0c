package api_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/export"
	"github.com/casevault/casevault/testkit"
)

// completeExport starts an export of the hold as legal and waits until it
// is complete.
func (h *harness) completeExport(t *testing.T, holdID string) string {
	t.Helper()
	return h.completeExportOf(t, map[string]any{"hold_id": holdID, "format": "zip"})
}

// completeExportOf starts an export of body (a hold or a scope) as legal
// and waits until it is complete.
func (h *harness) completeExportOf(t *testing.T, body map[string]any) string {
	t.Helper()
	legal := h.tokens[auth.RoleLegal]
	r := h.do("POST", "/api/v1/exports", legal, body)
	if r.status != 202 {
		t.Fatalf("POST /exports = %d: %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	if loc := r.header.Get("Location"); loc != "/api/v1/exports/"+id {
		t.Errorf("Location = %q", loc)
	}
	var last map[string]any
	testkit.Eventually(t, 30*time.Second, "export complete", func() bool {
		last = h.do("GET", "/api/v1/exports/"+id, legal, nil).json(t)
		return last["status"] != export.StatusRunning
	})
	if last["status"] != export.StatusComplete {
		t.Fatalf("export ended %v", last)
	}
	return id
}

func TestExportEndToEnd(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		legal, agent := h.tokens[auth.RoleLegal], h.tokens[auth.RoleAgent]
		cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Exported"})["id"].(string)
		cs := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust, "subject": "dispute", "channel": "web"})["id"].(string)
		ct := h.mustCreate("/api/v1/cases/"+cs+"/contacts", map[string]any{"channel": "web", "direction": "inbound", "author": "a", "body": "card 4111 1111 1111 1111"})["id"].(string)
		native := strings.Repeat("native bytes ", 10000)
		h.mustCreateRaw("/api/v1/contacts/"+ct+"/attachments?filename=n.txt", native)
		hold := h.mustCreate("/api/v1/holds", map[string]any{"matter": "m", "reason": "r", "scope": map[string]any{"case_ids": []string{cs}}})["id"].(string)
		other := h.mustCreate("/api/v1/customers", map[string]any{"name": "Nothing"})["id"].(string)
		empty := h.mustCreate("/api/v1/holds", map[string]any{"matter": "m", "reason": "r", "scope": map[string]any{"customer_ids": []string{other}}})["id"].(string)

		for _, tc := range []struct {
			name, token string
			body        any
			status      int
		}{
			{"agent may not export", agent, map[string]any{"hold_id": hold}, 403},
			{"unknown hold", legal, map[string]any{"hold_id": "0190aaaa-0000-7000-8000-000000000000"}, 404},
			{"hold covering nothing", legal, map[string]any{"hold_id": empty}, 422},
			{"unknown format", legal, map[string]any{"hold_id": hold, "format": "pdf"}, 422},
			{"unknown field", legal, map[string]any{"hold_id": hold, "what": 1}, 422},
		} {
			if r := h.do("POST", "/api/v1/exports", tc.token, tc.body); r.status != tc.status {
				t.Errorf("%s: %d, want %d: %s", tc.name, r.status, tc.status, r.body)
			}
		}

		id := h.completeExport(t, hold)
		whole := h.do("GET", "/api/v1/exports/"+id+"/download", legal, nil)
		if whole.status != 200 || whole.header.Get("Content-Type") != "application/zip" {
			t.Fatalf("download = %d %q", whole.status, whole.header.Get("Content-Type"))
		}
		zr, err := zip.NewReader(bytes.NewReader(whole.body), int64(len(whole.body)))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, f := range zr.File {
			if strings.HasPrefix(f.Name, export.NativesDir) {
				rc, _ := f.Open()
				b, _ := io.ReadAll(rc)
				rc.Close()
				found = string(b) == native
			}
		}
		if !found || bytes.Contains(whole.body, []byte("4111 1111")) {
			t.Errorf("package lacks the native or holds an unmasked number")
		}

		// Resumable: a range is that part of the whole.
		req, _ := http.NewRequest("GET", h.base+"/api/v1/exports/"+id+"/download", nil)
		req.Header.Set("Authorization", "Bearer "+legal)
		req.Header.Set("Range", "bytes=100-")
		res, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		part, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 206 || !bytes.Equal(part, whole.body[100:]) || res.Header.Get("Content-Range") != fmt.Sprintf("bytes 100-%d/%d", len(whole.body)-1, len(whole.body)) {
			t.Errorf("range = %d %q, %d bytes", res.StatusCode, res.Header.Get("Content-Range"), len(part))
		}
		if !h.audit.has("export.download:ok:" + id) {
			t.Error("download not audited")
		}

		if r := h.do("DELETE", "/api/v1/exports/"+id, legal, nil); r.status != 204 {
			t.Fatalf("DELETE = %d: %s", r.status, r.body)
		}
		if r := h.do("GET", "/api/v1/exports/"+id+"/download", legal, nil); r.status != 409 {
			t.Errorf("download of a deleted export = %d", r.status)
		}
		if r := h.do("GET", "/api/v1/exports/"+id, legal, nil); r.json(t)["status"] != export.StatusDeleted {
			t.Errorf("deleted export: %s", r.body)
		}
		if r := h.do("GET", "/api/v1/exports/nope", legal, nil); r.status != 404 {
			t.Errorf("unknown export = %d", r.status)
		}
		var n int
		if err := h.db.Read.QueryRow(h.db.Rebind(`SELECT COUNT(*) FROM audit_events WHERE target_id = ? AND action IN ('export.create', 'export.delete')`), id).Scan(&n); err != nil || n != 2 {
			t.Errorf("%d create/delete events (%v), want 2", n, err)
		}
	})
}

// TestScopeExport: POST /exports {"scope"} exports exactly what the scope
// matches now; a bad scope is 422 naming the field, as for a hold, and a
// scope matching nothing is 422.
func TestScopeExport(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		legal := h.tokens[auth.RoleLegal]
		cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Scoped"})["id"].(string)
		other := h.mustCreate("/api/v1/customers", map[string]any{"name": "Other"})["id"].(string)
		in := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust, "subject": "dispute", "channel": "web"})["id"].(string)
		out := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": other, "subject": "dispute", "channel": "web"})["id"].(string)
		want := map[string]bool{}
		for range 2 {
			id := h.mustCreate("/api/v1/cases/"+in+"/contacts", map[string]any{"channel": "web", "direction": "inbound", "author": "a", "body": "hello"})["id"].(string)
			want[id] = true
		}
		h.mustCreate("/api/v1/cases/"+out+"/contacts", map[string]any{"channel": "web", "direction": "inbound", "author": "a", "body": "not mine"})

		for _, tc := range []struct{ body, field string }{
			{`{"scope":{}}`, "scope"},
			{`{"scope":{"from":"yesterday"}}`, "scope.from"},
			{`{"scope":{"query":"-parcel"}}`, "scope.query"},
			{`{"scope":{"case_ids":["0190aaaa-0000-7000-8000-000000000000"]}}`, "scope.case_ids[0]"},
			{`{"scope":{"customer_ids":["` + cust + `"],"from":"2030-01-01"}}`, "scope"},
		} {
			r := h.do("POST", "/api/v1/exports", legal, tc.body)
			if r.status != 422 || !strings.Contains(string(r.body), `"`+tc.field+`"`) {
				t.Errorf("%s: %d %s; want 422 naming %s", tc.body, r.status, r.body, tc.field)
			}
		}

		id := h.completeExportOf(t, map[string]any{"scope": map[string]any{"customer_ids": []string{cust}}})
		whole := h.do("GET", "/api/v1/exports/"+id+"/download", legal, nil)
		zr, err := zip.NewReader(bytes.NewReader(whole.body), int64(len(whole.body)))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, f := range zr.File {
			if f.Name != export.ContactsFile {
				continue
			}
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(rc)
			for dec.More() {
				var rec struct {
					Contact struct {
						ID string `json:"id"`
					} `json:"contact"`
				}
				if err := dec.Decode(&rec); err != nil {
					t.Fatal(err)
				}
				got[rec.Contact.ID] = true
			}
			rc.Close()
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("package contacts %v, want exactly %v", got, want)
		}
	})
}
