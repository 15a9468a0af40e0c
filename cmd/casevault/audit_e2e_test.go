package main

import (
	"database/sql"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// The real audit trail behind the real server: writes, reads and denials are
// on record, the API filters them, and both verify paths catch an edited row.
func TestAuditTrailEndToEnd(t *testing.T) {
	dir := t.TempDir()
	p, admin := startAdmin(t, dir)
	base := p.api()
	code, cust := call(t, "POST", base+"/customers", admin, map[string]any{"name": "Audit Me"})
	if code != 201 {
		t.Fatalf("customer: %d", code)
	}
	id := cust["id"].(string)
	if code, _ := call(t, "GET", base+"/customers/"+id, admin, nil); code != 200 {
		t.Fatalf("read: %d", code)
	}
	if code, _ := call(t, "GET", base+"/customers/"+id, "cvt_wrong", nil); code != 401 {
		t.Fatalf("bad token: %d", code)
	}
	for _, tc := range []struct {
		query string
		want  string
	}{
		{"?action=customer.create", "customer.create"},
		{"?action=customer.read&target=customer:" + id, "customer.read"},
		{"?action=auth.*", "auth.invalid"},
	} {
		code, res := call(t, "GET", base+"/audit"+tc.query, admin, nil)
		if code != 200 {
			t.Fatalf("audit list %s: %d", tc.query, code)
		}
		items := res["items"].([]any)
		if len(items) == 0 || items[0].(map[string]any)["action"] != tc.want {
			t.Fatalf("audit %s: %v", tc.query, items)
		}
	}
	code, ver := call(t, "GET", base+"/audit/verify", admin, nil)
	if code != 200 || ver["ok"] != true {
		t.Fatalf("verify: %d %v", code, ver)
	}
	// A legal token may read the trail, an agent may not.
	out, err := exec.Command(binary(t), "token", "create", "--data-dir", dir, "--name", "agent", "--role", "agent").Output()
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := call(t, "GET", base+"/audit", strings.TrimSpace(string(out)), nil); code != 403 {
		t.Fatalf("agent reading audit = %d, want 403", code)
	}

	// Tamper with one stored event: both the CLI and the API must notice.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "casevault.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE audit_events SET actor_name = 'someone else' WHERE action = 'customer.create'`); err != nil {
		t.Fatal(err)
	}
	code, ver = call(t, "GET", base+"/audit/verify", admin, nil)
	if code != 200 || ver["ok"] != false || ver["first_bad"] == nil {
		t.Fatalf("verify after tampering: %d %v", code, ver)
	}
	cmd := exec.Command(binary(t), "audit", "verify", "--data-dir", dir)
	if err := cmd.Run(); cmd.ProcessState.ExitCode() != exitError {
		t.Fatalf("audit verify after tampering: exit %d (%v), want %d", cmd.ProcessState.ExitCode(), err, exitError)
	}
	exp, err := exec.Command(binary(t), "audit", "export", "--data-dir", dir, "--action", "customer.*").Output()
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(exp), "\n"); lines < 2 {
		t.Fatalf("export has %d lines: %s", lines, exp)
	}
}
