package archive_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

func TestLoadOrCreateMasterKey(t *testing.T) {
	good := strings.Repeat("0123456789abcdef", 4)
	t.Run("env", func(t *testing.T) {
		key, err := archive.LoadOrCreateMasterKey("", good)
		if err != nil || hex.EncodeToString(key) != good {
			t.Fatalf("got %x, %v", key, err)
		}
		if _, err := os.Stat(filepath.Join(t.TempDir(), archive.MasterKeyFile)); !os.IsNotExist(err) {
			t.Fatalf("env key must not create a file")
		}
	})
	for _, bad := range []string{good[:62], good + "00", strings.Repeat("zz", 32)} {
		t.Run("bad env "+bad[:4], func(t *testing.T) {
			_, err := archive.LoadOrCreateMasterKey(t.TempDir(), bad)
			if err == nil {
				t.Fatalf("accepted %q", bad)
			}
			if strings.Contains(err.Error(), bad) || strings.Contains(err.Error(), bad[:16]) {
				t.Fatalf("error leaks the key: %v", err)
			}
		})
	}
	t.Run("file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		k1, err := archive.LoadOrCreateMasterKey(dir, "")
		if err != nil || len(k1) != archive.MasterKeySize {
			t.Fatalf("create: %x, %v", k1, err)
		}
		path := filepath.Join(dir, archive.MasterKeyFile)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("master.key mode %v, want 0600", fi.Mode().Perm())
		}
		k2, err := archive.LoadOrCreateMasterKey(dir, "")
		if err != nil || !bytes.Equal(k1, k2) {
			t.Fatalf("second load gave a different key or %v", err)
		}
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := archive.LoadOrCreateMasterKey(dir, ""); err == nil {
			t.Fatalf("a world-readable master.key was accepted")
		}
		if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := archive.LoadOrCreateMasterKey(dir, ""); err == nil {
			t.Fatalf("a malformed master.key was accepted")
		}
	})
	t.Run("concurrent first start", func(t *testing.T) {
		dir := t.TempDir()
		keys := make([][]byte, 8)
		var wg sync.WaitGroup
		for i := range keys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k, err := archive.LoadOrCreateMasterKey(dir, "")
				if err != nil {
					t.Error(err)
				}
				keys[i] = k
			}()
		}
		wg.Wait()
		for _, k := range keys[1:] {
			if !bytes.Equal(k, keys[0]) {
				t.Fatalf("racing starts produced different master keys")
			}
		}
	})
}

func masterKey(b byte) []byte { return bytes.Repeat([]byte{b}, archive.MasterKeySize) }

