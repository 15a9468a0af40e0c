package local_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestPutInMemoryBypassesPageCache: a body handed over in memory, 64 KiB
// or more and 4 KiB-aligned, is written with O_DIRECT (its aligned head
// never enters the page cache; only the tail's page may), and reads back
// exactly; a smaller or unaligned one goes through the page cache as
// before. Both views (synced and unsynced).
func TestPutInMemoryBypassesPageCache(t *testing.T) {
	root := filepath.Join(t.TempDir(), "blobs")
	requireDirect(t, filepath.Dir(root))
	store, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		size     int
		shift    int // bytes the body starts past a 4 KiB boundary
		unsynced bool
		direct   bool
	}{
		{"1 MiB and a DARE tail, aligned", 1<<20 + 513, 0, false, true},
		{"same, unsynced view", 1<<20 + 513, 0, true, true},
		{"exactly 64 KiB", 64 << 10, 0, true, true},
		{"8 MiB, no tail", 8 << 20, 0, true, true},
		{"below 64 KiB", 64<<10 - 1, 0, true, false},
		{"unaligned buffer", 1 << 20, 1, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := archive.AlignedBuffer(tc.size + tc.shift)[tc.shift:]
			_, _ = rand.Read(body)
			var bs archive.Blobs = store
			if tc.unsynced {
				bs = store.Unsynced()
			}
			key := "k/" + filepath.Base(t.Name())
			if err := bs.Put(context.Background(), key, bytes.NewReader(body), int64(len(body))); err != nil {
				t.Fatal(err)
			}
			if err := store.SyncAll(context.Background()); err != nil {
				t.Fatal(err)
			}

			resident, pages := residency(t, filepath.Join(root, key))
			if tc.direct && resident > 1 {
				t.Errorf("%d of %d pages in the page cache after a direct write (at most the tail's)", resident, pages)
			}
			if !tc.direct && resident < pages-1 {
				t.Errorf("%d of %d pages in the page cache: the body bypassed it", resident, pages)
			}

			rc, err := store.Get(context.Background(), key)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("read back %d bytes (err %v), want the %d written", len(got), err, len(body))
			}
		})
	}
}

// requireDirect: CI's test directory takes O_DIRECT (ext4), so there a
// filesystem that refuses it fails the test instead of skipping it.
func requireDirect(t *testing.T, dir string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "probe"), os.O_CREATE|os.O_WRONLY|unix.O_DIRECT, 0o600)
	if err != nil {
		sqldbtest.Unavailable(t, "O_DIRECT on the test directory's filesystem", err)
	}
	f.Close()
}

// residency counts the file's pages in the page cache (mincore(2)).
func residency(t *testing.T, path string) (int, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n, len(vec)
}

// TestBulkViewReadsAroundPageCache: the bulk view's Get reads a file into
// an aligned buffer without bringing it into the page cache, and any read
// pattern (aligned or not, short reads at the end) returns the file's
// exact bytes.
func TestBulkViewReadsAroundPageCache(t *testing.T) {
	root := filepath.Join(t.TempDir(), "blobs")
	requireDirect(t, filepath.Dir(root))
	store, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	body := archive.AlignedBuffer(1<<20 + 513)
	_, _ = rand.Read(body)
	cases := []struct {
		name     string
		read     func(io.Reader) ([]byte, error)
		uncached bool
	}{
		{"one aligned buffer larger than the file", func(r io.Reader) ([]byte, error) {
			buf := archive.AlignedBuffer(8 << 20)
			n, err := io.ReadFull(r, buf)
			if err == io.ErrUnexpectedEOF {
				err = nil
			}
			return buf[:n], err
		}, true},
		{"aligned 64 KiB reads", func(r io.Reader) ([]byte, error) {
			var out []byte
			buf := archive.AlignedBuffer(64 << 10)
			for {
				n, err := r.Read(buf)
				out = append(out, buf[:n]...)
				if err == io.EOF {
					return out, nil
				}
				if err != nil {
					return out, err
				}
			}
		}, true},
		{"io.ReadAll (unaligned reads)", io.ReadAll, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := filepath.Join("r", string(rune('a'+i)))
			if err := store.Put(ctx, key, bytes.NewReader(body), int64(len(body))); err != nil {
				t.Fatal(err)
			}
			if resident, _ := residency(t, filepath.Join(root, key)); resident > 1 {
				t.Fatalf("%d pages cached before the read", resident)
			}
			rc, err := store.Unsynced().Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tc.read(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("read %d bytes (err %v), want the %d written", len(got), err, len(body))
			}
			resident, pages := residency(t, filepath.Join(root, key))
			if tc.uncached && resident > 1 {
				t.Errorf("%d of %d pages cached after an aligned bulk read", resident, pages)
			}
		})
	}
}
