package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/s3"
	"github.com/casevault/casevault/testkit"
)

// lockedServer is a server on an object-lock bucket of a private versitygw
// (which the test may pause), with a short S3 timeout, and a store on the
// same bucket to look at the flags directly.
type lockedServer struct {
	srv    *blobtest.S3Server
	p      *proc
	tok    string
	dir    string
	env    []string
	bucket *s3.Store
}

func startLocked(t *testing.T, extra ...string) *lockedServer {
	t.Helper()
	srv := blobtest.StartVersityGW(t)
	const bucket = "cv-flags"
	ls := &lockedServer{srv: srv, dir: t.TempDir()}
	ls.env = []string{"CASEVAULT_S3_ENDPOINT=" + srv.Endpoint, "CASEVAULT_S3_BUCKET=" + bucket, "CASEVAULT_S3_OBJECT_LOCK=true",
		"CASEVAULT_S3_ACCESS_KEY=" + srv.AccessKey, "CASEVAULT_S3_SECRET_KEY=" + srv.SecretKey, "CASEVAULT_S3_TLS=false", "CASEVAULT_S3_TIMEOUT=2s"}
	ls.p, ls.tok = startAdmin(t, ls.dir, append(ls.env, extra...)...)
	st, err := s3.New(context.Background(), s3.Config{Endpoint: srv.Endpoint, Bucket: bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	ls.bucket = st
	return ls
}

// attach uploads a file to a new contact of caseID and returns its blob key.
func (ls *lockedServer) attach(t *testing.T, customerID, caseID string) string {
	t.Helper()
	contact := addContact(t, ls.p.api(), ls.tok, caseID, "email", "evidence")
	res, body := upload(t, ls.p.api()+"/contacts/"+contact+"/attachments?filename=e.pdf", ls.tok, []byte("%PDF evidence"))
	if res.StatusCode != 201 {
		t.Fatalf("upload: %d %s", res.StatusCode, body)
	}
	id := strings.Split(strings.Split(string(body), `"id":"`)[1], `"`)[0]
	return "att/" + customerID + "/" + id
}

func (ls *lockedServer) flag(t *testing.T, key string) bool {
	t.Helper()
	on, err := ls.bucket.VersionLegalHold(context.Background(), key, "")
	if err != nil {
		t.Fatalf("legal hold of %s: %v", key, err)
	}
	return on
}

func (ls *lockedServer) placeHold(t *testing.T, caseID string) map[string]any {
	t.Helper()
	code, hold := call(t, "POST", ls.p.api()+"/holds", ls.tok, map[string]any{"matter": "m", "reason": "r", "scope": map[string]any{"case_ids": []string{caseID}}})
	if code != 201 {
		t.Fatalf("hold: %d %v", code, hold)
	}
	return hold
}

func (ls *lockedServer) mirroring(t *testing.T, holdID string) string {
	t.Helper()
	code, got := call(t, "GET", ls.p.api()+"/holds/"+holdID, ls.tok, nil)
	if code != 200 {
		t.Fatalf("get hold: %d %v", code, got)
	}
	s, _ := got["mirroring"].(string)
	return s
}

// Issue 21 §5: an attachment uploaded into a held case after the hold was
// placed carries the S3 legal-hold flag, so deleting that version directly
// in S3 (minio-go RemoveObject with its version id) is refused, and the
// hold reports its mirroring complete.
func TestUploadIntoHeldCaseIsFlagged(t *testing.T) {
	ls := startLocked(t)
	custID, caseID := newCase(t, ls.p.api(), ls.tok, "held later", "email")
	before := ls.attach(t, custID, caseID)
	hold := ls.placeHold(t, caseID)
	if hold["mirroring"] != "complete" || !ls.flag(t, before) {
		t.Fatalf("placing: mirroring %v, flag %v", hold["mirroring"], ls.flag(t, before))
	}

	later := ls.attach(t, custID, caseID)
	if !ls.flag(t, later) {
		t.Fatal("an attachment uploaded into a held case after the hold carries no legal-hold flag")
	}
	ctx := context.Background()
	info, err := ls.bucket.Client().StatObject(ctx, ls.bucket.Bucket(), later, minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ls.bucket.Client().RemoveObject(ctx, ls.bucket.Bucket(), later, minio.RemoveObjectOptions{VersionID: info.VersionID}); err == nil {
		t.Fatal("deleting the held version directly in S3 succeeded")
	}
	if m := ls.mirroring(t, hold["id"].(string)); m != "complete" {
		t.Fatalf("GET /holds/{id} mirroring %q, want complete", m)
	}

	freeCust, freeCase := newCase(t, ls.p.api(), ls.tok, "free", "email")
	free := ls.attach(t, freeCust, freeCase)
	if ls.flag(t, free) {
		t.Fatal("an upload no hold covers got the flag")
	}

	// A flag lifted behind casevault's back is set again by the CLI's
	// reconcile, which includes the flags.
	off := minio.LegalHoldDisabled
	if err := ls.bucket.Client().PutObjectLegalHold(ctx, ls.bucket.Bucket(), later, minio.PutObjectLegalHoldOptions{VersionID: info.VersionID, Status: &off}); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Flags map[string]any `json:"legal_hold_flags"`
	}
	if err := json.Unmarshal([]byte(cvOK(t, append(ls.env, "CASEVAULT_DATA_DIR="+ls.dir), "attachments", "reconcile", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	flags := rep.Flags
	if flags["restored"] != float64(1) || !ls.flag(t, later) {
		t.Fatalf("reconcile: %v; want the lifted flag set again", flags)
	}
}

// Issue 21 §6: a hold placed while S3 hangs answers 201 with mirroring
// pending (also in GET /holds/{id} and /readyz); once S3 is back the
// scheduled reconciler sets the flags. A release whose grace ends while S3
// hangs has its flags cleared once S3 is back.
func TestFlagsFollowHoldsThroughOutage(t *testing.T) {
	ls := startLocked(t, "CASEVAULT_LEGAL_HOLD_FLAGS_SCHEDULE=@every 1s")
	custID, caseID := newCase(t, ls.p.api(), ls.tok, "outage", "email")
	key := ls.attach(t, custID, caseID)

	ls.srv.Pause(t)
	hold := ls.placeHold(t, caseID)
	holdID := hold["id"].(string)
	if hold["mirroring"] != "pending" {
		t.Fatalf("placed while S3 hangs: mirroring %v, want pending", hold["mirroring"])
	}
	if m := ls.mirroring(t, holdID); m != "pending" {
		t.Fatalf("GET /holds/{id} while S3 hangs: %q", m)
	}
	_, ready := call(t, "GET", "http://"+ls.p.addr+"/readyz", "", nil)
	if chk, _ := ready["checks"].(map[string]any)["legal_hold_flags"].(map[string]any); chk["status"] == "ok" {
		t.Fatalf("readyz legal_hold_flags while a hold is pending: %v", chk)
	}

	ls.srv.Resume(t)
	testkit.Eventually(t, 60*time.Second, "the reconciler to set the flag after S3 returned", func() bool {
		return ls.flag(t, key) && ls.mirroring(t, holdID) == "complete"
	})
	_, ready = call(t, "GET", "http://"+ls.p.addr+"/readyz", "", nil)
	if chk, _ := ready["checks"].(map[string]any)["legal_hold_flags"].(map[string]any); chk["status"] != "ok" {
		t.Fatalf("readyz legal_hold_flags once mirrored: %v", chk)
	}

	if code, _ := call(t, "POST", ls.p.api()+"/holds/"+holdID+"/release", ls.tok, map[string]any{"reason": "settled"}); code != 200 {
		t.Fatalf("release: %d", code)
	}
	ls.srv.Pause(t)
	// The grace ends during the outage.
	db := openSQLite(t, filepath.Join(ls.dir, "casevault.db"))
	if _, err := db.Write.Exec(`UPDATE legal_holds SET grace_until = 1 WHERE id = ?`, holdID); err != nil {
		t.Fatal(err)
	}
	if m := ls.mirroring(t, holdID); m != "pending" {
		t.Fatalf("grace ended, flags not cleared: mirroring %q, want pending", m)
	}
	ls.srv.Resume(t)
	testkit.Eventually(t, 60*time.Second, "the reconciler to clear the flag after S3 returned", func() bool {
		return !ls.flag(t, key) && ls.mirroring(t, holdID) == "complete"
	})
}

// Issue 21 §7: --s3-object-lock=true on an existing bucket without object
// lock refuses to start (exit 2, the usage code for a setting that cannot
// be honoured) and says why, instead of placing holds that set no flag.
func TestObjectLockOnPlainBucketRefusesToStart(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	const bucket = "cv-plain"
	if _, err := s3.New(context.Background(), s3.Config{Endpoint: srv.Endpoint, Bucket: bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}); err != nil {
		t.Fatal(err)
	}
	env := []string{"CASEVAULT_S3_ENDPOINT=" + srv.Endpoint, "CASEVAULT_S3_BUCKET=" + bucket, "CASEVAULT_S3_OBJECT_LOCK=true",
		"CASEVAULT_S3_ACCESS_KEY=" + srv.AccessKey, "CASEVAULT_S3_SECRET_KEY=" + srv.SecretKey, "CASEVAULT_S3_TLS=false"}
	_, stderr, code := cv(t, env, "serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0")
	if code != exitUsage || !strings.Contains(stderr, "without object lock") || !strings.Contains(stderr, "--s3-object-lock") {
		t.Fatalf("serve on a plain bucket with --s3-object-lock=true: exit %d, stderr %s; want exit 2 naming the setting", code, stderr)
	}
}