func TestKeyring(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		kr, err := archive.NewKeyring(db, masterKey(1), archive.KeyringOptions{CacheSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := archive.NewKeyring(db, masterKey(1)[:16], archive.KeyringOptions{}); err == nil {
			t.Fatal("a 16-byte master key was accepted")
		}
		a1, err := kr.DataKey(ctx, "cust-a")
		if err != nil || len(a1) != 32 {
			t.Fatalf("DataKey: %x, %v", a1, err)
		}
		a2, _ := kr.DataKey(ctx, "cust-a")
		b1, _ := kr.DataKey(ctx, "cust-b")
		if !bytes.Equal(a1, a2) || bytes.Equal(a1, b1) {
			t.Fatalf("keys: a1 %x a2 %x b1 %x", a1, a2, b1)
		}
		// Evictions from the tiny cache do not change keys.
		for _, c := range []string{"c1", "c2", "c3"} {
			if _, err := kr.DataKey(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if a3, _ := kr.DataKey(ctx, "cust-a"); !bytes.Equal(a1, a3) {
			t.Fatalf("key changed after cache eviction")
		}
		// The DB holds only the wrapped key.
		var wrapped string
		if err := db.Read.QueryRowContext(ctx, db.Rebind(`SELECT wrapped_key FROM customer_keys WHERE customer_id = ?`), "cust-a").Scan(&wrapped); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(wrapped, hex.EncodeToString(a1)) || strings.Contains(wrapped, string(a1)) {
			t.Fatalf("wrapped key contains the data key")
		}
		// Another instance with the same master key reads the same key;
		// a wrong master key cannot unwrap it.
		kr2, _ := archive.NewKeyring(db, masterKey(1), archive.KeyringOptions{})
		if got, err := kr2.ExistingDataKey(ctx, "cust-a"); err != nil || !bytes.Equal(got, a1) {
			t.Fatalf("second keyring: %x, %v", got, err)
		}
		wrong, _ := archive.NewKeyring(db, masterKey(2), archive.KeyringOptions{})
		if _, err := wrong.DataKey(ctx, "cust-a"); err == nil {
			t.Fatal("a wrong master key unwrapped the data key")
		}
		// A wrapped key moved to another customer does not unwrap.
		if _, err := db.Write.ExecContext(ctx, db.Rebind(`UPDATE customer_keys SET wrapped_key = ? WHERE customer_id = ?`), wrapped, "cust-b"); err != nil {
			t.Fatal(err)
		}
		if _, err := kr2.DataKey(ctx, "cust-b"); err == nil {
			t.Fatal("a wrapped key copied to another customer unwrapped")
		}
		if _, err := kr.ExistingDataKey(ctx, "never-seen"); !errors.Is(err, archive.ErrKeyDestroyed) {
			t.Fatalf("ExistingDataKey of an unknown customer: %v", err)
		}

		// Destroy: through another instance, so the first one's cache
		// must not keep the key alive.
		if err := kr2.Destroy(ctx, "cust-a"); err != nil {
			t.Fatal(err)
		}
		if err := kr2.Destroy(ctx, "cust-a"); err != nil {
			t.Fatalf("second Destroy: %v", err)
		}
		for _, k := range []*archive.Keyring{kr, kr2} {
			if _, err := k.DataKey(ctx, "cust-a"); !errors.Is(err, archive.ErrKeyDestroyed) {
				t.Fatalf("DataKey after Destroy: %v, want ErrKeyDestroyed", err)
			}
			if _, err := k.ExistingDataKey(ctx, "cust-a"); !errors.Is(err, archive.ErrKeyDestroyed) {
				t.Fatalf("ExistingDataKey after Destroy: %v", err)
			}
		}
		var w sql.NullString
		var destroyed sql.NullInt64
		if err := db.Read.QueryRowContext(ctx, db.Rebind(`SELECT wrapped_key, destroyed_at FROM customer_keys WHERE customer_id = ?`), "cust-a").Scan(&w, &destroyed); err != nil {
			t.Fatal(err)
		}
		if w.Valid || !destroyed.Valid {
			t.Fatalf("after Destroy the row holds wrapped %v destroyed %v", w, destroyed)
		}
		// Destroying a customer that never had a key blocks future keys.
		if err := kr.Destroy(ctx, "cust-new"); err != nil {
			t.Fatal(err)
		}
		if _, err := kr.DataKey(ctx, "cust-new"); !errors.Is(err, archive.ErrKeyDestroyed) {
			t.Fatalf("DataKey after pre-emptive Destroy: %v", err)
		}
		// DestroyTx rolls back with the caller's transaction.
		if _, err := kr.DataKey(ctx, "cust-c"); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("rollback")
		err = db.InTx(ctx, func(tx *sql.Tx) error {
			if err := kr.DestroyTx(ctx, tx, "cust-c"); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if _, err := kr.DataKey(ctx, "cust-c"); err != nil {
			t.Fatalf("key destroyed by a rolled-back transaction: %v", err)
		}
	})
}

func TestKeyringConcurrentCreate(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		keyrings := make([]*archive.Keyring, 4)
		for i := range keyrings {
			keyrings[i], _ = archive.NewKeyring(db, masterKey(7), archive.KeyringOptions{})
		}
		keys := make([][]byte, 16)
		var wg sync.WaitGroup
		for i := range keys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k, err := keyrings[i%len(keyrings)].DataKey(context.Background(), "racer")
				if err != nil {
					t.Error(err)
				}
				keys[i] = k
			}()
		}
		wg.Wait()
		for _, k := range keys {
			if !bytes.Equal(k, keys[0]) {
				t.Fatal("concurrent first use produced different keys")
			}
		}
	})
}

var _ = sqldb.SQLite
