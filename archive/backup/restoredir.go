package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/casevault/casevault/sqldb"
)

// Target is where a full restore writes: a new data directory (SQLite in
// Dir/casevault.db) or an empty PostgreSQL database.
type Target struct {
	DB *sqldb.DB
	// Dir is the new data directory; empty for a database URL.
	Dir string
	// Where names the target in messages (a URL without its password).
	Where string

	cfg sqldb.Config
}

// IsDatabaseURL reports whether a restore target is a PostgreSQL URL
// rather than a directory.
func IsDatabaseURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// OpenTarget opens (creating a directory, never a database server's
// database) the target "to" of a full restore and refuses one that already
// holds data (ErrTargetInUse). synchronous is the SQLite pragma.
func OpenTarget(ctx context.Context, to, synchronous string) (*Target, error) {
	t := &Target{}
	if IsDatabaseURL(to) {
		t.cfg, t.Where = sqldb.Config{URL: to}, sqldb.Redact(to)
	} else {
		dir, err := filepath.Abs(to)
		if err != nil {
			return nil, fmt.Errorf("restore target %s: %w", to, err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("restore target: %w", err)
		}
		t.Dir, t.Where = dir, dir
		t.cfg = sqldb.Config{Path: filepath.Join(dir, "casevault.db"), Synchronous: synchronous}
	}

	db, err := sqldb.Open(ctx, t.cfg)
	if err != nil {
		return nil, err
	}
	if err := CheckEmpty(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	t.DB = db
	return t, nil
}

// Close closes the target database.
func (t *Target) Close() error { return t.DB.Close() }

// OpenLive opens the live instance's database, whose tombstones a restore
// replays so that nothing deleted since the backup comes back. It returns
// nil when there is none to read: the live database is the target itself,
// or a SQLite file that does not exist (it is never created here).
func OpenLive(ctx context.Context, live sqldb.Config, t *Target) (*sqldb.DB, error) {
	switch {
	case live.URL != "" && live.URL == t.cfg.URL:
		return nil, nil
	case live.URL == "" && (live.Path == t.cfg.Path || !exists(live.Path)):
		return nil, nil
	}
	db, err := sqldb.Open(ctx, live)
	if err != nil {
		return nil, fmt.Errorf("live instance database (for its tombstones; --no-live skips them): %w", err)
	}
	return db, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}
