package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/casevault/casevault/archive/blobtest"
)

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
	p, tok := startAdmin(t, dir, env...)
	base := p.api()
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
	got := waitRun(t, base+"/backups/"+id, btok)
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
	req, _ := http.NewRequest("POST", p3.api()+"/backups", nil)
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
