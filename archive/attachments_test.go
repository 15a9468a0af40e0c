package archive_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/archive/s3"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// env is one service over a real database and a real blob store.
type env struct {
	db    *sqldb.DB
	blobs archive.Blobs
	keys  *archive.Keyring
	att   *archive.Attachments
	// scanRoot is a directory holding every stored byte ("" if unknown).
	scanRoot string
}

type backend struct {
	name string
	open func(t *testing.T) (archive.Blobs, string)
}

func backends() []backend {
	return []backend{
		{"local", func(t *testing.T) (archive.Blobs, string) {
			root := filepath.Join(t.TempDir(), "blobs")
			s, err := local.New(root)
			if err != nil {
				t.Fatal(err)
			}
			return s, root
		}},
		{"s3", func(t *testing.T) (archive.Blobs, string) {
			srv := blobtest.EnvS3(t)
			// A bucket per test keeps the scans and the reconciler honest.
			bucket := fmt.Sprintf("cv-%d", time.Now().UnixNano())
			s, err := s3.New(context.Background(), s3.Config{Endpoint: srv.Endpoint, Bucket: bucket,
				AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PartSize: 5 << 20, MaxRetries: 1})
			if err != nil {
				t.Fatal(err)
			}
			root := ""
			if srv.Root != "" {
				root = filepath.Join(srv.Root, bucket)
			}
			return s, root
		}},
	}
}

// matrix runs fn on every database dialect × blob backend.
func matrix(t *testing.T, opts archive.AttachmentOptions, fn func(t *testing.T, e *env)) {
	for _, d := range sqldbtest.Dialects {
		for _, b := range backends() {
			t.Run(string(d)+"/"+b.name, func(t *testing.T) {
				db := sqldbtest.Open(t, d)
				blobs, root := b.open(t)
				fn(t, newEnv(t, db, blobs, root, opts))
			})
		}
	}
}

func newEnv(t *testing.T, db *sqldb.DB, blobs archive.Blobs, root string, opts archive.AttachmentOptions) *env {
	kr, err := archive.NewKeyring(db, masterKey(9), archive.KeyringOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &env{db: db, blobs: blobs, keys: kr, att: archive.NewAttachments(db, blobs, kr, opts), scanRoot: root}
}

// contact inserts a customer, a case and a contact and returns the
// contact's and the customer's IDs.
func (e *env) contact(t testing.TB) (contactID, customerID string) {
	t.Helper()
	ctx := context.Background()
	cust, cs, ct := cases.NewID(), cases.NewID(), cases.NewID()
	now := time.Now().UnixMicro()
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, e.db.Rebind(`INSERT INTO customers (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)`), cust, "Ada", now, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, e.db.Rebind(`UPDATE counters SET value = value + 1 WHERE name = 'case_number'`)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, e.db.Rebind(`INSERT INTO cases (id, number, customer_id, subject, status, priority, channel, created_at, updated_at)
			VALUES (?, (SELECT value FROM counters WHERE name = 'case_number'), ?, 's', 'open', 'normal', 'email', ?, ?)`), cs, cust, now, now); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, e.db.Rebind(`INSERT INTO contacts (id, case_id, customer_id, channel, direction, author, body, occurred_at, created_at, purposes, categories)
			VALUES (?, ?, ?, 'email', 'inbound', 'a', 'b', ?, ?, '[]', '[]')`), ct, cs, cust, now, now)
		return err
	})
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return ct, cust
}

func (e *env) put(t *testing.T, contactID string, data []byte) cases.Attachment {
	t.Helper()
	att, err := e.att.Put(context.Background(), archive.AttachmentInput{ContactID: contactID, Filename: "f.bin", Body: onlyReader{bytes.NewReader(data)}})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	return att
}

