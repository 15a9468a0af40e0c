package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/testkit"
)

func upload(t *testing.T, url, token string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

// The server on a real S3 server (a private versitygw), which is then
// stopped: uploads and downloads answer 503 with Retry-After, readiness goes
// down, nothing is left behind, and service resumes when S3 returns.
func TestS3OutageAnswers503(t *testing.T) {
	s3 := blobtest.StartVersityGW(t)
	dir := t.TempDir()
	p, tok := startAdmin(t, dir, "CASEVAULT_S3_ENDPOINT="+s3.Endpoint, "CASEVAULT_S3_BUCKET=cv-e2e",
		"CASEVAULT_S3_ACCESS_KEY="+s3.AccessKey, "CASEVAULT_S3_SECRET_KEY="+s3.SecretKey, "CASEVAULT_S3_TLS=false")
	base := p.api()
	_, contact := newContact(t, base, tok, "b")
	attURL := base + "/contacts/" + contact + "/attachments?filename=x.bin"
	res, body := upload(t, attURL, tok, []byte("stored while S3 is up"))
	if res.StatusCode != 201 {
		t.Fatalf("upload with S3 up: %d %s", res.StatusCode, body)
	}
	code, att := call(t, "GET", base+"/attachments/"+strings.Split(strings.Split(string(body), `"id":"`)[1], `"`)[0]+"/meta", tok, nil)
	if code != 200 {
		t.Fatalf("meta: %d %v", code, att)
	}
	id := att["id"].(string)

	s3.Kill()
	res, body = upload(t, attURL, tok, bytes.Repeat([]byte("z"), 3<<20))
	if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
		t.Fatalf("upload with S3 down: %d (Retry-After %q) %s", res.StatusCode, res.Header.Get("Retry-After"), body)
	}
	req, _ := http.NewRequest("GET", base+"/attachments/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	dres, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	dres.Body.Close()
	if dres.StatusCode != 503 {
		t.Fatalf("download with S3 down: %d", dres.StatusCode)
	}
	if code, ready := call(t, "GET", "http://"+p.addr+"/readyz", "", nil); code != 503 || ready["checks"].(map[string]any)["blobs"].(map[string]any)["status"] != "down" {
		t.Fatalf("readyz with S3 down: %d %v", code, ready)
	}
	code, list := call(t, "GET", base+"/contacts/"+contact, tok, nil)
	if code != 200 || len(list["attachments"].([]any)) != 1 {
		t.Fatalf("the failed upload left a row: %v", list["attachments"])
	}

	s3.Restart(t)
	res, body = upload(t, attURL, tok, []byte("after the outage"))
	if res.StatusCode != 201 {
		t.Fatalf("upload after S3 returned: %d %s", res.StatusCode, body)
	}
}

// The server on a real S3 server that hangs (SIGSTOP: connections stay open,
// nothing answers): with --s3-timeout 2s, a download and an upload answer 503
// within a bounded time instead of stalling for minutes, readiness reports the
// blob store down, and service returns when S3 does.
func TestS3HangAnswers503WithinTimeout(t *testing.T) {
	s3 := blobtest.StartVersityGW(t)
	dir := t.TempDir()
	p, tok := startAdmin(t, dir, "CASEVAULT_S3_ENDPOINT="+s3.Endpoint, "CASEVAULT_S3_BUCKET=cv-hang",
		"CASEVAULT_S3_ACCESS_KEY="+s3.AccessKey, "CASEVAULT_S3_SECRET_KEY="+s3.SecretKey, "CASEVAULT_S3_TLS=false",
		"CASEVAULT_S3_TIMEOUT=2s")
	base := p.api()
	_, contact := newContact(t, base, tok, "b")
	attURL := base + "/contacts/" + contact + "/attachments?filename=x.bin"
	res, body := upload(t, attURL, tok, bytes.Repeat([]byte("h"), 200<<10))
	if res.StatusCode != 201 {
		t.Fatalf("upload with S3 up: %d %s", res.StatusCode, body)
	}
	id := strings.Split(strings.Split(string(body), `"id":"`)[1], `"`)[0]

	s3.Pause(t)
	started := time.Now()
	req, _ := http.NewRequest("GET", base+"/attachments/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	dres, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("download with S3 hung: %v after %v", err, time.Since(started))
	}
	dres.Body.Close()
	if dres.StatusCode != 503 || dres.Header.Get("Retry-After") == "" {
		t.Fatalf("download with S3 hung: %d after %v", dres.StatusCode, time.Since(started))
	}
	res, body = upload(t, attURL, tok, []byte("while hung"))
	if res.StatusCode != 503 {
		t.Fatalf("upload with S3 hung: %d %s", res.StatusCode, body)
	}
	if code, ready := call(t, "GET", "http://"+p.addr+"/readyz", "", nil); code != 503 {
		t.Fatalf("readyz with S3 hung: %d %v", code, ready)
	}
	// The bound is the setting (2 s per call, a retry or two), far below
	// the minutes a hung connection took before; 30 s leaves room for -race.
	if d := time.Since(started); d > 30*time.Second {
		t.Fatalf("answers with S3 hung took %v", d)
	}
	code, got := call(t, "GET", base+"/contacts/"+contact, tok, nil)
	if code != 200 || len(got["attachments"].([]any)) != 1 {
		t.Fatalf("the upload refused while S3 hung left a row: %v", got["attachments"])
	}

	s3.Resume(t)
	testkit.Eventually(t, 30*time.Second, "an upload to succeed after S3 resumed", func() bool {
		res, _ = upload(t, attURL, tok, []byte("after the hang"))
		return res.StatusCode == 201
	})
}
