package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The server's cron runs backups and forget on their schedules (here every
// second), records them as scheduled runs, and the forget keeps only what
// the keep rules allow; a malformed schedule is a usage error at start.
func TestScheduledBackupAndForget(t *testing.T) {
	dir := t.TempDir()
	p, tok := startAdmin(t, dir, "CASEVAULT_BACKUP_SCHEDULE=@every 1s", "CASEVAULT_BACKUP_FORGET_SCHEDULE=@every 3s",
		"CASEVAULT_BACKUP_KEEP_DAILY=1", "CASEVAULT_BACKUP_KEEP_WEEKLY=0", "CASEVAULT_BACKUP_KEEP_MONTHLY=0")
	base := p.api()
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

	bad := exec.Command(binary(t), "serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0")
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
	p, tok := startAdmin(t, dir, "CASEVAULT_BACKUP_SCHEDULE=off", "CASEVAULT_BACKUP_FORGET_SCHEDULE=off")
	base := p.api()
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

// backup run --tag labels a backup in its signed manifest, and forget
// --keep-tag keeps it whatever the other rules say; a malformed tag is a
// usage error on both commands.
func TestBackupTagsAndKeepTag(t *testing.T) {
	dir := t.TempDir()
	cvOK(t, nil, "migrate", "--data-dir", dir)
	tagged := result(t, cvOK(t, nil, "backup", "run", "--tag", "pre-upgrade", "--json", "--data-dir", dir))["id"].(string)
	cvOK(t, nil, "backup", "run", "--data-dir", dir)
	newest := result(t, cvOK(t, nil, "backup", "run", "--data-dir", dir, "--json"))["id"].(string)

	cvCode(t, exitUsage, nil, "backup", "run", "--tag", "two words", "--data-dir", dir)
	cvCode(t, exitUsage, nil, "backup", "forget", "--keep-tag", "", "--data-dir", dir)

	cvOK(t, nil, "backup", "forget", "--keep-last", "1", "--keep-tag", "pre-upgrade", "--data-dir", dir)
	list := result(t, cvOK(t, nil, "backup", "list", "--json", "--data-dir", dir))
	kept := map[string][]any{}
	for _, b := range list["backups"].([]any) {
		m := b.(map[string]any)
		tags, _ := m["tags"].([]any)
		kept[m["id"].(string)] = tags
	}
	if len(kept) != 2 {
		t.Fatalf("kept %v, want %s and the tagged %s", kept, newest, tagged)
	}
	if _, ok := kept[newest]; !ok {
		t.Fatalf("kept %v: the newest backup %s is gone", kept, newest)
	}
	if tags := kept[tagged]; len(tags) != 1 || tags[0] != "pre-upgrade" {
		t.Fatalf("kept %v: the tagged backup %s is gone or lost its tag", kept, tagged)
	}
}
