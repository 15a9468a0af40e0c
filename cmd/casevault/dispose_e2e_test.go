package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/s3"
)

// DELETE /cases/{id} on a versioned, object-lock bucket leaves no version
// of the attachment to read back by version id, and its disposition record
// says the blob was verified gone and keeps a keyed digest (issue 21 §1, §3).
func TestCaseDeletionPurgesEveryBlobVersion(t *testing.T) {
	srv := blobtest.EnvS3(t)
	dir := t.TempDir()
	bucket := fmt.Sprintf("cv-dispose-e2e-%d", time.Now().UnixNano())
	p, tok := startAdmin(t, dir, "CASEVAULT_S3_ENDPOINT="+srv.Endpoint, "CASEVAULT_S3_BUCKET="+bucket, "CASEVAULT_S3_OBJECT_LOCK=true",
		"CASEVAULT_S3_ACCESS_KEY="+srv.AccessKey, "CASEVAULT_S3_SECRET_KEY="+srv.SecretKey, "CASEVAULT_S3_TLS=false")
	base := p.api()
	_, cust := call(t, "POST", base+"/customers", tok, map[string]any{"name": "Gone"})
	_, cs := call(t, "POST", base+"/cases", tok, map[string]any{"customer_id": cust["id"], "subject": "to delete", "channel": "email"})
	caseID := cs["id"].(string)
	_, ct := call(t, "POST", base+"/cases/"+caseID+"/contacts", tok, map[string]any{"channel": "email", "direction": "inbound", "author": "a", "body": "scan attached"})
	res, body := upload(t, base+"/contacts/"+ct["id"].(string)+"/attachments?filename=id.pdf", tok, []byte("%PDF passport scan"))
	if res.StatusCode != 201 {
		t.Fatalf("upload: %d %s", res.StatusCode, body)
	}
	attID := strings.Split(strings.Split(string(body), `"id":"`)[1], `"`)[0]
	key := archive.BlobPrefix + cust["id"].(string) + "/" + attID

	st, err := s3.New(context.Background(), s3.Config{Endpoint: srv.Endpoint, Bucket: bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	versions := func() int {
		n := 0
		err := st.ListVersions(context.Background(), key, func(v archive.VersionInfo) error {
			if v.Key == key {
				n++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if versions() != 1 {
		t.Fatalf("before the deletion %d versions of %s", versions(), key)
	}

	if code, _ := call(t, "DELETE", base+"/cases/"+caseID, tok, nil); code != 204 {
		t.Fatalf("delete case: %d", code)
	}
	if n := versions(); n != 0 {
		t.Fatalf("after DELETE /cases/{id} %d versions (data or markers) of the attachment remain", n)
	}

	db := openSQLite(t, filepath.Join(dir, "casevault.db"))
	var digest string
	var gone sql.NullInt64
	if err := db.Read.QueryRow(`SELECT content_sha256, blobs_gone_at FROM dispositions WHERE contact_id = ?`, ct["id"]).Scan(&digest, &gone); err != nil {
		t.Fatal(err)
	}
	if !gone.Valid || len(digest) != 64 {
		t.Fatalf("disposition: digest %q, blobs verified gone at %v", digest, gone)
	}
}
