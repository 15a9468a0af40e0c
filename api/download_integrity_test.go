package api_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/testkit"
)

// The stored object: a header, then DARE packages of 64 KiB plaintext.
var (
	objHeader  = archive.EncryptedSize(0)
	objPackage = archive.EncryptedSize(64<<10) - objHeader
)

// blobOf returns the path of attachment id's blob on local disk.
func (h *harness) blobOf(t *testing.T, id string) string {
	t.Helper()
	for _, f := range h.blobFiles(t) {
		if strings.HasSuffix(f, "/"+id) {
			return f
		}
	}
	t.Fatalf("no blob for %s", id)
	return ""
}

// TestDownloadIntegrityFailure: damage detected before the headers gives
// 500 (the problem document says the object failed its integrity check)
// and a failed read event; damage in a later package can only cut the
// connection, which the client sees as a short body, and is logged at
// error and audited as failed.
func TestDownloadIntegrityFailure(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 40_000) // 640,000 bytes: 10 packages
	forEachDialect(t, func(t *testing.T, h *harness) {
		contact := h.contactForUpload(t)
		put := func() string {
			r := h.upload(t, contact, "?filename=p.bin", bytes.NewReader(payload), map[string]string{"Content-Type": "application/octet-stream"})
			if r.status != 201 {
				t.Fatalf("upload = %d %s", r.status, r.body)
			}
			return r.json(t)["id"].(string)
		}
		flip := func(path string, off int64) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, 1)
			if _, err := f.ReadAt(b, off); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0x01
			if _, err := f.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
		}
		get := func(id string) (int, []byte, error) {
			req, _ := http.NewRequest("GET", h.base+"/api/v1/attachments/"+id, nil)
			req.Header.Set("Authorization", "Bearer "+h.tokens[auth.RoleAgent])
			res, err := h.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, err := io.ReadAll(res.Body)
			return res.StatusCode, b, err
		}

		early := []struct {
			name   string
			damage func(id string)
		}{
			{"byte flipped in the first package", func(id string) { flip(h.blobOf(t, id), objHeader+100) }},
			{"blob swapped with another attachment's", func(id string) {
				other := put()
				b, err := os.ReadFile(h.blobOf(t, other))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(h.blobOf(t, id), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}},
			{"blob truncated inside the first package", func(id string) {
				if err := os.Truncate(h.blobOf(t, id), objHeader+1000); err != nil {
					t.Fatal(err)
				}
			}},
		}
		for _, tc := range early {
			t.Run(tc.name, func(t *testing.T) {
				id := put()
				tc.damage(id)
				status, body, _ := get(id)
				if status != 500 || !strings.Contains(string(body), "integrity") {
					t.Fatalf("download = %d %s, want 500 naming the integrity check", status, body)
				}
				if !h.audit.has("attachment.read:failed:"+id) || h.audit.has("attachment.read:ok:"+id) {
					t.Fatalf("audit events %v, want a failed read of %s and no ok", h.audit.events, id)
				}
				if !strings.Contains(h.logs.String(), "level=ERROR") {
					t.Fatal("integrity failure not logged at error")
				}
			})
		}

		t.Run("byte flipped in a later package", func(t *testing.T) {
			id := put()
			flip(h.blobOf(t, id), objHeader+5*objPackage+100)
			status, body, err := get(id)
			if status != 200 {
				t.Fatalf("status %d: the damage is past what is checked before the headers", status)
			}
			if err == nil || len(body) >= len(payload) {
				t.Fatalf("client read %d of %d bytes without an error (%v): the cut must be visible", len(body), len(payload), err)
			}
			if !bytes.Equal(body, payload[:len(body)]) {
				t.Fatal("bytes sent before the cut differ from the upload")
			}
			h.waitAudit(t, "attachment.read:failed:"+id)
			testkit.Eventually(t, 5*time.Second, "the cut download logged", func() bool {
				return strings.Contains(h.logs.String(), "download cut short")
			})
		})
	})
}
