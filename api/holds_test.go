package api_test

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/retention"
)

// TestHoldReportThroughTheAPI: a hold's report page by page with its
// custodian filter and counts, the matter view and ?matter=, the release
// preview, release, reinstate within the grace and 409 after it, and bad
// input (unknown hold or matter 404, bad cursor 422).
func TestHoldReportThroughTheAPI(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		legal := h.tokens[auth.RoleLegal]
		cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Held"})["id"].(string)
		other := h.mustCreate("/api/v1/customers", map[string]any{"name": "Other"})["id"].(string)
		caseID := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust, "subject": "dispute", "channel": "web"})["id"].(string)
		ct := h.mustCreate("/api/v1/cases/"+caseID+"/contacts", map[string]any{"channel": "web", "direction": "note", "author": "a", "body": "b"})["id"].(string)
		h.mustCreateRaw("/api/v1/contacts/"+ct+"/attachments?filename=invoice.txt", "invoice")
		const matter = "Smith v. Shop"
		r := h.do("POST", "/api/v1/holds", legal, map[string]any{"matter": matter, "reason": "litigation", "scope": map[string]any{"customer_ids": []string{cust}}})
		if r.status != 201 {
			t.Fatalf("place: %d %s", r.status, r.body)
		}
		holdID := r.json(t)["id"].(string)

		// The report, one item a page: the case, then its contact.
		var kinds []string
		path := "/api/v1/holds/" + holdID + "/items?limit=1"
		for p := path; ; {
			r := h.do("GET", p, legal, nil)
			if r.status != 200 {
				t.Fatalf("GET %s: %d %s", p, r.status, r.body)
			}
			body := r.json(t)
			for _, it := range body["items"].([]any) {
				item := it.(map[string]any)
				if item["why"] != "customer_ids" || item["since"] == nil || item["customer_id"] != cust {
					t.Errorf("item %v", item)
				}
				if item["kind"] == "contact" && len(item["attachments"].([]any)) != 1 {
					t.Errorf("contact item without its attachment: %v", item)
				}
				kinds = append(kinds, item["kind"].(string))
			}
			if body["next_cursor"] == nil {
				break
			}
			p = path + "&cursor=" + url.QueryEscape(body["next_cursor"].(string))
		}
		if len(kinds) != 2 || kinds[0] != "case" || kinds[1] != "contact" {
			t.Fatalf("report kinds %v, want case then contact", kinds)
		}
		if r := h.do("GET", "/api/v1/holds/"+holdID+"/items?custodian="+other, legal, nil); r.status != 200 || len(r.json(t)["items"].([]any)) != 0 {
			t.Fatalf("report of another custodian: %d %s", r.status, r.body)
		}
		r = h.do("GET", "/api/v1/holds/"+holdID, legal, nil)
		per, _ := r.json(t)["custodians"].([]any)
		if r.status != 200 || len(per) != 1 || per[0].(map[string]any)["contacts"] != 1.0 || per[0].(map[string]any)["attachments"] != 1.0 {
			t.Fatalf("hold with custodians: %d %s", r.status, r.body)
		}

		// Matter.
		if r := h.do("GET", "/api/v1/holds?matter="+url.QueryEscape(matter), legal, nil); r.status != 200 || len(r.json(t)["items"].([]any)) != 1 {
			t.Fatalf("holds of the matter: %d %s", r.status, r.body)
		}
		if r := h.do("GET", "/api/v1/holds?matter=nothing", legal, nil); r.status != 200 || len(r.json(t)["items"].([]any)) != 0 {
			t.Fatalf("holds of another matter: %d %s", r.status, r.body)
		}
		// GET /holds issues cursors and accepts them.
		h.do("POST", "/api/v1/holds", legal, map[string]any{"matter": "other", "reason": "r", "scope": map[string]any{"customer_ids": []string{other}}})
		first := h.do("GET", "/api/v1/holds?limit=1", legal, nil).json(t)
		if r := h.do("GET", "/api/v1/holds?limit=1&cursor="+first["next_cursor"].(string), legal, nil); r.status != 200 || len(r.json(t)["items"].([]any)) != 1 {
			t.Fatalf("second page of holds: %d %s", r.status, r.body)
		}
		r = h.do("GET", "/api/v1/matters/"+url.PathEscape(matter), legal, nil)
		if r.status != 200 || r.json(t)["combined"].(map[string]any)["cases"] != 1.0 || len(r.json(t)["holds"].([]any)) != 1 {
			t.Fatalf("matter view: %d %s", r.status, r.body)
		}

		// Release preview: the contact is kept a year (fixedPolicy), so
		// nothing would be due.
		r = h.do("GET", "/api/v1/holds/"+holdID+"/release-preview", legal, nil)
		if r.status != 200 || r.json(t)["due"] != 0.0 || r.json(t)["due_after"] == nil {
			t.Fatalf("release preview: %d %s", r.status, r.body)
		}

		// Release, reinstate within the grace, release again, too late.
		if r := h.do("POST", "/api/v1/holds/"+holdID+"/reinstate", legal, nil); r.status != 409 {
			t.Fatalf("reinstating an active hold: %d %s", r.status, r.body)
		}
		r = h.do("POST", "/api/v1/holds/"+holdID+"/release", legal, map[string]any{"reason": "oops"})
		if rel := r.json(t); r.status != 200 || rel["preserving"] != true || rel["grace_until"] == nil {
			t.Fatalf("release: %d %s", r.status, r.body)
		}
		if r := h.do("DELETE", "/api/v1/cases/"+caseID, h.tokens[auth.RoleAdmin], nil); r.status != 409 {
			t.Fatalf("deleting during the grace: %d %s", r.status, r.body)
		}
		r = h.do("POST", "/api/v1/holds/"+holdID+"/reinstate", legal, map[string]any{"reason": "released by mistake"})
		if r.status != 200 || r.json(t)["active"] != true {
			t.Fatalf("reinstate: %d %s", r.status, r.body)
		}
		h.do("POST", "/api/v1/holds/"+holdID+"/release", legal, map[string]any{"reason": "settled"})
		h.clock.Advance(retention.DefaultHoldReleaseGrace)
		if r := h.do("POST", "/api/v1/holds/"+holdID+"/reinstate", legal, nil); r.status != 409 {
			t.Fatalf("reinstating after the grace: %d %s", r.status, r.body)
		}
		// The report survives the release.
		if r := h.do("GET", "/api/v1/holds/"+holdID+"/items", legal, nil); r.status != 200 || len(r.json(t)["items"].([]any)) != 2 {
			t.Fatalf("report after release: %d %s", r.status, r.body)
		}

		// Bad input.
		for _, tc := range []struct {
			method, path string
			want         int
		}{
			{"GET", "/api/v1/holds/nope/items", 404},
			{"GET", "/api/v1/holds/nope/release-preview", 404},
			{"POST", "/api/v1/holds/nope/reinstate", 404},
			{"GET", "/api/v1/matters/" + url.PathEscape("Nobody v. Nothing"), 404},
			{"GET", "/api/v1/holds/" + holdID + "/items?cursor=garbage", 422},
			{"GET", "/api/v1/holds/" + holdID + "/items?limit=0", 422},
			{"GET", "/api/v1/holds/" + holdID + "/release-preview?cursor=x", 422},
		} {
			if r := h.do(tc.method, tc.path, legal, nil); r.status != tc.want {
				t.Errorf("%s %s = %d, want %d: %s", tc.method, tc.path, r.status, tc.want, r.body)
			}
		}
	})
}

