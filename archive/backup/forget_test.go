package backup_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/sqldb"
)

func manifestsAt(times ...string) []backup.Manifest {
	var out []backup.Manifest
	for _, s := range times {
		t, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			panic(err)
		}
		out = append(out, backup.Manifest{ID: s, SnapshotAt: t})
	}
	return out
}

func TestPlan(t *testing.T) {
	now := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	ms := manifestsAt(
		"2026-03-31 02:00", "2026-03-30 14:00", "2026-03-30 02:00", "2026-03-29 02:00",
		"2026-03-22 02:00", "2026-03-15 02:00", "2026-02-27 02:00", "2026-01-10 02:00", "2025-02-01 02:00",
	)
	// Two old backups carry the operator's tag (backup run --tag).
	for i := range ms {
		if ms[i].ID == "2026-01-10 02:00" || ms[i].ID == "2025-02-01 02:00" {
			ms[i].Tags = []string{"pre-upgrade"}
		}
	}
	cases := []struct {
		name string
		p    backup.KeepPolicy
		keep []string
	}{
		{"keep tag", backup.KeepPolicy{Tags: []string{"pre-upgrade"}}, []string{"2026-01-10 02:00", "2025-02-01 02:00"}},
		{"keep an absent tag keeps nothing", backup.KeepPolicy{Last: 1, Tags: []string{"other"}}, []string{"2026-03-31 02:00"}},
		{"max age beats a tag", backup.KeepPolicy{Last: 1, Tags: []string{"pre-upgrade"}, MaxAge: 365 * 24 * time.Hour}, []string{"2026-03-31 02:00", "2026-01-10 02:00"}},
		{"two daily", backup.KeepPolicy{Daily: 2}, []string{"2026-03-31 02:00", "2026-03-30 14:00"}},
		{"daily takes the newest of a day", backup.KeepPolicy{Daily: 3}, []string{"2026-03-31 02:00", "2026-03-30 14:00", "2026-03-29 02:00"}},
		// 2026-03-31 is a Tuesday: ISO weeks 14, 13 (03-23..29), 12 (03-16..22)
		{"weekly", backup.KeepPolicy{Weekly: 3}, []string{"2026-03-31 02:00", "2026-03-29 02:00", "2026-03-22 02:00"}},
		{"monthly", backup.KeepPolicy{Monthly: 4}, []string{"2026-03-31 02:00", "2026-02-27 02:00", "2026-01-10 02:00", "2025-02-01 02:00"}},
		{"combined", backup.KeepPolicy{Daily: 1, Weekly: 2, Monthly: 2}, []string{"2026-03-31 02:00", "2026-03-29 02:00", "2026-02-27 02:00"}},
		{"max age beats monthly", backup.KeepPolicy{Monthly: 12, MaxAge: 365 * 24 * time.Hour}, []string{"2026-03-31 02:00", "2026-02-27 02:00", "2026-01-10 02:00"}},
		{"last 3", backup.KeepPolicy{Last: 3}, []string{"2026-03-31 02:00", "2026-03-30 14:00", "2026-03-30 02:00"}},
		// now is 2026-03-31 12:00: within 10 days reaches back to 03-21 12:00.
		{"within 10 days", backup.KeepPolicy{Within: 10 * 24 * time.Hour}, []string{"2026-03-31 02:00", "2026-03-30 14:00", "2026-03-30 02:00", "2026-03-29 02:00", "2026-03-22 02:00"}},
		{"last 1 and monthly 2", backup.KeepPolicy{Last: 1, Monthly: 2}, []string{"2026-03-31 02:00", "2026-02-27 02:00"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ds, err := backup.Plan(ms, c.p, now)
			if err != nil {
				t.Fatal(err)
			}
			var kept []string
			for _, d := range ds {
				if d.Keep {
					kept = append(kept, d.ID)
				}
				if len(d.Reasons) == 0 {
					t.Errorf("%s: no reason given", d.ID)
				}
			}
			if !reflect.DeepEqual(kept, c.keep) {
				t.Fatalf("kept %v, want %v", kept, c.keep)
			}
		})
	}
	for _, bad := range []backup.KeepPolicy{{}, {Daily: -1}, {MaxAge: time.Hour}, {Last: -1}, {Within: -time.Hour}, {Tags: []string{""}}, {Tags: []string{"a b"}}, {Last: 1, Tags: []string{"x/y"}}} {
		if _, err := backup.Plan(ms, bad, now); err == nil {
			t.Errorf("policy %+v accepted", bad)
		}
	}
}

