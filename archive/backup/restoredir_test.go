package backup_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/sqldb"
)

// A directory target is created private and empty; one with data is refused.
func TestOpenTargetDirectory(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "restored")
	tg, err := backup.OpenTarget(ctx, dir, "FULL")
	if err != nil {
		t.Fatal(err)
	}
	if tg.Dir != dir || tg.Where != dir {
		t.Fatalf("target %q %q, want %q", tg.Dir, tg.Where, dir)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("target dir: %v %v", fi.Mode(), err)
	}
	if _, err := tg.DB.Write.ExecContext(ctx, `INSERT INTO customers (id, name, created_at, updated_at) VALUES ('c1', 'x', 1, 1)`); err != nil {
		t.Fatalf("seeding a customer: %v", err)
	}
	tg.Close()

	if _, err := backup.OpenTarget(ctx, dir, "FULL"); !errors.Is(err, backup.ErrTargetInUse) {
		t.Fatalf("non-empty target: %v, want ErrTargetInUse", err)
	}
}

// The live database is read for tombstones only when it exists and is not
// the target; a missing SQLite file is never created.
func TestOpenLive(t *testing.T) {
	ctx := context.Background()
	tg, err := backup.OpenTarget(ctx, t.TempDir(), "FULL")
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()

	missing := filepath.Join(t.TempDir(), "casevault.db")
	for name, live := range map[string]sqldb.Config{
		"missing file": {Path: missing},
		"the target":   {Path: filepath.Join(tg.Dir, "casevault.db")},
	} {
		db, err := backup.OpenLive(ctx, live, tg)
		if err != nil || db != nil {
			t.Fatalf("%s: %v %v, want none", name, db, err)
		}
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenLive created the live database: %v", err)
	}

	other, err := backup.OpenTarget(ctx, t.TempDir(), "FULL")
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
	db, err := backup.OpenLive(ctx, sqldb.Config{Path: filepath.Join(other.Dir, "casevault.db")}, tg)
	if err != nil || db == nil {
		t.Fatalf("existing live database: %v %v", db, err)
	}
	db.Close()
}

func TestIsDatabaseURL(t *testing.T) {
	for s, want := range map[string]bool{"postgres://h/db": true, "postgresql://h/db": true, "/var/lib/x": false, "./postgres": false} {
		if backup.IsDatabaseURL(s) != want {
			t.Errorf("IsDatabaseURL(%q) != %v", s, want)
		}
	}
}