// TestLegalPreviewsSweeps: legal may start a dry run and read its report,
// not a real sweep.
func TestLegalPreviewsSweeps(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		legal := h.tokens[auth.RoleLegal]
		for _, body := range []any{map[string]any{"dry_run": false}, nil, map[string]any{}} {
			if r := h.do("POST", "/api/v1/retention/runs", legal, body); r.status != 403 {
				t.Fatalf("legal real sweep %v: %d %s", body, r.status, r.body)
			}
		}
		if !h.audit.has("auth.forbidden:denied:POST /api/v1/retention/runs (dry_run false)") {
			t.Error("the refused real sweep is not audited")
		}
		r := h.do("POST", "/api/v1/retention/runs", legal, map[string]any{"dry_run": true})
		if r.status != 202 {
			t.Fatalf("legal dry run: %d %s", r.status, r.body)
		}
		waitRuns(t, h)
		if r := h.do("GET", "/api/v1/retention/runs/"+r.json(t)["id"].(string), legal, nil); r.status != 200 || r.json(t)["dry_run"] != true {
			t.Fatalf("legal reads the dry run: %d %s", r.status, r.body)
		}
	})
}

// memFlags is a bucket's legal-hold flags in memory; while down every call
// fails as an outage.
type memFlags struct {
	mu   sync.Mutex
	on   map[string]bool
	down bool
}

