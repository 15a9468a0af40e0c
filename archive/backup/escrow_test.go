package backup_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/archive/s3"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
)

// repoTarget is a backup repository kind; left counts what the store
// still holds under a key (every version, on S3).
type repoTarget struct {
	name string
	open func(t *testing.T) (repo *backup.Repo, left func(key string) int)
}

func repoTargets() []repoTarget {
	return []repoTarget{
		{"local", func(t *testing.T) (*backup.Repo, func(string) int) {
			st, err := local.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			repo, err := backup.OpenRepo(st, "", backup.RepoOptions{Signer: signer(t, master)})
			if err != nil {
				t.Fatal(err)
			}
			return repo, func(key string) int {
				if _, err := st.Stat(context.Background(), key); errors.Is(err, archive.ErrNotFound) {
					return 0
				}
				return 1
			}
		}},
		// A versioned bucket (object lock on): a plain delete would leave
		// the entry readable by version id.
		{"s3-versioned", func(t *testing.T) (*backup.Repo, func(string) int) {
			srv := blobtest.EnvS3(t)
			st, err := s3.New(context.Background(), s3.Config{Endpoint: srv.Endpoint, Bucket: fmt.Sprintf("cv-escrow-%d", time.Now().UnixNano()%1e12),
				AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, MaxRetries: 1, ObjectLock: true})
			if err != nil {
				t.Fatal(err)
			}
			repo, err := backup.OpenRepo(st, "casevault/prod", backup.RepoOptions{Signer: signer(t, master)})
			if err != nil {
				t.Fatal(err)
			}
			return repo, func(key string) int {
				n := 0
				err := st.ListVersions(context.Background(), key, func(v archive.VersionInfo) error {
					if v.Key == key {
						n++
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
		}},
	}
}

// dumpedKeys returns the wrapped keys a backup's customer_keys dump
// holds, by customer (decrypted with the backup identity).
func dumpedKeys(t *testing.T, repo *backup.Repo, m backup.Manifest, keys backup.Keys) map[string]string {
	t.Helper()
	dump, err := backup.PlainDump(context.Background(), repo, m, keys.Identity)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(dump["customer_keys"]))
	for sc.Scan() {
		var row struct {
			CustomerID string  `json:"customer_id"`
			Wrapped    *string `json:"wrapped_key"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		if row.Wrapped != nil {
			out[row.CustomerID] = *row.Wrapped
		}
	}
	return out
}

// TestKeyEscrowErasureReachesOldBackups is issue 15's "even one restored
// by a tool that does not replay tombstones": back up, erase, then take
// the OLD backup as such a tool would — its rows restored with no
// tombstone replayed (no live database, no later backup), and every
// wrapped data key the repository holds (the escrow decrypted with the
// backup identity, and every dump's customer_keys) tried with the master
// key as the erased customer's. None opens their sealed profile; another
// customer's opens with the key the escrow gives. On a repository in S3
// no version of the erased customer's entry is left. Before the escrow
// the dump carried the wrapped key, and this test fails.
func TestKeyEscrowErasureReachesOldBackups(t *testing.T) {
	for _, rt := range repoTargets() {
		t.Run(rt.name, func(t *testing.T) {
			forEachDialect(t, func(t *testing.T, in *instance) {
				ctx := context.Background()
				repo, left := rt.open(t)
				f := in.seal()
				victim, _, _ := in.victim()
				const survivorName = "Survivor Chen Jing"
				survivor := in.customer(survivorName)
				keys := newKeys(t)
				svc := in.service(repo, keys)
				old, err := svc.Backup(ctx, "test", operator, nil)
				if err != nil {
					t.Fatal(err)
				}
				if old.KeyEscrow != backup.EscrowFormat || old.Stats.Escrow.Written != 2 {
					t.Fatalf("backup: key_escrow %q, %+v; want both keys escrowed", old.KeyEscrow, old.Stats.Escrow)
				}
				if left(backup.EscrowObject(repo, victim)) == 0 {
					t.Fatal("the victim's key is not in the escrow before the erasure: the proof would prove nothing")
				}

				er := retention.NewEraser(in.db, retention.EraserOptions{Holds: in.holds, Keys: in.keys, Fields: f, OnChange: auditHook(in.db.Dialect),
					Blobs: in.blobs, Escrow: svc})
				res, err := er.Erase(ctx, retention.EraseRequest{CustomerID: victim, Reason: "Art. 17", Force: true}, operator)
				if err != nil {
					t.Fatal(err)
				}
				if res.EscrowPending {
					t.Error("erasure reports its escrow deletion pending with the repository up")
				}
				if n := left(backup.EscrowObject(repo, victim)); n != 0 {
					t.Errorf("%d stored version(s) of the erased customer's escrow entry left", n)
				}
				if st, err := backup.PendingEscrow(ctx, in.db); err != nil || st.PendingDeletions != 0 {
					t.Errorf("pending escrow deletions %+v %v, want none", st, err)
				}

				// Everything the repository and the backup identity give.
				escrowed, err := backup.EscrowEntries(ctx, repo, keys.Identity)
				if err != nil {
					t.Fatal(err)
				}
				dumped := dumpedKeys(t, repo, old, keys)
				if len(dumped) != 0 {
					t.Errorf("the backup's customer_keys dump holds %d wrapped key(s)", len(dumped))
				}
				if _, ok := escrowed[survivor]; !ok {
					t.Fatal("the other customer's key is not in the escrow")
				}
				candidates := []string{}
				for _, m := range []map[string]string{escrowed, dumped} {
					for _, w := range m {
						candidates = append(candidates, w)
					}
				}

				// The old backup's rows, no tombstone replayed.
				dst := openInstance(t, sqldbtest.Open(t, in.db.Dialect), t.TempDir())
				rr := restoreInto(t, repo, old.ID, keys, dst)
				if rr.KeysFromEscrow != 1 || rr.KeysNotInEscrow != 1 {
					t.Errorf("restore report: %d keys from the escrow, %d not in it; want 1 and 1", rr.KeysFromEscrow, rr.KeysNotInEscrow)
				}
				if n := dst.count(`SELECT COUNT(*) FROM customers WHERE id = ?`, victim); n != 1 {
					t.Fatalf("the erased customer's row is not in the restored backup (%d): nothing left to try to open", n)
				}
				read := sqlstore.New(dst.db, sqlstore.Options{Fields: sqlstore.NewFields(dst.keys, nil)})
				if c, err := read.GetCustomer(ctx, survivor); err != nil || c.Name != survivorName {
					t.Errorf("the other customer from the escrow: %q %v", c.Name, err)
				}
				for i, w := range candidates {
					if _, err := dst.db.Write.ExecContext(ctx, dst.db.Rebind(`UPDATE customer_keys SET wrapped_key = ?, destroyed_at = NULL WHERE customer_id = ?`), w, victim); err != nil {
						t.Fatal(err)
					}
					dst.keys.Forget(victim)
					if c, err := read.GetCustomer(ctx, victim); err == nil {
						t.Errorf("candidate key %d opens the erased customer's profile: %q", i, c.Name)
					}
				}
			})
		})
	}
}

// flakyStore is a real local store whose Purge fails while down is set
// (the repository unreachable at erasure time).
type flakyStore struct {
	*local.Store
	down atomic.Bool
}

func (f *flakyStore) Purge(ctx context.Context, key string) error {
	if f.down.Load() {
		return errors.New("repository unreachable")
	}
	return f.Store.Purge(ctx, key)
}

// TestKeyEscrowDeletionPendingUntilPurged: an erasure while the repository
// is unreachable records the escrow deletion (migration 0028) and says so;
// /readyz's count sees it; the retry keeps it, counting attempts, while
// the repository is down; a backup run then fails rather than complete
// with the entry there, and once the repository is back the next run
// purges it and completes.
func TestKeyEscrowDeletionPendingUntilPurged(t *testing.T) {
	forEachDialect(t, func(t *testing.T, in *instance) {
		ctx := context.Background()
		ls, err := local.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		st := &flakyStore{Store: ls}
		repo, err := backup.OpenRepo(st, "", backup.RepoOptions{Signer: signer(t, master)})
		if err != nil {
			t.Fatal(err)
		}
		f := in.seal()
		victim, _, _ := in.victim()
		keys := newKeys(t)
		svc := in.service(repo, keys)
		if _, err := svc.Backup(ctx, "test", operator, nil); err != nil {
			t.Fatal(err)
		}

		st.down.Store(true)
		er := retention.NewEraser(in.db, retention.EraserOptions{Holds: in.holds, Keys: in.keys, Fields: f, OnChange: auditHook(in.db.Dialect),
			Blobs: in.blobs, Escrow: svc})
		res, err := er.Erase(ctx, retention.EraseRequest{CustomerID: victim, Reason: "Art. 17", Force: true}, operator)
		if err != nil {
			t.Fatal(err)
		}
		if !res.EscrowPending {
			t.Error("erasure with the repository down does not report its escrow deletion pending")
		}
		if n, err := svc.PurgePendingEscrow(ctx); n != 1 || !errors.Is(err, backup.ErrEscrowPending) {
			t.Errorf("retry while down: %d left, %v", n, err)
		}
		if st, err := backup.PendingEscrow(ctx, in.db); err != nil || st.PendingDeletions != 1 || st.MaxAttempts != 2 {
			t.Errorf("pending escrow deletions %+v %v, want 1 after 2 attempts", st, err)
		}
		if _, err := svc.Backup(ctx, "test", operator, nil); !errors.Is(err, backup.ErrEscrowPending) {
			t.Errorf("backup run with an erased customer's entry left: %v, want ErrEscrowPending", err)
		}
		if ms, _, err := repo.List(ctx); err != nil || len(ms) != 1 {
			t.Errorf("%d backups listed (%v), want only the first", len(ms), err)
		}

		st.down.Store(false)
		m, err := svc.Backup(ctx, "test", operator, nil)
		if err != nil {
			t.Fatal(err)
		}
		if m.Stats.Escrow.Purged != 1 {
			t.Errorf("run purged %d escrow entries, want 1", m.Stats.Escrow.Purged)
		}
		if _, err := ls.Stat(ctx, backup.EscrowObject(repo, victim)); !errors.Is(err, archive.ErrNotFound) {
			t.Errorf("the erased customer's escrow entry after the run: %v", err)
		}
		if st, err := backup.PendingEscrow(ctx, in.db); err != nil || st.PendingDeletions != 0 {
			t.Errorf("pending escrow deletions %+v %v, want none", st, err)
		}
	})
}

// TestPreEscrowBackupStillRestores: a backup written before the escrow
// carries the wrapped keys in its dump; it restores from them (table
// digests match, the customer opens) with the escrow empty. This is the
// one exception to erasure reaching the backups: README says so, and
// forgetting such backups closes it.
func TestPreEscrowBackupStillRestores(t *testing.T) {
	forEachDialect(t, func(t *testing.T, in *instance) {
		ctx := context.Background()
		repo, dir := newRepo(t)
		in.seal()
		const name = "Pre-escrow Wang Fang"
		id := in.customer(name)
		keys := newKeys(t)
		m, err := in.service(repo, keys).Backup(ctx, "test", operator, nil)
		if err != nil {
			t.Fatal(err)
		}
		old, err := backup.PreEscrowBackupForTest(ctx, repo, in.db, m, keys.Recipients)
		if err != nil {
			t.Fatal(err)
		}
		if len(dumpedKeys(t, repo, old, keys)) != 1 {
			t.Fatal("the rewritten backup does not carry the key in its dump")
		}
		st, err := local.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Purge(ctx, backup.EscrowObject(repo, id)); err != nil {
			t.Fatal(err)
		}

		dst := openInstance(t, sqldbtest.Open(t, in.db.Dialect), t.TempDir())
		rr := restoreInto(t, repo, old.ID, keys, dst) // fails on any table digest mismatch
		if rr.KeysFromEscrow != 0 || rr.KeysNotInEscrow != 0 {
			t.Errorf("a pre-escrow restore read the escrow: %+v", rr)
		}
		read := sqlstore.New(dst.db, sqlstore.Options{Fields: sqlstore.NewFields(dst.keys, nil)})
		if c, err := read.GetCustomer(ctx, id); err != nil || c.Name != name {
			t.Errorf("customer from a pre-escrow backup: %q %v", c.Name, err)
		}
	})
}

// TestKeyEscrowCaseRestoreOfErasedCustomer: `restore --case` of an erased
// customer's case from an old backup into an instance that has no
// tombstone of them (a fresh one, same master key) brings back the case's
// rows sealed, with the key marked destroyed, and no attachment: the key is
// gone from the escrow, so nothing of theirs opens. Another customer's case
// comes back readable, its key from the escrow.
func TestKeyEscrowCaseRestoreOfErasedCustomer(t *testing.T) {
	forEachDialect(t, func(t *testing.T, in *instance) {
		ctx := context.Background()
		repo, _ := newRepo(t)
		f := in.seal()
		victim, victimCase, _ := in.victim()
		const otherName = "Case Restore Liu Yang"
		other := in.customer(otherName)
		otherCase := in.newCase(other, "Parcel lost")
		keys := newKeys(t)
		svc := in.service(repo, keys)
		old, err := svc.Backup(ctx, "test", operator, nil)
		if err != nil {
			t.Fatal(err)
		}
		er := retention.NewEraser(in.db, retention.EraserOptions{Holds: in.holds, Keys: in.keys, Fields: f, OnChange: auditHook(in.db.Dialect),
			Blobs: in.blobs, Escrow: svc})
		if _, err := er.Erase(ctx, retention.EraseRequest{CustomerID: victim, Reason: "Art. 17", Force: true}, operator); err != nil {
			t.Fatal(err)
		}

		dst := openInstance(t, sqldbtest.Open(t, in.db.Dialect), t.TempDir())
		opts := backup.CaseRestoreOptions{DB: dst.db, Blobs: dst.blobs, Identity: keys.Identity, Actor: operator, OnChange: auditHook(dst.db.Dialect)}
		rep, err := repo.RestoreCase(ctx, old.ID, victimCase, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.CaseRestored || rep.Attachments != 0 || rep.AttachmentsGone != 1 {
			t.Errorf("erased customer's case restored: %+v; want the rows without the attachment", rep)
		}
		if n := dst.count(`SELECT COUNT(*) FROM customer_keys WHERE customer_id = ? AND wrapped_key IS NULL AND destroyed_at IS NOT NULL`, victim); n != 1 {
			t.Errorf("erased customer's key row restored live (%d destroyed rows)", n)
		}
		read := sqlstore.New(dst.db, sqlstore.Options{Fields: sqlstore.NewFields(dst.keys, nil)})
		if c, err := read.GetCustomer(ctx, victim); err == nil {
			t.Errorf("the erased customer opens after a case restore: %q", c.Name)
		}

		if _, err := repo.RestoreCase(ctx, old.ID, otherCase, opts); err != nil {
			t.Fatal(err)
		}
		if c, err := read.GetCustomer(ctx, other); err != nil || c.Name != otherName {
			t.Errorf("the other customer after a case restore: %q %v", c.Name, err)
		}
	})
}

// failingEscrowStore is a real local store whose escrow writes fail after
// the first okPuts (the repository filling up or going away mid-run). Its
// writes all go through itself (no unsynced view), so it sees them.
type failingEscrowStore struct {
	*local.Store
	okPuts   int64
	attempts atomic.Int64
	failing  atomic.Bool
}

func (f *failingEscrowStore) Unsynced() archive.Blobs { return f }

func (f *failingEscrowStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if strings.Contains(key, "keys/") && f.failing.Load() && f.attempts.Add(1) > f.okPuts {
		return errors.New("repository full")
	}
	return f.Store.Put(ctx, key, r, size)
}

// TestKeyEscrowWriteFailureStopsTheRun: serial and parallel alike, the
// first escrow write that fails fails the run (nothing listed), the keys
// still queued are not written (the workers stop), and the next run
// writes only what is missing and completes.
func TestKeyEscrowWriteFailureStopsTheRun(t *testing.T) {
	const customers, okPuts = 40, 5
	for _, workers := range []int{1, 8} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			forEachDialect(t, func(t *testing.T, in *instance) {
				ctx := context.Background()
				ls, err := local.New(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				st := &failingEscrowStore{Store: ls, okPuts: okPuts}
				st.failing.Store(true)
				repo, err := backup.OpenRepo(st, "", backup.RepoOptions{Signer: signer(t, master)})
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < customers; i++ {
					if _, err := in.keys.DataKey(ctx, cases.NewID()); err != nil {
						t.Fatal(err)
					}
				}
				keys := newKeys(t)
				svc := backup.New(in.db, repo, backup.Options{Blobs: in.blobs, Keys: keys, OnChange: auditHook(in.db.Dialect), Workers: 2, EscrowWorkers: workers})
				if _, err := svc.Backup(ctx, "test", operator, nil); err == nil || !strings.Contains(err.Error(), "repository full") {
					t.Fatalf("backup with escrow writes failing: %v, want the write's error", err)
				}
				if ms, _, err := repo.List(ctx); err != nil || len(ms) != 0 {
					t.Errorf("%d backups listed (%v) after a failed escrow step, want none", len(ms), err)
				}
				// One failed attempt, plus at most the writes already in
				// flight when it failed.
				if n := st.attempts.Load(); n < okPuts+1 || n > okPuts+int64(workers) {
					t.Errorf("%d escrow writes attempted with %d workers, want %d to %d: the others must stop", n, workers, okPuts+1, okPuts+workers)
				}

				st.failing.Store(false)
				// Writes in flight when the first failed may have been
				// cancelled: at most okPuts entries made it.
				before, err := backup.EscrowEntries(ctx, repo, keys.Identity)
				if err != nil {
					t.Fatal(err)
				}
				if len(before) > okPuts {
					t.Errorf("%d entries after the failed run, want at most %d", len(before), okPuts)
				}
				m, err := svc.Backup(ctx, "test", operator, nil)
				if err != nil {
					t.Fatal(err)
				}
				entries, err := backup.EscrowEntries(ctx, repo, keys.Identity)
				if err != nil {
					t.Fatal(err)
				}
				if len(entries) != customers || m.Stats.Escrow.Written != int64(customers-len(before)) {
					t.Errorf("after the retry: %d entries, run wrote %d; want %d, %d written", len(entries), m.Stats.Escrow.Written, customers, customers-len(before))
				}
			})
		})
	}
}
