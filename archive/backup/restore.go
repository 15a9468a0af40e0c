package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"golang.org/x/sync/errgroup"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqlitebtree"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// RestoreOptions says where a full restore goes.
type RestoreOptions struct {
	// Target is a migrated, empty database (refused otherwise).
	Target *sqldb.DB
	// Blobs is the target's attachment store. Blobs already there (a
	// surviving bucket) are kept, not overwritten.
	Blobs    archive.Blobs
	Identity age.Identity
	// Live are databases whose tombstones are replayed too (the instance
	// the backup came from, when it still exists).
	Live    []*sqldb.DB
	Workers int
	// EscrowWorkers read key escrow entries concurrently (default 8; 1
	// reads them one by one).
	EscrowWorkers int
	Progress      func(Progress)
	Actor         cases.Actor
	// OnChange audits the restore in the target.
	OnChange cases.TxHook

	// loadCacheKiB replaces restoreCacheKiB (tests make the load spill).
	loadCacheKiB int
}

// TableReport compares a restored table with the backup.
type TableReport struct {
	Name     string `json:"name"`
	Rows     int64  `json:"rows"`
	SHA256   string `json:"sha256"`
	Restored string `json:"restored_sha256"`
	Match    bool   `json:"match"`
}

// RestoreReport is what a restore did, with counts and digests.
type RestoreReport struct {
	Backup       string        `json:"backup"`
	SnapshotAt   string        `json:"snapshot_at"`
	Tables       []TableReport `json:"tables"`
	Blobs        int64         `json:"blobs_restored"`
	BlobsPresent int64         `json:"blobs_already_present"`
	BlobBytes    int64         `json:"blob_bytes"`
	Missing      int           `json:"blobs_missing_in_backup"`
	// KeysFromEscrow: data keys read from the key escrow; KeysNotInEscrow:
	// customers whose entry is gone (erased since), left without a key.
	KeysFromEscrow  int          `json:"keys_from_escrow"`
	KeysNotInEscrow int          `json:"keys_not_in_escrow"`
	Tombstones      ReplayReport `json:"tombstones"`
}

// ReplayReport counts the tombstones a restore re-applied.
type ReplayReport struct {
	Sources         []string `json:"sources"`
	Dispositions    int      `json:"dispositions"`
	Deleted         int      `json:"contacts_deleted"`
	Anonymized      int      `json:"contacts_anonymized"`
	Redacted        int      `json:"redactions"`
	CasesDeleted    int      `json:"cases_deleted"`
	ProfilesDeleted int      `json:"profiles_deleted"`
	KeysDestroyed   int      `json:"customer_keys_destroyed"`
	BlobsRemoved    int      `json:"blobs_removed"`
	// PurposesDropped counts contacts a consent withdrawal's drop_purpose
	// record minimised again; ConsentsWithdrawn customers' consents set
	// false again by a consent_withdraw record.
	PurposesDropped   int `json:"purposes_dropped"`
	ConsentsWithdrawn int `json:"consents_withdrawn"`
	// Reversed counts dispositions an undo reversed: recorded, not applied.
	Reversed int `json:"dispositions_reversed"`
	// Security is the security state carried forward (never rolled back).
	Security      SecurityReport `json:"security"`
	blobsToRemove []string       `json:"-"`
}

// CheckEmpty refuses a target that holds any content.
func CheckEmpty(ctx context.Context, db *sqldb.DB) error {
	for _, t := range contentTables {
		var n int64
		if err := db.Read.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t).Scan(&n); err != nil {
			return fmt.Errorf("check target: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("%w: table %s has %d rows (restore into a new data directory or an empty database)", ErrTargetInUse, t, n)
		}
	}
	return nil
}

