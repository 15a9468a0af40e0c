package archive

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/casevault/casevault/sqldb"
)

// ErrWrongMasterKey: the master key this process was given is not the one
// the database's data keys are wrapped under. Serving anyway would wrap new
// customers' keys under a key the other replicas do not have (their
// attachments then fail everywhere else, for ever) and fail every read of
// the existing ones.
var ErrWrongMasterKey = errors.New("the master key does not match this database")

// ErrNoMasterKey: the database already holds data keys (or a key check
// value) but no master key is configured; generating one would be wrong.
var ErrNoMasterKey = errors.New("no master key for a database that holds wrapped data keys")

// keyCheckLabel is the constant the check value is an HMAC of. Versioned:
// a new derivation would use a new label, never reuse this one.
const keyCheckLabel = "casevault/master-key-check/v1"

// KeyCheckValue is the master key's check value: HMAC-SHA256 of a constant
// under the key, hex. It identifies the key without revealing it (nothing
// else is ever MACed under the master key with this label).
func KeyCheckValue(master []byte) string {
	m := hmac.New(sha256.New, master)
	m.Write([]byte(keyCheckLabel))
	return hex.EncodeToString(m.Sum(nil))
}

// LoadMasterKey reads the master key from envHex or <dataDir>/master.key
// without ever creating one; a missing file is an error wrapping
// fs.ErrNotExist.
func LoadMasterKey(dataDir, envHex string) ([]byte, error) {
	if envHex = strings.TrimSpace(envHex); envHex != "" {
		return LoadOrCreateMasterKey(dataDir, envHex)
	}
	if dataDir == "" {
		return nil, fmt.Errorf("master key: no data dir and CASEVAULT_MASTER_KEY unset: %w", fs.ErrNotExist)
	}
	return readMasterFile(filepath.Join(dataDir, MasterKeyFile))
}

// StoreHasKeys reports whether the database already depends on a master
// key: it has a recorded check value or a data key wrapped under one.
func StoreHasKeys(ctx context.Context, db *sqldb.DB) (bool, error) {
	var n int
	err := db.Read.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM key_check) + (SELECT COUNT(*) FROM (SELECT 1 FROM customer_keys WHERE wrapped_key IS NOT NULL LIMIT 1) k)`).Scan(&n)
	if err != nil {
		return false, sqldb.Fail("master key check", err)
	}
	return n > 0, nil
}

// CheckMasterKey proves that master is the database's master key, and
// records its check value when none is recorded yet. The proof is the
// recorded check value when there is one, and one stored wrapped data key
// that must unwrap under master (a restored or upgraded database has keys
// but no check value; and a check value alone would not catch a database
// whose keys were written under another key). A fresh database records
// the key it is first started with; of two processes with different keys
// starting on it at once, the second to record loses and refuses.
func CheckMasterKey(ctx context.Context, db *sqldb.DB, master []byte, now time.Time) error {
	ring, err := NewKeyring(db, master, KeyringOptions{})
	if err != nil {
		return err
	}
	kcv := KeyCheckValue(master)

	return db.InTx(ctx, func(tx *sql.Tx) error {
		var stored string
		err := tx.QueryRowContext(ctx, `SELECT kcv FROM key_check WHERE id = 1`).Scan(&stored)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return sqldb.Fail("master key check", err)
		case subtle.ConstantTimeCompare([]byte(stored), []byte(kcv)) != 1:
			return fmt.Errorf("%w: its check value differs from the one recorded in the database by the first process that started on it", ErrWrongMasterKey)
		}

		var customerID, wrapped string
		err = tx.QueryRowContext(ctx, `SELECT customer_id, wrapped_key FROM customer_keys WHERE wrapped_key IS NOT NULL ORDER BY customer_id LIMIT 1`).Scan(&customerID, &wrapped)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return sqldb.Fail("master key check", err)
		default:
			if _, err := ring.unwrap(customerID, wrapped); err != nil {
				return fmt.Errorf("%w: the customers' data keys stored in the database do not unwrap under it", ErrWrongMasterKey)
			}
		}
		if stored != "" {
			return nil
		}

		// Two processes may record at once: the row that wins is read back
		// and compared, so the loser refuses.
		if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO key_check (id, kcv, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING`), kcv, now.UnixMicro()); err != nil {
			return sqldb.Fail("master key check", err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT kcv FROM key_check WHERE id = 1`).Scan(&stored); err != nil {
			return sqldb.Fail("master key check", err)
		}
		if subtle.ConstantTimeCompare([]byte(stored), []byte(kcv)) != 1 {
			return fmt.Errorf("%w: another process recorded a different master key first", ErrWrongMasterKey)
		}
		return nil
	})
}
