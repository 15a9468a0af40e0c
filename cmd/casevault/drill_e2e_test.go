package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestBackupDrillCLI: the drill restores the latest backup into a scratch
// directory, opens it with the instance's master key, verifies the audit
// chain and decrypts the attachments, and removes the scratch directory.
func TestBackupDrillCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p, tok := startAdmin(t, dir)
	seed(t, p.api(), tok, "Drill", 16<<10)
	cvOK(t, nil, "backup", "run", "--data-dir", dir)

	rep := result(t, cvOK(t, nil, "backup", "drill", "--json", "--data-dir", dir))
	if rep["audit_ok"] != true || rep["attachments_checked"].(float64) != 1 || rep["attachments_failed"].(float64) != 0 ||
		rep["tables_mismatched"].(float64) != 0 || rep["scratch_removed"] != true {
		t.Fatalf("drill report: %v", rep)
	}
	if _, err := os.Stat(rep["scratch"].(string)); !os.IsNotExist(err) {
		t.Fatalf("scratch directory left behind: %v", err)
	}
}