// Restore puts backup id back into an empty target, then replays every
// later tombstone so nothing deleted since comes back.
func (r *Repo) Restore(ctx context.Context, id string, opts RestoreOptions) (_ RestoreReport, err error) {
	opts.Progress = throttle(opts.Progress, time.Now)
	if opts.Workers <= 0 {
		opts.Workers = 4
	}

	m, err := r.Manifest(ctx, id)
	if err != nil {
		return RestoreReport{}, err
	}

	if opts.Identity == nil {
		return RestoreReport{}, ErrNoKey
	}

	version, err := opts.Target.Version(ctx)
	if err != nil {
		return RestoreReport{}, err
	}

	if m.Source.SchemaVersion > version {
		return RestoreReport{}, fmt.Errorf("backup %s has schema version %d, newer than this binary's %d: restore with a newer casevault", id, m.Source.SchemaVersion, version)
	}

	if err := CheckEmpty(ctx, opts.Target); err != nil {
		return RestoreReport{}, err
	}

	rep := RestoreReport{Backup: id, SnapshotAt: m.SnapshotAt.Format("2006-01-02T15:04:05.000000Z07:00"), Missing: len(m.Missing)}

	// The rows are loaded in one transaction while the blobs are copied
	// (the two use different cores and disks' time), and the transaction
	// commits only once every blob is in place and durable: a crash or a
	// failure before the commit leaves blobs nothing names (kept as
	// "already present" by the next attempt, or removed by the
	// reconciler), never rows whose blob is missing, and the target stays
	// empty for a retry.
	bulk, seal := bulkView(opts.Blobs)

	// A restore that fails leaves the target as it found it: the blobs it
	// wrote go again (a table whose content does not match the signed
	// digest is only found while loading).
	var written []string
	defer func() {
		if err != nil {
			removeBlobs(ctx, opts.Blobs, written)
		}
	}()
	bctx, cancelBlobs := context.WithCancel(ctx)
	defer cancelBlobs()
	blobsDone := make(chan error, 1)
	go func() {
		err := r.restoreBlobs(bctx, m.Blobs, opts, bulk, &rep, &written)
		if err == nil && seal != nil {
			if err = seal(bctx); err != nil {
				err = fmt.Errorf("sync restored blobs: %w", err)
			}
		}
		blobsDone <- err
	}()
	blobsWaited := false
	waitBlobs := func() error {
		blobsWaited = true
		return <-blobsDone
	}
	defer func() {
		if !blobsWaited {
			cancelBlobs()
			_ = waitBlobs()
		}
	}()

	var notEscrowed []string
	if err := r.restoreTables(ctx, m, opts, &notEscrowed, waitBlobs); err != nil {
		return RestoreReport{}, err
	}
	rep.KeysFromEscrow, rep.KeysNotInEscrow = m.escrowedKeys(ctx, opts.Target, len(notEscrowed))

	if rep.Tables, err = restoredDigests(ctx, opts.Target, m); err != nil {
		return RestoreReport{}, err
	}

	ts, err := r.collectTombstones(ctx, m, opts)
	if err != nil {
		return RestoreReport{}, err
	}
	// A customer whose escrow entry is gone was erased: their key is
	// destroyed like any other erasure's (at the restore, unless a later
	// source says when).
	for _, id := range notEscrowed {
		if _, ok := ts.keys[id]; !ok {
			ts.keys[id] = sqldb.Micros(time.Now())
		}
	}

	rr, err := replay(ctx, opts.Target, ts, opts.OnChange, cases.Change{Actor: opts.Actor, Action: "backup.restore", TargetType: "backup", TargetID: id,
		Detail: map[string]any{"snapshot_at": rep.SnapshotAt, "rows": m.Stats.Rows, "blobs": len(m.Blobs)}})
	if err != nil {
		return RestoreReport{}, err
	}

	rr.Sources = ts.sources
	removeBlobs(ctx, opts.Blobs, rr.blobsToRemove)
	rep.Tombstones = rr
	return rep, nil
}

// restoreCacheKiB is SQLite's page cache while a restore loads the rows
// in rollback-journal mode (sqliteLoad): the pages it evicts go to the
// database file and come back from the OS's cache, so a larger cache only
// costs memory: 16 MiB measured as fast as 64 MiB (2.20 vs 2.39 s of CPU
// for 60,000 rows), and each cached page is a malloc, and a madvise when
// it is freed, in the pure-Go SQLite. restoreWALCacheKiB is the cache of a
// load that stays in WAL mode, where evicted pages went to the WAL and were
// read back from it: most of a 200,000-contact database with its indexes,
// inside the 256 MiB a restore may use (issue 17 §4).
const (
	restoreCacheKiB    = 16 << 10
	restoreWALCacheKiB = 64 << 10
)

