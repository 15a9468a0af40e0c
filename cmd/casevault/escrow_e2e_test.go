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

// TestBackupVerifyAndDryRunShowEscrowCLI: the binary end to end (issue
// 17). After one of the backup's two customers is erased, `backup verify`
// says one customer has an escrow entry and one is erased, and still
// finds no problem; `restore --dry-run` says one customer comes back
// readable and one stays sealed.
func TestBackupVerifyAndDryRunShowEscrowCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p, tok := startAdmin(t, dir)
	a := seed(t, p.api(), tok, "Escrow A", 1024)
	seed(t, p.api(), tok, "Escrow B", 1024)
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
	run("backup", "run")
	run("customer", "erase", a.customer, "--reason", "Art. 17", "--force")

	for _, c := range []struct{ args, want []string }{
		{[]string{"backup", "verify", "latest"}, []string{"key escrow: 1 of 2 customers have an entry, 1 erased", "no problems found"}},
		{[]string{"backup", "verify", "latest", "--read-data"}, []string{"1 erased", "; 1 entries decrypted", "no problems found"}},
		{[]string{"backup", "restore", "latest", "--to", filepath.Join(t.TempDir(), "new"), "--dry-run"},
			[]string{"customers: 1 would be restored readable (key in the key escrow), 1 stay sealed"}},
	} {
		out := run(c.args...)
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", c.args, w, out)
			}
		}
	}
}
