package backup_test

import (
	"context"
	"errors"
	"testing"

	"github.com/casevault/casevault/archive/backup"
)

// TestDiffAndLatest: between two backups the diff counts the rows each
// table gained and the attachment blobs added; "latest" names the newest
// backup, and is ErrNoRepository before the first backup; the dry-run plan lists
// the later backups whose tombstones a restore would replay.
func TestDiffAndLatest(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 2, 1)
	if _, err := f.repo.Resolve(ctx, backup.Latest); !errors.Is(err, backup.ErrNoRepository) {
		t.Fatalf("latest before any backup: %v, want ErrNoRepository", err)
	}
	a := f.backup(t)
	f.src.seed(1, 3) // a customer, a case, 3 contacts, 1 attachment
	b := f.backup(t)

	if id, err := f.repo.Resolve(ctx, backup.Latest); err != nil || id != b.ID {
		t.Fatalf("latest = %q %v, want %s", id, err, b.ID)
	}
	d, err := f.repo.Diff(ctx, a.ID, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"customers": 1, "cases": 1, "contacts": 3, "attachments": 1, "tokens": 0}
	for _, td := range d.Tables {
		if w, ok := want[td.Name]; ok && (td.Delta != w || td.Changed != (w != 0)) {
			t.Errorf("table %s: delta %d changed %v, want %d", td.Name, td.Delta, td.Changed, w)
		}
	}
	if d.BlobsAdded != 1 || d.BlobsRemoved != 0 {
		t.Errorf("blobs added %d removed %d, want 1 0", d.BlobsAdded, d.BlobsRemoved)
	}
	if r, err := f.repo.Diff(ctx, b.ID, a.ID); err != nil || r.BlobsRemoved != 1 || r.BlobsAdded != 0 {
		t.Errorf("reverse diff: %+v %v", r, err)
	}

	p, err := f.repo.Plan(ctx, a.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.LaterBackups) != 1 || p.LaterBackups[0] != b.ID || p.Blobs != 2 {
		t.Errorf("plan of the first backup: %+v", p)
	}
}