// sqliteLoad sets the target's write connection (the pool holds one, which
// InTx uses) up for the load and returns the func that sets it back, to
// call after the transaction ended, committed or not:
//
//   - the journal is a rollback journal (DELETE) during the load instead
//     of the WAL. The target is empty, and SQLite journals only the pages
//     that existed before the transaction, so the new rows' pages are
//     written once, into the database file, instead of into the WAL at
//     the commit and again into the file by the checkpoint. A crash or a
//     failure before the commit still leaves the empty database (the
//     journal rolls the few old pages back at the next open), and the
//     synchronous setting stays the target's. Leaving WAL mode needs the
//     only open connection, so the read pool's idle connections are
//     closed and the background checkpoints held for the load; when the switch is refused anyway (another
//     process has the file open) the load stays in WAL mode. Measured on
//     60,000 rows: the commit went from a third of the restore's CPU time
//     to 3%.
//   - the page cache is restoreCacheKiB (restoreWALCacheKiB in WAL mode)
//     and comes back after the commit: shrinking it inside the
//     transaction freed every cached page at the commit.
//   - foreign keys are not checked while loading: the rows are a
//     consistent snapshot, checked against its signed digests, and an
//     immediate foreign key makes every multi-row INSERT keep a statement
//     journal (a copy of each page it changes) to undo itself.
func sqliteLoad(ctx context.Context, db *sqldb.DB, cacheKiB int) (func() error, error) {
	w := db.Write
	var was int64
	if err := w.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&was); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	db.Read.SetMaxIdleConns(0)
	resume := db.HoldCheckpoints()
	var mode string
	if err := w.QueryRowContext(ctx, `PRAGMA journal_mode = DELETE`).Scan(&mode); err != nil && !isBusy(err) {
		db.Read.SetMaxIdleConns(sqldb.SQLiteReadConns)
		resume()
		return nil, fmt.Errorf("restore: journal mode: %w", err)
	}
	rollback := mode == "delete"
	if !rollback {
		db.Read.SetMaxIdleConns(sqldb.SQLiteReadConns)
		resume()
	}
	cache := restoreCacheKiB
	switch {
	case !rollback:
		cache = restoreWALCacheKiB
	case cacheKiB > 0:
		cache = cacheKiB
	}
	if _, err := w.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size = %d`, -cache)); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if _, err := w.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	return func() error {
		ctx := context.WithoutCancel(ctx)
		_, err1 := w.ExecContext(ctx, `PRAGMA foreign_keys = ON`)
		_, err2 := w.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size = %d`, was))
		var err3 error
		if rollback {
			// Back to WAL before anyone reads (the readers, the replay and
			// the server after it expect it); the switch is durable like
			// a commit.
			var mode string
			if err3 = w.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode); err3 == nil && mode != "wal" {
				err3 = fmt.Errorf("journal mode is %q", mode)
			}
			db.Read.SetMaxIdleConns(sqldb.SQLiteReadConns)
			resume()
		}
		if err := errors.Join(err1, err2, err3); err != nil {
			return fmt.Errorf("restore: after the load: %w", err)
		}
		return nil
	}, nil
}

// isBusy reports whether err is SQLite's SQLITE_BUSY.
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// restoreTables loads every table in one transaction, which commits only
// after before (the blobs) succeeded.
// The escrowed data keys are put into customer_keys in the same
// transaction; notEscrowed receives the customers whose entry is gone.
func (r *Repo) restoreTables(ctx context.Context, m Manifest, opts RestoreOptions, notEscrowed *[]string, before func() error) (err error) {
	var total, done int64
	for _, te := range m.Tables {
		total += te.Rows
	}
	progress := func(n int64) {
		done += n
		opts.Progress(Progress{Phase: "tables", Done: done, Total: total, Unit: "rows"})
	}
	if opts.Target.Dialect == sqldb.Postgres {
		if err := r.restoreTablesCopy(ctx, m, opts, notEscrowed, before, progress); !errors.Is(err, errNoCopy) {
			return err
		}
	}
	if opts.Target.Dialect == sqldb.SQLite {
		done, lerr := sqliteLoad(ctx, opts.Target, opts.loadCacheKiB)
		if lerr != nil {
			return lerr
		}
		defer func() { err = errors.Join(err, done()) }()
	}
	return opts.Target.InTx(ctx, func(tx *sql.Tx) error {
		for _, t := range tables {
			te, ok := m.table(t.Name)
			if !ok {
				continue // an older backup: the table keeps what migrations put there
			}
			if t.Singleton {
				if _, err := tx.ExecContext(ctx, "DELETE FROM "+t.Name); err != nil {
					return fmt.Errorf("restore %s: %w", t.Name, err)
				}
			}
			if err := r.restoreTable(ctx, insertLoader(opts.Target.Dialect, tx), t, te, opts, progress); err != nil {
				return err
			}
		}
		progress(0)
		gone, err := r.fillEscrow(ctx, tx, opts.Target.Dialect, m, opts.Identity, opts.EscrowWorkers)
		if err != nil {
			return err
		}
		*notEscrowed = gone
		return before()
	})
}

