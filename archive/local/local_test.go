package local_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/local"
)

func TestConformance(t *testing.T) {
	store, err := local.New(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	blobtest.Suite{Store: store}.Run(t)
}

// Nothing is written outside the root, whatever the key, and no temporary
// file is left behind.
func TestNoEscapeNoLeftovers(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "blobs")
	store, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, key := range []string{"../outside", "a/../../outside", "/etc/outside", `..\outside`} {
		if err := store.Put(ctx, key, strings.NewReader("x"), 1); !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if err := store.Put(ctx, "ok/key", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	_ = store.Put(ctx, "ok/failed", strings.NewReader("xx"), 1) // size mismatch
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "blobs" {
		t.Fatalf("files outside the root: %v", entries)
	}
	var files []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, strings.TrimPrefix(p, root))
		}
		return nil
	})
	if len(files) != 1 || files[0] != "/ok/key" {
		t.Fatalf("files under root = %v, want only /ok/key", files)
	}
}

func TestFilePermissions(t *testing.T) {
	root := filepath.Join(t.TempDir(), "blobs")
	store, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(context.Background(), "p/q", strings.NewReader("secret"), -1); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{root, filepath.Join(root, "p"), filepath.Join(root, "p", "q")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s mode %v is readable by group/others", p, fi.Mode().Perm())
		}
	}
}

func TestStaleUploads(t *testing.T) {
	root := t.TempDir()
	store, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := store.Put(ctx, "att/c/real", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(root, "att", "c", ".tmp-123")
	young := filepath.Join(root, "att", "c", ".tmp-456")
	elsewhere := filepath.Join(root, "other", ".tmp-789")
	for _, p := range []string{old, young, elsewhere} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * time.Hour)
	for _, p := range []string{old, elsewhere} {
		if err := os.Chtimes(p, past, past); err != nil {
			t.Fatal(err)
		}
	}
	got, err := store.StaleUploads(ctx, "att/", time.Hour, true)
	if err != nil || strings.Join(got, ",") != "att/c/.tmp-123" {
		t.Fatalf("dry run: %v, %v", got, err)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatal("dry run removed the file")
	}
	got, err = store.StaleUploads(ctx, "att/", time.Hour, false)
	if err != nil || strings.Join(got, ",") != "att/c/.tmp-123" {
		t.Fatalf("StaleUploads: %v, %v", got, err)
	}
	for p, want := range map[string]bool{old: false, young: true, elsewhere: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s exists=%v, want %v", p, err == nil, want)
		}
	}
	// Temporary files never show up as blobs.
	var keys []string
	_ = store.List(ctx, "", func(b archive.BlobInfo) error { keys = append(keys, b.Key); return nil })
	if strings.Join(keys, ",") != "att/c/real" {
		t.Fatalf("List shows %v", keys)
	}
}

// The unsynced view is the same store minus the fsyncs: it passes the same
// conformance suite, its writes are visible through the synced store, and
// SyncAll seals them.
func TestUnsyncedView(t *testing.T) {
	store, err := local.New(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	fast := store.Unsynced()
	blobtest.Suite{Store: fast}.Run(t)
	ctx := context.Background()
	if err := fast.Put(ctx, "a/b", strings.NewReader("hello"), 5); err != nil {
		t.Fatal(err)
	}
	if err := fast.(*local.Store).Rename(ctx, "a/b", "c/d"); err != nil {
		t.Fatal(err)
	}
	if err := store.SyncAll(ctx); err != nil {
		t.Fatal(err)
	}
	rc, err := store.Get(ctx, "c/d")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b := make([]byte, 16)
	n, _ := rc.Read(b)
	if string(b[:n]) != "hello" {
		t.Fatalf("read %q through the synced store", b[:n])
	}
	if _, err := store.Stat(ctx, "a/b"); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("renamed-away key: %v", err)
	}
}
