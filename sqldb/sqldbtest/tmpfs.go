package sqldbtest

import (
	"errors"
	"os"
	"os/exec"
	"testing"
)

// Tmpfs mounts a tmpfs of the given size (e.g. "20m") on a new temporary
// directory, unmounted when the test ends, so that a test can fill a disk
// without touching the machine's. Mounting needs root (CI runs as root):
// where it is impossible the test skips with the reason, and fails when CI
// is set (see Unavailable).
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "casevault-tmpfs")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		_ = os.Remove(dir)
		Unavailable(t, "mounting a "+size+" tmpfs (needs root)", errors.Join(err, errors.New(string(out))))
		return ""
	}
	t.Cleanup(func() {
		// lazy: a child process killed a moment ago may still hold files
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
			return
		}
		_ = os.Remove(dir)
	})
	return dir
}
