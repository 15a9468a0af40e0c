package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/casevault/casevault/sqldb"
)

// Report is what a reconciliation found.
type Report struct {
	// OrphanBlobsRemoved are blob keys with no attachment row, older than
	// the grace period, that were removed (or would be, on a dry run).
	OrphanBlobsRemoved []string `json:"orphan_blobs_removed"`
	// MissingBlobs are IDs of attachments whose blob is gone.
	MissingBlobs []string `json:"missing_blobs"`
	// AbortedUploads are keys of unfinished multipart uploads older than
	// the grace period that were aborted (S3 only).
	AbortedUploads []string `json:"aborted_uploads"`
}

// staleUploads is implemented by stores with resumable uploads (S3).
type staleUploads interface {
	StaleUploads(ctx context.Context, prefix string, olderThan time.Duration, dryRun bool) ([]string, error)
}

// Reconcile compares the blobs under BlobPrefix with the attachments table.
// A blob without a row is an upload whose row never committed (or a delete
// whose blob removal failed): once older than olderThan (an upload still in
// flight is younger) it is removed. A row without a blob is reported, never
// changed. Memory grows with the number of blobs (one map entry each).
func (a *Attachments) Reconcile(ctx context.Context, olderThan time.Duration, dryRun bool) (Report, error) {
	rep := Report{OrphanBlobsRemoved: []string{}, MissingBlobs: []string{}, AbortedUploads: []string{}}
	if su, ok := a.blobs.(staleUploads); ok {
		keys, err := su.StaleUploads(ctx, BlobPrefix, olderThan, dryRun)
		if err != nil {
			return rep, fmt.Errorf("reconcile: stale uploads: %w", err)
		}
		rep.AbortedUploads = append(rep.AbortedUploads, keys...)
	}

	listed := map[string]time.Time{}
	err := a.blobs.List(ctx, BlobPrefix, func(b BlobInfo) error {
		listed[b.Key] = b.ModTime
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("reconcile: list blobs: %w", err)
	}

	rows, err := a.db.Read.QueryContext(ctx, `SELECT id, blob_key FROM attachments ORDER BY id`)
	if err != nil {
		return rep, sqldb.Fail("reconcile", err)
	}

	var maybeMissing [][2]string
	for rows.Next() {
		var id, key string
		if err := rows.Scan(&id, &key); err != nil {
			rows.Close()
			return rep, fmt.Errorf("reconcile: %w", err)
		}
		if _, ok := listed[key]; ok {
			delete(listed, key)
			continue
		}
		maybeMissing = append(maybeMissing, [2]string{id, key})
	}

	err = rows.Err()
	rows.Close()
	if err != nil {
		return rep, sqldb.Fail("reconcile", err)
	}

	// The listing came first, so a row may name a blob written after it:
	// confirm with a Stat before reporting.
	for _, m := range maybeMissing {
		if _, err := a.blobs.Stat(ctx, m[1]); errors.Is(err, ErrNotFound) {
			rep.MissingBlobs = append(rep.MissingBlobs, m[0])
		} else if err != nil {
			return rep, fmt.Errorf("reconcile: %w", err)
		}
	}

	cutoff := a.now().Add(-olderThan)
	for key, mod := range listed {
		if mod.After(cutoff) {
			continue
		}
		// A row may have committed since the scan; check again right
		// before deleting.
		var n int
		err := a.db.Read.QueryRowContext(ctx, a.db.Rebind(`SELECT COUNT(*) FROM attachments WHERE blob_key = ?`), key).Scan(&n)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return rep, sqldb.Fail("reconcile", err)
		}
		if n > 0 {
			continue
		}
		if !dryRun {
			if err := a.blobs.Delete(ctx, key); err != nil {
				return rep, fmt.Errorf("reconcile: %w", err)
			}
		}
		rep.OrphanBlobsRemoved = append(rep.OrphanBlobsRemoved, key)
	}

	sort.Strings(rep.OrphanBlobsRemoved)
	return rep, nil
}
