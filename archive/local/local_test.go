package local_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/local"
)

func TestConformance(t *testing.T) {
	store, err := local.New(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	blobtest.Run(t, store)
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
