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
	// LeftoverVersionsRemoved are keys without a row and without a current
	// version whose earlier versions or delete markers (a versioned
	// bucket: a plain delete, or a purge cut short) were all removed.
	LeftoverVersionsRemoved []string `json:"leftover_versions_removed"`
}

// VersionInfo is one stored version of a blob (or a delete marker) in a
// store that keeps versions.
type VersionInfo struct {
	Key          string
	VersionID    string
	Latest       bool
	DeleteMarker bool
	ModTime      time.Time
}

// versionLister is implemented by stores that keep earlier versions (S3):
// deleted blobs may leave data there that List no longer shows.
type versionLister interface {
	ListVersions(ctx context.Context, prefix string, fn func(VersionInfo) error) error
}

// staleUploads is implemented by stores with resumable uploads (S3).
type staleUploads interface {
	StaleUploads(ctx context.Context, prefix string, olderThan time.Duration, dryRun bool) ([]string, error)
}

// Reconcile compares the blobs under BlobPrefix with the attachments table.
// A blob without a row is an upload whose row never committed (or a delete
// whose blob removal failed): once older than olderThan (an upload still in
// flight is younger) it is purged, every version of it. On a store that
// keeps versions, a key without a row whose only versions are earlier ones
// or delete markers is purged the same way: disposed data must not stay
// readable by version id. A row without a blob is reported, never changed.
// Memory grows with the number of blobs (one map entry each).
func (a *Attachments) Reconcile(ctx context.Context, olderThan time.Duration, dryRun bool) (Report, error) {
	rep := Report{OrphanBlobsRemoved: []string{}, MissingBlobs: []string{}, AbortedUploads: []string{}, LeftoverVersionsRemoved: []string{}}
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

	// Keys whose versions outlive their current object: newest version
	// time of each key that List did not show.
	leftovers := map[string]time.Time{}
	if vl, ok := a.blobs.(versionLister); ok {
		err := vl.ListVersions(ctx, BlobPrefix, func(v VersionInfo) error {
			if _, current := listed[v.Key]; current {
				return nil
			}
			if v.ModTime.After(leftovers[v.Key]) {
				leftovers[v.Key] = v.ModTime
			}
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("reconcile: list versions: %w", err)
		}
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
	for _, set := range []struct {
		keys map[string]time.Time
		out  *[]string
	}{{listed, &rep.OrphanBlobsRemoved}, {leftovers, &rep.LeftoverVersionsRemoved}} {
		for key, mod := range set.keys {
			if mod.After(cutoff) {
				continue
			}
			gone, err := a.purgeUnreferenced(ctx, key, dryRun)
			if err != nil {
				return rep, err
			}
			if gone {
				*set.out = append(*set.out, key)
			}
		}
		sort.Strings(*set.out)
	}
	return rep, nil
}

// purgeUnreferenced purges key unless an attachment row names it: a row may
// have committed since the scan, so this checks again right before.
func (a *Attachments) purgeUnreferenced(ctx context.Context, key string, dryRun bool) (bool, error) {
	var n int
	err := a.db.Read.QueryRowContext(ctx, a.db.Rebind(`SELECT COUNT(*) FROM attachments WHERE blob_key = ?`), key).Scan(&n)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, sqldb.Fail("reconcile", err)
	}
	if n > 0 {
		return false, nil
	}

	if !dryRun {
		if err := a.blobs.Purge(ctx, key); err != nil {
			return false, fmt.Errorf("reconcile: %w", err)
		}
	}
	return true, nil
}
