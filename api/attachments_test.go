package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/casevault/casevault/auth"
)

func (h *harness) contactForUpload(t *testing.T) string {
	t.Helper()
	cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Uploader"})
	cs := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust["id"], "subject": "files", "channel": "email"})
	ct := h.mustCreate("/api/v1/cases/"+cs["id"].(string)+"/contacts", map[string]any{"channel": "email", "direction": "inbound", "author": "c", "body": "see attached"})
	return ct["id"].(string)
}

func (h *harness) upload(t *testing.T, contactID, query string, body io.Reader, hdr map[string]string) resp {
	t.Helper()
	req, _ := http.NewRequest("POST", h.base+"/api/v1/contacts/"+contactID+"/attachments"+query, body)
	req.Header.Set("Authorization", "Bearer "+h.tokens[auth.RoleAgent])
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (h *harness) blobFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(h.blobDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestAttachmentUploadDownload(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		contact := h.contactForUpload(t)
		marker := "CASEVAULT-PLAINTEXT-MARKER-"
		payload := []byte(strings.Repeat(marker+"0123456789", 20000)) // ~750 KB, several 64 KiB packages
		sum := sha256.Sum256(payload)
		digest := hex.EncodeToString(sum[:])

		r := h.upload(t, contact, "?filename=../../etc/%E6%8A%A5%E5%91%8A.txt", bytes.NewReader(payload),
			map[string]string{"Content-Type": "text/plain", "X-Content-SHA256": digest})
		if r.status != 201 {
			t.Fatalf("upload = %d %s", r.status, r.body)
		}
		att := r.json(t)
		if att["sha256"] != digest || int(att["size"].(float64)) != len(payload) || att["filename"] != "报告.txt" {
			t.Fatalf("metadata %v", att)
		}
		id := att["id"].(string)
		// Nothing on disk holds the plaintext.
		for _, f := range h.blobFiles(t) {
			b, _ := os.ReadFile(f)
			if bytes.Contains(b, []byte(marker)) {
				t.Fatalf("blob %s holds plaintext", f)
			}
		}
		res := h.do("GET", "/api/v1/attachments/"+id, h.tokens[auth.RoleAgent], nil)
		if res.status != 200 || !bytes.Equal(res.body, payload) {
			t.Fatalf("download = %d, %d bytes, equal=%v", res.status, len(res.body), bytes.Equal(res.body, payload))
		}
		if cd := res.header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || !strings.Contains(cd, "UTF-8''") {
			t.Fatalf("Content-Disposition %q", cd)
		}
		if res.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatal("no nosniff")
		}
		for _, tc := range []struct {
			rng        string
			status     int
			start, end int
		}{
			{"bytes=0-9", 206, 0, 10},
			{"bytes=65530-65545", 206, 65530, 65546},
			{"bytes=-5", 206, len(payload) - 5, len(payload)},
			{"bytes=700000-", 206, 700000, len(payload)},
			{"bytes=99999999-", 416, 0, 0},
		} {
			req, _ := http.NewRequest("GET", h.base+"/api/v1/attachments/"+id, nil)
			req.Header.Set("Authorization", "Bearer "+h.tokens[auth.RoleLegal])
			req.Header.Set("Range", tc.rng)
			res, err := h.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Fatalf("%s = %d, want %d", tc.rng, res.StatusCode, tc.status)
			}
			if tc.status == 206 && !bytes.Equal(b, payload[tc.start:tc.end]) {
				t.Fatalf("%s returned the wrong bytes", tc.rng)
			}
		}
		// The case timeline lists the attachment under its contact.
		if r := h.do("GET", "/api/v1/contacts/"+contact, h.tokens[auth.RoleAgent], nil); !strings.Contains(string(r.body), id) {
			t.Fatalf("contact does not list its attachment: %s", r.body)
		}
		if r := h.do("GET", "/api/v1/attachments/"+id+"/meta", h.tokens[auth.RoleBackup], nil); r.status != 403 {
			t.Fatalf("backup role reading attachment meta = %d", r.status)
		}
	})
}

