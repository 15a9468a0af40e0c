package main

import (
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCustomerEraseReachesKeyEscrowCLI: the binary end to end. A backup
// run escrows every customer's key (keys/ of the repository, not the
// dump); `customer erase` with the repository reachable removes the
// customer's entry at once; with the repository unreachable (a
// --backup-dir that is not one) the erasure commits, says the deletion is
// pending, and /readyz's key_escrow check is degraded until the next
// backup run removes the entry.
func TestCustomerEraseReachesKeyEscrowCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p, tok := startAdmin(t, dir)
	a := seed(t, p.api(), tok, "Escrow A", 1024)
	b := seed(t, p.api(), tok, "Escrow B", 1024)
	stop(t, p)

	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(binary(t), append(args, "--data-dir", dir)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	entry := func(customer string) bool {
		_, err := os.Stat(filepath.Join(dir, "backups", "keys", hex.EncodeToString([]byte(customer))))
		return err == nil
	}
	escrowCheck := func() string {
		p, _ := startAdmin(t, dir)
		defer stop(t, p)
		_, ready := readyz(t, p.addr)
		st, _ := checkStatus(ready, "key_escrow")
		return st
	}

	run("backup", "run")
	if !entry(a.customer) || !entry(b.customer) {
		t.Fatalf("after a backup run: escrow entries %v %v, want both", entry(a.customer), entry(b.customer))
	}

	if out := run("customer", "erase", a.customer, "--reason", "Art. 17", "--force"); strings.Contains(out, "key escrow") {
		t.Errorf("erasure with the repository reachable says: %s", out)
	}
	if entry(a.customer) {
		t.Error("the erased customer's escrow entry is still there")
	}

	notRepo := t.TempDir() // a directory with no repository in it
	out := run("customer", "erase", b.customer, "--reason", "Art. 17", "--force", "--backup-dir", notRepo)
	if !strings.Contains(out, "still in the backups' key escrow") {
		t.Errorf("erasure with the repository unreachable does not say the deletion is pending: %s", out)
	}
	if !entry(b.customer) {
		t.Fatal("the entry went although the repository was not reachable: the test proves nothing")
	}
	if st := escrowCheck(); st != "degraded" {
		t.Errorf("/readyz key_escrow = %q with a deletion pending, want degraded", st)
	}

	run("backup", "run")
	if entry(b.customer) {
		t.Error("the backup run left the erased customer's escrow entry")
	}
	if st := escrowCheck(); st != "ok" {
		t.Errorf("/readyz key_escrow = %q after the run, want ok", st)
	}
}
