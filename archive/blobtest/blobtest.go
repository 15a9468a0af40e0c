// Package blobtest is the conformance suite every archive.Blobs backend
// runs, and a helper that starts a private versitygw (S3) server for tests.
package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
)

// Suite is the conformance suite of an archive.Blobs backend, after
// restic's backend/test: each check is a method with its own subtest name,
// so one check runs alone with -run (e.g. -run 'TestConformance/Range').
type Suite struct {
	// Store is the backend under test.
	Store archive.Blobs

	// root is this run's random key prefix: every check works under it,
	// so several runs can share one bucket.
	root string
}

// check is one named entry of the suite.
type check struct {
	name string
	fn   func(*Suite, *testing.T)
}

// checks lists the suite in the order it runs.
func checks() []check {
	return []check{
		{"RoundTrip", (*Suite).RoundTrip},
		{"Overwrite", (*Suite).Overwrite},
		{"Missing", (*Suite).Missing},
		{"Delete", (*Suite).Delete},
		{"Purge", (*Suite).Purge},
		{"Range", (*Suite).Range},
		{"SizeMismatch", (*Suite).SizeMismatch},
		{"ReaderError", (*Suite).ReaderError},
		{"Cancelled", (*Suite).Cancelled},
		{"List", (*Suite).List},
		{"InvalidKeys", (*Suite).InvalidKeys},
		{"UnicodeKey", (*Suite).UnicodeKey},
		{"ConcurrentOverwrite", (*Suite).ConcurrentOverwrite},
		{"Ping", (*Suite).Ping},
	}
}

// Run runs every check as a subtest of t.
func (s Suite) Run(t *testing.T) {
	s.root = "conf-" + randHex(6) + "/"
	for _, c := range checks() {
		t.Run(c.name, func(t *testing.T) { c.fn(&s, t) })
	}
}

// RoundTrip writes blobs around the part and buffer sizes, with and without
// a declared size, and reads back their bytes and Stat.
func (s *Suite) RoundTrip(t *testing.T) {
	ctx := context.Background()
	sizes := []int{0, 1, 1000, 64 << 10, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3<<20 + 17}
	for _, size := range sizes {
		for _, known := range []bool{true, false} {
			t.Run(fmt.Sprintf("size=%d/known=%v", size, known), func(t *testing.T) {
				key := s.root + fmt.Sprintf("rt/%d-%v", size, known)
				data := RandBytes(size)
				declared := int64(-1)
				if known {
					declared = int64(size)
				}
				if err := s.Store.Put(ctx, key, onlyReader{bytes.NewReader(data)}, declared); err != nil {
					t.Fatalf("Put: %v", err)
				}
				if got := ReadAll(t, s.Store, key); !bytes.Equal(got, data) {
					t.Fatalf("Get returned %d bytes, want %d (equal prefix %d)", len(got), len(data), commonPrefix(got, data))
				}
				info, err := s.Store.Stat(ctx, key)
				if err != nil {
					t.Fatalf("Stat: %v", err)
				}
				if info.Size != int64(size) || info.Key != key {
					t.Fatalf("Stat = %+v, want key %q size %d", info, key, size)
				}
				if d := time.Since(info.ModTime); d < -time.Hour || d > time.Hour {
					t.Fatalf("Stat ModTime %v is not about now", info.ModTime)
				}
			})
		}
	}
}

// Overwrite replaces a blob by a shorter one.
func (s *Suite) Overwrite(t *testing.T) {
	key := s.root + "ow/x"
	MustPut(t, s.Store, key, []byte("first version, longer"))
	MustPut(t, s.Store, key, []byte("second"))
	if got := ReadAll(t, s.Store, key); string(got) != "second" {
		t.Fatalf("after overwrite got %q", got)
	}
}

// Missing checks that an absent key is ErrNotFound for every read, that
// deleting it is no error, and that a prefix of existing keys is not itself
// a blob.
func (s *Suite) Missing(t *testing.T) {
	ctx := context.Background()
	key := s.root + "missing/nothing"
	if _, err := s.Store.Get(ctx, key); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("Get missing: %v, want ErrNotFound", err)
	}
	if _, err := s.Store.GetRange(ctx, key, 0, 10); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("GetRange missing: %v, want ErrNotFound", err)
	}
	if _, err := s.Store.Stat(ctx, key); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("Stat missing: %v, want ErrNotFound", err)
	}
	if err := s.Store.Delete(ctx, key); err != nil {
		t.Fatalf("Delete missing: %v, want nil", err)
	}
	// A prefix of existing keys is not itself a blob.
	MustPut(t, s.Store, s.root+"missing/dir/child", []byte("x"))
	if _, err := s.Store.Stat(ctx, s.root+"missing/dir"); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("Stat of a key prefix: %v, want ErrNotFound", err)
	}
}

