package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/testkit"
)

// Uploads cut short against the real binary: a raw body that ends before its
// Content-Length and a chunked body without its terminating chunk, each
// followed by the client closing the socket. Neither leaves an attachment,
// and each is audited as a failed attachment.create.
func TestTruncatedUploadsAgainstBinary(t *testing.T) {
	dir := t.TempDir()
	p, tok := startAdmin(t, dir)
	base := p.api()
	_, cust := call(t, "POST", base+"/customers", tok, map[string]any{"name": "Trunc"})
	_, cs := call(t, "POST", base+"/cases", tok, map[string]any{"customer_id": cust["id"], "subject": "trunc", "channel": "web"})
	_, ct := call(t, "POST", base+"/cases/"+cs["id"].(string)+"/contacts", tok, map[string]any{"channel": "web", "direction": "inbound", "author": "a", "body": "b"})
	contactID := ct["id"].(string)

	payload := strings.Repeat("x", 400_000)
	for _, c := range []struct {
		name, head, body string
	}{
		{"content-length", "Content-Length: 900000\r\n", payload},
		{"chunked", "Transfer-Encoding: chunked\r\n", fmt.Sprintf("%x\r\n%s\r\n", len(payload), payload)},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "POST /api/v1/contacts/%s/attachments?filename=%s.bin HTTP/1.1\r\nHost: casevault\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\n%s\r\n%s",
				contactID, c.name, tok, c.head, c.body)
			conn.Close()
		})
	}

	// The server notices the closed socket on its own time: wait for both
	// failed events, then check that nothing was stored.
	testkit.Eventually(t, 30*time.Second, "a failed attachment.create event for each truncated upload", func() bool {
		failed := 0
		for _, ev := range auditEvents(t, "http://"+p.addr, tok) {
			if ev["action"] == "attachment.create" && ev["outcome"] == "failed" {
				failed++
			}
		}
		return failed == 2
	})
	code, got := call(t, "GET", base+"/contacts/"+contactID, tok, nil)
	if code != 200 || len(got["attachments"].([]any)) != 0 {
		t.Fatalf("truncated uploads left attachments: %d %v", code, got["attachments"])
	}
	var blobs []string
	_ = filepath.Walk(filepath.Join(dir, "blobs"), func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			blobs = append(blobs, path)
		}
		return nil
	})
	if len(blobs) != 0 {
		t.Fatalf("truncated uploads left blobs: %v", blobs)
	}
}
