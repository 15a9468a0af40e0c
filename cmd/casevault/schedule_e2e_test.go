package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// notificationKeep is the default schedule with the notification purpose
// kept for keep.
func notificationKeep(t *testing.T, keep string) retention.Schedule {
	t.Helper()
	sc := retention.DefaultSchedule()
	var err error
	if sc.Purposes[4].Keep, err = retention.ParseDuration(keep); err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestScheduleChangeOnOneReplicaGovernsAnother is issue 20 §1 with two
// serve processes on one PostgreSQL database: a PUT on A (notification
// 90d → 400d) governs B's sweep, B's stamping of new contacts and B's
// explain. Before the fix B kept the schedule it loaded at start-up and
// deleted the contact the new schedule keeps.
func TestScheduleChangeOnOneReplicaGovernsAnother(t *testing.T) {
	cfg := sqldbtest.Config(t, sqldb.Postgres)
	env := "CASEVAULT_DATABASE_URL=" + cfg.URL
	dirA := t.TempDir()
	a, tok := startAdmin(t, dirA, env)
	b := start(t, t.TempDir(), env, instanceKey(t, dirA)) // a replica shares the instance's master key

	_, caseID := newCase(t, b.api(), tok, "delivery notice", "email")
	occurred := time.Now().UTC().Add(-100 * 24 * time.Hour).Truncate(time.Second)
	code, old := call(t, "POST", b.api()+"/cases/"+caseID+"/contacts", tok, map[string]any{"channel": "email", "direction": "outbound", "author": "shop",
		"body": "your parcel ships today", "purposes": []string{"notification"}, "occurred_at": occurred.Format(time.RFC3339)})
	if code != 201 {
		t.Fatalf("old contact: %d %v", code, old)
	}

	if code, r := call(t, "PUT", a.api()+"/retention/schedule", tok, notificationKeep(t, "400d")); code != 200 || r["version"] != float64(2) {
		t.Fatalf("PUT on A: %d %v", code, r)
	}

	code, fresh := call(t, "POST", b.api()+"/cases/"+caseID+"/contacts", tok, map[string]any{"channel": "email", "direction": "outbound", "author": "shop",
		"body": "your parcel was delivered", "purposes": []string{"notification"}})
	if code != 201 {
		t.Fatalf("new contact: %d %v", code, fresh)
	}
	at, _ := time.Parse(time.RFC3339Nano, fresh["occurred_at"].(string))
	until, _ := time.Parse(time.RFC3339Nano, toString(fresh["retain_until"]))
	if want := at.Add(400 * 24 * time.Hour); !until.Equal(want) {
		t.Fatalf("B stamped retain_until %v, want %s (the 400d schedule stored through A)", fresh["retain_until"], want)
	}

	code, x := call(t, "GET", b.api()+"/contacts/"+old["id"].(string)+"/retention", tok, nil)
	if code != 200 || x["schedule_version"] != float64(2) {
		t.Fatalf("B explains with schedule v%v, want 2: %d %v", x["schedule_version"], code, x)
	}

	code, run := call(t, "POST", b.api()+"/retention/runs", tok, map[string]any{"dry_run": false})
	if code != 202 {
		t.Fatalf("sweep on B: %d %v", code, run)
	}
	rep := waitRun(t, b.api()+"/retention/runs/"+run["id"].(string), tok)
	if rep["status"] != retention.StatusSucceeded || rep["deleted"] != float64(0) {
		t.Fatalf("B's sweep: %v", rep)
	}
	if code, _ := call(t, "GET", a.api()+"/contacts/"+old["id"].(string), tok, nil); code != 200 {
		t.Fatalf("B's sweep deleted a contact the new schedule keeps (GET %d)", code)
	}
	code, vs := call(t, "GET", b.api()+"/retention/schedule/versions", tok, nil)
	if code != 200 || len(vs["items"].([]any)) != 1 || vs["items"].([]any)[0].(map[string]any)["version"] != float64(2) {
		t.Fatalf("versions on B: %d %v", code, vs)
	}
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}

// writeSchedule writes sc as a schedule file and returns its path.
func writeSchedule(t *testing.T, dir string, sc retention.Schedule) string {
	t.Helper()
	b, err := json.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "schedule.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestScheduleFileAppliedOnlyExplicitly is issue 21 §8 and the start-up
// part of §10: with CASEVAULT_RETENTION_SCHEDULE_FILE in the environment a
// CLI sweep (dry or not) stores nothing; `retention schedule apply FILE`
// stores it once, audited as the CLI's change; serve's start-up file is
// applied once per content, audited, and a later change through the API
// survives a restart with the same file. Before, every CLI command stored
// the file again, unaudited.
func TestScheduleFileAppliedOnlyExplicitly(t *testing.T) {
	dir := t.TempDir()
	file := writeSchedule(t, t.TempDir(), notificationKeep(t, "30d"))
	fileEnv := "CASEVAULT_RETENTION_SCHEDULE_FILE=" + file
	versions := func() int {
		db := openSQLite(t, filepath.Join(dir, "casevault.db"))
		var n int
		if err := db.Read.QueryRow(`SELECT COUNT(*) FROM retention_schedules`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		db.Close()
		return n
	}
	events := func(action, actor string) int {
		db := openSQLite(t, filepath.Join(dir, "casevault.db"))
		var n int
		if err := db.Read.QueryRow(`SELECT COUNT(*) FROM audit_events WHERE action = ? AND actor_name = ?`, action, actor).Scan(&n); err != nil {
			t.Fatal(err)
		}
		db.Close()
		return n
	}

	p, tok := startAdmin(t, dir) // keys and an admin token, as a real installation has
	stop(t, p)

	cvOK(t, []string{fileEnv}, "retention", "run", "--dry-run", "--data-dir", dir)
	cvOK(t, []string{fileEnv}, "retention", "run", "--data-dir", dir)
	if n := versions(); n != 0 {
		t.Fatalf("a CLI sweep stored the schedule file: %d versions", n)
	}

	out := cvOK(t, nil, "retention", "schedule", "apply", file, "--data-dir", dir)
	if !strings.Contains(out, "version 2") || versions() != 1 || events("retention.schedule.update", "cli") != 1 {
		t.Fatalf("apply: %q, %d versions, %d audit events", out, versions(), events("retention.schedule.update", "cli"))
	}
	if out := cvOK(t, nil, "retention", "schedule", "apply", file, "--data-dir", dir); !strings.Contains(out, "unchanged") || versions() != 1 {
		t.Fatalf("second apply: %q, %d versions", out, versions())
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"purposes":[{"purpose":"security","keep":90}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := cv(t, nil, "retention", "schedule", "apply", bad, "--data-dir", dir); code != exitUsage || !strings.Contains(errOut, "purposes[0].keep") {
		t.Fatalf("bad file: exit %d, %s", code, errOut)
	}

	// serve's start-up file: a new content is applied once, audited.
	file2 := writeSchedule(t, t.TempDir(), notificationKeep(t, "60d"))
	p = start(t, dir, "CASEVAULT_RETENTION_SCHEDULE_FILE="+file2)
	code, vs := call(t, "GET", p.api()+"/retention/schedule/versions", tok, nil)
	items, _ := vs["items"].([]any)
	if code != 200 || len(items) != 2 || items[0].(map[string]any)["actor"] != "cli" {
		t.Fatalf("versions after a start with a new file: %d %v", code, vs)
	}
	if code, r := call(t, "PUT", p.api()+"/retention/schedule", tok, notificationKeep(t, "120d")); code != 200 || r["version"] != float64(4) {
		t.Fatalf("PUT: %d %v", code, r)
	}
	stop(t, p)
	if n := events("retention.schedule.update", "cli"); n != 2 {
		t.Fatalf("%d schedule changes audited as the CLI's, want 2 (apply, start-up file)", n)
	}

	// A restart with the same file keeps the admin's change.
	p = start(t, dir, "CASEVAULT_RETENTION_SCHEDULE_FILE="+file2)
	code, cur := call(t, "GET", p.api()+"/retention/schedule", tok, nil)
	if code != 200 || cur["version"] != float64(4) {
		t.Fatalf("after a restart with the start-up file: %d v%v, want the admin's v4", code, cur["version"])
	}
}

// TestCLISweepQueryHolds is issue 21 §9: with a query hold in force, a
// CLI sweep while the server holds the index is refused (exit 13, audited);
// with the server stopped it opens the index and judges the hold as the
// server does: the unrelated due contact goes, the matching one stays.
// Before, the CLI held every contact (and reported it held by that hold).
func TestCLISweepQueryHolds(t *testing.T) {
	dir := t.TempDir()
	p, tok := startAdmin(t, dir)
	base := p.api()
	occurred := time.Now().UTC().Add(-200 * 24 * time.Hour).Format(time.RFC3339)
	add := func(body string) (string, string) {
		_, caseID := newCase(t, base, tok, "notice "+body, "email")
		code, ct := call(t, "POST", base+"/cases/"+caseID+"/contacts", tok, map[string]any{"channel": "email", "direction": "outbound", "author": "shop",
			"body": body, "purposes": []string{"notification"}, "occurred_at": occurred})
		if code != 201 {
			t.Fatalf("contact: %d %v", code, ct)
		}
		return caseID, ct["id"].(string)
	}
	heldCase, held := add("zanzibar shipment notice")
	_, free := add("ordinary shipment notice")
	waitSearch(t, base, tok, "zanzibar", heldCase)
	if code, h := call(t, "POST", base+"/holds", tok, map[string]any{"matter": "M", "reason": "r", "scope": map[string]any{"query": "zanzibar"}}); code != 201 {
		t.Fatalf("hold: %d %v", code, h)
	}

	_, errOut, code := cv(t, nil, "retention", "run", "--data-dir", dir)
	if code != exitRefused || !strings.Contains(errOut, "query scope") {
		t.Fatalf("CLI sweep beside a running server: exit %d, %s; want %d naming the query holds", code, errOut, exitRefused)
	}
	if code, ev := call(t, "GET", base+"/audit?action=retention.run", tok, nil); code != 200 || !strings.Contains(toJSON(ev), "search index cannot be opened") {
		t.Fatalf("refused CLI sweep not audited: %d %v", code, ev)
	}
	stop(t, p)

	out := cvOK(t, nil, "retention", "run", "--json", "--data-dir", dir)
	var rep retention.RunReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Deleted != 1 || rep.SkippedHeld != 1 {
		t.Fatalf("CLI sweep with the index: %+v; want the free contact deleted and the held one kept", rep)
	}
	db := openSQLite(t, filepath.Join(dir, "casevault.db"))
	var n int
	if err := db.Read.QueryRow(`SELECT COUNT(*) FROM contacts WHERE id IN (?, ?)`, held, free).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d of the two contacts left (%v), want the held one", n, err)
	}
	if err := db.Read.QueryRow(`SELECT COUNT(*) FROM contacts WHERE id = ?`, held).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the held contact is gone (%v)", err)
	}
}

// TestRefusedCLIPruneIsAudited (issue 21 §10): `audit prune` that refuses
// (an expired event was edited, so the chain does not verify) leaves an
// audit event saying so (outcome failed, refused). Before, it left nothing.
func TestRefusedCLIPruneIsAudited(t *testing.T) {
	dir := t.TempDir()
	cvOK(t, nil, "token", "create", "--data-dir", dir, "--name", "a", "--role", "agent")
	cvOK(t, nil, "token", "create", "--data-dir", dir, "--name", "b", "--role", "agent")
	db := openSQLite(t, filepath.Join(dir, "casevault.db"))
	old := time.Now().Add(-10 * 365 * 24 * time.Hour).UnixMicro()
	if _, err := db.Write.Exec(`UPDATE audit_events SET at = ?, detail = '{"edited":true}' WHERE seq = (SELECT MIN(seq) FROM audit_events)`, old); err != nil {
		t.Fatal(err)
	}
	db.Close()

	if _, errOut, code := cv(t, nil, "audit", "prune", "--data-dir", dir); code == 0 {
		t.Fatalf("prune over a tampered event succeeded: %s", errOut)
	}
	db = openSQLite(t, filepath.Join(dir, "casevault.db"))
	var n int
	if err := db.Read.QueryRow(`SELECT COUNT(*) FROM audit_events WHERE action = 'audit.prune_failed' AND outcome = 'failed' AND actor_name = 'cli' AND detail LIKE '%"refused":true%'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d refused-prune events (%v), want 1", n, err)
	}
}

// TestScheduledSweepIsAudited (issue 21 §10): a sweep started by the
// server's cron leaves a retention.run event by the sweeper, marked
// scheduled, like one started through the API or the CLI.
func TestScheduledSweepIsAudited(t *testing.T) {
	p, tok := startAdmin(t, t.TempDir(), "CASEVAULT_RETENTION_SCHEDULE=@every 1s")
	testkit.Eventually(t, 30*time.Second, "a scheduled sweep's audit event", func() bool {
		code, ev := call(t, "GET", p.api()+"/audit?action=retention.run", tok, nil)
		return code == 200 && strings.Contains(toJSON(ev), `"scheduled":true`) && strings.Contains(toJSON(ev), "retention-sweeper")
	})
}
