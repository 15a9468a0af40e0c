package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/testkit"
)

// rawUpload is one upload written byte by byte on a TCP connection, so a
// test can lie about Content-Length, leave out the terminating chunk and
// close the socket, as a crashed or malicious client does.
type rawUpload struct {
	query       string
	contentType string
	// contentLength is the declared length; -1 sends the body chunked.
	contentLength int
	body          []byte
	// terminate sends the final 0 chunk of a chunked body.
	terminate bool
}

func (h *harness) sendRaw(t *testing.T, contactID string, u rawUpload) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	h.sendRawOn(t, conn, contactID, u)
	return conn
}

func multipartBody(t *testing.T, payload []byte) (body []byte, contentType string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.WriteField("note", "before the file")
	fw, err := mw.CreateFormFile("file", "scan.bin")
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(payload)
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

func (h *harness) attachmentRows(t *testing.T, contactID string) int {
	t.Helper()
	var n int
	if err := h.db.Read.QueryRow(h.db.Rebind(`SELECT COUNT(*) FROM attachments WHERE contact_id = ?`), contactID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTruncatedUploadStoresNothing: a body that ends before its declared
// length, or a chunked body without its terminating chunk, must leave no
// row and no blob, and be audited as failed; on a real TCP connection,
// because that is where fasthttp reports a closed socket as a clean end.
func TestTruncatedUploadStoresNothing(t *testing.T) {
	cases := truncatedCases(t)
	forEachDialect(t, func(t *testing.T, h *harness) { h.checkTruncated(t, cases) })
}

type truncCase = struct {
	name string
	u    rawUpload
}

func truncatedCases(t *testing.T) []truncCase {
	payload := make([]byte, 400_000)
	rand.Read(payload)
	mp, mpType := multipartBody(t, payload)
	return []truncCase{
		{"raw content-length short", rawUpload{contentType: "application/octet-stream", query: "?filename=x.bin", contentLength: 900_000, body: payload}},
		{"raw chunked without 0 chunk", rawUpload{contentType: "application/octet-stream", query: "?filename=x.bin", contentLength: -1, body: payload}},
		{"multipart cut inside the file", rawUpload{contentType: mpType, contentLength: len(mp), body: mp[:len(mp)/2]}},
		// All of the multipart framing arrived, the declared body did not.
		{"multipart content-length short after closing boundary", rawUpload{contentType: mpType, contentLength: len(mp) + 500_000, body: mp}},
		{"multipart chunked without 0 chunk", rawUpload{contentType: mpType, contentLength: -1, body: mp}},
	}
}

func (h *harness) checkTruncated(t *testing.T, cases []truncCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			contact := h.contactForUpload(t)
			conn := h.sendRaw(t, contact, tc.u)
			h.waitStreaming(t, contact) // cut mid-stream, not before the server has the request
			conn.Close()
			h.waitAudit(t, "attachment.create:failed:"+contact)
			if n := h.attachmentRows(t, contact); n != 0 {
				t.Fatalf("%d attachment rows stored from a truncated upload", n)
			}
			if h.audit.has("attachment.create:ok:" + contact) {
				t.Fatal("truncated upload audited ok")
			}
			if keys := h.storedBlobs(t); len(keys) != 0 {
				t.Fatalf("blobs left behind: %v", keys)
			}
		})
	}
}

func (h *harness) waitAudit(t *testing.T, want string) {
	t.Helper()
	defer func() {
		// What was recorded instead tells a commit (attachment.create:ok)
		// from a handler that never finished.
		if t.Failed() {
			t.Logf("audit events recorded: %v", h.audit.recorded())
		}
	}()
	testkit.Eventually(t, 15*time.Second, "audit event "+want, func() bool { return h.audit.has(want) })
}

// storedBlobs lists the attachment blobs in the store (any backend).
func (h *harness) storedBlobs(t *testing.T) []string {
	t.Helper()
	var keys []string
	err := h.blobs.List(context.Background(), archive.BlobPrefix, func(b archive.BlobInfo) error {
		keys = append(keys, b.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestCompleteRawUploadsOnOneConnection is the control: the same framings,
// complete, are stored, and the connection stays usable for the next
// request (the end-of-body checks must not consume or break it).
func TestCompleteRawUploadsOnOneConnection(t *testing.T) {
	payload := make([]byte, 200_000)
	rand.Read(payload)
	mp, mpType := multipartBody(t, payload)
	forEachDialect(t, func(t *testing.T, h *harness) {
		contact := h.contactForUpload(t)
		uploads := []rawUpload{
			{contentType: "application/octet-stream", query: "?filename=a.bin", contentLength: len(payload), body: payload},
			{contentType: "application/octet-stream", query: "?filename=b.bin", contentLength: -1, body: payload, terminate: true},
			{contentType: mpType, contentLength: len(mp), body: mp},
			{contentType: mpType, contentLength: -1, body: mp, terminate: true},
		}
		conn, err := net.Dial("tcp", strings.TrimPrefix(h.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		for i, u := range uploads {
			c := h.sendRawOn(t, conn, contact, u)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("upload %d: %v", i, err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 201 {
				t.Fatalf("upload %d (%d bytes sent) = %d %s", i, c, res.StatusCode, b)
			}
			if !strings.Contains(string(b), fmt.Sprintf(`"size":%d`, len(payload))) {
				t.Fatalf("upload %d stored %s", i, b)
			}
		}
		if n := h.attachmentRows(t, contact); n != len(uploads) {
			t.Fatalf("%d rows, want %d", n, len(uploads))
		}
	})
}

// sendRawOn writes u on an open connection and returns the bytes sent.
func (h *harness) sendRawOn(t *testing.T, conn net.Conn, contactID string, u rawUpload) int {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST /api/v1/contacts/%s/attachments%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\n",
		contactID, u.query, h.tokens[auth.RoleAgent], u.contentType)
	if u.contentLength >= 0 {
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", u.contentLength)
		b.Write(u.body)
	} else {
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		fmt.Fprintf(&b, "%x\r\n", len(u.body))
		b.Write(u.body)
		b.WriteString("\r\n")
		if u.terminate {
			b.WriteString("0\r\n\r\n")
		}
	}
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	return b.Len()
}
