package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/testkit"
)

// waitRuns waits until no sweep is running, so a role's POST is judged on
// permissions, not on a concurrent run (409).
func waitRuns(t *testing.T, h *harness) {
	t.Helper()
	testkit.Eventually(t, 4*time.Second, "no retention run running", func() bool {
		var n int
		err := h.db.Read.QueryRow(`SELECT COUNT(*) FROM retention_runs WHERE status = 'running'`).Scan(&n)
		return err != nil || n == 0
	})
}

// waitBackupLease waits until no backup run holds the lease, so a role's
// POST is judged on permissions, not on a concurrent run (409).
func waitBackupLease(t *testing.T, h *harness) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, "the backup lease released", func() bool {
		var n int
		err := h.db.Read.QueryRow(`SELECT COUNT(*) FROM backup_lease WHERE holder IS NOT NULL`).Scan(&n)
		return err != nil || n == 0
	})
}

// TestRoleMatrix checks every route against every role, by hand-written
// expectation (api.md, Roles), plus no token and a revoked token.
func TestRoleMatrix(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		t.Cleanup(func() { waitBackupLease(t, h) }) // no run outlives the test's directories
		cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Matrix"})
		cs := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust["id"], "subject": "s", "channel": "web"})
		ct := h.mustCreate("/api/v1/cases/"+cs["id"].(string)+"/contacts", map[string]any{"channel": "web", "direction": "note", "author": "a", "body": "b"})
		custID, caseID, contactID := cust["id"].(string), cs["id"].(string), ct["id"].(string)
		attID := h.mustCreateRaw("/api/v1/contacts/"+contactID+"/attachments?filename=x.txt", "hello")["id"].(string)
		other := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": custID, "subject": "held", "channel": "web"})["id"].(string)
		holdBody := map[string]any{"matter": "m", "reason": "r", "scope": map[string]any{"case_ids": []string{other}}}
		holdID := h.mustCreate("/api/v1/holds", holdBody)["id"].(string)
		runID := h.mustCreateStatus("/api/v1/retention/runs", map[string]any{"dry_run": true}, 202)["id"].(string)
		contact := map[string]any{"channel": "web", "direction": "note", "author": "a", "body": "b"}
		bm, err := h.backups.Backup(context.Background(), "test", cases.Actor{Name: "test"}, nil)
		if err != nil {
			t.Fatal(err)
		}

		type row struct {
			method, path string
			body         any
			// agent, supervisor, legal, backup, admin
			want [5]int
		}
		rows := []row{
			{"POST", "/api/v1/tokens", map[string]any{"name": "n", "role": "agent"}, [5]int{403, 403, 403, 403, 201}},
			{"GET", "/api/v1/tokens", nil, [5]int{403, 403, 403, 403, 200}},
			{"DELETE", "/api/v1/tokens/{fresh}", nil, [5]int{403, 403, 403, 403, 204}},
			{"POST", "/api/v1/customers", map[string]any{"name": "n"}, [5]int{201, 201, 403, 403, 201}},
			{"GET", "/api/v1/customers/" + custID, nil, [5]int{200, 200, 200, 403, 200}},
			{"PATCH", "/api/v1/customers/" + custID, map[string]any{"locale": "zh-CN"}, [5]int{200, 200, 403, 403, 200}},
			{"GET", "/api/v1/customers/" + custID + "/cases", nil, [5]int{200, 200, 200, 403, 200}},
			{"POST", "/api/v1/cases", map[string]any{"customer_id": custID, "subject": "s", "channel": "web"}, [5]int{201, 201, 403, 403, 201}},
			{"GET", "/api/v1/cases", nil, [5]int{200, 200, 200, 403, 200}},
			{"GET", "/api/v1/cases/" + caseID, nil, [5]int{200, 200, 200, 403, 200}},
			{"PATCH", "/api/v1/cases/" + caseID, map[string]any{"priority": "high"}, [5]int{200, 200, 403, 403, 200}},
			{"PATCH", "/api/v1/cases/" + caseID, map[string]any{"status": "closed"}, [5]int{403, 200, 403, 403, 200}},
			{"POST", "/api/v1/cases/" + caseID + "/contacts", contact, [5]int{201, 201, 403, 403, 201}},
			{"GET", "/api/v1/contacts/" + contactID, nil, [5]int{200, 200, 200, 403, 200}},
			{"GET", "/api/v1/search?q=anything", nil, [5]int{200, 200, 200, 403, 200}},
			{"GET", "/api/v1/search/status", nil, [5]int{200, 200, 200, 403, 200}},
			{"POST", "/api/v1/search/reindex", nil, [5]int{403, 403, 403, 403, 202}},
			{"GET", "/api/v1/audit", nil, [5]int{403, 403, 200, 403, 200}},
			{"GET", "/api/v1/audit/verify", nil, [5]int{403, 403, 200, 403, 200}},
			{"POST", "/api/v1/contacts/" + contactID + "/attachments?filename=a.txt", "attachment bytes", [5]int{201, 201, 403, 403, 201}},
			{"GET", "/api/v1/attachments/" + attID, nil, [5]int{200, 200, 200, 403, 200}},
			{"GET", "/api/v1/attachments/" + attID + "/meta", nil, [5]int{200, 200, 200, 403, 200}},
			{"GET", "/api/v1/retention/schedule", nil, [5]int{403, 403, 200, 403, 200}},
			{"GET", "/api/v1/retention/schedule/versions", nil, [5]int{403, 403, 200, 403, 200}},
			{"PUT", "/api/v1/retention/schedule", retention.DefaultSchedule(), [5]int{403, 403, 403, 403, 200}},
			{"GET", "/api/v1/cases/" + caseID + "/retention", nil, [5]int{403, 403, 200, 403, 200}},
			{"GET", "/api/v1/contacts/" + contactID + "/retention", nil, [5]int{403, 403, 200, 403, 200}},
			{"POST", "/api/v1/retention/runs", map[string]any{"dry_run": true}, [5]int{403, 403, 202, 403, 202}},
			{"POST", "/api/v1/retention/runs", map[string]any{"dry_run": false}, [5]int{403, 403, 403, 403, 202}},
			{"GET", "/api/v1/retention/runs/{run}", nil, [5]int{403, 403, 200, 403, 200}},
			{"POST", "/api/v1/holds", holdBody, [5]int{403, 403, 201, 403, 201}},
			{"GET", "/api/v1/holds", nil, [5]int{403, 403, 200, 403, 200}},
			{"GET", "/api/v1/holds/{hold}", nil, [5]int{403, 403, 200, 403, 200}},
			{"GET", "/api/v1/holds/{hold}/items", nil, [5]int{403, 403, 200, 403, 200}},
			{"GET", "/api/v1/holds/{hold}/release-preview", nil, [5]int{403, 403, 200, 403, 200}},
			{"GET", "/api/v1/matters/m", nil, [5]int{403, 403, 200, 403, 200}},
			{"POST", "/api/v1/holds/{freshhold}/release", map[string]any{"reason": "done"}, [5]int{403, 403, 200, 403, 200}},
			{"POST", "/api/v1/holds/{releasedhold}/reinstate", nil, [5]int{403, 403, 200, 403, 200}},
			{"DELETE", "/api/v1/cases/{freshcase}", nil, [5]int{403, 204, 403, 403, 204}},
			{"POST", "/api/v1/backups", nil, [5]int{403, 403, 403, 202, 202}},
			{"GET", "/api/v1/backups", nil, [5]int{403, 403, 403, 200, 200}},
			{"GET", "/api/v1/backups/{backup}", nil, [5]int{403, 403, 403, 200, 200}},
			{"POST", "/api/v1/backups/{backup}/verify", nil, [5]int{403, 403, 403, 200, 200}},
		}
		roles := []auth.Role{auth.RoleAgent, auth.RoleSupervisor, auth.RoleLegal, auth.RoleBackup, auth.RoleAdmin}
		for _, r := range rows {
			for i, role := range roles {
				path := r.path
				switch path {
				case "/api/v1/holds/{hold}":
					path = "/api/v1/holds/" + holdID
				case "/api/v1/holds/{hold}/items", "/api/v1/holds/{hold}/release-preview":
					path = strings.Replace(r.path, "{hold}", holdID, 1)
				case "/api/v1/holds/{releasedhold}/reinstate":
					fresh := h.mustCreate("/api/v1/holds", holdBody)["id"].(string)
					h.mustCreateStatus("/api/v1/holds/"+fresh+"/release", map[string]any{"reason": "by mistake"}, 200)
					path = "/api/v1/holds/" + fresh + "/reinstate"
				case "/api/v1/retention/runs/{run}":
					path = "/api/v1/retention/runs/" + runID
				case "/api/v1/holds/{freshhold}/release":
					path = "/api/v1/holds/" + h.mustCreate("/api/v1/holds", holdBody)["id"].(string) + "/release"
				case "/api/v1/backups/{backup}":
					path = "/api/v1/backups/" + bm.ID
				case "/api/v1/backups/{backup}/verify":
					path = "/api/v1/backups/" + bm.ID + "/verify"
				case "/api/v1/cases/{freshcase}":
					path = "/api/v1/cases/" + h.mustCreate("/api/v1/cases", map[string]any{"customer_id": custID, "subject": "to delete", "channel": "web"})["id"].(string)
				}
				if r.method == "POST" && r.path == "/api/v1/retention/runs" {
					waitRuns(t, h)
				}
				if r.path == "/api/v1/backups" && r.method == "POST" {
					waitBackupLease(t, h)
				}
				if path == "/api/v1/tokens/{fresh}" {
					tok, _, err := auth.NewTokens(h.db).Create(context.Background(), "victim", auth.RoleAgent, nil)
					if err != nil {
						t.Fatal(err)
					}
					path = "/api/v1/tokens/" + tok.ID
				}
				if got := h.do(r.method, path, h.tokens[role], r.body); got.status != r.want[i] {
					t.Errorf("%s %s as %s = %d, want %d (%s)", r.method, r.path, role, got.status, r.want[i], got.body)
				}
				if r.body != nil && r.want[i] == 200 && r.method == "PATCH" && r.path == "/api/v1/cases/"+caseID {
					// reopen so the next role's close is a real change
					h.do("PATCH", r.path, h.tokens[auth.RoleAdmin], map[string]any{"status": "open"})
				}
			}
			for name, tok := range map[string]string{"no token": "", "revoked token": h.revokd, "garbage token": "cvt_garbage"} {
				if got := h.do(r.method, r.path, tok, r.body); got.status != 401 {
					t.Errorf("%s %s with %s = %d, want 401", r.method, r.path, name, got.status)
				}
			}
		}
	})
}
