package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// TestBackupDrillCLI: the drill restores the latest backup into a scratch
// directory, starts a server on it, waits for its /readyz, reads the
// attachments through its API (bytes checked against the upload digest),
// verifies the audit chain through its API, revokes its own token, stops
// the server and removes the scratch directory — and reports each step,
// in JSON and in text. The server the drill started is gone afterwards.
func TestBackupDrillCLI(t *testing.T) {
	tests := []struct {
		name string
		env  func(t *testing.T) []string
	}{
		{"sqlite local repository", func(t *testing.T) []string { return nil }},
		// The scratch copy is SQLite with local blobs whatever the source.
		{"postgres s3 attachments and repository", func(t *testing.T) []string {
			s3 := blobtest.StartVersityGW(t)
			return []string{"CASEVAULT_DATABASE_URL=" + sqldbtest.Config(t, sqldb.Postgres).URL,
				"CASEVAULT_S3_ENDPOINT=" + s3.Endpoint, "CASEVAULT_S3_BUCKET=cv-drill-blobs", "CASEVAULT_S3_TLS=false",
				"CASEVAULT_S3_ACCESS_KEY=" + s3.AccessKey, "CASEVAULT_S3_SECRET_KEY=" + s3.SecretKey,
				"CASEVAULT_BACKUP_S3_ENDPOINT=" + s3.Endpoint, "CASEVAULT_BACKUP_S3_BUCKET=cv-drill", "CASEVAULT_BACKUP_S3_TLS=false",
				"CASEVAULT_BACKUP_S3_ACCESS_KEY=" + s3.AccessKey, "CASEVAULT_BACKUP_S3_SECRET_KEY=" + s3.SecretKey}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { testBackupDrill(t, tt.env(t)) })
	}
}

func testBackupDrill(t *testing.T, env []string) {
	dir := filepath.Join(t.TempDir(), "data")
	p, tok := startAdmin(t, dir, env...)
	seed(t, p.api(), tok, "Drill", 16<<10)

	// Bad input, and no backup yet: usage (2), no repository (10).
	cvCode(t, exitUsage, env, "backup", "drill", "--sample", "-1", "--data-dir", dir)
	cvCode(t, exitNoRepo, env, "backup", "drill", "--data-dir", dir)

	cvOK(t, env, "backup", "run", "--data-dir", dir)

	rep := result(t, cvOK(t, env, "backup", "drill", "--json", "--data-dir", dir))
	if rep["audit_ok"] != true || rep["attachments_checked"].(float64) != 1 || rep["attachments_failed"].(float64) != 0 ||
		rep["tables_mismatched"].(float64) != 0 || rep["scratch_removed"] != true || len(rep["problems"].([]any)) != 0 {
		t.Fatalf("drill report: %v", rep)
	}
	// The restored server was started and answered over HTTP.
	srv := rep["server"].(map[string]any)
	if srv["readyz_status"].(float64) != 200 || srv["stopped"] != true || !strings.HasPrefix(srv["addr"].(string), "127.0.0.1:") {
		t.Fatalf("drill server: %v", srv)
	}
	atts := rep["attachments"].([]any)
	if len(atts) != 1 {
		t.Fatalf("attachments read: %v", atts)
	}
	if a := atts[0].(map[string]any); a["status"].(float64) != 200 || a["bytes"].(float64) != 16<<10 || a["sha256_ok"] != true {
		t.Fatalf("attachment read through the restored server: %v", a)
	}
	var steps []string
	for _, s := range rep["steps"].([]any) {
		st := s.(map[string]any)
		if st["ok"] != true {
			t.Errorf("step %v failed: %v", st["name"], st)
		}
		steps = append(steps, st["name"].(string))
	}
	if want := []string{"restore", "start", "readyz", "attachments", "audit", "token_revoke", "stop", "remove"}; !slices.Equal(steps, want) {
		t.Fatalf("steps %v, want %v", steps, want)
	}
	if _, err := os.Stat(rep["scratch"].(string)); !os.IsNotExist(err) {
		t.Fatalf("scratch directory left behind: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", srv["addr"].(string), time.Second); err == nil {
		conn.Close()
		t.Fatal("the drill's server still listens after the drill")
	}

	// The same steps in the text report.
	out := cvOK(t, env, "backup", "drill", "--data-dir", dir)
	for _, want := range []string{"readyz", "token_revoke", "/readyz 200, stopped true", "attachments read through the API: 1, failed 0", "restores, starts and serves"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
}

// TestBackupDrillSchedule: --backup-drill-schedule runs the drill in the
// server; its log line says the restored server answered /readyz and the
// attachment was read.
func TestBackupDrillSchedule(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p, tok := startAdmin(t, dir, "CASEVAULT_BACKUP_DRILL_SCHEDULE=@every 2s", "CASEVAULT_BACKUP_SCHEDULE=off")
	seed(t, p.api(), tok, "Drill", 4<<10)
	cvOK(t, nil, "backup", "run", "--data-dir", dir)
	backedUp := time.Now()
	testkit.Eventually(t, 60*time.Second, "a scheduled drill", func() bool {
		for _, l := range strings.Split(p.stderr.String(), "\n") {
			var ev map[string]any
			if json.Unmarshal([]byte(l), &ev) != nil {
				continue
			}
			// A tick before the backup run finished finds no backup yet:
			// no repository, or (CI, 22:37) a repository whose first
			// manifest is not written yet. After it, any failure counts
			// (a second's grace for a tick that looked before the run
			// ended and logged after: a real failure recurs every tick).
			at, terr := time.Parse(time.RFC3339Nano, fmt.Sprint(ev["time"]))
			early := terr == nil && at.Before(backedUp.Add(time.Second)) && ev["msg"] == "backup drill failed" &&
				(strings.Contains(fmt.Sprint(ev["err"]), "no backup repository") || strings.Contains(fmt.Sprint(ev["err"]), "holds no complete backup"))
			if !early && (ev["msg"] == "backup drill found problems" || ev["msg"] == "backup drill failed") {
				t.Fatalf("scheduled drill: %s", l)
			}
			if ev["msg"] == "backup drill" {
				if ev["readyz"] != float64(200) || ev["attachments_checked"] != float64(1) || ev["scratch_removed"] != true {
					t.Fatalf("scheduled drill: %s", l)
				}
				return true
			}
		}
		return false
	})
}
