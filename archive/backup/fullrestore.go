package backup

import (
	"context"
	"fmt"

	"filippo.io/age"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// HoldFlagSetter sets the S3 legal-hold flag on every restored blob an
// active hold in db covers and returns how many it set (0 when blobs has no
// object lock). Holds live in package retention, which imports this one.
type HoldFlagSetter func(ctx context.Context, db *sqldb.DB, blobs archive.Blobs) (int, error)

// IndexRebuilder rebuilds the search index of a restored database (dir is
// the target's data directory, empty for a database URL) and returns how
// many cases it holds. Search engines are wired by the caller.
type IndexRebuilder func(ctx context.Context, db *sqldb.DB, dir string) (int64, error)

// AuditOpener gives the hook that audits the restore in the target database
// and a func that flushes and closes what it opened.
type AuditOpener func(db *sqldb.DB) (cases.TxHook, func())

// FullRestore is a whole restore as an operator asks for it: a backup into a
// new data directory or empty database, with the tombstones of the live
// instance, the legal-hold flags and the search index the backup cannot
// carry. The zero value of each optional func skips its step.
type FullRestore struct {
	Repo     *Repo
	Identity age.Identity
	// To is a directory or a postgres:// URL (OpenTarget); Synchronous is
	// the SQLite pragma of a directory target.
	To, Synchronous string
	// Live is the instance's own database, whose tombstones are replayed
	// (nil skips them: --no-live).
	Live *sqldb.Config
	// Blobs opens the target's attachment store.
	Blobs     func(ctx context.Context, t *Target) (archive.Blobs, error)
	Audit     AuditOpener
	HoldFlags HoldFlagSetter
	Index     IndexRebuilder
	Progress  func(Progress)
	Actor     cases.Actor
}

// FullRestoreReport is what a full restore did.
type FullRestoreReport struct {
	RestoreReport
	Target        string `json:"target"`
	IndexedCases  int64  `json:"indexed_cases"`
	IndexError    string `json:"index_error,omitempty"`
	LiveDatabases int    `json:"live_databases"`
	HoldFlags     int    `json:"legal_hold_flags_set"`
	// Dir is the new data directory (empty for a database URL target).
	Dir string `json:"-"`
}

// Mismatched counts the restored tables whose digest is not the backup's.
func (r FullRestoreReport) Mismatched() int {
	bad := 0
	for _, t := range r.Tables {
		if !t.Match {
			bad++
		}
	}
	return bad
}

// Run restores backup id. A search index that cannot be rebuilt is reported
// (IndexError), not an error: the data is back and `reindex` can follow.
func (f FullRestore) Run(ctx context.Context, id string) (FullRestoreReport, error) {
	progress := f.Progress
	if progress == nil {
		progress = func(Progress) {}
	}

	// The manifest first: a wrong ID must not leave a new database behind.
	if _, err := f.Repo.Manifest(ctx, id); err != nil {
		return FullRestoreReport{}, err
	}

	target, err := OpenTarget(ctx, f.To, f.Synchronous)
	if err != nil {
		return FullRestoreReport{}, err
	}
	defer target.Close()

	blobs, err := f.Blobs(ctx, target)
	if err != nil {
		return FullRestoreReport{}, err
	}

	live, err := f.openLive(ctx, target)
	if err != nil {
		return FullRestoreReport{}, err
	}
	for _, db := range live {
		defer db.Close()
	}

	opts := RestoreOptions{Target: target.DB, Blobs: blobs, Identity: f.Identity, Live: live, Progress: progress, Actor: f.Actor}
	if f.Audit != nil {
		hook, closeAudit := f.Audit(target.DB)
		defer closeAudit()
		opts.OnChange = hook
	}
	rr, err := f.Repo.Restore(ctx, id, opts)
	if err != nil {
		return FullRestoreReport{}, err
	}
	rep := FullRestoreReport{RestoreReport: rr, Target: target.Where, Dir: target.Dir, LiveDatabases: len(live)}

	// Restored holds must protect the restored blobs too: in an object-lock
	// bucket the S3 legal-hold flags are set again.
	if f.HoldFlags != nil {
		if rep.HoldFlags, err = f.HoldFlags(ctx, target.DB, blobs); err != nil {
			return FullRestoreReport{}, fmt.Errorf("restore: legal-hold flags: %w", err)
		}
	}

	if f.Index != nil {
		progress(Progress{Phase: "index", Unit: "cases"})
		docs, err := f.Index(ctx, target.DB, target.Dir)
		rep.IndexedCases = docs
		if err != nil {
			rep.IndexError = err.Error()
		}
	}
	return rep, nil
}

// openLive opens the live database unless it is skipped or there is none.
func (f FullRestore) openLive(ctx context.Context, target *Target) ([]*sqldb.DB, error) {
	if f.Live == nil {
		return nil, nil
	}
	db, err := OpenLive(ctx, *f.Live, target)
	if err != nil || db == nil {
		return nil, err
	}
	return []*sqldb.DB{db}, nil
}
