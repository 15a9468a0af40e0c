package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/testkit"
)

// cv runs the binary and returns stdout, stderr and the exit code.
func cv(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%v: %v", args, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// cvOK runs the binary and fails the test unless it exits 0.
func cvOK(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, errOut, code := cv(t, env, args...)
	if code != 0 {
		t.Fatalf("casevault %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// cvCode runs the binary and fails the test unless it exits with want.
func cvCode(t *testing.T, want int, env []string, args ...string) string {
	t.Helper()
	out, errOut, code := cv(t, env, args...)
	if code != want {
		t.Fatalf("casevault %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
	}
	return out
}

// result decodes the final JSON object of a --json run and checks that
// every line before it is a progress event.
func result(t *testing.T, out string) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines[:len(lines)-1] {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev["type"] != "progress" {
			t.Fatalf("not a progress line: %q (%v)", l, err)
		}
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil || m["type"] != "result" {
		t.Fatalf("last line is not a result: %q (%v)", lines[len(lines)-1], err)
	}
	return m
}

// newCase creates a customer and a case about subject on channel through
// the API and returns their IDs.
func newCase(t *testing.T, base, tok, subject, channel string) (customerID, caseID string) {
	t.Helper()
	code, cust := call(t, "POST", base+"/customers", tok, map[string]any{"name": "Customer " + subject})
	if code != 201 {
		t.Fatalf("customer: %d %v", code, cust)
	}
	code, cs := call(t, "POST", base+"/cases", tok, map[string]any{"customer_id": cust["id"], "subject": subject, "channel": channel})
	if code != 201 {
		t.Fatalf("case: %d %v", code, cs)
	}
	return cust["id"].(string), cs["id"].(string)
}

// addContact adds an inbound contact saying body to caseID and returns its ID.
func addContact(t *testing.T, base, tok, caseID, channel, body string) string {
	t.Helper()
	code, ct := call(t, "POST", base+"/cases/"+caseID+"/contacts", tok, map[string]any{"channel": channel, "direction": "inbound", "author": "a", "body": body})
	if code != 201 {
		t.Fatalf("contact: %d %v", code, ct)
	}
	return ct["id"].(string)
}

// newContact creates a customer and a case with one inbound contact saying
// body through the API and returns the case and contact IDs.
func newContact(t *testing.T, base, tok, body string) (caseID, contactID string) {
	t.Helper()
	_, caseID = newCase(t, base, tok, body, "web")
	return caseID, addContact(t, base, tok, caseID, "web", body)
}

type seeded struct {
	customer, caseID, contact, attachment string
	content                               []byte
}

// seed creates a customer, a case with two contacts and an attachment of
// size bytes through the API.
func seed(t *testing.T, base, tok, subject string, size int) seeded {
	t.Helper()
	s := seeded{content: blobtest.RandBytes(size)}
	s.customer, s.caseID = newCase(t, base, tok, subject, "email")
	for i := 0; i < 2; i++ {
		s.contact = addContact(t, base, tok, s.caseID, "email", fmt.Sprintf("%s message %d about a parcel", subject, i))
	}
	res, body := upload(t, base+"/contacts/"+s.contact+"/attachments?filename=f.bin", tok, s.content)
	if res.StatusCode != 201 {
		t.Fatalf("upload: %d %s", res.StatusCode, body)
	}
	var att map[string]any
	_ = json.Unmarshal(body, &att)
	s.attachment = att["id"].(string)
	return s
}

func download(t *testing.T, url, tok string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// waitSearch waits until a search for q finds caseID.
func waitSearch(t *testing.T, base, tok, q, caseID string) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, fmt.Sprintf("search %q to find case %s", q, caseID), func() bool {
		code, res := call(t, "GET", base+"/search?q="+q, tok, nil)
		return code == 200 && strings.Contains(toJSON(res), caseID)
	})
}

// waitRun polls the run at url (a backup or retention run) until it is no
// longer running and returns its last state.
func waitRun(t *testing.T, url, tok string) map[string]any {
	t.Helper()
	var got map[string]any
	testkit.Eventually(t, 30*time.Second, "run "+url+" to finish", func() bool {
		var code int
		code, got = call(t, "GET", url, tok, nil)
		return code == 200 && got["status"] != "running"
	})
	return got
}

func stop(t *testing.T, p *proc) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.wait()
}

func openSQLite(t *testing.T, path string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(context.Background(), sqldb.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// startRestored serves a restored data dir with the source's master key
// (copied, as the disaster-recovery steps say) and returns its API base URL.
func startRestored(t *testing.T, dir, target string) string {
	t.Helper()
	mk, err := os.ReadFile(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "master.key"), mk, 0o600); err != nil {
		t.Fatal(err)
	}
	return start(t, target).api()
}
