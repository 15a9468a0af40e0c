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

// Run runs the suite. Every subtest works under its own random prefix, so
// one bucket can be shared by several runs.
func Run(t *testing.T, store archive.Blobs) {
	ctx := context.Background()
	root := "conf-" + randHex(6) + "/"

	t.Run("RoundTrip", func(t *testing.T) {
		sizes := []int{0, 1, 1000, 64 << 10, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3<<20 + 17}
		for _, size := range sizes {
			for _, known := range []bool{true, false} {
				t.Run(fmt.Sprintf("size=%d/known=%v", size, known), func(t *testing.T) {
					key := root + fmt.Sprintf("rt/%d-%v", size, known)
					data := RandBytes(size)
					declared := int64(-1)
					if known {
						declared = int64(size)
					}
					if err := store.Put(ctx, key, onlyReader{bytes.NewReader(data)}, declared); err != nil {
						t.Fatalf("Put: %v", err)
					}
					if got := getAll(t, store, key); !bytes.Equal(got, data) {
						t.Fatalf("Get returned %d bytes, want %d (equal prefix %d)", len(got), len(data), commonPrefix(got, data))
					}
					info, err := store.Stat(ctx, key)
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
	})

	t.Run("Overwrite", func(t *testing.T) {
		key := root + "ow/x"
		mustPut(t, store, key, []byte("first version, longer"))
		mustPut(t, store, key, []byte("second"))
		if got := getAll(t, store, key); string(got) != "second" {
			t.Fatalf("after overwrite got %q", got)
		}
	})

	t.Run("Missing", func(t *testing.T) {
		key := root + "missing/nothing"
		if _, err := store.Get(ctx, key); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("Get missing: %v, want ErrNotFound", err)
		}
		if _, err := store.GetRange(ctx, key, 0, 10); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("GetRange missing: %v, want ErrNotFound", err)
		}
		if _, err := store.Stat(ctx, key); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("Stat missing: %v, want ErrNotFound", err)
		}
		if err := store.Delete(ctx, key); err != nil {
			t.Fatalf("Delete missing: %v, want nil", err)
		}
		// A prefix of existing keys is not itself a blob.
		mustPut(t, store, root+"missing/dir/child", []byte("x"))
		if _, err := store.Stat(ctx, root+"missing/dir"); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("Stat of a key prefix: %v, want ErrNotFound", err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		key := root + "del/a/b"
		mustPut(t, store, key, []byte("gone soon"))
		if err := store.Delete(ctx, key); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := store.Get(ctx, key); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
		}
		// The key can be written again after its directories were pruned.
		mustPut(t, store, key, []byte("back"))
		if got := getAll(t, store, key); string(got) != "back" {
			t.Fatalf("rewrite after delete got %q", got)
		}
	})

	t.Run("Range", func(t *testing.T) {
		key := root + "range/blob"
		const size = 200_000
		data := RandBytes(size)
		mustPut(t, store, key, data)
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
				rc, err := store.GetRange(ctx, key, c.off, c.n)
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
	})

	t.Run("SizeMismatch", func(t *testing.T) {
		for _, c := range []struct {
			name     string
			data     int
			declared int64
		}{{"short", 100, 200}, {"long", 200, 100}, {"long big", 3 << 20, 2 << 20}} {
			t.Run(c.name, func(t *testing.T) {
				key := root + "sm/" + c.name
				err := store.Put(ctx, key, bytes.NewReader(RandBytes(c.data)), c.declared)
				if !errors.Is(err, archive.ErrSizeMismatch) {
					t.Fatalf("Put with %d bytes declared as %d: %v, want ErrSizeMismatch", c.data, c.declared, err)
				}
				if _, err := store.Stat(ctx, key); !errors.Is(err, archive.ErrNotFound) {
					t.Fatalf("after failed Put, Stat = %v, want ErrNotFound", err)
				}
			})
		}
	})

	t.Run("ReaderError", func(t *testing.T) {
		boom := errors.New("client went away")
		for _, n := range []int{10, 2 << 20} {
			t.Run(fmt.Sprint(n), func(t *testing.T) {
				key := root + fmt.Sprintf("re/%d", n)
				err := store.Put(ctx, key, io.MultiReader(bytes.NewReader(RandBytes(n)), errReader{boom}), -1)
				if !errors.Is(err, boom) {
					t.Fatalf("Put with failing reader: %v, want the reader's error", err)
				}
				if errors.Is(err, archive.ErrUnavailable) {
					t.Fatalf("a client read error must not be reported as ErrUnavailable: %v", err)
				}
				if _, err := store.Stat(ctx, key); !errors.Is(err, archive.ErrNotFound) {
					t.Fatalf("after failed Put, Stat = %v, want ErrNotFound", err)
				}
			})
		}
		var keys []string
		if err := store.List(ctx, root+"re/", func(b archive.BlobInfo) error { keys = append(keys, b.Key); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(keys) != 0 {
			t.Fatalf("failed Puts left %v", keys)
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		key := root + "cancel/x"
		err := store.Put(cctx, key, bytes.NewReader([]byte("data")), 4)
		if err == nil || !errors.Is(err, context.Canceled) {
			t.Fatalf("Put with cancelled context: %v, want context.Canceled", err)
		}
		if errors.Is(err, archive.ErrUnavailable) {
			t.Fatalf("cancellation reported as ErrUnavailable: %v", err)
		}
		if _, err := store.Stat(ctx, key); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("after cancelled Put, Stat = %v", err)
		}
	})

	t.Run("List", func(t *testing.T) {
		base := root + "list/"
		want := map[string]int{
			base + "a/1": 1, base + "a/2": 22, base + "a/sub/3": 333, base + "ab": 4, base + "b/1": 5,
		}
		for k, n := range want {
			mustPut(t, store, k, RandBytes(n))
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
				err := store.List(ctx, c.prefix, func(b archive.BlobInfo) error {
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
		err := store.List(ctx, base, func(archive.BlobInfo) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("List with failing callback: err %v after %d calls, want stop after 1", err, calls)
		}
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		bad := []string{"", "/abs", "trailing/", "a//b", "..", "../escape", root + "../../escape", "a/./b", `a\b`, "nul\x00byte", "ctl\nline", root + ".tmp-x", strings.Repeat("k", archive.MaxKeyLen+1)}
		for _, key := range bad {
			t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
				if err := store.Put(ctx, key, strings.NewReader("x"), 1); !errors.Is(err, archive.ErrInvalidKey) {
					t.Errorf("Put: %v, want ErrInvalidKey", err)
				}
				if _, err := store.Get(ctx, key); !errors.Is(err, archive.ErrInvalidKey) {
					t.Errorf("Get: %v, want ErrInvalidKey", err)
				}
				if _, err := store.GetRange(ctx, key, 0, 1); !errors.Is(err, archive.ErrInvalidKey) {
					t.Errorf("GetRange: %v, want ErrInvalidKey", err)
				}
				if _, err := store.Stat(ctx, key); !errors.Is(err, archive.ErrInvalidKey) {
					t.Errorf("Stat: %v, want ErrInvalidKey", err)
				}
				if err := store.Delete(ctx, key); !errors.Is(err, archive.ErrInvalidKey) {
					t.Errorf("Delete: %v, want ErrInvalidKey", err)
				}
			})
		}
		for _, prefix := range []string{"../", "a/../", `a\b/`, "x\x00"} {
			if err := store.List(ctx, prefix, func(archive.BlobInfo) error { return nil }); !errors.Is(err, archive.ErrInvalidKey) {
				t.Errorf("List(%q): %v, want ErrInvalidKey", prefix, err)
			}
		}
	})

	t.Run("UnicodeKey", func(t *testing.T) {
		key := root + "uni/报告/überprüfung.pdf"
		mustPut(t, store, key, []byte("unicode"))
		if got := getAll(t, store, key); string(got) != "unicode" {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("ConcurrentOverwrite", func(t *testing.T) {
		// Replacement is atomic: readers and the final state see one whole
		// version, never a mix.
		key := root + "conc/x"
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
				errs <- store.Put(ctx, key, bytes.NewReader(v), int64(len(v)))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent Put: %v", err)
			}
		}
		got := getAll(t, store, key)
		ok := false
		for _, v := range versions {
			ok = ok || bytes.Equal(got, v)
		}
		if !ok {
			t.Fatalf("final blob (%d bytes) is none of the versions written", len(got))
		}
	})

	t.Run("Ping", func(t *testing.T) {
		if err := store.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}

// onlyReader hides WriterTo/Seeker so backends see a plain stream.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func mustPut(t *testing.T, store archive.Blobs, key string, data []byte) {
	t.Helper()
	if err := store.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
}

func getAll(t *testing.T, store archive.Blobs, key string) []byte {
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
