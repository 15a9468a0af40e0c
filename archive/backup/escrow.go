package backup

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"golang.org/x/sync/errgroup"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/sqldb"
)

// Key escrow (issue 15 §1). A backup's table chunks are immutable and kept
// for up to a year, so a wrapped data key inside one would outlive the
// customer's erasure: whoever holds that backup and the master key, and
// restores it with a tool that skips tombstones, could unwrap it. So the
// dump leaves customer_keys.wrapped_key out (written as null), and the
// wrapped keys live in the escrow: one object per customer under keys/ in
// the repository, age-encrypted to the backup recipients like every other
// file, the key inside still wrapped under the master key with the
// customer id bound. Each run adds the entries of keys it has not escrowed
// yet; an erasure purges the customer's entry (every S3 version), so every
// existing backup of that customer is left with sealed rows and no key.
//
// We chose leaving the column out over wrapping it under a per-escrow key:
// the escrow object is then the single place a data key exists outside the
// live database, and deleting it is the whole erasure, with no second key
// hierarchy to keep, rotate or lose.
const (
	escrowDir = "keys/"
	// EscrowFormat marks a manifest whose customer_keys dump holds no
	// wrapped key: restores read them from the escrow. A manifest without
	// it (written before the escrow) carries the keys in its dump.
	EscrowFormat = "casevault-key-escrow/1"
	escrowColumn = "wrapped_key"
)

// ErrEscrowPending: an erased customer's escrow entry could not be purged
// (repository unreachable, or a version the server refused to delete); the
// deletion stays recorded in key_escrow_pending and is retried.
var ErrEscrowPending = errors.New("key escrow deletion pending")

type escrowEntry struct {
	Format     string `json:"format"`
	CustomerID string `json:"customer_id"`
	WrappedKey string `json:"wrapped_key"`
}

// defaultEscrowWorkers bounds the escrow objects written, read or purged
// at once. Each is a small object (one age header, a few hundred bytes),
// so a run is bound by the store's round trips, not by CPU or bandwidth:
// on S3 every request waits on the network, and more in flight hides it.
// Eight keeps a first run after the upgrade (one object per customer)
// from taking minutes without flooding the store.
const defaultEscrowWorkers = 8

func escrowWorkers(n int) int {
	if n <= 0 {
		return defaultEscrowWorkers
	}
	return n
}

// escrowKey names a customer's entry: the id hex-encoded, so any id is a
// safe, reversible object name.
func escrowKey(customerID string) string { return escrowDir + hex.EncodeToString([]byte(customerID)) }

// selectColumns is the dump's SELECT list: the escrowed column is read as
// NULL, so the wrapped key never reaches a chunk (and a restored table
// dumps, and hashes, the same once the key is back from the escrow).
func (t table) selectColumns() []string {
	if t.Escrowed == "" {
		return t.Columns
	}
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		if c == t.Escrowed {
			c = "NULL AS " + c
		}
		out[i] = c
	}
	return out
}

// escrowed reports whether m's customer keys are in the escrow.
func (m Manifest) escrowed() bool { return m.KeyEscrow == EscrowFormat }

// tableFor is t as backup m dumped it: a backup from before the escrow
// has the wrapped keys in its customer_keys dump, and its digest covers
// them.
func (m Manifest) tableFor(t table) table {
	if !m.escrowed() {
		t.Escrowed = ""
	}
	return t
}

