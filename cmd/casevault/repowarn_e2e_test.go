package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeWarnsOfFreshLocalRepository: serve on a fresh instance (backups
// to the default <data-dir>/backups) logs the warning; serve given the
// instance's existing repository does not, nor does a restored instance
// pointed at the repository the backup came from.
func TestServeWarnsOfFreshLocalRepository(t *testing.T) {
	const says = "backups would start a new, empty repository on the same disk as the data"
	dir := filepath.Join(t.TempDir(), "data")
	p := start(t, dir)
	if !strings.Contains(p.stderr.String(), says) {
		t.Fatalf("serve on a fresh instance did not warn:\n%s", p.stderr)
	}
	stop(t, p)

	repo := filepath.Join(t.TempDir(), "repo")
	env := []string{"CASEVAULT_BACKUP_DIR=" + repo}
	cvOK(t, env, "backup", "run", "--data-dir", dir)
	p = start(t, dir, env...)
	if strings.Contains(p.stderr.String(), says) {
		t.Fatalf("serve warned about an existing repository:\n%s", p.stderr)
	}
	stop(t, p)

	// A restore says to carry the repository over; done, no warning.
	target := filepath.Join(t.TempDir(), "restored")
	cvOK(t, env, "backup", "restore", "latest", "--to", target, "--data-dir", dir)
	copyMasterKey(t, dir, target)
	p = start(t, target, env...)
	if strings.Contains(p.stderr.String(), says) {
		t.Fatalf("serve warned on a restored instance given its repository:\n%s", p.stderr)
	}
	stop(t, p)
	// Not carried over: warned.
	p = start(t, target)
	if !strings.Contains(p.stderr.String(), says) {
		t.Fatalf("serve on a restored instance without its repository did not warn:\n%s", p.stderr)
	}
}

// copyMasterKey gives a restored directory the instance's master key, as
// the carry-over lines say.
func copyMasterKey(t *testing.T, from, to string) {
	t.Helper()
	mk, err := os.ReadFile(filepath.Join(from, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(to, "master.key"), mk, 0o600); err != nil {
		t.Fatal(err)
	}
}
