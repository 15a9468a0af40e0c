package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
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
	_, errOut, code := cv(t, env, "serve", "--data-dir", dir, "--listen", "127.0.0.1:0")
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

// startMany starts n `serve` processes on dirs at once (a cold start of
// every replica) and waits until each answers or exits.
func startMany(t *testing.T, n int, env ...string) ([]*proc, []string) {
	t.Helper()
	ps := make([]*proc, n)
	dirs := make([]string, n)
	for i := range ps {
		dirs[i] = t.TempDir()
		ps[i] = newProc(t, dirs[i], env)
	}
	for _, p := range ps {
		p.launch(t)
	}
	for _, p := range ps {
		p.awaitUp(t, 60*time.Second)
	}
	return ps, dirs
}

// Three replicas started at once on an empty PostgreSQL schema (issue 20
// §16): all come up (migrations raced before), one admin token between
// them, every cron tick run by one replica (the reconciler ran on all),
// a replica that finds the sweep lock taken says so at info (it logged
// ERROR every tick), and a backup into a local repository is refused
// while other replicas are live (§15: each replica's own disk and key).
func TestReplicasColdStartOwnJobsAndRefuseLocalBackups(t *testing.T) {
	pg := sqldbtest.Config(t, sqldb.Postgres)
	ps, dirs := startMany(t, 3, "CASEVAULT_DATABASE_URL="+pg.URL, "CASEVAULT_MASTER_KEY="+otherMasterKey,
		"CASEVAULT_RECONCILE_SCHEDULE=@every 1s", "CASEVAULT_RETENTION_SCHEDULE=@every 1s", "CASEVAULT_BACKUP_SCHEDULE=off")

	var tok string
	for _, d := range dirs {
		if b, err := os.ReadFile(filepath.Join(d, "admin.token")); err == nil {
			if tok != "" {
				t.Fatal("two replicas bootstrapped an admin token")
			}
			tok = strings.TrimSpace(string(b))
		}
	}
	if tok == "" {
		t.Fatal("no replica bootstrapped the admin token")
	}
	if code, toks := call(t, "GET", ps[2].api()+"/tokens", tok, nil); code != 200 || len(toks["items"].([]any)) != 1 {
		t.Fatalf("tokens after a cold start of three replicas: %d %v", code, toks)
	}

	t.Run("one reconcile per tick", func(t *testing.T) {
		var items []any
		testkit.Eventually(t, 30*time.Second, "four reconcile ticks", func() bool {
			code, ev := call(t, "GET", ps[0].api()+"/audit?action=attachments.reconcile&limit=100", tok, nil)
			items, _ = ev["items"].([]any)
			return code == 200 && len(items) >= 4
		})
		seen := map[string]bool{}
		for _, it := range items {
			tick, _ := it.(map[string]any)["detail"].(map[string]any)["tick"].(string)
			if tick == "" || seen[tick] {
				t.Fatalf("reconcile tick %q run twice (or unnamed): %v", tick, items)
			}
			seen[tick] = true
		}
	})

	t.Run("a lost sweep lock is logged at info", func(t *testing.T) {
		lock, err := sql.Open("pgx", pg.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Close()
		conn, err := lock.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// The sweeper's lock (retention/runs.go), as a long sweep holds it.
		if _, err := conn.ExecContext(context.Background(), `SELECT pg_advisory_lock(7345006, hashtext(current_schema()))`); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 30*time.Second, "a replica to find the sweep lock taken", func() bool {
			for _, p := range ps {
				if strings.Contains(p.stderr.String(), "another sweep is running") {
					return true
				}
			}
			return false
		})
		for i, p := range ps {
			for _, line := range strings.Split(p.stderr.String(), "\n") {
				// The one error expected: backups into each replica's own
				// disk are refused (the last subtest).
				if strings.Contains(line, `"level":"ERROR"`) && !strings.Contains(line, "backups refused on this replica") {
					t.Errorf("replica %d logged an error: %s", i, line)
				}
			}
		}
	})

	t.Run("local backup repositories refused", func(t *testing.T) {
		code, body := call(t, "POST", ps[1].api()+"/backups", tok, nil)
		if code != 409 || !strings.Contains(toJSON(body), "--backup-s3-endpoint") {
			t.Fatalf("backup into a local repository with three replicas live: %d %v", code, body)
		}
		res, err := http.Get("http://" + ps[1].addr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var ready map[string]any
		_ = json.NewDecoder(res.Body).Decode(&ready)
		backups, _ := ready["checks"].(map[string]any)["backups"].(map[string]any)
		if backups["status"] == "ok" || !strings.Contains(toJSON(backups), "own disk") {
			t.Fatalf("readiness does not report the unshared backups: %v", ready)
		}
	})
}

// `casevault healthcheck` (the image's and compose's health check, issue
// 20 §17) exits 0 against a ready server and 1 against none.
func TestHealthcheckCommand(t *testing.T) {
	p := start(t, t.TempDir())
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"the server's own --listen", []string{"healthcheck", "--listen", p.addr}, exitOK},
		{"the environment", []string{"healthcheck"}, exitOK},
		{"nothing listening", []string{"healthcheck", "--listen", freeAddr(t)}, exitError},
		{"bad --listen", []string{"healthcheck", "--listen", "nonsense"}, exitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cvCode(t, tc.want, []string{"CASEVAULT_LISTEN=" + p.addr}, tc.args...)
		})
	}
}

func TestReadyzURL(t *testing.T) {
	for _, tc := range []struct{ listen, want string }{
		{"0.0.0.0:8080", "http://127.0.0.1:8080/readyz"},
		{":8080", "http://127.0.0.1:8080/readyz"},
		{"[::]:8080", "http://[::1]:8080/readyz"},
		{"10.0.0.5:9000", "http://10.0.0.5:9000/readyz"},
		{"localhost:8080", "http://localhost:8080/readyz"},
	} {
		if got, err := readyzURL(tc.listen); err != nil || got != tc.want {
			t.Errorf("readyzURL(%q) = %q, %v; want %q", tc.listen, got, err, tc.want)
		}
	}
}
