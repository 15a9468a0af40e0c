package archive_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/casevault/casevault/archive"
)

func TestSanitizeFilename(t *testing.T) {
	long := strings.Repeat("报", 100) + ".pdf" // 300 bytes + 4
	cases := []struct{ in, want string }{
		{"report.pdf", "report.pdf"},
		{"../../etc/passwd", "passwd"},
		{`a\b\c.txt`, "c.txt"},
		{`C:\Users\x\Desktop\scan.png`, "scan.png"},
		{"报告.pdf", "报告.pdf"},
		{"Überprüfung – März.docx", "Überprüfung – März.docx"},
		{"", "attachment"},
		{"   ", "attachment"},
		{".", "attachment"},
		{"..", "attachment"},
		{"...", "attachment"},
		{"dir/", "attachment"},
		{"a\x00b\nc\rd\te.txt", "abcde.txt"},
		{"evil\u202Etxt.exe", "eviltxt.exe"},
		{"bad\xff\xfeutf8.txt", "badutf8.txt"},
		{" spaced name.txt ", "spaced name.txt"},
		{".bashrc", ".bashrc"},
	}
	for _, c := range cases {
		if got := archive.SanitizeFilename(c.in); got != c.want {
			t.Errorf("SanitizeFilename(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	got := archive.SanitizeFilename(long)
	if len(got) > archive.MaxFilenameLen || !utf8.ValidString(got) || !strings.HasSuffix(got, ".pdf") || !strings.HasPrefix(got, "报报") {
		t.Errorf("long name gave %q (%d bytes), want ≤255 valid UTF-8 bytes keeping .pdf", got, len(got))
	}
	if got := archive.SanitizeFilename(strings.Repeat("x", 1000)); len(got) != archive.MaxFilenameLen {
		t.Errorf("1000 x's gave %d bytes, want %d", len(got), archive.MaxFilenameLen)
	}
}

func TestDetectContentType(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	cases := []struct {
		client string
		head   []byte
		want   string
	}{
		{"", png, "image/png"},
		{"application/octet-stream", png, "image/png"},
		{"application/pdf", png, "application/pdf"},
		{"Text/Plain; charset=UTF-8", []byte("hi"), "text/plain; charset=UTF-8"},
		{"not a type", []byte("hello"), "text/plain; charset=utf-8"},
		{"multipart/form-data; boundary=x", []byte("%PDF-1.7"), "application/pdf"},
		{"", nil, "text/plain; charset=utf-8"},
	}
	for _, c := range cases {
		if got := archive.DetectContentType(c.client, c.head); got != c.want {
			t.Errorf("DetectContentType(%q, %q) = %q, want %q", c.client, c.head, got, c.want)
		}
	}
}

func TestParseDigestHeaders(t *testing.T) {
	// SHA-256 of "hello world".
	const hexSum = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
	raw := []byte{0xb9, 0x4d, 0x27, 0xb9, 0x93, 0x4d, 0x3e, 0x08, 0xa5, 0x2e, 0x52, 0xd7, 0xda, 0x7d, 0xab, 0xfa,
		0xc4, 0x84, 0xef, 0xe3, 0x7a, 0x53, 0x80, 0xee, 0x90, 0x88, 0xf7, 0xac, 0xe2, 0xef, 0xcd, 0xe9}
	b64 := base64.StdEncoding.EncodeToString(raw)
	cases := []struct {
		name, cd, x, want string
		bad               bool
	}{
		{"none", "", "", "", false},
		{"content-digest", "sha-256=:" + b64 + ":", "", hexSum, false},
		{"content-digest uppercase alg", "SHA-256=:" + b64 + ":", "", hexSum, false},
		{"content-digest among others", "sha-512=:AAAA:, sha-256=:" + b64 + ":", "", hexSum, false},
		{"only other algorithms", "sha-512=:AAAA:", "", "", false},
		{"hex header", "", hexSum, hexSum, false},
		{"hex header uppercase", "", strings.ToUpper(hexSum), hexSum, false},
		{"both agree", "sha-256=:" + b64 + ":", hexSum, hexSum, false},
		{"both disagree", "sha-256=:" + b64 + ":", strings.Repeat("0", 64), "", true},
		{"no colons", "sha-256=" + b64, "", "", true},
		{"bad base64", "sha-256=:!!!:", "", "", true},
		{"short digest", "sha-256=:AAAA:", "", "", true},
		{"no equals", "sha-256", "", "", true},
		{"hex too short", "", "abcd", "", true},
		{"hex not hex", "", strings.Repeat("z", 64), "", true},
	}
	for _, c := range cases {
		got, err := archive.ParseDigestHeaders(c.cd, c.x)
		if c.bad {
			if !errors.Is(err, archive.ErrInvalidDigest) {
				t.Errorf("%s: err = %v, want ErrInvalidDigest", c.name, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: got %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

func TestExactReader(t *testing.T) {
	cases := []struct {
		data     string
		declared int64
		ok       bool
	}{{"hello", 5, true}, {"", 0, true}, {"hello", 4, false}, {"hello", 6, false}, {"", 1, false}}
	for _, c := range cases {
		got, err := io.ReadAll(archive.ExactReader(strings.NewReader(c.data), c.declared))
		if c.ok && (err != nil || string(got) != c.data) {
			t.Errorf("ExactReader(%q, %d) = %q, %v", c.data, c.declared, got, err)
		}
		if !c.ok && !errors.Is(err, archive.ErrSizeMismatch) {
			t.Errorf("ExactReader(%q, %d): err %v, want ErrSizeMismatch", c.data, c.declared, err)
		}
	}
}

func TestSplitKey(t *testing.T) {
	good := []string{"a", "att/c1/0190", "报告/x.pdf", "a.b/..c", "a/.hidden"}
	for _, k := range good {
		if _, err := archive.SplitKey(k); err != nil {
			t.Errorf("SplitKey(%q) = %v, want ok", k, err)
		}
	}
	bad := []string{"", "/a", "a/", "a//b", ".", "..", "a/../b", "a/./b", `a\b`, "a\x00", "a\x7f", ".tmp-1", strings.Repeat("x", 256)}
	for _, k := range bad {
		if _, err := archive.SplitKey(k); !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("SplitKey(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
}

func TestEncryptedSize(t *testing.T) {
	// Header 36 bytes; each 64 KiB package carries 32 bytes of overhead.
	cases := map[int64]int64{0: 36, 1: 36 + 1 + 32, 65536: 36 + 65536 + 32, 65537: 36 + 65536 + 32 + 1 + 32}
	for n, want := range cases {
		if got := archive.EncryptedSize(n); got != want {
			t.Errorf("EncryptedSize(%d) = %d, want %d", n, got, want)
		}
	}
	_ = bytes.MinRead
}