// restoreBatch is how many decoded rows go from the decoding goroutine
// to the loading one at a time.
const restoreBatch = 500

// rowLoader loads the decoded rows of t as they come (batches closes at
// the end) and returns how many it loaded; it calls advance as it goes.
// It may return early with an error: restoreTable then drains the rest.
type rowLoader func(ctx context.Context, t table, batches <-chan [][]any, advance func(int64)) (int64, error)

// restoreTable streams one table file into load: one goroutine decrypts,
// decompresses and decodes while this one loads (the two halves cost about
// the same, and there are two cores to run them).
func (r *Repo) restoreTable(ctx context.Context, load rowLoader, t table, te TableEntry, opts RestoreOptions, advance func(int64)) error {
	rc, err := r.openTable(ctx, te, opts.Identity)
	if err != nil {
		return err
	}
	defer rc.Close()
	batches := make(chan [][]any, 4)
	stop := make(chan struct{})
	var sum string
	decoded := make(chan error, 1)
	go func() {
		defer close(batches)
		h := sha256.New()
		rr := newArgsReader(io.TeeReader(rc, h), t, opts.Target.Dialect)
		batch := make([][]any, 0, restoreBatch)
		for {
			args, err := rr.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				decoded <- err
				return
			}
			batch = append(batch, args)
			if len(batch) == restoreBatch {
				select {
				case batches <- batch:
				case <-stop:
					decoded <- nil
					return
				}
				batch = make([][]any, 0, restoreBatch)
			}
		}
		// Drain so the digest covers every byte (a trailing newline).
		if _, err := io.Copy(io.Discard, io.TeeReader(rc, h)); err != nil {
			decoded <- fmt.Errorf("%w: %s: %w", ErrDamaged, t.Name, err)
			return
		}
		if len(batch) > 0 {
			select {
			case batches <- batch:
			case <-stop:
			}
		}
		sum = hex.EncodeToString(h.Sum(nil))
		decoded <- nil
	}()
	n, loadErr := load(ctx, t, batches, advance)
	close(stop)
	for range batches {
	}

	if err := <-decoded; err != nil {
		return err
	}

	if loadErr != nil {
		return loadErr
	}

	if n != te.Rows || sum != te.PlainSHA256 {
		return fmt.Errorf("%w: table %s: %d rows, digest %s; the manifest says %d rows, %s", ErrDamaged, t.Name, n, sum, te.Rows, te.PlainSHA256)
	}

	return nil
}

// insertLoader loads rows with multi-row INSERTs in tx.
func insertLoader(d sqldb.Dialect, tx *sql.Tx) rowLoader {
	return func(ctx context.Context, t table, batches <-chan [][]any, advance func(int64)) (int64, error) {
		ins := newInserter(d, tx, t)
		defer ins.close()
		var n int64
		for batch := range batches {
			for _, args := range batch {
				if err := ins.add(ctx, args); err != nil {
					return n, err
				}
			}
			n += int64(len(batch))
			advance(int64(len(batch)))
		}
		return n, ins.flush(ctx)
	}
}

// inserter batches rows into multi-row INSERTs; a full batch goes through
// one statement prepared per table (parsing a 500-row INSERT each time
// showed in the restore profile).
type inserter struct {
	d    sqldb.Dialect
	tx   *sql.Tx
	t    table
	per  int
	args []any
	n    int
	full *sql.Stmt
}

func newInserter(d sqldb.Dialect, tx *sql.Tx, t table) *inserter {
	per := 30000 / len(t.Columns) // under both engines' bound-parameter limits
	if per > 500 {
		per = 500
	}
	return &inserter{d: d, tx: tx, t: t, per: per}
}

func (in *inserter) add(ctx context.Context, args []any) error {
	in.args = append(in.args, args...)
	in.n++
	if in.n == in.per {
		return in.flush(ctx)
	}
	return nil
}