// Delete removes a blob, and its key can be written again.
func (s *Suite) Delete(t *testing.T) {
	ctx := context.Background()
	key := s.root + "del/a/b"
	MustPut(t, s.Store, key, []byte("gone soon"))
	if err := s.Store.Delete(ctx, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Store.Get(ctx, key); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	// The key can be written again after its directories were pruned.
	MustPut(t, s.Store, key, []byte("back"))
	if got := ReadAll(t, s.Store, key); string(got) != "back" {
		t.Fatalf("rewrite after delete got %q", got)
	}
}

// versionLister is a store that keeps earlier versions (S3).
type versionLister interface {
	ListVersions(ctx context.Context, prefix string, fn func(archive.VersionInfo) error) error
}

// Purge removes every version of a blob: one written twice, one already
// deleted (a delete marker on a versioned bucket), one never written.
// Afterwards no read finds it and, on a store that keeps versions, no
// version or marker is listed under its key; a neighbour whose key it
// prefixes is untouched, and the key can be written again.
func (s *Suite) Purge(t *testing.T) {
	ctx := context.Background()
	twice, deleted, missing, neighbour := s.root+"purge/twice", s.root+"purge/deleted", s.root+"purge/never", s.root+"purge/twice-not"
	MustPut(t, s.Store, twice, []byte("first version"))
	MustPut(t, s.Store, twice, []byte("second version"))
	MustPut(t, s.Store, deleted, []byte("deleted before"))
	MustPut(t, s.Store, neighbour, []byte("stays"))
	if err := s.Store.Delete(ctx, deleted); err != nil {
		t.Fatal(err)
	}

	for _, key := range []string{twice, deleted, missing} {
		if err := s.Store.Purge(ctx, key); err != nil {
			t.Fatalf("Purge %s: %v", key, err)
		}
		if _, err := s.Store.Get(ctx, key); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("Get after Purge of %s: %v, want ErrNotFound", key, err)
		}
	}
	if vl, ok := s.Store.(versionLister); ok {
		var left []string
		err := vl.ListVersions(ctx, s.root+"purge/", func(v archive.VersionInfo) error {
			left = append(left, v.Key+"@"+v.VersionID)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 1 || !strings.HasPrefix(left[0], neighbour+"@") {
			t.Fatalf("versions left after Purge: %v, want only the neighbour's", left)
		}
	}
	if got := ReadAll(t, s.Store, neighbour); string(got) != "stays" {
		t.Fatalf("neighbour after Purge: %q", got)
	}

	MustPut(t, s.Store, twice, []byte("back"))
	if got := ReadAll(t, s.Store, twice); string(got) != "back" {
		t.Fatalf("rewrite after Purge got %q", got)
	}
}

// Range reads byte ranges, empty ones at the end included; a range that
// starts past the end or before 0 is ErrInvalidRange.
func (s *Suite) Range(t *testing.T) {
	ctx := context.Background()
	key := s.root + "range/blob"
	const size = 200_000
	data := RandBytes(size)
	MustPut(t, s.Store, key, data)
	cases := []struct {
		name    string
		off, n  int64
		want    []byte
		wantErr error
	}{
		{"first byte", 0, 1, data[:1], nil},
		{"middle", 5, 10, data[5:15], nil},
		{"last byte", size - 1, 1, data[size-1:], nil},
		{"past end cut short", size - 3, 10, data[size-3:], nil},
		{"whole by -1", 0, -1, data, nil},
		{"tail by -1", 70_000, -1, data[70_000:], nil},
		{"zero length", 10, 0, []byte{}, nil},
		{"at end", size, 5, []byte{}, nil},
		{"at end to end", size, -1, []byte{}, nil},
		{"beyond end", size + 1, 1, nil, archive.ErrInvalidRange},
		{"negative offset", -1, 1, nil, archive.ErrInvalidRange},
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc, err := s.Store.GetRange(ctx, key, c.off, c.n)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					if rc != nil {
						rc.Close()
					}
					t.Fatalf("GetRange(%d, %d) = %v, want %v", c.off, c.n, err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetRange(%d, %d): %v", c.off, c.n, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatalf("read range: %v", err)
			}
			if !bytes.Equal(got, c.want) {
				t.Fatalf("GetRange(%d, %d) gave %d bytes, want %d", c.off, c.n, len(got), len(c.want))
			}
		})
	}
}

