package backup_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

func newHash() hash.Hash { return sha256.New() }

// TestRoundTrip: a backup restored into an empty instance, on the same or
// the other engine, gives identical rows (every table's canonical digest)
// and identical blobs (stored and decrypted digests), and the restored audit
// chain verifies.
func TestRoundTrip(t *testing.T) {
	pairs := []struct{ from, to sqldb.Dialect }{
		{sqldb.SQLite, sqldb.SQLite},
		{sqldb.SQLite, sqldb.Postgres},
		{sqldb.Postgres, sqldb.SQLite},
		{sqldb.Postgres, sqldb.Postgres},
	}
	for _, p := range pairs {
		t.Run(string(p.from)+"->"+string(p.to), func(t *testing.T) {
			src := newInstance(t, p.from)
			src.seed(4, 3)
			ctx := context.Background()
			// A retention disposition and an erased customer are data too.
			gone := src.newCase(src.customer("Gone"), "to delete")
			src.contact(gone, "bye")
			if err := src.deleter.DeleteCase(ctx, gone, operator); err != nil {
				t.Fatal(err)
			}
			if err := src.keys.Destroy(ctx, src.customer("Erased")); err != nil {
				t.Fatal(err)
			}
			// Taken before the run: the run's own audit event follows the snapshot.
			want, err := backup.TableDigests(ctx, src.db)
			if err != nil {
				t.Fatal(err)
			}
			wantBlobs := src.blobDigests()
			repo, _ := newRepo(t)
			keys := newKeys(t)
			m, err := src.service(repo, keys).Backup(ctx, "test", operator, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Missing) != 0 || m.Stats.BlobsNew != 4 {
				t.Fatalf("manifest stats %+v missing %v, want 4 new blobs and none missing", m.Stats, m.Missing)
			}
			if n := src.count(`SELECT COUNT(*) FROM audit_events WHERE action = 'backup.run'`); n != 1 {
				t.Fatalf("%d backup.run audit events, want 1", n)
			}

			dst := openInstance(t, sqldbtest.Open(t, p.to), t.TempDir())
			rep := restoreInto(t, repo, m.ID, keys, dst)
			if rep.Blobs != 4 || rep.Tombstones.Dispositions != 0 {
				t.Errorf("report %+v: want 4 blobs restored and no tombstone to replay", rep)
			}
			got, err := backup.TableDigests(ctx, dst.db)
			if err != nil {
				t.Fatal(err)
			}
			for name, d := range want {
				if got[name] != d {
					t.Errorf("table %s differs after restore", name)
				}
			}
			gotBlobs := dst.blobDigests()
			if len(gotBlobs) != len(wantBlobs) || len(wantBlobs) != 8 {
				t.Fatalf("blob digests: %d restored, %d in source (want 8)", len(gotBlobs), len(wantBlobs))
			}
			for k, d := range wantBlobs {
				if gotBlobs[k] != d {
					t.Errorf("%s: restored digest %s, source %s", k, gotBlobs[k], d)
				}
			}
			res, err := audit.New(dst.db).Verify(ctx)
			if err != nil || !res.OK {
				t.Fatalf("restored audit chain: %+v %v", res, err)
			}
		})
	}
}

