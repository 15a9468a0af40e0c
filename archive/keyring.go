package archive

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/casevault/casevault/sqldb"
)

// ErrKeyDestroyed: the customer's data key was destroyed (crypto-shredding);
// their attachments can never be read again and no new ones are accepted.
var ErrKeyDestroyed = errors.New("customer data key destroyed")

// MasterKeySize is the length of the master key and of every data key.
const MasterKeySize = 32

// MasterKeyFile is the file name under the data dir.
const MasterKeyFile = "master.key"

// LoadOrCreateMasterKey returns the master key from envHex (the value of
// CASEVAULT_MASTER_KEY: 64 hex characters) or, when that is empty, from
// <dataDir>/master.key, generating that file (mode 0600) on first start.
// Errors never include key material.
func LoadOrCreateMasterKey(dataDir, envHex string) ([]byte, error) {
	if envHex = strings.TrimSpace(envHex); envHex != "" {
		key, err := decodeMasterHex(envHex)
		if err != nil {
			return nil, fmt.Errorf("CASEVAULT_MASTER_KEY: %w", err)
		}
		return key, nil
	}

	if dataDir == "" {
		return nil, errors.New("master key: no data dir and CASEVAULT_MASTER_KEY unset")
	}

	path := filepath.Join(dataDir, MasterKeyFile)
	key, err := readMasterFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}

	key = make([]byte, MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}

	// The key is written to a private temp file first and then hard-linked
	// into place: the link appears atomically with its full content and fails
	// when the file exists, so when two processes start at once one wins and
	// the other reads the winner's complete key (O_EXCL on the final name
	// would let the loser read a file that is still empty).
	f, err := os.CreateTemp(dataDir, ".master.key-*")
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}

	tmp := f.Name()
	defer os.Remove(tmp)
	werr := f.Chmod(0o600)
	if werr == nil {
		_, werr = f.WriteString(hex.EncodeToString(key) + "\n")
	}

	if werr == nil {
		werr = f.Sync()
	}

	if cerr := f.Close(); werr == nil {
		werr = cerr
	}

	if werr != nil {
		return nil, fmt.Errorf("master key: write %s: %w", tmp, werr)
	}

	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return readMasterFile(path)
	} else if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}

	if d, err := os.Open(dataDir); err == nil {
		_ = d.Sync()
		d.Close()
	}

	return key, nil
}

func readMasterFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("master key: %s is accessible by group or others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	key, err := decodeMasterHex(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("master key: %s: %w", path, err)
	}
	return key, nil
}

func decodeMasterHex(s string) ([]byte, error) {
	if len(s) != 2*MasterKeySize {
		return nil, fmt.Errorf("must be %d hexadecimal characters, got %d characters", 2*MasterKeySize, len(s))
	}
	key, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("must be hexadecimal")
	}
	return key, nil
}

// Keyring hands out per-customer data keys. Each is random, stored only
// wrapped (AES-256-GCM under the master key, the customer ID bound as
// additional data) in customer_keys and, for backups, in the key escrow
// of the backup repository (never in a backup's table dump); destroying
// the row and the escrow entry makes every copy of the customer's blobs
// and sealed fields, backups included, unreadable.
type Keyring struct {
	db     *sqldb.DB
	master cipher.AEAD
	now    func() time.Time

	mu       sync.Mutex
	cache    map[string]cachedKey
	maxCache int
}

type cachedKey struct {
	wrapped string
	key     []byte
}

