package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
)

// FuzzMultipartUpload drives the upload path the handler uses (filePart's
// stream reader, then the real attachment service on SQLite and a local
// blob store) with fuzzed filenames, content types, contents and damaged
// framing. Properties: nothing panics; an upload is either refused with a
// 4xx (as the handler would map it) or stored, and then the stored bytes
// are exactly the file part a reference parser (mime/multipart over the
// whole body) sees, the stored name is safe and the stored type parses.
//
//	go test ./api -run '^$' -fuzz FuzzMultipartUpload -fuzztime 30s
func FuzzMultipartUpload(f *testing.F) {
	db := sqldbtest.Open(f, sqldb.SQLite)
	blobs, err := local.New(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	keys, err := archive.NewKeyring(db, make([]byte, 32), archive.KeyringOptions{})
	if err != nil {
		f.Fatal(err)
	}
	const maxSize = 64 << 10
	atts := archive.NewAttachments(db, blobs, keys, archive.AttachmentOptions{MaxSize: maxSize})
	contactID := fuzzContact(f, db)
	srv := &Server{}

	f.Add("report.pdf", "application/pdf", []byte("%PDF-1.7 hello"), uint8(0), []byte{})
	f.Add("../../etc/passwd", "", []byte("root:x:0:0"), uint8(0), []byte{})
	f.Add("报告\u202e.txt", "text/plain; charset=utf-8", []byte("中文内容"), uint8(0), []byte{})
	f.Add("a\"b;c\r\nX-Evil: 1", "multipart/mixed; boundary=zz", []byte("--zz\r\n"), uint8(1), []byte("cut"))
	f.Add("", "text/html", []byte("<script>alert(1)</script>"), uint8(2), []byte("\r\nepilogue"))
	f.Add("x.bin", "application/octet-stream", bytes.Repeat([]byte{0}, 70<<10), uint8(0), []byte{})
	f.Add("garbage", "", []byte{}, uint8(3), []byte("--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nraw\r\n--B--\r\n"))
	f.Add("two", "", []byte("first"), uint8(4), []byte("second part"))

	f.Fuzz(func(t *testing.T, filename, contentType string, content []byte, mangle uint8, tail []byte) {
		const boundary = "B"
		body := buildMultipart(filename, contentType, content, boundary)
		switch mangle % 5 {
		case 1: // truncated somewhere
			if len(body) > 0 {
				body = body[:len(tail)%len(body)]
			}
		case 2: // an epilogue after the closing boundary
			body = append(body, tail...)
		case 3: // arbitrary bytes as the whole body
			body = tail
		case 4: // a second file part after the first
			body = bytes.TrimSuffix(body, []byte("--"+boundary+"--\r\n"))
			body = append(body, buildMultipart("second", "", tail, boundary)...)
		}
		want, refOK := referenceFile(body, boundary)

		part, err := filePart(bytes.NewReader(body), boundary)
		if err != nil {
			clientError(t, srv, err)
			return
		}
		in := archive.AttachmentInput{ContactID: contactID, Filename: part.FileName(), ContentType: part.Header.Get("Content-Type"), Body: part}
		if in.Filename == "" {
			in.Filename = "attachment"
		}
		att, err := atts.Put(context.Background(), in)
		if err != nil {
			clientError(t, srv, err)
			return
		}
		if !refOK {
			t.Fatalf("stored an upload the reference parser rejects: %q", body)
		}
		_, rc, err := atts.Open(context.Background(), att.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("stored %d bytes %q, the file part is %d bytes %q", len(got), trim(got), len(want), trim(want))
		}
		if att.Size != int64(len(want)) {
			t.Fatalf("size %d, want %d", att.Size, len(want))
		}
		checkFilename(t, att.Filename)
		if _, _, err := mime.ParseMediaType(att.ContentType); err != nil {
			t.Fatalf("stored content type %q does not parse: %v", att.ContentType, err)
		}
	})
}

// clientError fails unless err maps to a 4xx, as the handler maps it.
func clientError(t *testing.T, srv *Server, err error) {
	t.Helper()
	st := srv.problemFor(uploadError(err, 0)).Status
	if st < 400 || st >= 500 {
		t.Fatalf("error %v maps to %d, want a 4xx", err, st)
	}
}

func checkFilename(t *testing.T, name string) {
	t.Helper()
	if name == "" || !utf8.ValidString(name) || strings.ContainsAny(name, `/\`) || strings.Trim(name, ".") == "" {
		t.Fatalf("unsafe stored filename %q", name)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			t.Fatalf("stored filename %q has control character %U", name, r)
		}
	}
}

func buildMultipart(filename, contentType string, content []byte, boundary string) []byte {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.SetBoundary(boundary)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename="%s"`, strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", "", "\n", "").Replace(filename)))
	if contentType != "" {
		h.Set("Content-Type", strings.NewReplacer("\r", "", "\n", "").Replace(contentType))
	}
	w, _ := mw.CreatePart(h)
	_, _ = w.Write(content)
	_ = mw.Close()
	return b.Bytes()
}

// referenceFile is what the standard library's reader finds as the first
// part named file, and whether the whole body is well-formed multipart.
func referenceFile(body []byte, boundary string) ([]byte, bool) {
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var file []byte
	found := false
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return file, found
		}
		if err != nil {
			return nil, false
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return nil, false
		}
		if !found && p.FormName() == "file" {
			file, found = b, true
		}
	}
}

func trim(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

func fuzzContact(f *testing.F, db *sqldb.DB) string {
	ctx := context.Background()
	svc := cases.NewService(sqlstore.New(db, sqlstore.Options{Policy: retention.NewPolicy(retention.DefaultSchedule())}), nil)
	a := cases.Actor{Name: "fuzz", Role: "admin"}
	str := func(s string) *string { return &s }
	cust, err := svc.CreateCustomer(ctx, cases.NewCustomer{Name: str("Fuzz")}, a)
	if err != nil {
		f.Fatal(err)
	}
	ch := cases.Channel("email")
	cs, err := svc.CreateCase(ctx, cases.NewCase{CustomerID: &cust.ID, Subject: str("fuzz"), Channel: &ch}, a)
	if err != nil {
		f.Fatal(err)
	}
	dir := cases.Direction("inbound")
	ct, err := svc.AddContact(ctx, cs.ID, cases.NewContact{Channel: &ch, Direction: &dir, Author: str("c"), Body: str("b")}, a)
	if err != nil {
		f.Fatal(err)
	}
	return ct.ID
}