func TestIncrementalCopiesOnlyNewBlobs(t *testing.T) {
	src := newInstance(t, sqldb.SQLite)
	ids := src.seed(3, 1)
	repo, dir := newRepo(t)
	keys := newKeys(t)
	svc := src.service(repo, keys)
	ctx := context.Background()
	m1, err := svc.Backup(ctx, "test", operator, nil)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := svc.Backup(ctx, "test", operator, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Stats.BlobsNew != 0 || m2.Stats.BlobsReused != 3 {
		t.Fatalf("second backup: %+v, want 0 new and 3 reused", m2.Stats)
	}
	src.attach(src.contact(ids[0], "one more"), 100)
	m3, err := svc.Backup(ctx, "test", operator, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m3.Stats.BlobsNew != 1 || m3.Stats.BlobsReused != 3 {
		t.Fatalf("third backup: %+v, want 1 new and 3 reused", m3.Stats)
	}
	objs := countFiles(t, filepath.Join(dir, "data"))
	if want := len(uniqueObjects(m1, m2, m3)); objs != want {
		t.Fatalf("%d objects in the repository, want %d (4 blob copies shared by all backups, and the backups' table chunks)", objs, want)
	}
	// An object lost from the repository is copied again, not assumed.
	for _, b := range m1.Blobs[:1] {
		if err := os.Remove(filepath.Join(dir, b.Object)); err != nil {
			t.Fatal(err)
		}
	}
	m4, err := svc.Backup(ctx, "test", operator, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m4.Stats.BlobsNew != 1 {
		t.Fatalf("after losing an object: %+v, want it copied again", m4.Stats)
	}
	list, err := repo.Manifests(ctx)
	if err != nil || len(list) != 4 {
		t.Fatalf("list: %d backups, %v", len(list), err)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestVerifyReadDataCatchesFlippedByte: the structural check passes a
// same-size corruption; reading the data finds it, in a table file and in
// an attachment object alike.
func TestVerifyReadDataCatchesFlippedByte(t *testing.T) {
	f := newFixture(t, 2, 2)
	repo, dir, keys := f.repo, f.dir, f.keys
	ctx := context.Background()
	m := f.backup(t)
	for _, readData := range []bool{false, true} {
		rep, err := repo.Verify(ctx, m.ID, readData, keys.Identity, nil)
		if err != nil || !rep.OK {
			t.Fatalf("intact backup (read data %v): %+v %v", readData, rep, err)
		}
	}
	targets := []struct{ name, file string }{
		{"table", backup.TableObject(m.Tables[3])},
		{"object", m.Blobs[0].Object},
	}
	for _, tc := range targets {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.file)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			orig := append([]byte(nil), b...)
			b[len(b)/2] ^= 0x01
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(p, orig, 0o600)
			rep, err := repo.Verify(ctx, m.ID, false, nil, nil)
			if err != nil || !rep.OK {
				t.Fatalf("structure check should not read data: %+v %v", rep, err)
			}
			rep, err = repo.Verify(ctx, m.ID, true, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], tc.file) {
				t.Fatalf("read-data verify: %+v, want one problem naming %s", rep, tc.file)
			}
		})
	}
	// A missing file is found without reading data.
	if err := os.Remove(filepath.Join(dir, backup.TableObject(m.Tables[0]))); err != nil {
		t.Fatal(err)
	}
	rep, err := repo.Verify(ctx, m.ID, false, nil, nil)
	if err != nil || rep.OK || !strings.Contains(strings.Join(rep.Problems, ";"), "missing") {
		t.Fatalf("missing file: %+v %v", rep, err)
	}
	// Restore refuses a damaged backup instead of restoring part of it.
	dst := newInstance(t, sqldb.SQLite)
	if _, err := repo.Restore(ctx, m.ID, backup.RestoreOptions{Target: dst.db, Blobs: dst.blobs, Identity: keys.Identity}); !errors.Is(err, backup.ErrDamaged) {
		t.Fatalf("restore of a damaged backup: %v, want ErrDamaged", err)
	}
	if n := dst.count(`SELECT COUNT(*) FROM customers`); n != 0 {
		t.Fatalf("a failed restore left %d customers", n)
	}
}

// TestInterruptedBackupIsNotListed: a run stopped during the attachment copy
// leaves no manifest, so it is not a backup; the next run and forget clean up.
func TestInterruptedBackupIsNotListed(t *testing.T) {
	src := newInstance(t, sqldb.SQLite)
	src.seed(6, 1)
	repo, dir := newRepo(t)
	keys := newKeys(t)
	svc := src.service(repo, keys)
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	// Cancelled once every attachment is copied: the run has stored its
	// objects and table chunks, and must still not become a backup.
	_, err := svc.Backup(ctx, "test", operator, func(p backup.Progress) {
		if p.Phase == "attachments" && p.Done == p.Total {
			once.Do(cancel)
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted backup: %v, want context.Canceled", err)
	}
	if n := countFiles(t, filepath.Join(dir, "data")); n == 0 || countFiles(t, filepath.Join(dir, "snapshots")) != 1 {
		t.Fatal("the interrupted run wrote no object or no start marker; the test proves nothing")
	}
	list, err := repo.Manifests(context.Background())
	if err != nil || len(list) != 0 {
		t.Fatalf("after an interrupted run: %d backups listed, %v", len(list), err)
	}
	runs, err := svc.Runs(context.Background(), 10)
	if err != nil || len(runs) != 1 || runs[0].Status != backup.StatusInterrupted {
		t.Fatalf("runs: %+v %v, want one interrupted run", runs, err)
	}
	m, err := svc.Backup(context.Background(), "test", operator, nil)
	if err != nil {
		t.Fatal(err)
	}
	if list, _ := repo.Manifests(context.Background()); len(list) != 1 || list[0].ID != m.ID {
		t.Fatalf("after a good run: %+v", list)
	}
	rep, err := svc.Forget(context.Background(), backup.KeepPolicy{Daily: 1}, false, "test", operator)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ObjectsRemoved == 0 || rep.Leftovers == 0 {
		t.Fatalf("forget removed no object or no leftover of the interrupted run: %+v", rep)
	}
	// The good backup's start marker, manifest and signature; its objects.
	if n := countFiles(t, filepath.Join(dir, "snapshots")); n != 3 {
		t.Fatalf("%d files under snapshots/, want only the good backup's 3", n)
	}
	if n, want := countFiles(t, filepath.Join(dir, "data")), len(uniqueObjects(m)); n != want {
		t.Fatalf("%d objects, want only the good backup's %d", n, want)
	}
}

func TestOneRunAtATime(t *testing.T) {
	src := newInstance(t, sqldb.SQLite)
	src.seed(3, 1)
	repo, _ := newRepo(t)
	keys := newKeys(t)
	a, b := src.service(repo, keys), src.service(repo, keys)
	ctx := context.Background()
	var lockedSeen atomic.Bool
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		var once sync.Once
		_, err := a.Backup(ctx, "test", operator, func(p backup.Progress) {
			once.Do(func() {
				_, err := b.Backup(ctx, "test", operator, nil)
				lockedSeen.Store(errors.Is(err, backup.ErrLocked))
				close(release)
			})
		})
		done <- err
	}()
	<-release
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !lockedSeen.Load() {
		t.Fatal("a second run started while the first held the lease")
	}
	if _, err := b.Backup(ctx, "test", operator, nil); err != nil {
		t.Fatalf("after the first run the lease is free: %v", err)
	}
}

func TestRestoreRefusesNonEmptyTarget(t *testing.T) {
	f := newFixture(t, 1, 1)
	repo, keys := f.repo, f.keys
	ctx := context.Background()
	m := f.backup(t)
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		dst := openInstance(t, db, t.TempDir())
		dst.customer("already here")
		_, err := repo.Restore(ctx, m.ID, backup.RestoreOptions{Target: dst.db, Blobs: dst.blobs, Identity: keys.Identity})
		if !errors.Is(err, backup.ErrTargetInUse) {
			t.Fatalf("restore into a non-empty target: %v, want ErrTargetInUse", err)
		}
		if n := dst.count(`SELECT COUNT(*) FROM customers`); n != 1 {
			t.Fatalf("target changed: %d customers", n)
		}
	})
}