func (e *env) rows(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.db.Read.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM attachments`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) blobKeys(t *testing.T) []string {
	t.Helper()
	keys := []string{}
	if err := e.blobs.List(context.Background(), "", func(b archive.BlobInfo) error { keys = append(keys, b.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

func (e *env) blobKey(t *testing.T, id string) string {
	t.Helper()
	var k string
	if err := e.db.Read.QueryRowContext(context.Background(), e.db.Rebind(`SELECT blob_key FROM attachments WHERE id = ?`), id).Scan(&k); err != nil {
		t.Fatal(err)
	}
	return k
}

func readAll(t *testing.T, e *env, id string) ([]byte, error) {
	t.Helper()
	_, rc, err := e.att.Open(context.Background(), id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

const pkg = 64 << 10

func TestPutOpenRoundTrip(t *testing.T) {
	matrix(t, archive.AttachmentOptions{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		contactID, _ := e.contact(t)
		for _, size := range []int{0, 1, 511, 512, pkg - 1, pkg, pkg + 1, 3*pkg + 100} {
			t.Run(fmt.Sprint(size), func(t *testing.T) {
				data := blobtest.RandBytes(size)
				att := e.put(t, contactID, data)
				if att.Size != int64(size) || att.SHA256 != sum(data) || att.ContactID != contactID || att.Filename != "f.bin" {
					t.Fatalf("Put returned %+v", att)
				}
				meta, err := e.att.Meta(ctx, att.ID)
				if err != nil || meta != att {
					t.Fatalf("Meta = %+v, %v; want %+v", meta, err, att)
				}
				got, err := readAll(t, e, att.ID)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("Open: %d bytes, %v; want %d bytes", len(got), err, size)
				}
			})
		}
		list, err := e.att.ListByContact(ctx, contactID)
		if err != nil || len(list) != 8 {
			t.Fatalf("ListByContact: %d, %v", len(list), err)
		}
	})
}

func TestContentTypeAndFilename(t *testing.T) {
	matrix(t, archive.AttachmentOptions{}, func(t *testing.T, e *env) {
		contactID, _ := e.contact(t)
		pdf := []byte("%PDF-1.7\n" + strings.Repeat("x", 1000))
		for _, c := range []struct{ client, name, wantType, wantName string }{
			{"", "../../etc/报告.pdf", "application/pdf", "报告.pdf"},
			{"application/octet-stream", "a\x00.pdf", "application/pdf", "a.pdf"},
			{"application/x-custom", "x", "application/x-custom", "x"},
		} {
			att, err := e.att.Put(context.Background(), archive.AttachmentInput{ContactID: contactID, Filename: c.name, ContentType: c.client, Body: bytes.NewReader(pdf)})
			if err != nil {
				t.Fatal(err)
			}
			if att.ContentType != c.wantType || att.Filename != c.wantName {
				t.Errorf("Put(%q, %q) stored %q %q; want %q %q", c.client, c.name, att.ContentType, att.Filename, c.wantType, c.wantName)
			}
		}
	})
}

func TestRanges(t *testing.T) {
	matrix(t, archive.AttachmentOptions{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		contactID, _ := e.contact(t)
		size := int64(3*pkg + 100)
		data := blobtest.RandBytes(int(size))
		att := e.put(t, contactID, data)
		for _, c := range []struct{ off, n int64 }{
			{0, 1}, {0, pkg}, {0, pkg + 1}, {pkg - 1, 1}, {pkg - 1, 2}, {pkg, 1}, {pkg, pkg}, {pkg - 1, pkg + 2},
			{2*pkg - 1, 1}, {2 * pkg, 10}, {3 * pkg, 100}, {3*pkg - 1, 101}, {size - 1, 1}, {size - 5, -1},
			{10, -1}, {0, -1}, {size - 3, 50}, {size, 0}, {size, -1}, {100, 0},
		} {
			_, rc, err := e.att.OpenRange(ctx, att.ID, c.off, c.n)
			if err != nil {
				t.Fatalf("OpenRange(%d, %d): %v", c.off, c.n, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			end := size
			if c.n >= 0 && c.off+c.n < size {
				end = c.off + c.n
			}
			if err != nil || !bytes.Equal(got, data[c.off:end]) {
				t.Fatalf("OpenRange(%d, %d) = %d bytes, %v; want %d bytes", c.off, c.n, len(got), err, end-c.off)
			}
		}
		for _, off := range []int64{-1, size + 1} {
			if _, _, err := e.att.OpenRange(ctx, att.ID, off, 1); !errors.Is(err, archive.ErrInvalidRange) {
				t.Fatalf("OpenRange(%d): %v, want ErrInvalidRange", off, err)
			}
		}
		// The seeker, used the way http.ServeContent uses it.
		_, rs, err := e.att.OpenSeeker(ctx, att.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		if end, err := rs.Seek(0, io.SeekEnd); err != nil || end != size {
			t.Fatalf("Seek end = %d, %v", end, err)
		}
		for _, c := range []struct{ off, n int64 }{{0, 10}, {pkg - 3, 7}, {2*pkg + 5, pkg}, {size - 2, 2}, {0, size}} {
			if _, err := rs.Seek(c.off, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, c.n)
			if _, err := io.ReadFull(rs, got); err != nil || !bytes.Equal(got, data[c.off:c.off+c.n]) {
				t.Fatalf("seeker [%d, +%d): %v", c.off, c.n, err)
			}
		}
		if n, err := rs.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("read at end: %d, %v", n, err)
		}
		if _, err := rs.Seek(-1, io.SeekStart); err == nil {
			t.Fatal("negative seek accepted")
		}
		// Sequential reads continue across packages without reseeking.
		if _, err := rs.Seek(pkg-1, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		a, _ := io.ReadAll(io.LimitReader(rs, 5))
		b, _ := io.ReadAll(io.LimitReader(rs, 5))
		if !bytes.Equal(append(a, b...), data[pkg-1:pkg+9]) {
			t.Fatal("sequential seeker reads wrong")
		}
	})
}

// A range read fetches only the packages it needs from the store.
type countingBlobs struct {
	archive.Blobs
	ranges [][2]int64
}

func (c *countingBlobs) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	c.ranges = append(c.ranges, [2]int64{off, n})
	return c.Blobs.GetRange(ctx, key, off, n)
}

func TestRangeFetchesOnlyNeededPackages(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.SQLite)
	store, _ := local.New(t.TempDir())
	cb := &countingBlobs{Blobs: store}
	e := newEnv(t, db, cb, "", archive.AttachmentOptions{})
	contactID, _ := e.contact(t)
	data := blobtest.RandBytes(10 * pkg)
	att := e.put(t, contactID, data)
	cb.ranges = nil
	_, rc, err := e.att.OpenRange(context.Background(), att.ID, 5*pkg+10, 20)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data[5*pkg+10:5*pkg+30]) {
		t.Fatalf("range read wrong: %v", err)
	}
	var fetched int64
	for _, r := range cb.ranges {
		if r[1] < 0 {
			t.Fatalf("open-ended fetch %v for a 20-byte range", r)
		}
		fetched += r[1]
	}
	if fetched > 36+pkg+32 {
		t.Fatalf("fetched %d stored bytes (%v) for a 20-byte range inside one package", fetched, cb.ranges)
	}
}

func TestDigest(t *testing.T) {
	matrix(t, archive.AttachmentOptions{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		contactID, _ := e.contact(t)
		for _, size := range []int{100, 3 << 20} {
			data := blobtest.RandBytes(size)
			// Right digest (any case) is accepted.
			att, err := e.att.Put(ctx, archive.AttachmentInput{ContactID: contactID, Body: bytes.NewReader(data), ExpectedSHA256: strings.ToUpper(sum(data))})
			if err != nil || att.SHA256 != sum(data) {
				t.Fatalf("Put with the right digest: %+v, %v", att, err)
			}
			rowsBefore, blobsBefore := e.rows(t), len(e.blobKeys(t))
			_, err = e.att.Put(ctx, archive.AttachmentInput{ContactID: contactID, Body: bytes.NewReader(data), ExpectedSHA256: sum([]byte("other"))})
			if !errors.Is(err, archive.ErrDigestMismatch) {
				t.Fatalf("Put with a wrong digest: %v, want ErrDigestMismatch", err)
			}
			if e.rows(t) != rowsBefore || len(e.blobKeys(t)) != blobsBefore {
				t.Fatalf("digest mismatch left something: rows %d→%d, blobs %d→%d", rowsBefore, e.rows(t), blobsBefore, len(e.blobKeys(t)))
			}
		}
		var ve *cases.ValidationError
		if _, err := e.att.Put(ctx, archive.AttachmentInput{ContactID: contactID, Body: strings.NewReader("x"), ExpectedSHA256: "abc"}); !errors.As(err, &ve) {
			t.Fatalf("malformed expected digest: %v, want a ValidationError", err)
		}
	})
}

// endless never ends and counts what was read from it.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'A'
	}
	e.n += int64(len(p))
	return len(p), nil
}

func TestTooLarge(t *testing.T) {
	const max = 200_000
	matrix(t, archive.AttachmentOptions{MaxSize: max}, func(t *testing.T, e *env) {
		ctx := context.Background()
		contactID, _ := e.contact(t)
		if _, err := e.att.Put(ctx, archive.AttachmentInput{ContactID: contactID, Body: bytes.NewReader(blobtest.RandBytes(max))}); err != nil {
			t.Fatalf("exactly MaxSize: %v", err)
		}
		rowsBefore, blobsBefore := e.rows(t), len(e.blobKeys(t))
		for _, body := range []io.Reader{bytes.NewReader(blobtest.RandBytes(max + 1)), &endless{}} {
			_, err := e.att.Put(ctx, archive.AttachmentInput{ContactID: contactID, Body: body})
			if !errors.Is(err, archive.ErrTooLarge) {
				t.Fatalf("over the limit: %v, want ErrTooLarge", err)
			}
			if en, ok := body.(*endless); ok && en.n > max+1 {
				t.Fatalf("read %d bytes of an endless body with a limit of %d", en.n, max)
			}
		}
		if e.rows(t) != rowsBefore || len(e.blobKeys(t)) != blobsBefore {
			t.Fatalf("too large left something behind")
		}
		if e.att.MaxSize() != max {
			t.Fatalf("MaxSize = %d", e.att.MaxSize())
		}
	})
}

// Nothing stored contains the plaintext: scan the store through its API
// and, when known, the directory behind it.
func TestNoPlaintextAtRest(t *testing.T) {
	matrix(t, archive.AttachmentOptions{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		contactID, _ := e.contact(t)
		marker := []byte("CASEVAULT-PLAINTEXT-MARKER-7f3a")
		// Short and long, compressible and not.
		bodies := [][]byte{marker, bytes.Repeat(marker, 50_000), append(blobtest.RandBytes(70_000), marker...)}
		for _, b := range bodies {
			att, err := e.att.Put(ctx, archive.AttachmentInput{ContactID: contactID, Filename: "marker-name.txt", Body: bytes.NewReader(b)})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := readAll(t, e, att.ID); err != nil || !bytes.Equal(got, b) {
				t.Fatalf("read back: %v", err)
			}
		}
		needles := [][]byte{marker, marker[:16], []byte("marker-name")}
		scanned := 0
		for _, k := range e.blobKeys(t) {
			rc, err := e.blobs.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(rc)
			rc.Close()
			scanned++
			for _, n := range needles {
				if bytes.Contains(raw, n) {
					t.Fatalf("blob %s contains plaintext %q", k, n)
				}
			}
		}
		if scanned != len(bodies) {
			t.Fatalf("scanned %d blobs, want %d", scanned, len(bodies))
		}
		if e.scanRoot == "" {
			t.Log("no directory behind the store to scan; scanned through the API only")
			return
		}
		files := 0
		err := filepath.WalkDir(e.scanRoot, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			raw, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files++
			for _, n := range needles {
				if bytes.Contains(raw, n) {
					return fmt.Errorf("file %s contains plaintext %q", p, n)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if files < len(bodies) {
			t.Fatalf("scanned %d files under %s, want at least %d", files, e.scanRoot, len(bodies))
		}
	})
}

// Any change to a stored object makes reads fail; bytes delivered before
// the failure are always the original ones.
func TestTamperDetected(t *testing.T) {
	matrix(t, archive.AttachmentOptions{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		contactID, _ := e.contact(t)
		data := blobtest.RandBytes(3*pkg + 100)
		att := e.put(t, contactID, data)
		key := e.blobKey(t, att.ID)
		orig := blobtest.ReadAll(t, e.blobs, key)
		const hdr = 36
		pk := int64(pkg + 32)
		mods := map[string]func([]byte) []byte{
			"magic":              func(b []byte) []byte { b[0] ^= 1; return b },
			"salt":               func(b []byte) []byte { b[10] ^= 1; return b },
			"first package data": func(b []byte) []byte { b[hdr+16+5] ^= 0x80; return b },
			"second package hdr": func(b []byte) []byte { b[hdr+int(pk)+3] ^= 1; return b },
			"third package tag":  func(b []byte) []byte { b[hdr+3*int(pk)-1] ^= 1; return b },
			"last byte":          func(b []byte) []byte { b[len(b)-1] ^= 1; return b },
			"truncated package":  func(b []byte) []byte { return b[:hdr+3*pk] },
			"truncated byte":     func(b []byte) []byte { return b[:len(b)-1] },
			"appended":           func(b []byte) []byte { return append(b, 0) },
			"packages swapped": func(b []byte) []byte {
				c := append([]byte(nil), b...)
				copy(c[hdr:hdr+pk], b[hdr+pk:hdr+2*pk])
				copy(c[hdr+pk:hdr+2*pk], b[hdr:hdr+pk])
				return c
			},
		}
		for name, mod := range mods {
			t.Run(name, func(t *testing.T) {
				blobtest.MustPut(t, e.blobs, key, mod(append([]byte(nil), orig...)))
				got, err := readAll(t, e, att.ID)
				if !errors.Is(err, archive.ErrCorrupt) {
					t.Fatalf("reading a modified object: %v (%d bytes), want ErrCorrupt", err, len(got))
				}
				if !bytes.Equal(got, data[:len(got)]) {
					t.Fatalf("a modified object returned altered bytes")
				}
			})
		}
		// Ranges inside a modified package fail too; untouched packages
		// still read.
		b := append([]byte(nil), orig...)
		b[hdr+int(pk)+100] ^= 1
		blobtest.MustPut(t, e.blobs, key, b)
		_, rc, err := e.att.OpenRange(ctx, att.ID, pkg+10, 10)
		if err == nil {
			_, err = io.ReadAll(rc)
			rc.Close()
		}
		if !errors.Is(err, archive.ErrCorrupt) {
			t.Fatalf("range over a modified package: %v, want ErrCorrupt", err)
		}
		_, rc, err = e.att.OpenRange(ctx, att.ID, 2*pkg, 10)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data[2*pkg:2*pkg+10]) {
			t.Fatalf("range over an intact package: %v", err)
		}
		blobtest.MustPut(t, e.blobs, key, orig)
		if got, err := readAll(t, e, att.ID); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("restored object: %v", err)
		}
	})
}

// A blob copied over another attachment of the same customer does not
// decrypt: the object key is bound to the attachment ID.
func TestSwappedBlobDetected(t *testing.T) {
	matrix(t, archive.AttachmentOptions{}, func(t *testing.T, e *env) {
		contactID, _ := e.contact(t)
		a := e.put(t, contactID, []byte("first attachment"))
		b := e.put(t, contactID, []byte("second attachment"))
		blobtest.MustPut(t, e.blobs, e.blobKey(t, b.ID), blobtest.ReadAll(t, e.blobs, e.blobKey(t, a.ID)))
		if _, err := readAll(t, e, b.ID); !errors.Is(err, archive.ErrCorrupt) {
			t.Fatalf("swapped blob: %v, want ErrCorrupt", err)
		}
	})
}

func TestKeyDestroyed(t *testing.T) {
	matrix(t, archive.AttachmentOptions{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		contactID, customerID := e.contact(t)
		other, _ := e.contact(t)
		att := e.put(t, contactID, []byte("to be shredded"))
		kept := e.put(t, other, []byte("another customer"))
		if err := e.keys.Destroy(ctx, customerID); err != nil {
			t.Fatal(err)
		}
		if _, err := readAll(t, e, att.ID); !errors.Is(err, archive.ErrKeyDestroyed) {
			t.Fatalf("Open after Destroy: %v, want ErrKeyDestroyed", err)
		}
		if _, _, err := e.att.OpenRange(ctx, att.ID, 1, 2); !errors.Is(err, archive.ErrKeyDestroyed) {
			t.Fatalf("OpenRange after Destroy: %v", err)
		}
		blobs := len(e.blobKeys(t))
		if _, err := e.att.Put(ctx, archive.AttachmentInput{ContactID: contactID, Body: strings.NewReader("new")}); !errors.Is(err, archive.ErrKeyDestroyed) {
			t.Fatalf("Put after Destroy: %v, want ErrKeyDestroyed", err)
		}
		if len(e.blobKeys(t)) != blobs {
			t.Fatal("Put after Destroy left a blob")
		}
		if got, err := readAll(t, e, kept.ID); err != nil || string(got) != "another customer" {
			t.Fatalf("other customer's attachment: %q, %v", got, err)
		}
	})
}

func TestInTxHookAndErrors(t *testing.T) {
	matrix(t, archive.AttachmentOptions{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		contactID, customerID := e.contact(t)
		var seen cases.Attachment
		att, err := e.att.Put(ctx, archive.AttachmentInput{ContactID: contactID, CustomerID: customerID, Body: strings.NewReader("hooked"),
			InTx: func(ctx context.Context, tx *sql.Tx, a cases.Attachment) error {
				seen = a
				// The row is visible inside the transaction.
				var n int
				return tx.QueryRowContext(ctx, e.db.Rebind(`SELECT COUNT(*) FROM attachments WHERE id = ?`), a.ID).Scan(&n)
			}})
		if err != nil || seen != att {
			t.Fatalf("hook saw %+v, Put returned %+v, %v", seen, att, err)
		}
		rows, blobs := e.rows(t), len(e.blobKeys(t))
		boom := errors.New("audit failed")
		_, err = e.att.Put(ctx, archive.AttachmentInput{ContactID: contactID, Body: strings.NewReader("rolled back"),
			InTx: func(context.Context, *sql.Tx, cases.Attachment) error { return boom }})
		if !errors.Is(err, boom) {
			t.Fatalf("failing hook: %v", err)
		}
		if e.rows(t) != rows || len(e.blobKeys(t)) != blobs {
			t.Fatal("a failed hook left a row or a blob")
		}
		if _, err := e.att.Put(ctx, archive.AttachmentInput{ContactID: "no-such-contact", Body: strings.NewReader("x")}); !errors.Is(err, cases.ErrNotFound) {
			t.Fatalf("unknown contact: %v, want cases.ErrNotFound", err)
		}
		var ve *cases.ValidationError
		if _, err := e.att.Put(ctx, archive.AttachmentInput{ContactID: contactID, CustomerID: "someone-else", Body: strings.NewReader("x")}); !errors.As(err, &ve) {
			t.Fatalf("customer mismatch: %v, want ValidationError", err)
		}
		if _, _, err := e.att.Open(ctx, "no-such-attachment"); !errors.Is(err, cases.ErrNotFound) {
			t.Fatalf("Open unknown: %v", err)
		}
		if _, err := e.att.Meta(ctx, "no-such-attachment"); !errors.Is(err, cases.ErrNotFound) {
			t.Fatalf("Meta unknown: %v", err)
		}
		// A body that fails midway: its error, nothing stored.
		clientGone := errors.New("client went away")
		_, err = e.att.Put(ctx, archive.AttachmentInput{ContactID: contactID, Body: io.MultiReader(bytes.NewReader(blobtest.RandBytes(2<<20)), failing{clientGone})})
		if !errors.Is(err, clientGone) || errors.Is(err, archive.ErrUnavailable) {
			t.Fatalf("failing body: %v", err)
		}
		if e.rows(t) != rows || len(e.blobKeys(t)) != blobs {
			t.Fatal("a failed body left a row or a blob")
		}
		// Delete removes row and blob.
		if err := e.att.Delete(ctx, att.ID, nil); err != nil {
			t.Fatal(err)
		}
		if e.rows(t) != rows-1 || len(e.blobKeys(t)) != blobs-1 {
			t.Fatal("Delete left a row or a blob")
		}
	})
}

type failing struct{ err error }

func (f failing) Read([]byte) (int, error) { return 0, f.err }

func TestReconcile(t *testing.T) {
	matrix(t, archive.AttachmentOptions{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		contactID, customerID := e.contact(t)
		keep := e.put(t, contactID, []byte("has a row"))
		lost := e.put(t, contactID, []byte("blob will vanish"))
		if err := e.blobs.Delete(ctx, e.blobKey(t, lost.ID)); err != nil {
			t.Fatal(err)
		}
		orphan := archive.BlobPrefix + customerID + "/orphan-1"
		blobtest.MustPut(t, e.blobs, orphan, []byte("no row"))
		outside := "other/not-ours"
		blobtest.MustPut(t, e.blobs, outside, []byte("not under att/"))

		// Young orphans are left alone (an upload may still be running).
		rep, err := e.att.Reconcile(ctx, time.Hour, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.OrphanBlobsRemoved) != 0 || strings.Join(rep.MissingBlobs, ",") != lost.ID {
			t.Fatalf("report %+v", rep)
		}
		// Seen from two hours later: the orphan is old enough.
		later := archive.NewAttachments(e.db, e.blobs, e.keys, archive.AttachmentOptions{Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
		rep, err = later.Reconcile(ctx, time.Hour, true)
		if err != nil || strings.Join(rep.OrphanBlobsRemoved, ",") != orphan {
			t.Fatalf("dry run: %+v, %v", rep, err)
		}
		if _, err := e.blobs.Stat(ctx, orphan); err != nil {
			t.Fatalf("dry run removed the orphan: %v", err)
		}
		rep, err = later.Reconcile(ctx, time.Hour, false)
		if err != nil || strings.Join(rep.OrphanBlobsRemoved, ",") != orphan || strings.Join(rep.MissingBlobs, ",") != lost.ID {
			t.Fatalf("reconcile: %+v, %v", rep, err)
		}
		if _, err := e.blobs.Stat(ctx, orphan); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("orphan still there: %v", err)
		}
		for _, k := range []string{e.blobKey(t, keep.ID), outside} {
			if _, err := e.blobs.Stat(ctx, k); err != nil {
				t.Fatalf("reconcile removed %s: %v", k, err)
			}
		}
		if got, err := readAll(t, e, keep.ID); err != nil || string(got) != "has a row" {
			t.Fatalf("kept attachment: %v", err)
		}
	})
}

// With the S3 server killed, uploads fail with ErrUnavailable and leave
// no row; downloads fail with ErrUnavailable; after a restart nothing of
// the failed uploads is there.
func TestS3Down(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	ctx := context.Background()
	store, err := s3.New(ctx, s3.Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PartSize: 5 << 20, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		srv.Restart(t)
		e := newEnv(t, db, store, "", archive.AttachmentOptions{})
		contactID, _ := e.contact(t)
		data := blobtest.RandBytes(12 << 20)
		att := e.put(t, contactID, data[:1000])
		blobs := e.blobKeys(t)

		// Dies in the middle of a large upload.
		_, err := e.att.Put(ctx, archive.AttachmentInput{ContactID: contactID, Body: &killAt{r: bytes.NewReader(data), at: 7 << 20, kill: srv.Kill}})
		if !errors.Is(err, archive.ErrUnavailable) {
			t.Fatalf("Put while S3 dies: %v, want ErrUnavailable", err)
		}
		for _, size := range []int{10, 3 << 20} {
			if _, err := e.att.Put(ctx, archive.AttachmentInput{ContactID: contactID, Body: bytes.NewReader(data[:size])}); !errors.Is(err, archive.ErrUnavailable) {
				t.Fatalf("Put %d bytes with S3 down: %v, want ErrUnavailable", size, err)
			}
		}
		if _, _, err := e.att.Open(ctx, att.ID); !errors.Is(err, archive.ErrUnavailable) {
			t.Fatalf("Open with S3 down: %v, want ErrUnavailable", err)
		}
		if _, _, err := e.att.OpenRange(ctx, att.ID, 10, 10); !errors.Is(err, archive.ErrUnavailable) {
			t.Fatalf("OpenRange with S3 down: %v, want ErrUnavailable", err)
		}
		if e.rows(t) != 1 {
			t.Fatalf("failed uploads left rows: %d", e.rows(t))
		}
		srv.Restart(t)
		if got := e.blobKeys(t); strings.Join(got, ",") != strings.Join(blobs, ",") {
			t.Fatalf("after the outage the bucket holds %v, want %v", got, blobs)
		}
		// The multipart upload that could not be aborted during the
		// outage is aborted by the reconciler.
		rep, err := e.att.Reconcile(ctx, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.AbortedUploads) != 1 || len(rep.OrphanBlobsRemoved) != 0 || len(rep.MissingBlobs) != 0 {
			t.Fatalf("reconcile after the outage: %+v", rep)
		}
		n := 0
		for range store.Client().ListIncompleteUploads(ctx, srv.Bucket, "", true) {
			n++
		}
		if n != 0 {
			t.Fatalf("%d incomplete uploads remain after reconcile", n)
		}
		if got, err := readAll(t, e, att.ID); err != nil || !bytes.Equal(got, data[:1000]) {
			t.Fatalf("after restart: %v", err)
		}
		if err := e.att.Delete(ctx, att.ID, nil); err != nil {
			t.Fatal(err)
		}
	})
}

type killAt struct {
	r    io.Reader
	at   int
	kill func()
}

func (k *killAt) Read(p []byte) (int, error) {
	if k.at <= 0 && k.kill != nil {
		k.kill()
		k.kill = nil
	}
	n, err := k.r.Read(p)
	k.at -= n
	return n, err
}
