package main

import (
	"bufio"
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

	"filippo.io/age"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
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

func adminToken(t *testing.T, dir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}

type seeded struct {
	customer, caseID, contact, attachment string
	content                               []byte
}

// seed creates a customer, a case with two contacts and an attachment of
// size bytes through the API.
func seed(t *testing.T, base, tok, subject string, size int) seeded {
	t.Helper()
	code, cust := call(t, "POST", base+"/customers", tok, map[string]any{"name": "Customer " + subject})
	if code != 201 {
		t.Fatalf("customer: %d %v", code, cust)
	}
	code, cs := call(t, "POST", base+"/cases", tok, map[string]any{"customer_id": cust["id"], "subject": subject, "channel": "email"})
	if code != 201 {
		t.Fatalf("case: %d %v", code, cs)
	}
	s := seeded{customer: cust["id"].(string), caseID: cs["id"].(string), content: blobtest.RandBytes(size)}
	for i := 0; i < 2; i++ {
		code, ct := call(t, "POST", base+"/cases/"+s.caseID+"/contacts", tok, map[string]any{"channel": "email", "direction": "inbound",
			"author": "a", "body": fmt.Sprintf("%s message %d about a parcel", subject, i)})
		if code != 201 {
			t.Fatalf("contact: %d %v", code, ct)
		}
		s.contact = ct["id"].(string)
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
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		code, res := call(t, "GET", base+"/search?q="+q, tok, nil)
		if code == 200 && strings.Contains(toJSON(res), caseID) {
			return
		}
	}
	t.Fatalf("search %q never found case %s", q, caseID)
}

func stop(t *testing.T, p *proc) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	p.done <- nil // for the cleanup
}

