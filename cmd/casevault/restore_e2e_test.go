package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// Single-case restore into a running instance: contacts lost from the
// database come back (audited) with their attachment; a case deleted
// through the API is refused (13), and so is overwriting a held case.
func TestBackupRestoreCaseCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p, tok := startAdmin(t, dir)
	base := p.api()
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
	p, tok := startAdmin(t, dir)
	seed(t, p.api(), tok, "Cross engine 中文", 5<<10)
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

// A PostgreSQL instance restored into a SQLite data directory, with a case
// deleted after the backup: the live database's tombstone is replayed, so
// the restored server has the surviving case and not the deleted one.
func TestBackupRestorePostgresToSQLiteReplaysTombstones(t *testing.T) {
	pg := sqldbtest.Config(t, sqldb.Postgres)
	env := []string{"CASEVAULT_DATABASE_URL=" + pg.URL}
	dir := filepath.Join(t.TempDir(), "data")
	p, tok := startAdmin(t, dir, env...)
	base := p.api()
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