// TestForgetPrunesUnreferencedObjects: forgetting a backup removes the
// objects only it referenced and keeps those a remaining backup needs; the
// remaining backup still verifies and restores; dry run changes nothing.
func TestForgetPrunesUnreferencedObjects(t *testing.T) {
	ctx := context.Background()
	src := newInstance(t, sqldb.SQLite)
	ids := src.seed(2, 1)
	repo, dir := newRepo(t)
	keys := newKeys(t)
	svc := src.service(repo, keys)
	first, err := svc.Backup(ctx, "test", operator, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The case with an attachment is deleted; the next backup no longer
	// references its object.
	if err := src.deleter.DeleteCase(ctx, ids[0], operator); err != nil {
		t.Fatal(err)
	}
	second, err := svc.Backup(ctx, "test", operator, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Blobs) != 1 || len(first.Blobs) != 2 {
		t.Fatalf("blobs: first %d, second %d", len(first.Blobs), len(second.Blobs))
	}
	dry, err := svc.Forget(ctx, backup.KeepPolicy{Daily: 1}, true, "test", operator)
	if err != nil {
		t.Fatal(err)
	}
	// The deleted case's blob copy, and the first backup's table chunks
	// the second does not share.
	only := len(uniqueObjects(first, second)) - len(uniqueObjects(second))
	if !reflect.DeepEqual(dry.Removed, []string{first.ID}) || dry.ObjectsRemoved != only || only < 2 {
		t.Fatalf("dry run: %+v, want %d objects removed", dry, only)
	}
	if n := countFiles(t, filepath.Join(dir, "data")); n != len(uniqueObjects(first, second)) {
		t.Fatalf("dry run removed objects: %d left", n)
	}
	rep, err := svc.Forget(ctx, backup.KeepPolicy{Daily: 1}, false, "test", operator)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ObjectsRemoved != only || rep.BytesFreed <= 0 {
		t.Fatalf("forget: %+v", rep)
	}
	if n := countFiles(t, filepath.Join(dir, "data")); n != len(uniqueObjects(second)) {
		t.Fatalf("forget left %d objects, want the kept backup's %d", n, len(uniqueObjects(second)))
	}
	if _, err := os.Stat(filepath.Join(dir, second.Blobs[0].Object)); err != nil {
		t.Fatalf("the kept backup's object is gone: %v", err)
	}
	list, _ := repo.Manifests(ctx)
	if len(list) != 1 || list[0].ID != second.ID {
		t.Fatalf("after forget: %+v", list)
	}
	if _, err := os.Stat(filepath.Join(dir, "snapshots", first.ID)); !os.IsNotExist(err) {
		t.Fatalf("the forgotten backup's files are still there: %v", err)
	}
	vr, err := repo.Verify(ctx, second.ID, true, keys.Identity, nil)
	if err != nil || !vr.OK {
		t.Fatalf("kept backup after forget: %+v %v", vr, err)
	}
	if n := src.count(`SELECT COUNT(*) FROM audit_events WHERE action = 'backup.forget'`); n != 1 {
		t.Fatalf("%d backup.forget audit events, want 1 (dry runs are not recorded)", n)
	}
}

// TestDamagedManifest: one unreadable manifest is reported, not fatal to
// listing; forget refuses to run blind; the next backup still works.
func TestDamagedManifest(t *testing.T) {
	ctx := context.Background()
	src := newInstance(t, sqldb.SQLite)
	src.seed(2, 1)
	repo, dir := newRepo(t)
	keys := newKeys(t)
	svc := src.service(repo, keys)
	a, err := svc.Backup(ctx, "test", operator, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := svc.Backup(ctx, "test", operator, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "snapshots", a.ID, "manifest.json"), []byte(`{"format":"casevault-backup/1","id":"`+a.ID+`","blobs":[{"key":"k","object":"../../etc/passwd"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ms, bad, err := repo.List(ctx)
	if err != nil || len(ms) != 1 || ms[0].ID != b.ID || len(bad) != 1 || bad[0].ID != a.ID {
		t.Fatalf("list: %d ok, damaged %+v, %v", len(ms), bad, err)
	}
	if _, err := svc.Forget(ctx, backup.KeepPolicy{Daily: 1}, false, "test", operator); !errors.Is(err, backup.ErrDamaged) {
		t.Fatalf("forget with a damaged manifest: %v, want ErrDamaged", err)
	}
	if _, err := repo.Verify(ctx, a.ID, true, keys.Identity, nil); !errors.Is(err, backup.ErrDamaged) {
		t.Fatalf("verify of a tampered manifest: %v, want ErrDamaged", err)
	}
	if _, err := svc.Backup(ctx, "test", operator, nil); err != nil {
		t.Fatalf("backup next to a damaged manifest: %v", err)
	}
}

// TestTaggedBackup: the tags of `backup run --tag` are in the signed
// manifest as read back by List; a bad tag is refused before anything runs.
func TestTaggedBackup(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 1, 1)
	svc := f.src.service(f.repo, f.keys)
	m, err := svc.BackupTagged(ctx, "test", operator, []string{"pre-upgrade", "v2.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ms, _, err := f.repo.List(ctx)
	if err != nil || len(ms) != 1 || ms[0].ID != m.ID || !reflect.DeepEqual(ms[0].Tags, []string{"pre-upgrade", "v2.1"}) {
		t.Fatalf("listed %+v %v, want %s tagged pre-upgrade, v2.1", ms, err, m.ID)
	}

	for _, bad := range [][]string{{""}, {"two words"}, {strings.Repeat("x", 65)}} {
		if _, err := svc.BackupTagged(ctx, "test", operator, bad, nil); !errors.Is(err, backup.ErrBadTag) {
			t.Errorf("tags %q: %v, want ErrBadTag", bad, err)
		}
	}
	if ms, _, _ := f.repo.List(ctx); len(ms) != 1 {
		t.Errorf("%d backups after refused runs, want 1", len(ms))
	}
}