// The whole cycle on SQLite with a local repository: backup run while the
// server runs, list --json, verify (structure and every byte), restore into
// a new data directory whose server finds the cases through the API and
// search with every table digest matching, a non-empty target refused (13),
// a flipped byte caught by verify --read-data (4), and the cheap exit codes
// 10 (no such backup, no repository), 11 (locked) and 12 (wrong key).
func TestBackupRunListVerifyRestoreCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p := start(t, dir)
	tok := adminToken(t, dir)
	base := "http://" + p.addr + "/api/v1"
	s := seed(t, base, tok, "Backupable", 40<<10)

	out := cvOK(t, nil, "backup", "run", "--json", "--data-dir", dir)
	res := result(t, out)
	id := res["id"].(string)
	if res["blobs"].(float64) != 1 || res["missing"].(float64) != 0 {
		t.Fatalf("backup result: %v", res)
	}
	if _, err := os.Stat(filepath.Join(dir, "backup.key")); err != nil {
		t.Fatalf("the first backup should have generated the backup key: %v", err)
	}
	list := result(t, cvOK(t, nil, "backup", "list", "--json", "--data-dir", dir))
	if bs := list["backups"].([]any); len(bs) != 1 || bs[0].(map[string]any)["id"] != id {
		t.Fatalf("list: %v", list)
	}
	human := cvOK(t, nil, "backup", "list", "--data-dir", dir)
	if !strings.Contains(human, id) || !strings.Contains(human, "1 backups") {
		t.Fatalf("human list: %s", human)
	}
	cvOK(t, nil, "backup", "verify", id, "--data-dir", dir)
	v := result(t, cvOK(t, nil, "backup", "verify", id, "--read-data", "--json", "--data-dir", dir))
	if v["ok"] != true || v["decrypted"] != true {
		t.Fatalf("verify --read-data: %v", v)
	}
	// The run is on the audit trail.
	if audit := cvOK(t, nil, "audit", "export", "--action", "backup.*", "--data-dir", dir); !strings.Contains(audit, `"backup.run"`) {
		t.Fatalf("backup.run not audited: %s", audit)
	}

	// Exit codes.
	cvCode(t, exitNoRepo, nil, "backup", "verify", "20990101T000000Z-abcdef", "--data-dir", dir)
	cvCode(t, exitNoRepo, nil, "backup", "list", "--data-dir", dir, "--backup-dir", filepath.Join(t.TempDir(), "empty"))
	cvCode(t, exitUsage, nil, "backup", "restore", id, "--data-dir", dir)
	other, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := filepath.Join(t.TempDir(), "other.key")
	if err := os.WriteFile(wrongKey, []byte(other.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cvCode(t, exitKey, nil, "backup", "restore", id, "--to", filepath.Join(t.TempDir(), "r"), "--data-dir", dir, "--backup-identity-file", wrongKey)
	// A configured identity file that is not there is a key problem too, not a plain error.
	missingKey := filepath.Join(t.TempDir(), "missing.key")
	cvCode(t, exitKey, nil, "backup", "restore", id, "--to", filepath.Join(t.TempDir(), "r2"), "--data-dir", dir, "--backup-identity-file", missingKey)
	cvCode(t, exitKey, nil, "backup", "verify", id, "--read-data", "--data-dir", dir, "--backup-identity-file", missingKey)
	db, err := sqldb.Open(context.Background(), sqldb.Config{Path: filepath.Join(dir, "casevault.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Write.Exec(`UPDATE backup_lease SET holder = 'another-replica', expires_at = ? WHERE id = 1`, time.Now().Add(time.Hour).UnixMicro()); err != nil {
		t.Fatal(err)
	}
	cvCode(t, exitLocked, nil, "backup", "run", "--data-dir", dir)
	if _, err := db.Write.Exec(`UPDATE backup_lease SET holder = NULL, expires_at = 0 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}

	// Restore into a new data directory and serve it.
	target := filepath.Join(t.TempDir(), "restored")
	rr := result(t, cvOK(t, nil, "backup", "restore", id, "--to", target, "--json", "--data-dir", dir))
	tables := rr["tables"].([]any)
	if len(tables) == 0 {
		t.Fatalf("restore report without tables: %v", rr)
	}
	for _, tb := range tables {
		if tb.(map[string]any)["match"] != true {
			t.Fatalf("table digest mismatch: %v", tb)
		}
	}
	if rr["blobs_restored"].(float64) != 1 || rr["indexed_cases"].(float64) != 1 {
		t.Fatalf("restore report: %v", rr)
	}
	src, err := backup.TableDigests(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	dst := openSQLite(t, filepath.Join(target, "casevault.db"))
	got, err := backup.TableDigests(context.Background(), dst)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range []string{"customers", "cases", "contacts", "attachments", "tokens", "customer_keys", "legal_holds"} {
		if src[tb] != got[tb] {
			t.Errorf("table %s differs after the restore: %s vs %s", tb, src[tb], got[tb])
		}
	}
	cvCode(t, exitRefused, nil, "backup", "restore", id, "--to", target, "--data-dir", dir)

	stop(t, p)
	base2 := startRestored(t, dir, target)
	code, cs := call(t, "GET", base2+"/cases/"+s.caseID, tok, nil) // the restored tokens work
	if code != 200 || len(cs["contacts"].([]any)) != 2 {
		t.Fatalf("restored case: %d %v", code, cs)
	}
	if code, body := download(t, base2+"/attachments/"+s.attachment, tok); code != 200 || !bytes.Equal(body, s.content) {
		t.Fatalf("restored attachment: %d, %d bytes (want %d)", code, len(body), len(s.content))
	}
	waitSearch(t, base2, tok, "parcel", s.caseID)

	// One flipped byte in an attachment copy: the structure still checks
	// out, reading every byte does not.
	var obj string
	_ = filepath.WalkDir(filepath.Join(dir, "backups", "data"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			obj = p
		}
		return nil
	})
	b, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x80
	if err := os.WriteFile(obj, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cvOK(t, nil, "backup", "verify", id, "--data-dir", dir)
	out = cvCode(t, exitDamaged, nil, "backup", "verify", id, "--read-data", "--data-dir", dir)
	if !strings.Contains(out, "PROBLEM") || !strings.Contains(out, filepath.Base(obj)[:8]) {
		t.Fatalf("verify output does not name the damaged object: %s", out)
	}
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

// A backup killed with SIGKILL in the middle of copying attachments leaves
// no listed backup; once its lease has expired the next backup works and
// verifies.
func TestBackupKilledMidwayIsNotListed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p := start(t, dir)
	tok := adminToken(t, dir)
	base := "http://" + p.addr + "/api/v1"
	s := seed(t, base, tok, "Slow", 1<<20)
	for i := 0; i < 23; i++ {
		res, body := upload(t, base+"/contacts/"+s.contact+"/attachments?filename=more.bin", tok, blobtest.RandBytes(1<<20))
		if res.StatusCode != 201 {
			t.Fatalf("upload: %d %s", res.StatusCode, body)
		}
	}
	stop(t, p)

	// interrupt starts a backup and sends sig once it copies attachments;
	// it returns the exit code and the last line printed.
	interrupt := func(sig syscall.Signal) (int, string) {
		cmd := exec.Command(binary(t), "backup", "run", "--json", "--data-dir", dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		sent := false
		last := ""
		for sc.Scan() {
			last = sc.Text()
			if !sent && strings.Contains(last, `"phase":"attachments"`) {
				_ = cmd.Process.Signal(sig)
				sent = true
			}
		}
		_ = cmd.Wait()
		if !sent {
			t.Fatal("the backup never reported attachment progress")
		}
		return cmd.ProcessState.ExitCode(), last
	}
	// snapshots lists the snapshot directories in the repository.
	snapshots := func() []string {
		var ids []string
		snaps, _ := os.ReadDir(filepath.Join(dir, "backups", "snapshots"))
		for _, s := range snaps {
			ids = append(ids, s.Name())
		}
		return ids
	}
	unfinished := func() []string {
		ids := snapshots()
		for _, id := range ids {
			if _, err := os.Stat(filepath.Join(dir, "backups", "snapshots", id, "manifest.json")); err == nil {
				t.Fatalf("backup %s finished before the signal; make it slower", id)
			}
		}
		return ids
	}

	// SIGINT: the run stops, says so, exits 130 and gives the lease back.
	code, last := interrupt(syscall.SIGINT)
	if code != exitInterrupt || !strings.Contains(last, `"exit_code":130`) {
		t.Fatalf("SIGINT: exit %d, last line %s", code, last)
	}
	if len(unfinished()) != 1 {
		t.Fatal("want the interrupted run's snapshot directory")
	}

	// SIGKILL: nothing can be cleaned up.
	interrupt(syscall.SIGKILL)
	ids := unfinished()
	if len(ids) != 2 {
		t.Fatalf("want two unfinished snapshot directories, got %v", ids)
	}
	for _, id := range ids {
		cvCode(t, exitNoRepo, nil, "backup", "verify", id, "--data-dir", dir)
	}
	list := result(t, cvOK(t, nil, "backup", "list", "--json", "--data-dir", dir))
	if n := len(list["backups"].([]any)); n != 0 {
		t.Fatalf("an interrupted backup is listed: %v", list)
	}
	// The dead run's lease blocks others until it expires (2 minutes);
	// let it expire now.
	cvCode(t, exitLocked, nil, "backup", "run", "--data-dir", dir)
	db := openSQLite(t, filepath.Join(dir, "casevault.db"))
	if _, err := db.Write.Exec(`UPDATE backup_lease SET expires_at = 1 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	// The killed run's row still says "running"; the next server start-up
	// marks it interrupted (the SIGINT one already is).
	runStatuses := func() map[string]int {
		rows, err := db.Read.Query(`SELECT status FROM backup_runs WHERE kind = 'backup'`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]int{}
		for rows.Next() {
			var st string
			_ = rows.Scan(&st)
			out[st]++
		}
		return out
	}
	if st := runStatuses(); st["running"] != 1 || st["interrupted"] != 1 {
		t.Fatalf("runs after SIGINT and SIGKILL: %v, want one running (killed) and one interrupted", st)
	}
	p = start(t, dir)
	for deadline := time.Now().Add(10 * time.Second); runStatuses()["interrupted"] != 2; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("runs after the server started: %v, want both interrupted", runStatuses())
		}
	}
	code, lst := call(t, "GET", "http://"+p.addr+"/api/v1/backups", tok, nil)
	if code != 200 || strings.Contains(toJSON(lst["runs"]), `"running"`) {
		t.Fatalf("GET /backups after start-up: %d %v", code, lst)
	}
	stop(t, p)
	res := result(t, cvOK(t, nil, "backup", "run", "--json", "--data-dir", dir))
	if res["blobs"].(float64) != 24 {
		t.Fatalf("second backup: %v", res)
	}
	cvOK(t, nil, "backup", "verify", res["id"].(string), "--read-data", "--data-dir", dir)
	list = result(t, cvOK(t, nil, "backup", "list", "--json", "--data-dir", dir))
	if bs := list["backups"].([]any); len(bs) != 1 || bs[0].(map[string]any)["id"] != res["id"] {
		t.Fatalf("list after the second backup: %v", list)
	}

	// forget: a dry run changes nothing; the real one keeps the backup and
	// clears what the interrupted runs left behind (audited).
	cvCode(t, exitUsage, nil, "backup", "forget", "--keep-daily", "0", "--keep-weekly", "0", "--keep-monthly", "0", "--data-dir", dir)
	fr := result(t, cvOK(t, nil, "backup", "forget", "--keep-daily", "1", "--dry-run", "--json", "--data-dir", dir))
	if fr["dry_run"] != true || len(fr["removed"].([]any)) != 0 || len(snapshots()) != 3 {
		t.Fatalf("forget --dry-run: %v", fr)
	}
	fr = result(t, cvOK(t, nil, "backup", "forget", "--keep-daily", "1", "--json", "--data-dir", dir))
	if len(fr["removed"].([]any)) != 0 || fr["leftovers_removed"].(float64) == 0 {
		t.Fatalf("forget: %v", fr)
	}
	if left := snapshots(); len(left) != 1 || left[0] != res["id"] {
		t.Fatalf("after forget the snapshots are %v, want only %s", left, res["id"])
	}
	cvOK(t, nil, "backup", "verify", res["id"].(string), "--read-data", "--data-dir", dir)
	if audit := cvOK(t, nil, "audit", "export", "--action", "backup.forget", "--data-dir", dir); !strings.Contains(audit, `"backup.forget"`) {
		t.Fatalf("forget not audited: %s", audit)
	}
}

// Single-case restore into a running instance: contacts lost from the
// database come back (audited) with their attachment; a case deleted
// through the API is refused (13), and so is overwriting a held case.
func TestBackupRestoreCaseCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p := start(t, dir)
	tok := adminToken(t, dir)
	base := "http://" + p.addr + "/api/v1"
	lost := seed(t, base, tok, "Lost contacts", 10<<10)
	gone := seed(t, base, tok, "Deleted case", 10<<10)
	id := result(t, cvOK(t, nil, "backup", "run", "--json", "--data-dir", dir))["id"].(string)

	db := openSQLite(t, filepath.Join(dir, "casevault.db"))
	for _, q := range []string{`DELETE FROM attachments WHERE case_id = ?`, `DELETE FROM contacts WHERE case_id = ?`} {
		if _, err := db.Write.Exec(q, lost.caseID); err != nil {
			t.Fatal(err)
		}
	}
	if code, cs := call(t, "GET", base+"/cases/"+lost.caseID, tok, nil); code != 200 || len(cs["contacts"].([]any)) != 0 {
		t.Fatalf("contacts should be lost: %d %v", code, cs)
	}
	rr := result(t, cvOK(t, nil, "backup", "restore", id, "--case", lost.caseID, "--json", "--data-dir", dir))
	if rr["contacts_restored"].(float64) != 2 || rr["attachments_restored"].(float64) != 1 || rr["case_restored"] != false {
		t.Fatalf("restore --case report: %v", rr)
	}
	code, cs := call(t, "GET", base+"/cases/"+lost.caseID, tok, nil)
	if code != 200 || len(cs["contacts"].([]any)) != 2 {
		t.Fatalf("contacts not back: %d %v", code, cs)
	}
	if code, body := download(t, base+"/attachments/"+lost.attachment, tok); code != 200 || !bytes.Equal(body, lost.content) {
		t.Fatalf("attachment after restore --case: %d, %d bytes", code, len(body))
	}
	if code, ev := call(t, "GET", base+"/audit?action=backup.restore_case", tok, nil); code != 200 || len(ev["items"].([]any)) != 1 {
		t.Fatalf("restore --case not audited: %d %v", code, ev)
	}

	if code, _ := call(t, "DELETE", base+"/cases/"+gone.caseID, tok, nil); code != 204 {
		t.Fatalf("delete case: %d", code)
	}
	out := cvCode(t, exitRefused, []string{}, "backup", "restore", id, "--case", gone.caseID, "--json", "--data-dir", dir)
	if !strings.Contains(out, `"exit_code":13`) {
		t.Fatalf("--json error object: %s", out)
	}
	if code, _ := call(t, "GET", base+"/cases/"+gone.caseID, tok, nil); code != 404 {
		t.Fatalf("a deleted case came back: %d", code)
	}

	code, hold := call(t, "POST", base+"/holds", tok, map[string]any{"matter": "m", "reason": "r", "scope": map[string]any{"case_ids": []string{lost.caseID}}})
	if code != 201 {
		t.Fatalf("hold: %d %v", code, hold)
	}
	_, errOut, code2 := cv(t, nil, "backup", "restore", id, "--case", lost.caseID, "--overwrite", "--data-dir", dir)
	if code2 != exitRefused || !strings.Contains(errOut, hold["id"].(string)) {
		t.Fatalf("overwrite of a held case: exit %d, %s", code2, errOut)
	}
	cvCode(t, exitNoRepo, nil, "backup", "restore", id, "--case", "no-such-case", "--data-dir", dir)
}

// A SQLite instance restored into PostgreSQL (a fresh schema): every
// content table's digest is the same on the other engine.
func TestBackupRestoreSQLiteToPostgres(t *testing.T) {
	pg := sqldbtest.Config(t, sqldb.Postgres)
	dir := filepath.Join(t.TempDir(), "data")
	p := start(t, dir)
	tok := adminToken(t, dir)
	seed(t, "http://"+p.addr+"/api/v1", tok, "Cross engine 中文", 5<<10)
	stop(t, p)
	id := result(t, cvOK(t, nil, "backup", "run", "--json", "--data-dir", dir))["id"].(string)
	rr := result(t, cvOK(t, nil, "backup", "restore", id, "--to", pg.URL, "--json", "--data-dir", dir))
	for _, tb := range rr["tables"].([]any) {
		if tb.(map[string]any)["match"] != true {
			t.Fatalf("digest mismatch on PostgreSQL: %v", tb)
		}
	}
	if rr["blobs_already_present"].(float64) != 1 {
		t.Fatalf("the configured attachment store already holds the blob: %v", rr)
	}
	src := openSQLite(t, filepath.Join(dir, "casevault.db"))
	dst, err := sqldb.Open(context.Background(), pg)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	a, err := backup.TableDigests(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	b, err := backup.TableDigests(context.Background(), dst)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range []string{"customers", "cases", "contacts", "attachments", "tokens", "customer_keys"} {
		if a[tb] != b[tb] {
			t.Errorf("%s differs between SQLite and PostgreSQL after the restore", tb)
		}
	}
	cvCode(t, exitRefused, nil, "backup", "restore", id, "--to", pg.URL, "--data-dir", dir)
}

// Backups to an S3 bucket on another endpoint (versitygw) than the
// attachments (local here), through the API of a running server: 202,
// listed, verified with every byte; the CLI restores from it. A backup
// target that cannot be reached answers 503.
func TestBackupToS3ThroughTheAPI(t *testing.T) {
	s3 := blobtest.StartVersityGW(t)
	env := []string{"CASEVAULT_BACKUP_S3_ENDPOINT=" + s3.Endpoint, "CASEVAULT_BACKUP_S3_BUCKET=cv-backups",
		"CASEVAULT_BACKUP_S3_ACCESS_KEY=" + s3.AccessKey, "CASEVAULT_BACKUP_S3_SECRET_KEY=" + s3.SecretKey,
		"CASEVAULT_BACKUP_S3_TLS=false", "CASEVAULT_BACKUP_S3_PREFIX=prod/", "CASEVAULT_BACKUP_SCHEDULE=off"}
	dir := filepath.Join(t.TempDir(), "data")
	p := start(t, dir, env...)
	tok := adminToken(t, dir)
	base := "http://" + p.addr + "/api/v1"
	seed(t, base, tok, "On S3", 20<<10)
	out, _ := runCLI(t, "token", "create", "--data-dir", dir, "--name", "ops", "--role", "backup")
	btok := strings.TrimSpace(out)
	code, agent := call(t, "POST", base+"/tokens", tok, map[string]any{"name": "ag", "role": "agent"})
	if code != 201 {
		t.Fatal(code)
	}
	if code, _ := call(t, "POST", base+"/backups", agent["token"].(string), nil); code != 403 {
		t.Fatalf("agent starting a backup: %d", code)
	}
	code, started := call(t, "POST", base+"/backups", btok, nil)
	if code != 202 {
		t.Fatalf("POST /backups: %d %v", code, started)
	}
	id := started["id"].(string)
	var got map[string]any
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, got = call(t, "GET", base+"/backups/"+id, btok, nil)
		if code == 200 && got["status"] != "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backup never finished: %d %v", code, got)
		}
	}
	if got["status"] != "complete" {
		t.Fatalf("backup: %v", got)
	}
	code, v := call(t, "POST", base+"/backups/"+id+"/verify?read_data=true", btok, nil)
	if code != 200 || v["ok"] != true || v["decrypted"] != true {
		t.Fatalf("verify: %d %v", code, v)
	}
	// The repository is under the prefix in the backup bucket.
	if _, err := os.Stat(filepath.Join(s3.Root, "cv-backups", "prod", "snapshots", id, "manifest.json")); err != nil {
		t.Fatalf("manifest not under the prefix in the bucket: %v", err)
	}
	stop(t, p)
	list := result(t, cvOK(t, env, "backup", "list", "--json", "--data-dir", dir))
	if len(list["backups"].([]any)) != 1 {
		t.Fatalf("CLI list from S3: %v", list)
	}
	target := filepath.Join(t.TempDir(), "r")
	rr := result(t, cvOK(t, env, "backup", "restore", id, "--to", target, "--json", "--data-dir", dir))
	if rr["blobs_restored"].(float64) != 1 {
		t.Fatalf("restore from S3: %v", rr)
	}

	// A backup endpoint nobody answers on: the server starts, and a
	// backup request is 503 with Retry-After.
	dead := []string{"CASEVAULT_BACKUP_S3_ENDPOINT=" + freeAddr(t), "CASEVAULT_BACKUP_S3_TLS=false", "CASEVAULT_BACKUP_SCHEDULE=off"}
	p3 := start(t, dir, dead...)
	req, _ := http.NewRequest("POST", "http://"+p3.addr+"/api/v1/backups", nil)
	req.Header.Set("Authorization", "Bearer "+btok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
		t.Fatalf("backup to an unreachable target: %d (Retry-After %q)", res.StatusCode, res.Header.Get("Retry-After"))
	}
}

