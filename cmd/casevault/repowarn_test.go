package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLocalRepoWarning: serve warns when backups would start a new, empty
// repository on the disk of the data (issue 17 §1), and not for an
// existing repository, an S3 one, or one on another disk. Directories are
// real; "another disk" is the one answer a test machine cannot set up, so
// that case gives the check a different answer.
func TestLocalRepoWarning(t *testing.T) {
	otherDisk := func(a, b string) bool { return false }
	tests := []struct {
		name  string
		setup func(t *testing.T, c *config)
		same  func(a, b string) bool
		warn  bool
	}{
		{"default repository inside the data directory, not created yet", func(t *testing.T, c *config) {}, sameDisk, true},
		{"empty repository directory beside the data", func(t *testing.T, c *config) {
			c.Backup.Dir = filepath.Join(filepath.Dir(c.DataDir), "backups")
			mkdir(t, c.Backup.Dir)
		}, sameDisk, true},
		{"existing repository on the same disk", func(t *testing.T, c *config) {
			mkdir(t, filepath.Join(c.Backup.Dir, "snapshots"))
		}, sameDisk, false},
		{"empty repository on another disk", func(t *testing.T, c *config) {
			c.Backup.Dir = filepath.Join(t.TempDir(), "mnt", "backups")
		}, otherDisk, false},
		{"S3 repository", func(t *testing.T, c *config) { c.Backup.S3.Endpoint = "s3.example:9000" }, sameDisk, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newConfig()
			c.DataDir = filepath.Join(t.TempDir(), "data")
			mkdir(t, c.DataDir)
			c.Backup.Dir = filepath.Join(c.DataDir, "backups")
			tt.setup(t, c)
			got := localRepoWarning(c, tt.same)
			if (got != "") != tt.warn {
				t.Fatalf("warning %q, want one: %v", got, tt.warn)
			}
		})
	}
}

// TestSameDisk: the real check tells devices apart (the temporary
// directory and /proc are never one filesystem) and finds two directories
// of one filesystem the same.
func TestSameDisk(t *testing.T) {
	if _, err := os.Stat("/proc/self"); err != nil {
		t.Skip("no /proc here")
	}
	a, b := t.TempDir(), t.TempDir()
	if !sameDisk(a, b) {
		t.Errorf("two temporary directories on different disks")
	}
	if sameDisk(a, "/proc") {
		t.Errorf("the temporary directory and /proc on one disk")
	}
	if got := existingAncestor(filepath.Join(a, "x", "y")); got != a {
		t.Errorf("existingAncestor = %s, want %s", got, a)
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}