// SizeMismatch checks that a stream shorter or longer than its declared size
// is refused and leaves nothing behind.
func (s *Suite) SizeMismatch(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		data     int
		declared int64
	}{{"short", 100, 200}, {"long", 200, 100}, {"long big", 3 << 20, 2 << 20}} {
		t.Run(c.name, func(t *testing.T) {
			key := s.root + "sm/" + c.name
			err := s.Store.Put(ctx, key, bytes.NewReader(RandBytes(c.data)), c.declared)
			if !errors.Is(err, archive.ErrSizeMismatch) {
				t.Fatalf("Put with %d bytes declared as %d: %v, want ErrSizeMismatch", c.data, c.declared, err)
			}
			if _, err := s.Store.Stat(ctx, key); !errors.Is(err, archive.ErrNotFound) {
				t.Fatalf("after failed Put, Stat = %v, want ErrNotFound", err)
			}
		})
	}
}

// ReaderError checks that a failing client stream comes back as its own
// error (never ErrUnavailable: the backend is fine) and leaves nothing
// behind.
func (s *Suite) ReaderError(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("client went away")
	for _, n := range []int{10, 2 << 20} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			key := s.root + fmt.Sprintf("re/%d", n)
			err := s.Store.Put(ctx, key, io.MultiReader(bytes.NewReader(RandBytes(n)), errReader{boom}), -1)
			if !errors.Is(err, boom) {
				t.Fatalf("Put with failing reader: %v, want the reader's error", err)
			}
			if errors.Is(err, archive.ErrUnavailable) {
				t.Fatalf("a client read error must not be reported as ErrUnavailable: %v", err)
			}
			if _, err := s.Store.Stat(ctx, key); !errors.Is(err, archive.ErrNotFound) {
				t.Fatalf("after failed Put, Stat = %v, want ErrNotFound", err)
			}
		})
	}
	var keys []string
	if err := s.Store.List(ctx, s.root+"re/", func(b archive.BlobInfo) error { keys = append(keys, b.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Fatalf("failed Puts left %v", keys)
	}
}

// Cancelled checks that a cancelled context is context.Canceled (never
// ErrUnavailable) and leaves nothing behind.
func (s *Suite) Cancelled(t *testing.T) {
	ctx := context.Background()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	key := s.root + "cancel/x"
	err := s.Store.Put(cctx, key, bytes.NewReader([]byte("data")), 4)
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with cancelled context: %v, want context.Canceled", err)
	}
	if errors.Is(err, archive.ErrUnavailable) {
		t.Fatalf("cancellation reported as ErrUnavailable: %v", err)
	}
	if _, err := s.Store.Stat(ctx, key); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("after cancelled Put, Stat = %v", err)
	}
}

// List walks every key under a prefix with its size, and stops at the
// callback's first error.
func (s *Suite) List(t *testing.T) {
	ctx := context.Background()
	base := s.root + "list/"
	want := map[string]int{
		base + "a/1": 1, base + "a/2": 22, base + "a/sub/3": 333, base + "ab": 4, base + "b/1": 5,
	}

	for k, n := range want {
		MustPut(t, s.Store, k, RandBytes(n))
	}

	for _, c := range []struct {
		prefix string
		keys   []string
	}{
		{base, []string{base + "a/1", base + "a/2", base + "a/sub/3", base + "ab", base + "b/1"}},
		{base + "a/", []string{base + "a/1", base + "a/2", base + "a/sub/3"}},
		{base + "a", []string{base + "a/1", base + "a/2", base + "a/sub/3", base + "ab"}},
		{base + "a/s", []string{base + "a/sub/3"}},
		{base + "zz/", nil},
	} {
		t.Run(c.prefix, func(t *testing.T) {
			var got []string
			err := s.Store.List(ctx, c.prefix, func(b archive.BlobInfo) error {
				if int64(want[b.Key]) != b.Size {
					t.Errorf("List %s size %d, want %d", b.Key, b.Size, want[b.Key])
				}
				got = append(got, b.Key)
				return nil
			})
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			sort.Strings(got)
			if strings.Join(got, ",") != strings.Join(c.keys, ",") {
				t.Fatalf("List(%q) = %v, want %v", c.prefix, got, c.keys)
			}
		})
	}

	stop := errors.New("stop")
	calls := 0
	err := s.Store.List(ctx, base, func(archive.BlobInfo) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("List with failing callback: err %v after %d calls, want stop after 1", err, calls)
	}
}