// A PostgreSQL instance restored into a SQLite data directory, with a case
// deleted after the backup: the live database's tombstone is replayed, so
// the restored server has the surviving case and not the deleted one.
func TestBackupRestorePostgresToSQLiteReplaysTombstones(t *testing.T) {
	pg := sqldbtest.Config(t, sqldb.Postgres)
	env := []string{"CASEVAULT_DATABASE_URL=" + pg.URL}
	dir := filepath.Join(t.TempDir(), "data")
	p := start(t, dir, env...)
	tok := adminToken(t, dir)
	base := "http://" + p.addr + "/api/v1"
	keep := seed(t, base, tok, "Survivor", 4<<10)
	gone := seed(t, base, tok, "Erased later", 4<<10)
	id := result(t, cvOK(t, env, "backup", "run", "--json", "--data-dir", dir))["id"].(string)
	if code, _ := call(t, "DELETE", base+"/cases/"+gone.caseID, tok, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	stop(t, p)

	target := filepath.Join(t.TempDir(), "restored")
	rr := result(t, cvOK(t, env, "backup", "restore", id, "--to", target, "--json", "--data-dir", dir))
	for _, tb := range rr["tables"].([]any) {
		if tb.(map[string]any)["match"] != true {
			t.Fatalf("digest mismatch on SQLite: %v", tb)
		}
	}
	ts := rr["tombstones"].(map[string]any)
	if ts["cases_deleted"].(float64) != 1 || ts["blobs_removed"].(float64) != 1 || rr["live_databases"].(float64) != 1 {
		t.Fatalf("tombstones not replayed from the live PostgreSQL database: %v", rr)
	}
	if _, err := os.Stat(filepath.Join(target, "casevault.db")); err != nil {
		t.Fatal(err)
	}
	base2 := startRestored(t, dir, target)
	if code, cs := call(t, "GET", base2+"/cases/"+keep.caseID, tok, nil); code != 200 || len(cs["contacts"].([]any)) != 2 {
		t.Fatalf("surviving case: %d %v", code, cs)
	}
	if code, body := download(t, base2+"/attachments/"+keep.attachment, tok); code != 200 || !bytes.Equal(body, keep.content) {
		t.Fatalf("surviving attachment: %d", code)
	}
	if code, _ := call(t, "GET", base2+"/cases/"+gone.caseID, tok, nil); code != 404 {
		t.Fatalf("a case deleted after the backup came back: %d", code)
	}
	if code, _ := call(t, "GET", base2+"/attachments/"+gone.attachment+"/meta", tok, nil); code != 404 {
		t.Fatalf("an attachment deleted after the backup came back: %d", code)
	}
	waitSearch(t, base2, tok, "Survivor", keep.caseID)
	code, res := call(t, "GET", base2+"/search?q=Erased", tok, nil)
	if code != 200 || strings.Contains(toJSON(res), gone.caseID) {
		t.Fatalf("the deleted case is searchable after the restore: %d %v", code, res)
	}
}

// The server's cron runs backups and forget on their schedules (here every
// second), records them as scheduled runs, and the forget keeps only what
// the keep rules allow; a malformed schedule is a usage error at start.
func TestScheduledBackupAndForget(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir, "CASEVAULT_BACKUP_SCHEDULE=@every 1s", "CASEVAULT_BACKUP_FORGET_SCHEDULE=@every 3s",
		"CASEVAULT_BACKUP_KEEP_DAILY=1", "CASEVAULT_BACKUP_KEEP_WEEKLY=0", "CASEVAULT_BACKUP_KEEP_MONTHLY=0")
	tok := adminToken(t, dir)
	base := "http://" + p.addr + "/api/v1"
	var sawScheduled, sawForget bool
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !(sawScheduled && sawForget); time.Sleep(250 * time.Millisecond) {
		code, list := call(t, "GET", base+"/backups", tok, nil)
		if code != 200 {
			t.Fatalf("list: %d %v", code, list)
		}
		runs, _ := list["runs"].([]any)
		for _, r := range runs {
			run := r.(map[string]any)
			if run["origin"] == "schedule" && run["status"] == "done" {
				if run["kind"] == "backup" {
					sawScheduled = true
				}
				if run["kind"] == "forget" {
					sawForget = true
				}
			}
		}
	}
	if !sawScheduled || !sawForget {
		t.Fatalf("after 30 s: scheduled backup %v, scheduled forget %v\n%s", sawScheduled, sawForget, p.stderr)
	}
	// keep-daily 1: after a forget at most the one backup of today (plus
	// any made since) is left, never the whole series.
	code, list := call(t, "GET", base+"/backups", tok, nil)
	if code != 200 {
		t.Fatal(code)
	}
	if items, _ := list["items"].([]any); len(items) == 0 || len(items) > 4 {
		t.Fatalf("%d backups listed after scheduled forgets with keep-daily 1", len(items))
	}

	bad := exec.Command(binary(t), "serve", "--data-dir", t.TempDir(), "--listen", freeAddr(t))
	bad.Env = append(os.Environ(), "CASEVAULT_BACKUP_SCHEDULE=not a schedule")
	out, _ := bad.CombinedOutput()
	if code := bad.ProcessState.ExitCode(); code != exitUsage || !strings.Contains(string(out), "backup-schedule") {
		t.Fatalf("malformed schedule: exit %d, %s", code, out)
	}
}

