package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/s3"
)

// With an object-lock bucket, placing a hold sets the S3 legal-hold flag on
// every held blob; releasing it leaves the flag through the release grace,
// and the first sweep after the grace clears it; blobs of other cases are
// untouched.
func TestHoldsSetS3LegalHoldFlags(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	dir := t.TempDir()
	const bucket = "cv-objlock"
	p, tok := startAdmin(t, dir, "CASEVAULT_S3_ENDPOINT="+srv.Endpoint, "CASEVAULT_S3_BUCKET="+bucket, "CASEVAULT_S3_OBJECT_LOCK=true",
		"CASEVAULT_S3_ACCESS_KEY="+srv.AccessKey, "CASEVAULT_S3_SECRET_KEY="+srv.SecretKey, "CASEVAULT_S3_TLS=false")
	base := p.api()
	_, cust := call(t, "POST", base+"/customers", tok, map[string]any{"name": "Locked"})
	custID := cust["id"].(string)
	attach := func(subject string) (caseID, blobKey string) {
		_, cs := call(t, "POST", base+"/cases", tok, map[string]any{"customer_id": custID, "subject": subject, "channel": "email"})
		_, ct := call(t, "POST", base+"/cases/"+cs["id"].(string)+"/contacts", tok, map[string]any{"channel": "email", "direction": "inbound", "author": "a", "body": "evidence"})
		res, body := upload(t, base+"/contacts/"+ct["id"].(string)+"/attachments?filename=e.pdf", tok, []byte("%PDF evidence"))
		if res.StatusCode != 201 {
			t.Fatalf("upload: %d %s", res.StatusCode, body)
		}
		id := strings.Split(strings.Split(string(body), `"id":"`)[1], `"`)[0]
		return cs["id"].(string), "att/" + custID + "/" + id
	}
	heldCase, heldKey := attach("held")
	_, freeKey := attach("free")

	st, err := s3.New(context.Background(), s3.Config{Endpoint: srv.Endpoint, Bucket: bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	flag := func(key string) bool {
		on, err := st.LegalHold(context.Background(), key)
		if err != nil {
			t.Fatalf("legal hold of %s: %v", key, err)
		}
		return on
	}
	if flag(heldKey) || flag(freeKey) {
		t.Fatal("flags set before any hold")
	}
	code, hold := call(t, "POST", base+"/holds", tok, map[string]any{"matter": "m", "reason": "r", "scope": map[string]any{"case_ids": []string{heldCase}}})
	if code != 201 {
		t.Fatalf("hold: %d %v", code, hold)
	}
	if !flag(heldKey) || flag(freeKey) {
		t.Fatalf("after placing: held=%v free=%v, want true false", flag(heldKey), flag(freeKey))
	}
	// A restore into a new object-lock bucket sets the flags again: the
	// restored hold protects the restored blobs.
	env := []string{"CASEVAULT_DATA_DIR=" + dir, "CASEVAULT_S3_ENDPOINT=" + srv.Endpoint, "CASEVAULT_S3_OBJECT_LOCK=true",
		"CASEVAULT_S3_ACCESS_KEY=" + srv.AccessKey, "CASEVAULT_S3_SECRET_KEY=" + srv.SecretKey, "CASEVAULT_S3_TLS=false"}
	cvOK(t, append(env, "CASEVAULT_S3_BUCKET="+bucket), "backup", "run")
	list := result(t, cvOK(t, append(env, "CASEVAULT_S3_BUCKET="+bucket), "backup", "list", "--json"))
	id := list["backups"].([]any)[0].(map[string]any)["id"].(string)
	const drBucket = "cv-objlock-dr"
	rest := result(t, cvOK(t, append(env, "CASEVAULT_S3_BUCKET="+drBucket), "backup", "restore", id, "--to", t.TempDir(), "--json"))
	if n, _ := rest["legal_hold_flags_set"].(float64); n != 1 {
		t.Fatalf("restore set %v legal-hold flags, want 1 (the held blob)", rest["legal_hold_flags_set"])
	}
	dr, err := s3.New(context.Background(), s3.Config{Endpoint: srv.Endpoint, Bucket: drBucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{heldKey: true, freeKey: false} {
		on, err := dr.LegalHold(context.Background(), key)
		if err != nil || on != want {
			t.Fatalf("restored %s: legal hold %v (%v), want %v", key, on, err, want)
		}
	}
	if code, _ := call(t, "POST", base+"/holds/"+hold["id"].(string)+"/release", tok, map[string]any{"reason": "done"}); code != 200 {
		t.Fatalf("release: %d", code)
	}
	// Through the release grace the storage keeps preserving too.
	if !flag(heldKey) {
		t.Fatal("flag cleared at release, during the grace")
	}
	// The grace ends (30 days, let pass now); the next sweep clears it.
	db := openSQLite(t, filepath.Join(dir, "casevault.db"))
	if _, err := db.Write.Exec(`UPDATE legal_holds SET grace_until = 1 WHERE id = ?`, hold["id"]); err != nil {
		t.Fatal(err)
	}
	code, run := call(t, "POST", base+"/retention/runs", tok, map[string]any{})
	if code != 202 {
		t.Fatalf("sweep: %d %v", code, run)
	}
	if rep := waitRun(t, base+"/retention/runs/"+run["id"].(string), tok); rep["status"] != "succeeded" {
		t.Fatalf("sweep ended %v", rep)
	}
	if flag(heldKey) || flag(freeKey) {
		t.Fatal("flag still set after the grace ended and a sweep ran")
	}
}