// escrowList returns the customers that have an entry (a zero-length one,
// left by a power loss before the run that wrote it was sealed, counts as
// missing and is written again).
func (r *Repo) escrowList(ctx context.Context) (map[string]bool, error) {
	have := map[string]bool{}
	prefix := r.key(escrowDir)
	err := r.st.List(ctx, prefix, func(bi archive.BlobInfo) error {
		id, err := hex.DecodeString(strings.TrimPrefix(bi.Key, prefix))
		if err == nil && bi.Size > 0 {
			have[string(id)] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list key escrow: %w", err)
	}
	return have, nil
}

// putEscrow writes one entry through the bulk view (made durable by the
// run's seal, before its manifest).
func (r *Repo) putEscrow(ctx context.Context, recipients []age.Recipient, customerID, wrapped string) error {
	body, _ := json.Marshal(escrowEntry{Format: EscrowFormat, CustomerID: customerID, WrappedKey: wrapped})
	var buf bytes.Buffer
	aw, err := age.Encrypt(&buf, recipients...)
	if err != nil {
		return fmt.Errorf("key escrow: %w", err)
	}
	if _, err := aw.Write(body); err != nil {
		return fmt.Errorf("key escrow: %w", err)
	}
	if err := aw.Close(); err != nil {
		return fmt.Errorf("key escrow: %w", err)
	}
	// A *bytes.Reader: the local store writes it in one call, where any
	// other reader got a 256 KiB copy buffer of its own (one per customer).
	if err := r.bulk.Put(ctx, r.key(escrowKey(customerID)), bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
		return fmt.Errorf("key escrow: write entry: %w", err)
	}
	return nil
}

// purgeEscrow removes every stored version of the customer's entry and
// checks that none is left.
func (r *Repo) purgeEscrow(ctx context.Context, customerID string) error {
	// Not a repository (a CLI run without the backup settings, a dir not
	// mounted): nothing there proves the entry gone from the real one.
	if err := r.check(ctx); err != nil {
		return fmt.Errorf("key escrow: %w", err)
	}
	if err := r.st.Purge(ctx, r.key(escrowKey(customerID))); err != nil {
		return fmt.Errorf("key escrow: purge entry: %w", err)
	}
	return nil
}

// getEscrow reads one entry; found is false when there is none.
func (r *Repo) getEscrow(ctx context.Context, id age.Identity, customerID string) (wrapped string, found bool, err error) {
	rc, err := r.openFile(ctx, escrowKey(customerID), id, false)
	if errors.Is(err, ErrDamaged) {
		// openFile calls a missing object damaged; here it is an erased
		// customer (or one the escrow never held).
		if _, serr := r.st.Stat(ctx, r.key(escrowKey(customerID))); errors.Is(serr, archive.ErrNotFound) {
			return "", false, nil
		}
	}
	if err != nil {
		return "", false, fmt.Errorf("key escrow: %w", err)
	}
	defer rc.Close()
	var e escrowEntry
	if err := json.NewDecoder(io.LimitReader(rc, 1<<16)).Decode(&e); err != nil {
		return "", false, fmt.Errorf("%w: key escrow entry of customer %s: %w", ErrDamaged, customerID, err)
	}
	// The wrapped key is bound to its customer under the master key, so an
	// entry moved to another name would not unwrap anyway; this says so
	// plainly instead.
	if e.Format != EscrowFormat || e.CustomerID != customerID || e.WrappedKey == "" {
		return "", false, fmt.Errorf("%w: key escrow entry of customer %s names customer %q", ErrDamaged, customerID, e.CustomerID)
	}
	return e.WrappedKey, true, nil
}

// readEscrow returns the wrapped keys of customerIDs that the escrow holds;
// a customer without an entry (erased) is left out.
func (r *Repo) readEscrow(ctx context.Context, id age.Identity, customerIDs []string, workers int) (map[string]string, error) {
	out := map[string]string{}
	if len(customerIDs) == 0 {
		return out, nil
	}
	have, err := r.escrowList(ctx)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(escrowWorkers(workers))
	for _, c := range customerIDs {
		if !have[c] {
			continue
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			w, found, err := r.getEscrow(gctx, id, c)
			if err != nil || !found {
				return err
			}
			mu.Lock()
			out[c] = w
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// The statements of a restore's escrow fill (PostgreSQL placeholders where
// a pgx transaction runs them).
const (
	escrowListQuery = `SELECT customer_id FROM customer_keys WHERE destroyed_at IS NULL ORDER BY customer_id`
	escrowSetQuery  = `UPDATE customer_keys SET wrapped_key = $1 WHERE customer_id = $2`
)

// fillEscrow puts the escrowed keys into the customer_keys rows a restore
// just loaded in tx, and returns the customers whose entry is gone: they
// were erased after the backup, and their rows stay sealed with no key.
func (r *Repo) fillEscrow(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, m Manifest, id age.Identity, workers int) ([]string, error) {
	return r.fillEscrowWith(ctx, m, id, workers,
		func() ([]string, error) {
			return sqldb.Collect(ctx, tx, escrowListQuery, nil, func(rows *sql.Rows) (string, error) {
				var s string
				return s, rows.Scan(&s)
			})
		},
		func(customerID, wrapped string) error {
			_, err := tx.ExecContext(ctx, sqldb.Rebind(d, `UPDATE customer_keys SET wrapped_key = ? WHERE customer_id = ?`), wrapped, customerID)
			return err
		})
}

// fillEscrowWith is fillEscrow over a transaction's list and update (a
// database/sql one, or the pgx one of a COPY restore).
func (r *Repo) fillEscrowWith(ctx context.Context, m Manifest, id age.Identity, workers int, list func() ([]string, error), set func(customerID, wrapped string) error) ([]string, error) {
	if !m.escrowed() {
		return nil, nil
	}
	ids, err := list()
	if err != nil {
		return nil, fmt.Errorf("restore key escrow: %w", err)
	}
	got, err := r.readEscrow(ctx, id, ids, workers)
	if err != nil {
		return nil, err
	}
	var gone []string
	for _, c := range ids {
		w, ok := got[c]
		if !ok {
			gone = append(gone, c)
			continue
		}
		if err := set(c, w); err != nil {
			return nil, fmt.Errorf("restore key escrow: %w", err)
		}
	}
	return gone, nil
}

// fillEscrowRows gives backup rows of customer_keys (a single-case
// restore's) their escrowed key; a row whose entry is gone is marked
// destroyed (at now) so that it is never taken for a live key.
func (r *Repo) fillEscrowRows(ctx context.Context, m Manifest, id age.Identity, rows []map[string]any, now time.Time) error {
	if !m.escrowed() {
		return nil
	}
	var ids []string
	for _, row := range rows {
		if row["destroyed_at"] == nil {
			ids = append(ids, asString(row["customer_id"]))
		}
	}
	got, err := r.readEscrow(ctx, id, ids, 0)
	if err != nil {
		return err
	}
	for _, row := range rows {
		if row["destroyed_at"] != nil {
			continue
		}
		if w, ok := got[asString(row["customer_id"])]; ok {
			row[escrowColumn] = w
		} else {
			row[escrowColumn] = nil
			row["destroyed_at"] = sqldb.Micros(now)
		}
	}
	return nil
}

// EscrowStats is what a run did to the escrow.
type EscrowStats struct {
	// Written: entries added (keys no earlier run escrowed).
	Written int64 `json:"keys_escrowed"`
	// Purged: entries of erased customers removed.
	Purged int64 `json:"escrow_purged"`
}

// A run's escrow step comes in two halves: writeEscrow escrows every live
// key that has no entry yet, then finishEscrow purges the entries of every
// destroyed key and every pending deletion. The keys are read after the
// snapshot: a key destroyed since needs no entry, one made since gets one
// early. The destroyed keys are read after the entries are written (and
// after the dump), so an erasure that committed meanwhile is purged here,
// and one that commits later purges what this run wrote itself.

// escrowWrites is what writeEscrow did: the entries the repository has
// (listed, and written by it), how many it wrote, its error.
type escrowWrites struct {
	have    map[string]bool
	written int64
	err     error
}

// writeEscrow is the escrow step's first half: every live key without an
// entry gets one. A run does it while the tables are dumped, once its
// snapshot is pinned; finishEscrow, after the dump, purges.
func (s *Service) writeEscrow(ctx context.Context) escrowWrites {
	have, err := s.repo.escrowList(ctx)
	if err != nil {
		return escrowWrites{err: err}
	}
	type liveKey struct{ id, wrapped string }
	live, err := sqldb.Collect(ctx, s.db.Read, `SELECT customer_id, wrapped_key FROM customer_keys WHERE wrapped_key IS NOT NULL AND destroyed_at IS NULL`, nil,
		func(rows *sql.Rows) (liveKey, error) {
			var k liveKey
			return k, rows.Scan(&k.id, &k.wrapped)
		})
	if err != nil {
		return escrowWrites{have: have, err: fmt.Errorf("key escrow: %w", err)}
	}
	var mu sync.Mutex
	var written []string // merged into have after the workers (the loop reads have)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(escrowWorkers(s.opts.EscrowWorkers))
	for _, k := range live {
		if have[k.id] {
			continue
		}
		g.Go(func() error {
			// After a failure the run fails anyway: the keys still queued
			// are not encrypted and written for nothing.
			if err := gctx.Err(); err != nil {
				return err
			}
			if err := s.repo.putEscrow(gctx, s.opts.Keys.Recipients, k.id, k.wrapped); err != nil {
				return err
			}
			mu.Lock()
			written = append(written, k.id)
			mu.Unlock()
			return nil
		})
	}
	err = g.Wait()
	// Even after a failure: an entry written is one to purge if erased.
	for _, id := range written {
		have[id] = true
	}
	return escrowWrites{have: have, written: int64(len(written)), err: err}
}

// finishEscrow is the escrow step's second half: it purges the entries of
// every key destroyed by now, so an erasure that committed during the run
// (also during its dump) is purged before the manifest.
func (s *Service) finishEscrow(ctx context.Context, w escrowWrites) (EscrowStats, error) {
	st := EscrowStats{Written: w.written}
	if w.err != nil {
		if w.have != nil {
			// The run fails; what it wrote of an erased customer goes
			// anyway (best effort: the next run purges it otherwise).
			_, _ = s.purgeErased(context.WithoutCancel(ctx), w.have)
		}
		return st, w.err
	}
	n, err := s.purgeErased(ctx, w.have)
	st.Purged = n
	return st, err
}

// purgeErased purges the entries in have whose key is destroyed, and every
// pending deletion; it fails unless all of them are gone.
func (s *Service) purgeErased(ctx context.Context, have map[string]bool) (int64, error) {
	gone := map[string]bool{}
	destroyed, err := sqldb.Collect(ctx, s.db.Read, `SELECT customer_id FROM customer_keys WHERE destroyed_at IS NOT NULL OR wrapped_key IS NULL`, nil, scanString)
	if err != nil {
		return 0, fmt.Errorf("key escrow: %w", err)
	}
	for _, id := range destroyed {
		if have[id] {
			gone[id] = true
		}
	}
	pending, err := sqldb.Collect(ctx, s.db.Read, `SELECT customer_id FROM key_escrow_pending`, nil, scanString)
	if err != nil {
		return 0, fmt.Errorf("key escrow: %w", err)
	}
	for _, id := range pending {
		gone[id] = true
	}
	var n int64
	var mu sync.Mutex
	// No shared cancellation here, unlike the writes: every entry purged
	// is an erasure completed, so one refused purge does not stop the
	// others (the run still fails on it).
	var g errgroup.Group
	g.SetLimit(escrowWorkers(s.opts.EscrowWorkers))
	for id := range gone {
		g.Go(func() error {
			if err := s.PurgeEscrow(ctx, id); err != nil {
				return err
			}
			mu.Lock()
			n++
			mu.Unlock()
			return nil
		})
	}
	return n, g.Wait()
}

func scanString(rows *sql.Rows) (string, error) {
	var s string
	return s, rows.Scan(&s)
}

// PurgeEscrow removes the escrow entry of an erased customer (every
// version) and, once it is verified gone, the customer's pending
// deletion. A failure is recorded on the pending row (attempts, error) and
// returned wrapping ErrEscrowPending: the next backup run or retry tries
// again.
func (s *Service) PurgeEscrow(ctx context.Context, customerID string) error {
	if perr := s.repo.purgeEscrow(ctx, customerID); perr != nil {
		msg := perr.Error()
		if len(msg) > 500 {
			msg = msg[:500]
		}
		err := s.db.InTx(context.WithoutCancel(ctx), func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE key_escrow_pending SET attempts = attempts + 1, last_error = ? WHERE customer_id = ?`), msg, customerID)
			return err
		})
		if err != nil {
			return fmt.Errorf("%w: %w (recording it: %w)", ErrEscrowPending, perr, err)
		}
		return fmt.Errorf("%w: %w", ErrEscrowPending, perr)
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM key_escrow_pending WHERE customer_id = ?`), customerID)
		if err != nil {
			return fmt.Errorf("key escrow: %w", err)
		}
		return nil
	})
}

// PurgePendingEscrow retries every pending escrow deletion (the server's
// retry job); it returns how many are left.
func (s *Service) PurgePendingEscrow(ctx context.Context) (int, error) {
	pending, err := sqldb.Collect(ctx, s.db.Read, `SELECT customer_id FROM key_escrow_pending ORDER BY erased_at`, nil, scanString)
	if err != nil {
		return 0, fmt.Errorf("key escrow: %w", err)
	}
	var errs []error
	for _, id := range pending {
		if err := s.PurgeEscrow(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return len(errs), errors.Join(errs...)
}

// EscrowStatus is what /readyz and backup status show of the escrow.
type EscrowStatus struct {
	// PendingDeletions: erased customers whose escrow entry is not yet
	// verified gone.
	PendingDeletions int `json:"pending_deletions"`
	// MaxAttempts is the most purge attempts any of them has had.
	MaxAttempts int `json:"max_attempts,omitempty"`
}

// PendingEscrow reads the pending escrow deletions of db.
func PendingEscrow(ctx context.Context, db *sqldb.DB) (EscrowStatus, error) {
	var st EscrowStatus
	var maxA sql.NullInt64
	if err := db.Read.QueryRowContext(ctx, `SELECT COUNT(*), MAX(attempts) FROM key_escrow_pending`).Scan(&st.PendingDeletions, &maxA); err != nil {
		return st, fmt.Errorf("key escrow: %w", err)
	}
	st.MaxAttempts = int(maxA.Int64)
	return st, nil
}

// escrowedKeys counts, after a restore of m, the keys the escrow gave
// (the live key rows) and those it did not have.
func (m Manifest) escrowedKeys(ctx context.Context, db *sqldb.DB, missing int) (int, int) {
	if !m.escrowed() {
		return 0, 0
	}
	var n int
	_ = db.Read.QueryRowContext(ctx, `SELECT COUNT(*) FROM customer_keys WHERE wrapped_key IS NOT NULL`).Scan(&n)
	return n, missing
}

// EscrowCoverage is how much of a backup's key escrow is still there: of
// the customers whose key was live in the backup, how many still have an
// entry (a restore gives them their key back: their data is readable) and
// how many were erased since (entry gone: their rows restore sealed). An
// erased customer is the escrow working, not damage.
type EscrowCoverage struct {
	// Customers: customers with a live data key in the backup.
	Customers int `json:"customers"`
	// InEscrow: of those, the ones the escrow holds an entry for.
	InEscrow int `json:"in_escrow"`
	// Erased: the ones whose entry is gone (erased after the backup).
	Erased int `json:"erased"`
	// Checked: with read_data, the entries read back and decrypted
	// (each names its customer and holds a key); 0 otherwise.
	Checked int `json:"entries_checked"`
}

// escrowCoverage reads the customers of backup m (its customer_keys dump,
// so it needs the identity) and counts their escrow entries. With readAll
// every entry is also read and decrypted; an unreadable one goes to bad
// (it would fail a restore) rather than failing the count. Nil for a
// backup from before the escrow (its keys are in the dump) or without an
// identity.
func (r *Repo) escrowCoverage(ctx context.Context, m Manifest, id age.Identity, readAll bool, bad func(format string, args ...any)) (*EscrowCoverage, error) {
	if !m.escrowed() || id == nil {
		return nil, nil
	}
	t, ok := tableByName("customer_keys")
	if !ok {
		return nil, nil
	}
	rows, err := r.backupRows(ctx, m, m.tableFor(t), id, func(row map[string]any) bool { return row["destroyed_at"] == nil })
	if err != nil {
		return nil, err
	}
	have, err := r.escrowList(ctx)
	if err != nil {
		return nil, err
	}
	cov := &EscrowCoverage{Customers: len(rows)}
	var held []string
	for _, row := range rows {
		c := asString(row["customer_id"])
		if have[c] {
			cov.InEscrow++
			held = append(held, c)
		} else {
			cov.Erased++
		}
	}
	if !readAll {
		return cov, nil
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(defaultEscrowWorkers)
	for _, c := range held {
		g.Go(func() error {
			_, found, err := r.getEscrow(gctx, id, c)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrWrongKey):
				return err
			case errors.Is(err, ErrDamaged):
				bad("key escrow entry %s: %v", escrowKey(c), err)
			case err != nil:
				return err
			case !found:
				// Purged since the listing: an erasure, not damage.
				cov.InEscrow--
				cov.Erased++
			default:
				cov.Checked++
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return cov, nil
}
