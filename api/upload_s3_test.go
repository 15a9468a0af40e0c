package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/s3"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// s3Store opens a fresh bucket on srv, so that listing it shows only this
// test's blobs.
func s3Store(t *testing.T, srv *blobtest.S3Server, timeout time.Duration) *s3.Store {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	st, err := s3.New(context.Background(), s3.Config{Endpoint: srv.Endpoint, Bucket: "cv-api-" + hex.EncodeToString(b),
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Region: "us-east-1", MaxRetries: 1, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestTruncatedUploadStoresNothingS3: the truncation cases leave nothing
// in an S3 bucket either (the backend sees the body fail mid-stream).
func TestTruncatedUploadStoresNothingS3(t *testing.T) {
	srv := blobtest.EnvS3(t)
	cases := truncatedCases(t)
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		newHarnessDB(t, db, s3Store(t, srv, 30*time.Second)).checkTruncated(t, cases)
	})
}

// TestHungS3 pauses a private versitygw (SIGSTOP) behind the API with a
// 2 s S3 timeout: uploads and downloads answer 503 within a few seconds,
// and an upload whose client left while S3 hung is not committed when S3
// comes back.
func TestHungS3(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	srv := blobtest.StartVersityGW(t)
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		h := newHarnessDB(t, db, s3Store(t, srv, 2*time.Second))
		contact := h.contactForUpload(t)
		payload := bytes.Repeat([]byte("attachment "), 20_000)
		r := h.upload(t, contact, "?filename=a.txt", bytes.NewReader(payload), map[string]string{"Content-Type": "text/plain"})
		if r.status != 201 {
			t.Fatalf("upload = %d %s", r.status, r.body)
		}
		id := r.json(t)["id"].(string)

		srv.Pause(t)
		start := time.Now()
		r = h.upload(t, contact, "?filename=b.txt", bytes.NewReader(payload), map[string]string{"Content-Type": "text/plain"})
		if r.status != 503 || r.header.Get("Retry-After") == "" {
			t.Fatalf("upload to a hung S3 = %d %s", r.status, r.body)
		}
		if took := time.Since(start); took > 8*time.Second {
			t.Fatalf("upload to a hung S3 answered after %s", took)
		}
		start = time.Now()
		r = h.do("GET", "/api/v1/attachments/"+id, h.tokens[auth.RoleAgent], nil)
		if r.status != 503 {
			t.Fatalf("download from a hung S3 = %d %s", r.status, r.body)
		}
		if took := time.Since(start); took > 8*time.Second {
			t.Fatalf("download from a hung S3 answered after %s", took)
		}
		h.waitAudit(t, "attachment.create:failed:"+contact)

		// A client that gives up while S3 hangs; S3 comes back before
		// the timeout. Its upload must not be committed.
		gone := h.contactForUpload(t)
		conn := h.sendRaw(t, gone, rawUpload{contentType: "text/plain", query: "?filename=c.txt", contentLength: len(payload), body: payload})
		h.waitStreaming(t, gone) // the server is in the upload, its PUT hung
		// On loopback the FIN is queued at the server when Close returns; the
		// handler finds it when it asks whether the client is still there,
		// after the PUT that Resume lets finish.
		conn.Close()
		srv.Resume(t)
		h.waitAudit(t, "attachment.create:failed:"+gone)
		if n := h.attachmentRows(t, gone); n != 0 {
			t.Fatalf("upload of a client that left was committed (%d rows)", n)
		}
		// The blob of the client that left was removed (S3 was back).
		// The upload that timed out may leave an orphan: S3 can still
		// commit its PUT after resuming, when the delete that followed
		// the timeout could not reach it; its row never committed and
		// the reconciler removes it.
		var customer string
		if err := h.db.Read.QueryRow(h.db.Rebind(`SELECT customer_id FROM contacts WHERE id = ?`), gone).Scan(&customer); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, "the blob of the upload whose client left removed", func() bool {
			for _, k := range h.storedBlobs(t) {
				if strings.HasPrefix(k, archive.BlobPrefix+customer+"/") {
					return false
				}
			}
			return true
		})
		// And S3 serves again.
		req, _ := http.NewRequest("GET", h.base+"/api/v1/attachments/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+h.tokens[auth.RoleAgent])
		res, err := h.client.Do(req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("download after resume: %v %v", res, err)
		}
		res.Body.Close()
	})
}