func (m *memFlags) SetVersionLegalHold(_ context.Context, key, _ string, on bool) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return "", fmt.Errorf("bucket: %w", archive.ErrUnavailable)
	}
	m.on[key] = on
	return "v1", nil
}

func (m *memFlags) VersionLegalHold(_ context.Context, key, _ string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return false, fmt.Errorf("bucket: %w", archive.ErrUnavailable)
	}
	return m.on[key], nil
}

func (m *memFlags) set(down bool) {
	m.mu.Lock()
	m.down = down
	m.mu.Unlock()
}

func (m *memFlags) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, on := range m.on {
		if on {
			n++
		}
	}
	return n
}

// TestHoldMirroringThroughTheAPI (issue 21 §5–6): placing a hold answers
// its mirroring; an upload into the held case is flagged after it
// commits; a hold placed while the bucket is down answers 201 with
// mirroring pending, GET /holds/{id} says so, and POST /holds/{id}/mirror
// sets the flags once the bucket is back.
func TestHoldMirroringThroughTheAPI(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		legal := h.tokens[auth.RoleLegal]
		cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Held"})["id"].(string)
		caseID := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust, "subject": "dispute", "channel": "web"})["id"].(string)
		ct := h.mustCreate("/api/v1/cases/"+caseID+"/contacts", map[string]any{"channel": "web", "direction": "note", "author": "a", "body": "b"})["id"].(string)
		h.mustCreateRaw("/api/v1/contacts/"+ct+"/attachments?filename=a.txt", "first")

		place := func(caseID string) map[string]any {
			r := h.do("POST", "/api/v1/holds", legal, map[string]any{"matter": "M", "reason": "r", "scope": map[string]any{"case_ids": []string{caseID}}})
			if r.status != 201 {
				t.Fatalf("place: %d %s", r.status, r.body)
			}
			return r.json(t)
		}
		hold := place(caseID)
		if hold["mirroring"] != "complete" || h.flags.count() != 1 {
			t.Fatalf("placed: mirroring %v, %d flags; want complete, 1", hold["mirroring"], h.flags.count())
		}
		h.mustCreateRaw("/api/v1/contacts/"+ct+"/attachments?filename=b.txt", "later")
		if h.flags.count() != 2 {
			t.Fatalf("%d flags after an upload into the held case, want 2", h.flags.count())
		}
		r := h.do("GET", "/api/v1/holds/"+hold["id"].(string), legal, nil)
		detail, _ := r.json(t)["mirroring_detail"].(map[string]any)
		if r.json(t)["mirroring"] != "complete" || detail["blobs"] != float64(2) || detail["flagged"] != float64(2) {
			t.Fatalf("GET hold: %s", r.body)
		}

		other := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust, "subject": "other", "channel": "web"})["id"].(string)
		oc := h.mustCreate("/api/v1/cases/"+other+"/contacts", map[string]any{"channel": "web", "direction": "note", "author": "a", "body": "b"})["id"].(string)
		h.mustCreateRaw("/api/v1/contacts/"+oc+"/attachments?filename=c.txt", "other")
		h.flags.set(true)
		down := place(other)
		if down["mirroring"] != "pending" {
			t.Fatalf("placed while the bucket is down: mirroring %v, want pending", down["mirroring"])
		}
		path := "/api/v1/holds/" + down["id"].(string)
		if r := h.do("GET", path, legal, nil); r.json(t)["mirroring"] != "pending" {
			t.Fatalf("GET pending hold: %s", r.body)
		}
		h.flags.set(false)
		if r := h.do("POST", path+"/mirror", h.tokens[auth.RoleAgent], nil); r.status != 403 {
			t.Fatalf("mirror as an agent: %d", r.status)
		}
		r = h.do("POST", path+"/mirror", legal, nil)
		if r.status != 200 || r.json(t)["mirroring"] != "complete" {
			t.Fatalf("mirror on demand: %d %s", r.status, r.body)
		}
		if r := h.do("POST", "/api/v1/holds/0197c0de-0000-7000-8000-000000000000/mirror", legal, nil); r.status != 404 {
			t.Fatalf("mirror of an unknown hold: %d", r.status)
		}
	})
}
