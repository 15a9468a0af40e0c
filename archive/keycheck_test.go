package archive_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestCheckMasterKey: a database remembers the master key it was first
// used with, and another key is refused (issue 20 §14, issue 17 §1): on a
// fresh database, on one whose check value was recorded, and on one with
// wrapped data keys but no check value (a restored or upgraded database).
func TestCheckMasterKey(t *testing.T) {
	k1 := bytes.Repeat([]byte{1}, archive.MasterKeySize)
	k2 := bytes.Repeat([]byte{2}, archive.MasterKeySize)
	now := time.Unix(1_800_000_000, 0)
	ctx := context.Background()

	type step struct {
		key     []byte
		wantErr error
	}
	tests := []struct {
		name string
		// prepare leaves the database as the scenario finds it.
		prepare func(t *testing.T, db *sqldb.DB)
		steps   []step
	}{
		{name: "fresh database records the first key", steps: []step{{k1, nil}, {k1, nil}, {k2, archive.ErrWrongMasterKey}}},
		{name: "wrapped keys without a check value", prepare: func(t *testing.T, db *sqldb.DB) {
			ring, err := archive.NewKeyring(db, k1, archive.KeyringOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ring.DataKey(ctx, "customer-1"); err != nil {
				t.Fatal(err)
			}
		}, steps: []step{{k2, archive.ErrWrongMasterKey}, {k1, nil}, {k2, archive.ErrWrongMasterKey}}},
		{name: "a check value from another key", prepare: func(t *testing.T, db *sqldb.DB) {
			if err := archive.CheckMasterKey(ctx, db, k2, now); err != nil {
				t.Fatal(err)
			}
		}, steps: []step{{k1, archive.ErrWrongMasterKey}, {k2, nil}}},
		{name: "only destroyed keys", prepare: func(t *testing.T, db *sqldb.DB) {
			ring, _ := archive.NewKeyring(db, k2, archive.KeyringOptions{})
			if err := ring.Destroy(ctx, "erased"); err != nil {
				t.Fatal(err)
			}
		}, steps: []step{{k1, nil}, {k2, archive.ErrWrongMasterKey}}},
	}
	for _, d := range sqldbtest.Dialects {
		for _, tc := range tests {
			t.Run(string(d)+"/"+tc.name, func(t *testing.T) {
				db := sqldbtest.Open(t, d)
				if tc.prepare != nil {
					tc.prepare(t, db)
				}
				for i, s := range tc.steps {
					err := archive.CheckMasterKey(ctx, db, s.key, now)
					if !errors.Is(err, s.wantErr) || (s.wantErr == nil) != (err == nil) {
						t.Fatalf("step %d: err = %v, want %v", i, err, s.wantErr)
					}
				}
				has, err := archive.StoreHasKeys(ctx, db)
				if err != nil || !has {
					t.Fatalf("StoreHasKeys = %v, %v; want true after a key was proven", has, err)
				}
			})
		}
	}
}

// TestCheckMasterKeyRace: two processes with different keys starting at
// once on a fresh database: exactly one of them may serve.
func TestCheckMasterKeyRace(t *testing.T) {
	ctx := context.Background()
	for _, d := range sqldbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			cfg := sqldbtest.Config(t, d)
			var wg sync.WaitGroup
			errs := make([]error, 6)
			start := make(chan struct{})
			for i := range errs {
				db, err := sqldb.Open(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				key := bytes.Repeat([]byte{byte(i%2 + 1)}, archive.MasterKeySize)
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					errs[i] = archive.CheckMasterKey(ctx, db, key, time.Now())
				}()
			}
			close(start)
			wg.Wait()

			winners := 0 // a bit per key accepted
			for i, err := range errs {
				switch {
				case err == nil:
					winners |= 1 << (i % 2)
				case !errors.Is(err, archive.ErrWrongMasterKey):
					t.Fatalf("process %d: %v", i, err)
				}
			}
			if winners != 1 && winners != 2 {
				t.Fatalf("processes with both keys were accepted (or none): %v", errs)
			}
		})
	}
}

// TestStoreHasKeysFresh: a fresh database depends on no master key yet.
func TestStoreHasKeysFresh(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		has, err := archive.StoreHasKeys(context.Background(), db)
		if err != nil || has {
			t.Fatalf("StoreHasKeys on a fresh database = %v, %v", has, err)
		}
	})
}

// TestLoadMasterKeyNeverCreates: reading the key never generates one.
func TestLoadMasterKeyNeverCreates(t *testing.T) {
	dir := t.TempDir()
	if _, err := archive.LoadMasterKey(dir, ""); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(dir, archive.MasterKeyFile)); !os.IsNotExist(err) {
		t.Fatalf("LoadMasterKey created %s", archive.MasterKeyFile)
	}
}