// KeyringOptions tunes a Keyring; the zero value is fine.
type KeyringOptions struct {
	// CacheSize bounds the unwrapped keys kept in memory (default 1024).
	CacheSize int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// NewKeyring builds a keyring over the customer_keys table.
func NewKeyring(db *sqldb.DB, masterKey []byte, opts KeyringOptions) (*Keyring, error) {
	if len(masterKey) != MasterKeySize {
		return nil, fmt.Errorf("keyring: master key must be %d bytes, got %d", MasterKeySize, len(masterKey))
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 1024
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Keyring{db: db, master: aead, now: opts.Now, cache: map[string]cachedKey{}, maxCache: opts.CacheSize}, nil
}

const wrapPrefix = "v1."

func keyAD(customerID string) []byte { return []byte("casevault/customer-key/v1\x00" + customerID) }

func (k *Keyring) wrap(customerID string, key []byte) (string, error) {
	nonce := make([]byte, k.master.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	sealed := k.master.Seal(nonce, nonce, key, keyAD(customerID))
	return wrapPrefix + base64.RawStdEncoding.EncodeToString(sealed), nil
}

func (k *Keyring) unwrap(customerID, wrapped string) ([]byte, error) {
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(wrapped, wrapPrefix))
	if !strings.HasPrefix(wrapped, wrapPrefix) || err != nil || len(raw) < k.master.NonceSize()+k.master.Overhead() {
		return nil, fmt.Errorf("keyring: customer %q: malformed wrapped key", customerID)
	}
	ns := k.master.NonceSize()
	key, err := k.master.Open(nil, raw[:ns], raw[ns:], keyAD(customerID))
	if err != nil {
		// Wrong master key, or the row was tampered with / moved.
		return nil, fmt.Errorf("keyring: customer %q: cannot unwrap data key (wrong master key?)", customerID)
	}
	return key, nil
}

// qDataKey is read by every write that seals a field (DataKeyTx).
const qDataKey = `SELECT wrapped_key, destroyed_at FROM customer_keys WHERE customer_id = ?`

// Prepare prepares the data-key read of the write path (sqldb.PrepareWrite:
// not parsed anew in each write). Call it at start-up, outside any
// transaction.
func (k *Keyring) Prepare(ctx context.Context) error {
	return k.db.PrepareWrite(ctx, qDataKey)
}

// lookup reads the wrapped key; found=false when there is no row.
func (k *Keyring) lookup(ctx context.Context, q sqldb.RowQuerier, customerID string) (wrapped string, found bool, err error) {
	return k.scanLookup(k.db.QueryRowIn(ctx, q, qDataKey, customerID), customerID)
}

// lookupTx is lookup in a write transaction, prepared when Prepare ran.
func (k *Keyring) lookupTx(ctx context.Context, tx *sql.Tx, customerID string) (wrapped string, found bool, err error) {
	return k.scanLookup(k.db.QueryRowTx(ctx, tx, qDataKey, customerID), customerID)
}

func (k *Keyring) scanLookup(row *sql.Row, customerID string) (wrapped string, found bool, err error) {
	var w sql.NullString
	var destroyed sql.NullInt64
	err = row.Scan(&w, &destroyed)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, sqldb.Fail("keyring", err)
	}
	if destroyed.Valid || !w.Valid || w.String == "" {
		return "", true, fmt.Errorf("customer %q: %w", customerID, ErrKeyDestroyed)
	}
	return w.String, true, nil
}

// DataKey returns the customer's data key, creating it on first use.
func (k *Keyring) DataKey(ctx context.Context, customerID string) ([]byte, error) {
	key, _, err := k.dataKey(ctx, customerID, true)
	return key, err
}

// ExistingDataKey returns the customer's data key without creating one;
// a customer who never had one gets ErrKeyDestroyed, as nothing of theirs
// can be decrypted.
func (k *Keyring) ExistingDataKey(ctx context.Context, customerID string) ([]byte, error) {
	key, _, err := k.dataKey(ctx, customerID, false)
	return key, err
}

// dataKey always reads the row (one indexed lookup) so that a key
// destroyed through another replica stops working here at once; the cache
// only saves the unwrapping, and is keyed by the wrapped value.
func (k *Keyring) dataKey(ctx context.Context, customerID string, create bool) ([]byte, string, error) {
	if customerID == "" {
		return nil, "", errors.New("keyring: empty customer id")
	}
	wrapped, found, err := k.lookup(ctx, k.db.Read, customerID)
	if err != nil {
		return nil, "", err
	}
	if !found {
		if !create {
			return nil, "", fmt.Errorf("customer %q: no data key: %w", customerID, ErrKeyDestroyed)
		}
		if wrapped, err = k.create(ctx, customerID); err != nil {
			return nil, "", err
		}
	}
	key, err := k.unwrapCached(customerID, wrapped)
	return key, wrapped, err
}

// unwrapCached unwraps the key read from the row, or takes it from the
// cache when the row still holds the value it was unwrapped from.
func (k *Keyring) unwrapCached(customerID, wrapped string) ([]byte, error) {
	k.mu.Lock()
	c, ok := k.cache[customerID]
	k.mu.Unlock()
	if ok && c.wrapped == wrapped {
		return c.key, nil
	}
	key, err := k.unwrap(customerID, wrapped)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	if len(k.cache) >= k.maxCache {
		for id := range k.cache { // evict an arbitrary entry
			delete(k.cache, id)
			break
		}
	}
	k.cache[customerID] = cachedKey{wrapped: wrapped, key: key}
	k.mu.Unlock()
	return key, nil
}

func (k *Keyring) create(ctx context.Context, customerID string) (string, error) {
	var got string
	err := k.db.InTx(ctx, func(tx *sql.Tx) error {
		w, err := k.createTx(ctx, tx, customerID)
		got = w
		return err
	})
	return got, err
}

// createTx stores a new wrapped key for the customer in tx unless one is
// there, and returns the stored one.
func (k *Keyring) createTx(ctx context.Context, tx *sql.Tx, customerID string) (string, error) {
	key := make([]byte, MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("keyring: %w", err)
	}
	wrapped, err := k.wrap(customerID, key)
	if err != nil {
		return "", fmt.Errorf("keyring: %w", err)
	}

	// Two writers racing for a new customer: one insert wins, both then
	// use the stored key.
	_, err = tx.ExecContext(ctx, k.db.Rebind(`INSERT INTO customer_keys (customer_id, wrapped_key, created_at) VALUES (?, ?, ?) ON CONFLICT (customer_id) DO NOTHING`),
		customerID, wrapped, k.now().UnixMicro())
	if err != nil {
		return "", fmt.Errorf("keyring: insert: %w", err)
	}
	w, _, err := k.lookup(ctx, tx, customerID)
	return w, err
}

// DataKeyTx is DataKey inside the caller's write transaction: the row is
// read (and created) there, so a write that seals fields under the key
// commits with it, and no second transaction is opened (SQLite has one
// writer). A key destroyed in the meantime gives ErrKeyDestroyed.
func (k *Keyring) DataKeyTx(ctx context.Context, tx *sql.Tx, customerID string) ([]byte, error) {
	if customerID == "" {
		return nil, errors.New("keyring: empty customer id")
	}
	wrapped, found, err := k.lookupTx(ctx, tx, customerID)
	if err != nil {
		return nil, err
	}
	if !found {
		if wrapped, err = k.createTx(ctx, tx, customerID); err != nil {
			return nil, err
		}
	}
	return k.unwrapCached(customerID, wrapped)
}

// DataKeyFromRow is DataKeyTx with the customer_keys row already read by
// the caller in tx (found: the row exists; sqlstore reads it with the
// case a contact is added to): judged as lookup judges it, and the key
// created in tx when there is no row.
func (k *Keyring) DataKeyFromRow(ctx context.Context, tx *sql.Tx, customerID string, found bool, wrapped sql.NullString, destroyed sql.NullInt64) ([]byte, error) {
	if customerID == "" {
		return nil, errors.New("keyring: empty customer id")
	}
	if !found {
		w, err := k.createTx(ctx, tx, customerID)
		if err != nil {
			return nil, err
		}
		return k.unwrapCached(customerID, w)
	}
	if destroyed.Valid || !wrapped.Valid || wrapped.String == "" {
		return nil, fmt.Errorf("customer %q: %w", customerID, ErrKeyDestroyed)
	}
	return k.unwrapCached(customerID, wrapped.String)
}

// Destroy crypto-shreds the customer's data key: the wrapped key is erased
// from the row (which stays, with destroyed_at, so no new key is ever made
// for this customer and reads fail with ErrKeyDestroyed). Destroying twice
// is not an error.
func (k *Keyring) Destroy(ctx context.Context, customerID string) error {
	err := k.db.InTx(ctx, func(tx *sql.Tx) error { return k.DestroyTx(ctx, tx, customerID) })
	k.Forget(customerID)
	return err
}

// DestroyTx is Destroy inside the caller's transaction (an erasure that
// also writes its audit record). Call Forget after the commit.
func (k *Keyring) DestroyTx(ctx context.Context, tx *sql.Tx, customerID string) error {
	if customerID == "" {
		return errors.New("keyring: empty customer id")
	}
	now := k.now().UnixMicro()
	res, err := tx.ExecContext(ctx, k.db.Rebind(`UPDATE customer_keys SET wrapped_key = NULL, destroyed_at = COALESCE(destroyed_at, ?) WHERE customer_id = ?`), now, customerID)
	if err != nil {
		return fmt.Errorf("keyring: destroy: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		_, err = tx.ExecContext(ctx, k.db.Rebind(`INSERT INTO customer_keys (customer_id, wrapped_key, created_at, destroyed_at) VALUES (?, NULL, ?, ?)`), customerID, now, now)
		if err != nil {
			return fmt.Errorf("keyring: destroy: %w", err)
		}
	}
	// The key's copy in the backups' key escrow must go too; recorded in
	// the same transaction, so an erasure is never committed without it.
	// The escrow (archive/backup/escrow.go) removes the row once the entry
	// is verified gone.
	_, err = tx.ExecContext(ctx, k.db.Rebind(`INSERT INTO key_escrow_pending (customer_id, erased_at) VALUES (?, ?) ON CONFLICT (customer_id) DO NOTHING`), customerID, now)
	if err != nil {
		return fmt.Errorf("keyring: destroy: record escrow deletion: %w", err)
	}
	return nil
}

// Forget drops a cached key (after DestroyTx commits).
func (k *Keyring) Forget(customerID string) {
	k.mu.Lock()
	// Not zeroed: a reader in flight may still hold the slice.
	delete(k.cache, customerID)
	k.mu.Unlock()
}