func TestKeys(t *testing.T) {
	fx := newFixture(t, 1, 1)
	src, repo, keys := fx.src, fx.repo, fx.keys
	ctx := context.Background()
	m := fx.backup(t)
	other := newKeys(t)
	dst := newInstance(t, sqldb.SQLite)
	if _, err := repo.Restore(ctx, m.ID, backup.RestoreOptions{Target: dst.db, Blobs: dst.blobs, Identity: other.Identity}); !errors.Is(err, backup.ErrWrongKey) {
		t.Fatalf("wrong identity: %v, want ErrWrongKey", err)
	}
	if _, err := repo.Restore(ctx, m.ID, backup.RestoreOptions{Target: dst.db, Blobs: dst.blobs}); !errors.Is(err, backup.ErrNoKey) {
		t.Fatalf("no identity: %v, want ErrNoKey", err)
	}
	// Public-key-only configuration: backups work, restores need the identity.
	pub, err := backup.LoadKeys(backup.KeyConfig{Recipients: keys.Public[0]}, false)
	if err != nil || pub.Identity != nil || len(pub.Recipients) != 1 {
		t.Fatalf("recipients only: %+v %v", pub, err)
	}
	if _, err := src.service(repo, pub).Backup(ctx, "test", operator, nil); err != nil {
		t.Fatalf("backup with the public key only: %v", err)
	}
	// The master key is refused as a backup key, and garbage is refused.
	f := filepath.Join(t.TempDir(), "id")
	hexMaster := strings.Repeat("07", 32)
	if err := os.WriteFile(f, []byte(hexMaster+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.LoadKeys(backup.KeyConfig{IdentityFile: f, MasterKeyHex: hexMaster}, false); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("master key as backup key: %v", err)
	}
	for _, bad := range []string{"age1notakey", "ssh-rsa AAAA", "x"} {
		if _, err := backup.LoadKeys(backup.KeyConfig{Recipients: bad}, false); err == nil {
			t.Errorf("recipient %q accepted", bad)
		}
	}
	// A generated identity file is private.
	p := filepath.Join(t.TempDir(), "backup.key")
	if _, err := backup.LoadKeys(backup.KeyConfig{DefaultIdentityFile: p}, true); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated identity: %v, want mode 0600", err)
	}
	if ids, _ := repo.Manifests(ctx); len(ids) != 2 {
		t.Fatalf("%d backups", len(ids))
	}
	if _, err := repo.Manifest(ctx, "../../etc"); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("traversal id: %v, want ErrNotFound", err)
	}
}