// InvalidKeys checks that every operation refuses keys that could escape the
// store's root or mean different things to different backends.
func (s *Suite) InvalidKeys(t *testing.T) {
	ctx := context.Background()
	bad := []string{"", "/abs", "trailing/", "a//b", "..", "../escape", s.root + "../../escape", "a/./b", `a\b`, "nul\x00byte", "ctl\nline", s.root + ".tmp-x", strings.Repeat("k", archive.MaxKeyLen+1)}
	for _, key := range bad {
		t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
			if err := s.Store.Put(ctx, key, strings.NewReader("x"), 1); !errors.Is(err, archive.ErrInvalidKey) {
				t.Errorf("Put: %v, want ErrInvalidKey", err)
			}
			if _, err := s.Store.Get(ctx, key); !errors.Is(err, archive.ErrInvalidKey) {
				t.Errorf("Get: %v, want ErrInvalidKey", err)
			}
			if _, err := s.Store.GetRange(ctx, key, 0, 1); !errors.Is(err, archive.ErrInvalidKey) {
				t.Errorf("GetRange: %v, want ErrInvalidKey", err)
			}
			if _, err := s.Store.Stat(ctx, key); !errors.Is(err, archive.ErrInvalidKey) {
				t.Errorf("Stat: %v, want ErrInvalidKey", err)
			}
			if err := s.Store.Delete(ctx, key); !errors.Is(err, archive.ErrInvalidKey) {
				t.Errorf("Delete: %v, want ErrInvalidKey", err)
			}
		})
	}
	for _, prefix := range []string{"../", "a/../", `a\b/`, "x\x00"} {
		if err := s.Store.List(ctx, prefix, func(archive.BlobInfo) error { return nil }); !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("List(%q): %v, want ErrInvalidKey", prefix, err)
		}
	}
}

// UnicodeKey checks that keys are UTF-8, not just ASCII.
func (s *Suite) UnicodeKey(t *testing.T) {
	key := s.root + "uni/报告/überprüfung.pdf"
	MustPut(t, s.Store, key, []byte("unicode"))
	if got := ReadAll(t, s.Store, key); string(got) != "unicode" {
		t.Fatalf("got %q", got)
	}
}

// ConcurrentOverwrite checks that replacement is atomic: the final blob is
// one whole version, never a mix.
func (s *Suite) ConcurrentOverwrite(t *testing.T) {
	ctx := context.Background()
	key := s.root + "conc/x"
	versions := make([][]byte, 4)
	for i := range versions {
		versions[i] = bytes.Repeat([]byte{byte('a' + i)}, 300_000)
	}

	var wg sync.WaitGroup
	errs := make(chan error, len(versions))
	for _, v := range versions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Store.Put(ctx, key, bytes.NewReader(v), int64(len(v)))
		}()
	}
	wg.Wait()
	close(errs)

	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Put: %v", err)
		}
	}

	got := ReadAll(t, s.Store, key)
	ok := false
	for _, v := range versions {
		ok = ok || bytes.Equal(got, v)
	}
	if !ok {
		t.Fatalf("final blob (%d bytes) is none of the versions written", len(got))
	}
}

// Ping answers on a working backend.
func (s *Suite) Ping(t *testing.T) {
	ctx := context.Background()
	if err := s.Store.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// onlyReader hides WriterTo/Seeker so backends see a plain stream.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// MustPut stores data under key or fails the test.
func MustPut(t *testing.T, store archive.Blobs, key string, data []byte) {
	t.Helper()
	if err := store.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
}

// ReadAll returns the bytes stored under key (as the store holds them) or
// fails the test.
func ReadAll(t *testing.T, store archive.Blobs, key string) []byte {
	t.Helper()
	rc, err := store.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// RandBytes returns n random bytes.
func RandBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randHex(n int) string { return hex.EncodeToString(RandBytes(n)) }
