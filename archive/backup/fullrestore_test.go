package backup_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/sqldb"
)

// fullRestore is a FullRestore of f's repository into dir whose steps record
// that they ran.
func (f fixture) fullRestore(t *testing.T, dir string, steps *[]string) backup.FullRestore {
	return backup.FullRestore{Repo: f.repo, Identity: f.keys.Identity, To: dir, Synchronous: "FULL", Actor: operator,
		Blobs: func(ctx context.Context, tg *backup.Target) (archive.Blobs, error) {
			*steps = append(*steps, "blobs")
			return local.New(filepath.Join(tg.Dir, "blobs"))
		},
		HoldFlags: func(ctx context.Context, db *sqldb.DB, blobs archive.Blobs) (int, error) {
			*steps = append(*steps, "holds")
			return 3, nil
		},
		Index: func(ctx context.Context, db *sqldb.DB, d string) (int64, error) {
			*steps = append(*steps, "index")
			if d != dir {
				t.Errorf("index dir %q, want %q", d, dir)
			}
			return 0, errors.New("engine down")
		},
	}
}

// A full restore runs its steps in order, reports hold flags and an index
// that could not be rebuilt without failing, and names the target.
func TestFullRestoreSteps(t *testing.T) {
	f := newFixture(t, 2, 2)
	m := f.backup(t)
	dir := filepath.Join(t.TempDir(), "restored")

	var steps []string
	rep, err := f.fullRestore(t, dir, &steps).Run(context.Background(), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(steps, " "); got != "blobs holds index" {
		t.Fatalf("steps %q, want blobs holds index", got)
	}
	if rep.HoldFlags != 3 || rep.IndexError != "engine down" || rep.Dir != dir || rep.Target != dir || rep.Mismatched() != 0 {
		t.Fatalf("report %+v", rep)
	}
	if rep.LiveDatabases != 0 {
		t.Fatalf("live databases %d without Live", rep.LiveDatabases)
	}
}

// A wrong backup ID leaves nothing behind; a failing hold-flag step fails
// the restore and says which step.
func TestFullRestoreFailures(t *testing.T) {
	f := newFixture(t, 1, 1)
	m := f.backup(t)

	var steps []string
	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := f.fullRestore(t, dir, &steps).Run(context.Background(), "no-such-backup"); err == nil {
		t.Fatal("restore of an unknown backup succeeded")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unknown backup left %s behind: %v", dir, err)
	}

	boom := errors.New("bucket says no")
	fr := f.fullRestore(t, dir, &steps)
	fr.HoldFlags = func(context.Context, *sqldb.DB, archive.Blobs) (int, error) { return 0, boom }
	if _, err := fr.Run(context.Background(), m.ID); !errors.Is(err, boom) {
		t.Fatalf("hold-flag failure: %v, want %v", err, boom)
	}
}