// uniqueObjects is the set of repository objects the backups need.
func uniqueObjects(ms ...backup.Manifest) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		for _, o := range m.Objects() {
			out[o] = true
		}
	}
	return out
}

// TestNextRunWaitsForAnEndingRun: a run records its end before it gives the
// lease back. A client that saw it end and starts the next backup at once
// was refused (409 "already running"); it now waits for the ending run's
// lease. A run recorded as running still refuses at once.
func TestNextRunWaitsForAnEndingRun(t *testing.T) {
	tests := []struct {
		name        string
		runningRow  bool
		wantRefused bool
	}{
		{"the holder has recorded its end", false, false},
		{"a run is recorded running", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newInstance(t, sqldb.SQLite)
			src.seed(1, 1)
			repo, _ := newRepo(t)
			svc := src.service(repo, newKeys(t))
			ctx := context.Background()

			// Another run's lease, given back 200 ms later.
			far := sqldb.Micros(time.Now().Add(time.Hour))
			if _, err := src.db.Write.ExecContext(ctx, `UPDATE backup_lease SET holder = 'ending-run', expires_at = ? WHERE id = 1`, far); err != nil {
				t.Fatal(err)
			}
			if tt.runningRow {
				if _, err := src.db.Write.ExecContext(ctx, `INSERT INTO backup_runs (id, kind, status, origin, started_at) VALUES ('live-run', 'backup', ?, 'test', ?)`,
					backup.StatusRunning, sqldb.Micros(time.Now())); err != nil {
					t.Fatal(err)
				}
			}
			released := time.AfterFunc(200*time.Millisecond, func() {
				_, _ = src.db.Write.ExecContext(ctx, `UPDATE backup_lease SET holder = NULL WHERE id = 1`)
			})
			defer released.Stop()

			_, err := svc.Backup(ctx, "test", operator, nil)
			if refused := errors.Is(err, backup.ErrLocked); refused != tt.wantRefused || (!refused && err != nil) {
				t.Fatalf("backup while an ending run holds the lease: %v; want refused %v", err, tt.wantRefused)
			}
		})
	}
}

// TestAttachmentProgressNeverGoesBack: the copy workers report in the order
// their bytes were counted, so the attachment phase's progress only grows
// and its last event says the copy is complete (reported out of order, a
// stale count could be the last one shown; the interrupted-backup test then
// never saw the copy finish).
func TestAttachmentProgressNeverGoesBack(t *testing.T) {
	src := newInstance(t, sqldb.SQLite)
	src.seed(40, 1)
	repo, _ := newRepo(t)
	svc := src.service(repo, newKeys(t))

	var events []backup.Progress
	if _, err := svc.Backup(context.Background(), "test", operator, func(p backup.Progress) {
		if p.Phase == "attachments" {
			events = append(events, p)
		}
	}); err != nil {
		t.Fatal(err)
	}

	if len(events) == 0 {
		t.Fatal("no attachment progress reported")
	}
	for i := 1; i < len(events); i++ {
		if events[i].Done < events[i-1].Done {
			t.Fatalf("progress went back: event %d %d bytes after %d", i, events[i].Done, events[i-1].Done)
		}
	}
	if last := events[len(events)-1]; last.Done != last.Total {
		t.Fatalf("last attachment progress %d of %d bytes", last.Done, last.Total)
	}
}
