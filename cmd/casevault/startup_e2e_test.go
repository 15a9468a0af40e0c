package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// sharedS3 is the environment of an attachment store replicas share: a
// bucket of its own on the shared versitygw.
func sharedS3(t *testing.T) []string {
	t.Helper()
	s := blobtest.EnvS3(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return []string{"CASEVAULT_S3_ENDPOINT=" + s.Endpoint, "CASEVAULT_S3_BUCKET=cv-startup-" + hex.EncodeToString(b),
		"CASEVAULT_S3_ACCESS_KEY=" + s.AccessKey, "CASEVAULT_S3_SECRET_KEY=" + s.SecretKey, "CASEVAULT_S3_TLS=false"}
}

// instanceKey is the CASEVAULT_MASTER_KEY setting of the master key the
// instance in dir generated: every other replica of it must be given it.
func instanceKey(t *testing.T, dir string) string {
	t.Helper()
	key, err := os.ReadFile(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	return "CASEVAULT_MASTER_KEY=" + strings.TrimSpace(string(key))
}

// otherMasterKey is a valid master key that no test instance generated.
const otherMasterKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// serveRefused runs `serve` and expects it to refuse to start with the
// master-key exit code, saying why, without writing a master.key of its
// own.
func serveRefused(t *testing.T, dir string, env ...string) {
	t.Helper()
	_, errOut, code := cv(t, env, "serve", "--data-dir", dir, "--listen", freeAddr(t))
	if code != exitMasterKey {
		t.Fatalf("serve on %s: exit %d, want %d (master key)\n%s", dir, code, exitMasterKey, errOut)
	}
	if !strings.Contains(errOut, "master key") {
		t.Fatalf("the refusal does not say why:\n%s", errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "master.key")); err == nil && !strings.Contains(strings.Join(env, " "), "CASEVAULT_MASTER_KEY") {
		t.Fatalf("the refused start generated its own master.key in %s", dir)
	}
}

// A second replica on the same PostgreSQL database without the instance's
// master key (none, or another one) refuses to start instead of wrapping
// customers' keys under a key of its own (issue 20 §14); with the
// instance's key it serves the first replica's attachments.
func TestReplicaWithoutTheMasterKeyRefuses(t *testing.T) {
	pg := sqldbtest.Config(t, sqldb.Postgres)
	env := "CASEVAULT_DATABASE_URL=" + pg.URL
	s3 := sharedS3(t)
	d1 := t.TempDir()
	p1, tok := startAdmin(t, d1, append([]string{env}, s3...)...)
	s := seed(t, p1.api(), tok, "Keyed on the first replica", 4<<10)

	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"no master key", []string{env}},
		{"another master key", []string{env, "CASEVAULT_MASTER_KEY=" + otherMasterKey}},
	} {
		t.Run(tc.name, func(t *testing.T) { serveRefused(t, t.TempDir(), tc.env...) })
	}

	t.Run("the CLI refuses too", func(t *testing.T) {
		dir := t.TempDir()
		_, errOut, code := cv(t, []string{env}, "attachments", "reconcile", "--data-dir", dir)
		if code != exitMasterKey {
			t.Fatalf("attachments reconcile without the master key: exit %d\n%s", code, errOut)
		}
		_, errOut, code = cv(t, []string{env, "CASEVAULT_MASTER_KEY=" + otherMasterKey}, "backup", "run", "--data-dir", dir)
		if code != exitMasterKey {
			t.Fatalf("backup run with another master key: exit %d\n%s", code, errOut)
		}
	})

	t.Run("the instance's key", func(t *testing.T) {
		p2 := start(t, t.TempDir(), append([]string{env, instanceKey(t, d1)}, s3...)...)
		if code, body := download(t, p2.api()+"/attachments/"+s.attachment, tok); code != 200 || !bytes.Equal(body, s.content) {
			t.Fatalf("attachment through the second replica: %d", code)
		}
	})
}

// A restored data directory started without the instance's master.key
// refuses (issue 17 §1, issue 20 §14): before, it generated a new key,
// answered ready, and every attachment answered 500.
func TestRestoredDirectoryWithoutTheMasterKeyRefuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p, tok := startAdmin(t, dir)
	s := seed(t, p.api(), tok, "Restored without its key", 4<<10)
	stop(t, p)
	id := result(t, cvOK(t, nil, "backup", "run", "--json", "--data-dir", dir))["id"].(string)
	target := filepath.Join(t.TempDir(), "restored")
	cvOK(t, nil, "backup", "restore", id, "--to", target, "--json", "--data-dir", dir)

	serveRefused(t, target)
	serveRefused(t, target, "CASEVAULT_MASTER_KEY="+otherMasterKey)

	base := startRestored(t, dir, target)
	if code, body := download(t, base+"/attachments/"+s.attachment, tok); code != 200 || !bytes.Equal(body, s.content) {
		t.Fatalf("attachment after a restore with the instance's key: %d", code)
	}
}
