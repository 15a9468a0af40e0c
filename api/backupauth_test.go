package api_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
)

// A backup whose manifest was altered in the repository is not trusted by
// the API: GET answers 409 naming the signature, verify reports it (ok
// false) and the list shows it under "damaged", not among the backups.
func TestBackupRoutesRefuseAlteredManifest(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.tokens[auth.RoleBackup]
		h.mustCreate("/api/v1/customers", map[string]any{"name": "Signed"})
		m, err := h.backups.Backup(context.Background(), "test", cases.Actor{Name: "t", Role: "backup"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(h.backupDir, "snapshots", m.ID, "manifest.json")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Replace(b, []byte(`"rows": `), []byte(`"rows": 1`), 1), 0o600); err != nil {
			t.Fatal(err)
		}
		if r := h.do("GET", "/api/v1/backups/"+m.ID, tok, nil); r.status != 409 || !strings.Contains(string(r.body), "signature does not verify") {
			t.Fatalf("GET altered backup = %d %s, want 409 naming the signature", r.status, r.body)
		}
		r := h.do("POST", "/api/v1/backups/"+m.ID+"/verify?read_data=true", tok, nil)
		if v := r.json(t); r.status != 200 || v["ok"] != false || !strings.Contains(string(r.body), "signature does not verify") {
			t.Fatalf("verify altered backup = %d %s", r.status, r.body)
		}
		r = h.do("GET", "/api/v1/backups", tok, nil)
		l := r.json(t)
		if r.status != 200 || len(l["items"].([]any)) != 0 || !strings.Contains(string(r.body), `"damaged":[{"id":"`+m.ID) {
			t.Fatalf("list with an altered backup = %d %s", r.status, r.body)
		}
	})
}