// The backups' own retention is the retention schedule's "backups" rule:
// edited through the schedule API, it is what forget applies by default.
func TestForgetFollowsScheduleBackupRule(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir, "CASEVAULT_BACKUP_SCHEDULE=off", "CASEVAULT_BACKUP_FORGET_SCHEDULE=off")
	tok := adminToken(t, dir)
	base := "http://" + p.addr + "/api/v1"
	code, sched := call(t, "GET", base+"/retention/schedule", tok, nil)
	if code != 200 {
		t.Fatalf("get schedule: %d", code)
	}
	if b, _ := sched["backups"].(map[string]any); b == nil || b["keep"] != "400d" {
		t.Fatalf("default schedule backups rule: %v, want keep 400d", sched["backups"])
	}
	env := []string{"CASEVAULT_DATA_DIR=" + dir}
	cvOK(t, env, "backup", "run")
	cvOK(t, env, "backup", "run")
	// 400 days: both kept by keep-daily 7 and young enough.
	out := result(t, cvOK(t, env, "backup", "forget", "--keep-daily", "7", "--json"))
	if removed, _ := out["removed"].([]any); len(removed) != 1 { // keep-daily keeps one per day
		t.Fatalf("forget under the default rule removed %v, want the older of today's two", out["removed"])
	}
	sched["backups"] = map[string]any{"keep": "1s"}
	if code, body := call(t, "PUT", base+"/retention/schedule", tok, sched); code != 200 {
		t.Fatalf("put schedule: %d %v", code, body)
	}
	time.Sleep(1500 * time.Millisecond)
	out = result(t, cvOK(t, env, "backup", "forget", "--keep-daily", "7", "--json"))
	if removed, _ := out["removed"].([]any); len(removed) != 1 {
		t.Fatalf("forget with backups.keep 1s removed %v, want the last backup (older than 1 s)", out["removed"])
	}
	sched["backups"] = map[string]any{"keep": "0d"}
	if code, body := call(t, "PUT", base+"/retention/schedule", tok, sched); code != 422 || !strings.Contains(toJSON(body), "backups.keep") {
		t.Fatalf("put schedule with backups.keep 0d: %d %v, want 422 naming backups.keep", code, body)
	}
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
	return "http://" + start(t, target).addr + "/api/v1"
}
