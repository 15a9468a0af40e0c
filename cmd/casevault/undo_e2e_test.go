package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestUndoDisposalCLI is issue 17 §2 end to end, on SQLite and PostgreSQL,
// each with a local and an S3 (versitygw) repository: a retention run
// deletes by mistake; `backup restore ID --undo-run RUN` explains and exits
// 2 without --yes, refuses a backup taken after the run (13), and with
// --yes brings the case and contacts back (audited). A case deleted by
// request comes back with --case --yes; one under a hold placed since stays
// deleted, and so does the case of a customer erased since (the undo
// reports it kept; --case of it is refused, 13). On SQLite, a full restore
// of the first backup keeps a token revoked since revoked (issue 17 §1).
func TestUndoDisposalCLI(t *testing.T) {
	dialects := []struct {
		name string
		env  func(t *testing.T) []string
	}{
		{"sqlite", func(t *testing.T) []string { return nil }},
		{"postgres", func(t *testing.T) []string {
			return []string{"CASEVAULT_DATABASE_URL=" + sqldbtest.Config(t, sqldb.Postgres).URL}
		}},
	}
	repos := []struct {
		name string
		env  func(t *testing.T) []string
	}{
		{"local repository", func(t *testing.T) []string {
			return []string{"CASEVAULT_BACKUP_DIR=" + filepath.Join(t.TempDir(), "repo")}
		}},
		{"s3 repository", func(t *testing.T) []string {
			s3 := blobtest.StartVersityGW(t)
			return []string{"CASEVAULT_BACKUP_S3_ENDPOINT=" + s3.Endpoint, "CASEVAULT_BACKUP_S3_BUCKET=cv-undo",
				"CASEVAULT_BACKUP_S3_ACCESS_KEY=" + s3.AccessKey, "CASEVAULT_BACKUP_S3_SECRET_KEY=" + s3.SecretKey,
				"CASEVAULT_BACKUP_S3_TLS=false"}
		}},
	}
	type combo struct {
		name   string
		sqlite bool
		env    func(t *testing.T) []string
	}
	var tests []combo
	for _, d := range dialects {
		for _, r := range repos {
			tests = append(tests, combo{d.name + " " + r.name, d.name == "sqlite", func(t *testing.T) []string {
				return append(append(d.env(t), r.env(t)...), "CASEVAULT_BACKUP_SCHEDULE=off")
			}})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env(t)
			dir := filepath.Join(t.TempDir(), "data")
			p, tok := startAdmin(t, dir, env...)
			base := p.api()
			sqlite := tt.sqlite

			// A case with a live contact and an old notification, and a
			// case holding only an old notification: the run deletes the
			// one contact and the whole second case.
			kept := seed(t, base, tok, "Kept case", 8<<10)
			old := func(caseID string) string {
				code, ct := call(t, "POST", base+"/cases/"+caseID+"/contacts", tok, map[string]any{"channel": "email", "direction": "outbound", "author": "bot",
					"body": "your parcel shipped", "purposes": []string{"notification"}, "occurred_at": "2020-01-02T03:04:05Z"})
				if code != 201 {
					t.Fatalf("old contact: %d %v", code, ct)
				}
				return ct["id"].(string)
			}
			old(kept.caseID)
			_, wholeCase := newCase(t, base, tok, "Only notifications", "email")
			old(wholeCase)
			erasedCust, erasedCase := newCase(t, base, tok, "Only notifications, customer erased since", "email")
			old(erasedCase)
			_, byRequest := newCase(t, base, tok, "Deleted by request", "email")
			addContact(t, base, tok, byRequest, "email", "please delete")
			heldCust, heldCase := newCase(t, base, tok, "Deleted, then held", "email")
			addContact(t, base, tok, heldCase, "email", "evidence")
			code, agent := call(t, "POST", base+"/tokens", tok, map[string]any{"name": "leaked", "role": "agent"})
			if code != 201 {
				t.Fatalf("token: %d", code)
			}

			before := result(t, cvOK(t, env, "backup", "run", "--json", "--data-dir", dir))["id"].(string)

			if code, _ := call(t, "DELETE", base+"/tokens/"+agent["id"].(string), tok, nil); code != 204 {
				t.Fatalf("revoke: %d", code)
			}
			code, run := call(t, "POST", base+"/retention/runs", tok, map[string]any{"dry_run": false})
			if code != 202 {
				t.Fatalf("retention run: %d %v", code, run)
			}
			runID := run["id"].(string)
			if rep := waitRun(t, base+"/retention/runs/"+runID, tok); rep["cases_deleted"].(float64) != 2 {
				t.Fatalf("retention run report: %v", rep)
			}
			for _, id := range []string{byRequest, heldCase} {
				if code, _ := call(t, "DELETE", base+"/cases/"+id, tok, nil); code != 204 {
					t.Fatalf("delete case: %d", code)
				}
			}
			code, hold := call(t, "POST", base+"/holds", tok, map[string]any{"matter": "M", "reason": "r", "scope": map[string]any{"customer_ids": []string{heldCust}}})
			if code != 201 {
				t.Fatalf("hold: %d %v", code, hold)
			}
			cvOK(t, env, "customer", "erase", erasedCust, "--reason", "data-subject request", "--data-dir", dir)
			cvOK(t, env, "backup", "run", "--data-dir", dir) // after the run: "latest"

			caseCode := func(id string) int { c, _ := call(t, "GET", base+"/cases/"+id, tok, nil); return c }

			refusals := []struct {
				name string
				args []string
				code int
				says string
			}{
				{"no --yes", []string{before, "--undo-run", runID}, exitUsage, "--yes"},
				{"backup after the run", []string{"latest", "--undo-run", runID, "--yes"}, exitRefused, "taken after"},
				{"unknown run", []string{before, "--undo-run", "no-such-run", "--yes"}, exitNoRepo, "no-such-run"},
				{"deleted case without --yes", []string{before, "--case", byRequest}, exitRefused, "deleted by request"},
				{"case held since", []string{before, "--case", heldCase, "--yes"}, exitRefused, hold["id"].(string)},
				{"case of a customer erased since", []string{before, "--case", erasedCase, "--yes"}, exitRefused, "erasure is final"},
			}
			for _, r := range refusals {
				out, errOut, code := cv(t, env, append([]string{"backup", "restore"}, append(r.args, "--data-dir", dir)...)...)
				if code != r.code || !strings.Contains(out+errOut, r.says) {
					t.Errorf("%s: exit %d, want %d saying %q\n%s%s", r.name, code, r.code, r.says, out, errOut)
				}
			}
			if caseCode(wholeCase) != 404 || caseCode(byRequest) != 404 || caseCode(heldCase) != 404 || caseCode(erasedCase) != 404 {
				t.Fatal("a refused undo changed the instance")
			}

			rep := result(t, cvOK(t, env, "backup", "restore", before, "--undo-run", runID, "--yes", "--json", "--data-dir", dir))
			if rep["applied"] != true || rep["cases_restored"].(float64) != 1 || rep["contacts_restored"].(float64) != 2 {
				t.Fatalf("undo report: %v", rep)
			}
			keptFinal := rep["kept"].([]any)
			if len(keptFinal) == 0 {
				t.Fatalf("undo report keeps nothing final: %v", rep)
			}
			for _, k := range keptFinal {
				if it := k.(map[string]any); it["case"] != erasedCase || !strings.Contains(it["kept_because"].(string), "erasure is final") {
					t.Errorf("undo report, kept: %v", it)
				}
			}
			if caseCode(wholeCase) != 200 {
				t.Fatal("the undone case is not back")
			}
			if caseCode(erasedCase) != 404 {
				t.Fatal("the erased customer's case came back")
			}
			if code, cs := call(t, "GET", base+"/cases/"+kept.caseID, tok, nil); code != 200 || len(cs["contacts"].([]any)) != 3 {
				t.Fatalf("kept case after undo: %d %v", code, cs)
			}
			cvOK(t, env, "backup", "restore", before, "--case", byRequest, "--yes", "--data-dir", dir)
			if caseCode(byRequest) != 200 || caseCode(heldCase) != 404 {
				t.Fatalf("after undo of the deletions: by request %d, held %d; want 200, 404", caseCode(byRequest), caseCode(heldCase))
			}
			if code, ev := call(t, "GET", base+"/audit?action=backup.undo_disposal", tok, nil); code != 200 || len(ev["items"].([]any)) != 2 {
				t.Fatalf("undo audit events: %d %v", code, ev)
			}
			if code, body := download(t, base+"/attachments/"+kept.attachment, tok); code != 200 || !bytes.Equal(body, kept.content) {
				t.Fatalf("attachment after undo: %d", code)
			}

			if !sqlite {
				return
			}
			// The revoked token stays revoked in a restore of the backup
			// taken while it was valid.
			target := filepath.Join(t.TempDir(), "restored")
			out := cvOK(t, env, "backup", "restore", before, "--to", target, "--data-dir", dir)
			for _, want := range []string{"tokens revoked " + agent["id"].(string), "master key:", "backup identity:", "backup repository:"} {
				if !strings.Contains(out, want) {
					t.Errorf("restore summary lacks %q:\n%s", want, out)
				}
			}
			rbase := startRestored(t, dir, target)
			if code, _ := call(t, "GET", rbase+"/cases/"+kept.caseID, agent["token"].(string), nil); code != 401 {
				t.Errorf("revoked token on the restored instance: %d, want 401", code)
			}
			if code, _ := call(t, "GET", rbase+"/cases/"+wholeCase, tok, nil); code != 200 {
				t.Errorf("undone case on the restored instance: %d, want 200 (the reversal is not replayed as a deletion)", code)
			}
		})
	}
}
