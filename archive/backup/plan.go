package backup

import (
	"context"
	"sort"
	"time"

	"filippo.io/age"
)

// TableCount is one table of a backup as its manifest describes it.
type TableCount struct {
	Name   string `json:"name"`
	Rows   int64  `json:"rows"`
	SHA256 string `json:"sha256"`
}

// manifestTables is the one reader of a manifest's per-table data for the
// plan and the diff (the manifest's shape may change; these do not).
func manifestTables(m Manifest) []TableCount {
	out := make([]TableCount, 0, len(m.Tables))
	for _, t := range m.Tables {
		out = append(out, TableCount{Name: t.Name, Rows: t.Rows, SHA256: t.PlainSHA256})
	}
	return out
}

// RestorePlan is what a full restore of a backup would do (--dry-run).
type RestorePlan struct {
	Backup       string       `json:"backup"`
	SnapshotAt   string       `json:"snapshot_at"`
	Target       string       `json:"target"`
	Tables       []TableCount `json:"tables"`
	Blobs        int          `json:"blobs"`
	BlobBytes    int64        `json:"blob_bytes"`
	LaterBackups []string     `json:"later_backups"`
	LiveReplayed bool         `json:"live_replayed"`
	// Escrow: of the backup's customers, how many the restore gives their
	// key back from the key escrow (readable) and how many stay sealed
	// (erased since: entry gone). Absent for a backup from before the
	// escrow (its keys are in the dump) or without an identity.
	Escrow *EscrowCoverage `json:"escrow,omitempty"`
}

// Plan reads what restoring backup id would bring back, and which later
// backups' tombstones it would replay, without touching any target. With
// identity it also reads the backup's customers and counts their escrow
// entries.
func (r *Repo) Plan(ctx context.Context, id string, identity age.Identity) (RestorePlan, error) {
	m, err := r.Manifest(ctx, id)
	if err != nil {
		return RestorePlan{}, err
	}
	p := RestorePlan{Backup: id, SnapshotAt: m.SnapshotAt.UTC().Format(time.RFC3339), Tables: manifestTables(m), Blobs: len(m.Blobs), LaterBackups: []string{}}
	for _, b := range m.Blobs {
		p.BlobBytes += b.Size
	}
	all, _, err := r.List(ctx)
	if err != nil {
		return RestorePlan{}, err
	}
	for _, n := range all {
		if n.ID != m.ID && n.SnapshotAt.After(m.SnapshotAt) && sameInstance(n, m) {
			p.LaterBackups = append(p.LaterBackups, n.ID)
		}
	}
	if p.Escrow, err = r.escrowCoverage(ctx, m, identity, false, nil); err != nil {
		return RestorePlan{}, err
	}
	return p, nil
}

// TableDiff compares one table between two backups.
type TableDiff struct {
	Name    string `json:"name"`
	RowsA   int64  `json:"rows_a"`
	RowsB   int64  `json:"rows_b"`
	Delta   int64  `json:"rows_delta"`
	Changed bool   `json:"changed"`
}

// Diff compares two backups from their manifests: rows per table (counts:
// a manifest holds no row identities, so a table whose count is the same
// but whose digest differs is Changed) and attachment blobs added and
// removed.
type Diff struct {
	From             string      `json:"a"`
	To               string      `json:"b"`
	Tables           []TableDiff `json:"tables"`
	BlobsAdded       int         `json:"blobs_added"`
	BlobsRemoved     int         `json:"blobs_removed"`
	BlobBytesAdded   int64       `json:"blob_bytes_added"`
	BlobBytesRemoved int64       `json:"blob_bytes_removed"`
}

// Diff compares backups a and b.
func (r *Repo) Diff(ctx context.Context, a, b string) (Diff, error) {
	ma, err := r.Manifest(ctx, a)
	if err != nil {
		return Diff{}, err
	}
	mb, err := r.Manifest(ctx, b)
	if err != nil {
		return Diff{}, err
	}
	d := Diff{From: a, To: b, Tables: []TableDiff{}}

	byName := map[string]*TableDiff{}
	var names []string
	row := func(name string) *TableDiff {
		if td, ok := byName[name]; ok {
			return td
		}
		byName[name] = &TableDiff{Name: name}
		names = append(names, name)
		return byName[name]
	}
	digests := map[string]string{}
	for _, t := range manifestTables(ma) {
		row(t.Name).RowsA = t.Rows
		digests[t.Name] = t.SHA256
	}
	for _, t := range manifestTables(mb) {
		td := row(t.Name)
		td.RowsB = t.Rows
		td.Changed = digests[t.Name] != t.SHA256
	}
	for _, n := range names {
		td := byName[n]
		td.Delta = td.RowsB - td.RowsA
		if _, inA := digests[n]; !inA {
			td.Changed = true
		}
		d.Tables = append(d.Tables, *td)
	}
	sort.SliceStable(d.Tables, func(i, j int) bool { return d.Tables[i].Name < d.Tables[j].Name })

	inA := map[string]int64{}
	for _, bl := range ma.Blobs {
		inA[bl.Key] = bl.Size
	}
	for _, bl := range mb.Blobs {
		if _, ok := inA[bl.Key]; ok {
			delete(inA, bl.Key)
			continue
		}
		d.BlobsAdded++
		d.BlobBytesAdded += bl.Size
	}
	for _, size := range inA {
		d.BlobsRemoved++
		d.BlobBytesRemoved += size
	}
	return d, nil
}
