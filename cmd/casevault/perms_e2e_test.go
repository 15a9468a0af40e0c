package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/casevault/casevault/testkit"
)

// Every file the server writes under its data directory is its owner's
// only (0600, directories 0700), with the usual umask 0022 and a data
// directory created 0755 beforehand: the database and its WAL and SHM, the
// index, blobs, keys, the admin token, local backups.
func TestDataFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022) // the child inherits it
	t.Cleanup(func() { syscall.Umask(old) })
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p, tok := startAdmin(t, dir)
	base := p.api()
	_, contact := newContact(t, base, tok, "private words")
	if res, body := upload(t, base+"/contacts/"+contact+"/attachments?filename=a.bin", tok, []byte("attachment bytes")); res.StatusCode != 201 {
		t.Fatalf("upload: %d %s", res.StatusCode, body)
	}
	code, started := call(t, "POST", base+"/backups", tok, nil)
	if code != 202 {
		t.Fatalf("backup: %d %v", code, started)
	}
	if got := waitRun(t, base+"/backups/"+started["id"].(string), tok); got["status"] != "complete" {
		t.Fatalf("backup: %v", got)
	}
	testkit.Eventually(t, 20*time.Second, "the index to catch up", func() bool {
		_, st := call(t, "GET", base+"/search/status", tok, nil)
		return st["pending"] == float64(0)
	})
	// walked while the server runs, so that -wal and -shm exist
	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		seen[rel] = true
		switch mode := fi.Mode().Perm(); {
		case d.IsDir() && mode != 0o700:
			t.Errorf("directory %s is %v, want drwx------", rel, fi.Mode())
		case !d.IsDir() && mode&0o077 != 0:
			t.Errorf("file %s is %v: readable by group or others", rel, fi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".", "casevault.db", "casevault.db-wal", "casevault.db-shm", "admin.token", "master.key", "index", "blobs", "backups"} {
		if !seen[want] {
			t.Errorf("%s not found under the data dir (%d entries): the test checks nothing there", want, len(seen))
		}
	}
}