func TestAttachmentMultipartAndRejections(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		contact := h.contactForUpload(t)
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, _ := mw.CreateFormFile("file", "..\\..\\scan\u202e.pdf")
		fw.Write([]byte("%PDF-1.4 fake"))
		mw.Close()
		r := h.upload(t, contact, "", &buf, map[string]string{"Content-Type": mw.FormDataContentType()})
		if r.status != 201 || r.json(t)["filename"] != "scan.pdf" {
			t.Fatalf("multipart = %d %s", r.status, r.body)
		}
		before := len(h.blobFiles(t))
		rows := h.counts()
		body := []byte("some bytes")
		wrong := sha256.Sum256([]byte("other bytes"))
		cases := []struct {
			name   string
			query  string
			body   io.Reader
			hdr    map[string]string
			status int
		}{
			{"digest mismatch (hex)", "?filename=a.txt", bytes.NewReader(body), map[string]string{"X-Content-SHA256": hex.EncodeToString(wrong[:])}, 422},
			{"digest mismatch (RFC 9530)", "?filename=a.txt", bytes.NewReader(body), map[string]string{"Content-Digest": "sha-256=:" + base64.StdEncoding.EncodeToString(wrong[:]) + ":"}, 422},
			{"malformed digest", "?filename=a.txt", bytes.NewReader(body), map[string]string{"X-Content-SHA256": "zz"}, 422},
			{"too large by Content-Length", "?filename=big.bin", bytes.NewReader(make([]byte, 2<<20)), nil, 413},
			{"too large streamed", "?filename=big.bin", io.MultiReader(bytes.NewReader(make([]byte, 2<<20))), map[string]string{"Transfer-Encoding": "chunked"}, 413},
			{"unknown contact", "", bytes.NewReader(body), nil, 404},
			{"multipart without file part", "", strings.NewReader("--x\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nv\r\n--x--\r\n"), map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, 422},
		}
		for _, tc := range cases {
			target := contact
			if tc.name == "unknown contact" {
				target = "nope"
			}
			r := h.upload(t, target, tc.query, tc.body, tc.hdr)
			if r.status != tc.status {
				t.Errorf("%s = %d, want %d: %s", tc.name, r.status, tc.status, r.body)
			}
		}
		if after := len(h.blobFiles(t)); after != before {
			t.Fatalf("rejected uploads left %d blob files behind", after-before)
		}
		var n int
		h.db.Read.QueryRow(`SELECT COUNT(*) FROM attachments`).Scan(&n)
		if n != 1 || h.counts()["contacts"] != rows["contacts"] {
			t.Fatalf("attachment rows = %d, want 1", n)
		}
	})
}

// A client that hangs up mid-download must not wedge the server.
func TestAttachmentDownloadClientHangsUp(t *testing.T) {
	h := newHarness(t, "sqlite")
	contact := h.contactForUpload(t)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 56000) // 896 KB: several 256 KiB chunks, under the 1 MiB test limit
	r := h.upload(t, contact, "?filename=big.bin", bytes.NewReader(payload), nil)
	if r.status != 201 {
		t.Fatalf("upload: %d", r.status)
	}
	id := r.json(t)["id"].(string)
	for i := 0; i < 5; i++ {
		req, _ := http.NewRequest("GET", h.base+"/api/v1/attachments/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+h.tokens[auth.RoleAgent])
		res, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 10)
		io.ReadFull(res.Body, buf)
		res.Body.Close() // hang up with most of the body unsent
	}
	if got := h.do("GET", "/api/v1/attachments/"+id, h.tokens[auth.RoleAgent], nil).body; !bytes.Equal(got, payload) {
		t.Fatalf("full download after hang-ups: %d bytes, equal=%v", len(got), bytes.Equal(got, payload))
	}
}