func (in *inserter) query(rows int) string {
	one := "(" + sqldb.Placeholders(len(in.t.Columns)) + ")"
	verb := "INSERT INTO "
	if in.d == sqldb.SQLite {
		// OR FAIL: a failing row fails the restore, whose transaction is
		// rolled back whole, so the statement need not undo its own
		// earlier rows; with the default (ABORT) SQLite kept a statement
		// journal of every page each 500-row INSERT changed.
		verb = "INSERT OR FAIL INTO "
	}
	q := verb + in.t.Name + " (" + strings.Join(in.t.Columns, ", ") + ") VALUES " + strings.TrimSuffix(strings.Repeat(one+",", rows), ",")
	return sqldb.Rebind(in.d, q)
}

func (in *inserter) flush(ctx context.Context) error {
	if in.n == 0 {
		return nil
	}
	var err error
	if in.n == in.per {
		if in.full == nil {
			if in.full, err = in.tx.PrepareContext(ctx, in.query(in.per)); err != nil {
				return fmt.Errorf("restore %s: %w", in.t.Name, err)
			}
		}
		_, err = in.full.ExecContext(ctx, in.args...)
	} else {
		_, err = in.tx.ExecContext(ctx, in.query(in.n), in.args...)
	}
	if err != nil {
		return fmt.Errorf("restore %s: %w", in.t.Name, err)
	}
	in.args, in.n = in.args[:0], 0
	return nil
}

// close releases the prepared statement.
func (in *inserter) close() {
	if in.full != nil {
		in.full.Close()
	}
}

// restoredDigests reads every restored table back as its canonical dump
// and compares its digest with the backup's. The tables are read two at a
// time on the read pool (the largest, contacts, alongside the others): it
// is a tenth of a restore's CPU time and nothing else runs then.
func restoredDigests(ctx context.Context, db *sqldb.DB, m Manifest) ([]TableReport, error) {
	out := make([]TableReport, 0, len(m.Tables))
	for _, te := range m.Tables {
		if _, ok := tableByName(te.Name); ok {
			out = append(out, TableReport{Name: te.Name, Rows: te.Rows, SHA256: te.PlainSHA256})
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for i := range out {
		g.Go(func() error {
			t, _ := tableByName(out[i].Name)
			got, err := tableDigest(gctx, db, m.tableFor(t))
			if err != nil {
				return err
			}
			out[i].Restored, out[i].Match = got, got == out[i].SHA256
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// tableDigest is the SHA-256 of t's canonical dump: on SQLite read from
// the table's pages in a read transaction of its own when the page reader
// takes the table (the query was a fifth of a full restore's CPU), else
// by query. The lines are the same bytes either way.
func tableDigest(ctx context.Context, db *sqldb.DB, t table) (string, error) {
	h := sha256.New()
	if db.Dialect == sqldb.SQLite {
		tx, err := snapshotTx(ctx, db)
		if err != nil {
			return "", err
		}
		defer tx.Rollback()
		src, err := pageRows(ctx, tx, t)
		switch {
		case err == nil:
			if _, err := src(ctx, func(line []byte, _ any, _ []any) error {
				h.Write(line)
				return nil
			}); err != nil {
				return "", err
			}
			return hex.EncodeToString(h.Sum(nil)), nil
		case !errors.Is(err, sqlitebtree.ErrUnsupported):
			return "", err
		}
	}

	if _, err := dumpTable(ctx, db.Read, t, "", nil, h, nil); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// TableDigests returns every backed-up table's canonical digest (tests and
// operators compare two instances with it).
func TableDigests(ctx context.Context, db *sqldb.DB) (map[string]string, error) {
	out := map[string]string{}
	for _, t := range tables {
		d, err := tableDigest(ctx, db, t)
		if err != nil {
			return nil, err
		}
		out[t.Name] = d
	}
	return out, nil
}

func (r *Repo) restoreBlobs(ctx context.Context, blobs []BlobEntry, opts RestoreOptions, dst archive.Blobs, rep *RestoreReport, written *[]string) error {
	var total int64
	for _, b := range blobs {
		total += b.Size
	}
	var mu sync.Mutex
	var done int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Workers)

	// One whole-blob buffer per worker (see restoreBlob).
	bufs := make(chan []byte, opts.Workers)
	for range opts.Workers {
		bufs <- nil
	}
	for _, b := range blobs {
		g.Go(func() error {
			if _, err := opts.Blobs.Stat(gctx, b.Key); err == nil {
				mu.Lock()
				rep.BlobsPresent++
				done += b.Size
				mu.Unlock()
				return nil
			} else if !errors.Is(err, archive.ErrNotFound) {
				return fmt.Errorf("restore blob %s: %w", b.Key, err)
			}
			buf := <-bufs
			n, err := r.restoreBlob(gctx, b, opts.Identity, dst, &buf)
			bufs <- buf
			if err != nil {
				return err
			}
			mu.Lock()
			*written = append(*written, b.Key)
			rep.Blobs++
			rep.BlobBytes += n
			done += b.Size
			d := done
			mu.Unlock()
			opts.Progress(Progress{Phase: "attachments", Done: d, Total: total, Unit: "bytes"})
			return nil
		})
	}
	return g.Wait()
}

// restoreBlob puts one object's blob back into the blob store (a verbatim
// copy as it is, an age file decrypted) and checks it against the digest
// the backup recorded; a mismatch removes what was written. A verbatim
// copy that fits buf (a worker's, under blobInMemory) is read whole through
// the repository's bulk view and checked before anything is written; on
// local disk both the read and the write then bypass the page cache
// (archive/local's bulk reads and direct writes).
func (r *Repo) restoreBlob(ctx context.Context, b BlobEntry, id age.Identity, dst archive.Blobs, buf *[]byte) (int64, error) {
	if b.Encoding == BlobStored && b.Size >= 0 && b.Size < blobInMemory {
		return r.restoreBlobInMemory(ctx, b, dst, buf)
	}

	var rc io.ReadCloser
	var err error
	if b.Encoding == BlobStored {
		// Still encrypted under the customer's data key: no identity needed.
		if rc, err = r.st.Get(ctx, r.key(b.Object)); errors.Is(err, archive.ErrNotFound) {
			err = fmt.Errorf("%w: %s is missing", ErrDamaged, b.Object)
		}
	} else {
		rc, err = r.openFile(ctx, b.Object, id, false)
	}
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	h := newCountingHash(io.Discard)
	src := &readErr{r: rc}
	if err := dst.Put(ctx, b.Key, io.TeeReader(src, h), -1); err != nil {
		if src.err != nil {
			// The object failed to read or decrypt (age authenticates
			// each chunk): the backup is damaged, not the target.
			return 0, fmt.Errorf("%w: blob %s (object %s): %w", ErrDamaged, b.Key, b.Object, src.err)
		}
		return 0, fmt.Errorf("restore blob %s: %w", b.Key, err)
	}
	if b.Digest != "" && h.sum() != b.Digest || b.Encoding == BlobStored && h.n != b.Size {
		_ = dst.Delete(context.WithoutCancel(ctx), b.Key)
		return 0, fmt.Errorf("%w: blob %s: %d bytes, digest %s; the manifest says %d, %s", ErrDamaged, b.Key, h.n, h.sum(), b.Size, b.Digest)
	}
	return h.n, nil
}

// restoreBlobInMemory restores a verbatim copy of at most blobInMemory
// bytes: read whole into buf, checked against the manifest's size and
// digest, then written in one piece.
func (r *Repo) restoreBlobInMemory(ctx context.Context, b BlobEntry, dst archive.Blobs, buf *[]byte) (int64, error) {
	rc, err := r.bulk.Get(ctx, r.key(b.Object))
	if errors.Is(err, archive.ErrNotFound) {
		return 0, fmt.Errorf("%w: %s is missing", ErrDamaged, b.Object)
	}
	if err != nil {
		return 0, fmt.Errorf("restore blob %s: %w", b.Key, err)
	}
	defer rc.Close()
	if *buf == nil {
		*buf = archive.AlignedBuffer(blobInMemory)
	}

	// One byte more than the manifest says: a longer object is damaged.
	n, err := io.ReadFull(rc, (*buf)[:b.Size+1])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("%w: blob %s (object %s): %w", ErrDamaged, b.Key, b.Object, err)
	}
	data := (*buf)[:n]
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); int64(n) != b.Size || b.Digest != "" && got != b.Digest {
		return 0, fmt.Errorf("%w: blob %s: %d bytes, digest %s; the manifest says %d, %s", ErrDamaged, b.Key, n, got, b.Size, b.Digest)
	}

	if err := dst.Put(ctx, b.Key, bytes.NewReader(data), int64(n)); err != nil {
		return 0, fmt.Errorf("restore blob %s: %w", b.Key, err)
	}
	return int64(n), nil
}

// readErr remembers the error its reader returned (other than io.EOF).
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

func removeBlobs(ctx context.Context, blobs archive.Blobs, keys []string) {
	for _, k := range keys {
		_ = blobs.Purge(context.WithoutCancel(ctx), k) // every version; an orphan left here is the reconciler's
	}
}
