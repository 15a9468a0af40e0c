package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/bg"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqlitebtree"
)

// Progress is one step of long work, reported cumulatively: Done of Total
// Units in Phase (Total 0 when unknown).
type Progress struct {
	Phase string `json:"phase"`
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
	Unit  string `json:"unit"`
}

// Options wires a Service.
type Options struct {
	// Blobs is the attachment store backups copy from and restores into.
	Blobs archive.Blobs
	Keys  Keys
	// Host names the instance in manifests.
	Host string
	// Workers copy attachments and store table chunks concurrently
	// (default: one per core, at least 4, so reads and writes overlap
	// the hashing).
	Workers int
	// EscrowWorkers write and purge key escrow entries concurrently
	// (default 8; 1 is the serial path, kept for comparison).
	EscrowWorkers int
	// LeaseTTL bounds how long a crashed run blocks the next (default 2m);
	// a live run renews its lease every third of it.
	LeaseTTL time.Duration
	OnChange cases.TxHook
	// Guard recovers and reports a panic in a run (nil: recovered only).
	Guard *bg.Guard
	// Now is the clock of run ids, run records and leases (default
	// time.Now), and After how RecoverRuns waits for a lease to expire
	// (default time.After): tests pass a clock they move by hand instead
	// of sleeping until a lease runs out.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// Precheck, when set, may refuse a backup before it starts (a server
	// whose repository other live replicas do not share: issue 20 §15).
	Precheck func(ctx context.Context) error
}

// Service runs backups of one instance into one repository.
type Service struct {
	db   *sqldb.DB
	repo *Repo
	opts Options
}

// New returns a backup service for db (the instance) and repo (the target).
func New(db *sqldb.DB, repo *Repo, opts Options) *Service {
	if opts.Workers <= 0 {
		opts.Workers = max(4, runtime.GOMAXPROCS(0))
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 2 * time.Minute
	}
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	return &Service{db: db, repo: repo, opts: opts}
}

// Repo returns the service's repository.
func (s *Service) Repo() *Repo { return s.repo }

// finishingWait bounds how long a new run waits for the lease of a run
// that has recorded its end but not yet given the lease back.
const finishingWait = 2 * time.Second

// takeWhenEnded calls take until it gets the lease. A run records its end
// while it still holds the lease (two runs never overlap), which leaves a
// moment when a client that saw it end is refused the next one (409); when
// no run is recorded running, the holder is ending and the lease is waited
// for, briefly. A run recorded running refuses at once (ErrLocked).
func (s *Service) takeWhenEnded(ctx context.Context, take func() error) error {
	deadline := time.Now().Add(finishingWait)
	for {
		err := take()
		if !errors.Is(err, ErrLocked) || time.Now().After(deadline) {
			return err
		}

		var running int
		if err := s.db.Read.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM backup_runs WHERE status = ?`), StatusRunning).Scan(&running); err != nil {
			return fmt.Errorf("backup lease: %w", err)
		}
		if running > 0 {
			return ErrLocked
		}

		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// lease takes the one-run-at-a-time lock for holder, or ErrLocked. The
// returned context is cancelled if the lease cannot be renewed (another
// replica could then start a run), and release gives it back.
func (s *Service) lease(ctx context.Context, holder string) (context.Context, func(), error) {
	take := func(ctx context.Context, renew bool) error {
		now := s.opts.Now()
		q := `UPDATE backup_lease SET holder = ?, expires_at = ? WHERE id = 1 AND (holder IS NULL OR holder = ? OR expires_at < ?)`
		if renew {
			q = `UPDATE backup_lease SET expires_at = ? WHERE id = 1 AND holder = ?`
		}
		var res sql.Result
		err := s.db.InTx(ctx, func(tx *sql.Tx) error {
			var err error
			if renew {
				res, err = tx.ExecContext(ctx, s.db.Rebind(q), sqldb.Micros(now.Add(s.opts.LeaseTTL)), holder)
				return err
			}
			res, err = tx.ExecContext(ctx, s.db.Rebind(q), holder, sqldb.Micros(now.Add(s.opts.LeaseTTL)), holder, sqldb.Micros(now))
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				// We hold the lease: no other run is alive, so any run
				// still "running" died with its process.
				_, err = s.markRuns(ctx, tx, "", now)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("backup lease: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrLocked
		}
		return nil
	}

	if err := s.takeWhenEnded(ctx, func() error { return take(ctx, false) }); err != nil {
		return nil, nil, err
	}

	lctx, cancel := context.WithCancelCause(ctx)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(s.opts.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-lctx.Done():
				return
			case <-t.C:
				if err := take(lctx, true); err != nil {
					cancel(fmt.Errorf("backup lease lost: %w", err))
					return
				}
			}
		}
	}()
	release := func() {
		close(stop)
		wg.Wait()
		rctx, c := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer c()
		_ = s.db.InTx(rctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(rctx, s.db.Rebind(`UPDATE backup_lease SET holder = NULL, expires_at = 0 WHERE id = 1 AND holder = ?`), holder)
			return err
		})
		cancel(nil)
	}

	return lctx, release, nil
}

// Run is a backup run as recorded on this instance.
type Run struct {
	ID         string          `json:"id"`
	Kind       string          `json:"kind"`
	Status     string          `json:"status"`
	Origin     string          `json:"origin"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at"`
	Error      string          `json:"error,omitempty"`
	Report     json.RawMessage `json:"report"`
}

// Run statuses.
const (
	StatusRunning = "running"
	StatusDone    = "done"
	StatusFailed  = "failed"
	// StatusInterrupted: the run was cancelled (shutdown, SIGINT), or its
	// process died and a later start-up or run found it still "running".
	StatusInterrupted = "interrupted"
)

// errDied is the error recorded for a run whose process died.
const errDied = "interrupted: the process running it stopped before it finished (crash, kill or power loss)"

// markRuns marks every run still "running", except keep's, interrupted.
func (s *Service) markRuns(ctx context.Context, tx *sql.Tx, keep string, now time.Time) (int64, error) {
	res, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE backup_runs SET status = ?, finished_at = ?, error = ? WHERE status = ? AND id <> ?`),
		StatusInterrupted, sqldb.Micros(now), errDied, StatusRunning, keep)
	if err != nil {
		return 0, fmt.Errorf("mark interrupted backup runs: %w", err)
	}
	return res.RowsAffected()
}

// RecoverRuns marks the runs a crashed process left "running" as
// interrupted; the server calls it at start-up. A run that still holds an
// unexpired lease may be alive in another replica or a CLI process: it is
// looked at again once that lease has expired (a live run renews it every
// third of its TTL, so by then a live one has extended it and is left
// alone). It returns how many runs it marked.
func (s *Service) RecoverRuns(ctx context.Context) (int, error) {
	total := 0
	for pass := 0; ; pass++ {
		n, until, err := s.recoverOnce(ctx)
		total += int(n)
		if err != nil || until.IsZero() || pass == 1 {
			return total, err
		}
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-s.opts.After(until.Sub(s.opts.Now()) + time.Second):
		}
	}
}

// recoverOnce marks the runs not holding a live lease; until is the expiry
// of the live lease a "running" run holds (zero when none does).
func (s *Service) recoverOnce(ctx context.Context) (n int64, until time.Time, err error) {
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		now := s.opts.Now()
		q := `SELECT holder, expires_at FROM backup_lease WHERE id = 1`
		if s.db.Dialect == sqldb.Postgres {
			// No run may take the lease (and insert its row) between
			// this read and the update below.
			q += ` FOR UPDATE`
		}
		var holder sql.NullString
		var exp int64
		if err := tx.QueryRowContext(ctx, q).Scan(&holder, &exp); err != nil {
			return fmt.Errorf("backup lease: %w", err)
		}
		keep := ""
		if holder.Valid && exp >= sqldb.Micros(now) {
			keep = holder.String
		}
		var err error
		if n, err = s.markRuns(ctx, tx, keep, now); err != nil {
			return err
		}
		if keep == "" {
			return nil
		}
		var running int
		if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM backup_runs WHERE id = ? AND status = ?`), keep, StatusRunning).Scan(&running); err != nil {
			return fmt.Errorf("backup runs: %w", err)
		}
		if running > 0 {
			until = time.UnixMicro(exp)
		}
		return nil
	})
	return n, until, err
}

func (s *Service) recordStart(ctx context.Context, id, kind, origin string, at time.Time) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO backup_runs (id, kind, status, origin, started_at) VALUES (?, ?, ?, ?, ?)`),
			id, kind, StatusRunning, origin, sqldb.Micros(at))
		return err
	})
}

func (s *Service) recordEnd(ctx context.Context, id string, report any, runErr error, ch *cases.Change) error {
	ctx = context.WithoutCancel(ctx)
	status, msg := StatusDone, ""
	switch {
	case errors.Is(runErr, context.Canceled):
		status, msg = StatusInterrupted, runErr.Error()
	case runErr != nil:
		status, msg = StatusFailed, runErr.Error()
	}
	rep, _ := json.Marshal(report)
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE backup_runs SET status = ?, finished_at = ?, error = ?, report = ? WHERE id = ?`),
			status, sqldb.Micros(s.opts.Now()), msg, string(rep), id)
		if err != nil {
			return err
		}
		if ch != nil && s.opts.OnChange != nil {
			return s.opts.OnChange(ctx, tx, *ch)
		}
		return nil
	})
}

// GetRun returns a recorded run.
func (s *Service) GetRun(ctx context.Context, id string) (Run, error) {
	row := s.db.Read.QueryRowContext(ctx, s.db.Rebind(`SELECT id, kind, status, origin, started_at, finished_at, error, report FROM backup_runs WHERE id = ?`), id)
	r, err := scanRun(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return r, err
}

// Runs lists the latest recorded runs, newest first.
func (s *Service) Runs(ctx context.Context, limit int) ([]Run, error) {
	rows, err := s.db.Read.QueryContext(ctx, s.db.Rebind(`SELECT id, kind, status, origin, started_at, finished_at, error, report FROM backup_runs ORDER BY started_at DESC, id DESC LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("backup runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func scanRun(row interface{ Scan(...any) error }) (Run, error) {
	var r Run
	var started int64
	var finished sql.NullInt64
	var rep string
	if err := row.Scan(&r.ID, &r.Kind, &r.Status, &r.Origin, &started, &finished, &r.Error, &rep); err != nil {
		return Run{}, err
	}
	r.StartedAt = time.UnixMicro(started).UTC()
	if finished.Valid {
		t := time.UnixMicro(finished.Int64).UTC()
		r.FinishedAt = &t
	}
	r.Report = json.RawMessage(rep)
	return r, nil
}

// Start begins a backup in the background and returns its ID at once (the
// API's 202); ErrLocked when a run is already going on.
func (s *Service) Start(ctx context.Context, origin string, actor cases.Actor) (string, <-chan error, error) {
	return s.StartWithProgress(ctx, origin, actor, nil)
}

// StartWithProgress is Start with a progress callback (nil: none), called
// from the run's goroutine (the console's progress page reads it).
func (s *Service) StartWithProgress(ctx context.Context, origin string, actor cases.Actor, progress func(Progress)) (string, <-chan error, error) {
	if err := s.precheck(ctx); err != nil {
		return "", nil, err
	}
	now := s.opts.Now()
	id := newID(now)
	lctx, release, err := s.lease(ctx, id)
	if err != nil {
		return "", nil, err
	}
	if err := s.recordStart(ctx, id, "backup", origin, now); err != nil {
		release()
		return "", nil, fmt.Errorf("record backup run: %w", err)
	}
	done := make(chan error, 1)
	// Through the Guard, so the server waits for the run before it closes
	// the store (backup.run's own recovery reports a panic inside).
	s.opts.Guard.Go("backup.start", func() {
		defer release()
		_, err := s.backup(lctx, id, now, origin, actor, nil, progress)
		done <- err
	})
	return id, done, nil
}

func (s *Service) precheck(ctx context.Context) error {
	if s.opts.Precheck == nil {
		return nil
	}
	return s.opts.Precheck(ctx)
}

// Backup runs one backup now and waits for it.
func (s *Service) Backup(ctx context.Context, origin string, actor cases.Actor, progress func(Progress)) (Manifest, error) {
	return s.BackupTagged(ctx, origin, actor, nil, progress)
}

// BackupTagged is Backup with tags recorded in the signed manifest
// (`backup run --tag`; `forget --keep-tag` keeps what they name).
func (s *Service) BackupTagged(ctx context.Context, origin string, actor cases.Actor, tags []string, progress func(Progress)) (Manifest, error) {
	if err := CheckTags(tags); err != nil {
		return Manifest{}, err
	}

	if err := s.precheck(ctx); err != nil {
		return Manifest{}, err
	}
	now := s.opts.Now()
	id := newID(now)
	lctx, release, err := s.lease(ctx, id)
	if err != nil {
		return Manifest{}, err
	}
	defer release()
	if err := s.recordStart(ctx, id, "backup", origin, now); err != nil {
		return Manifest{}, fmt.Errorf("record backup run: %w", err)
	}
	return s.backup(lctx, id, now, origin, actor, tags, progress)
}

func (s *Service) backup(ctx context.Context, id string, started time.Time, origin string, actor cases.Actor, tags []string, progress func(Progress)) (m Manifest, err error) {
	progress = throttle(progress, s.opts.Now)
	defer func() {
		if cause := context.Cause(ctx); err != nil && cause != nil && cause != ctx.Err() {
			err = fmt.Errorf("%w (%w)", err, cause)
		}
		ch := cases.Change{Actor: actor, Action: "backup.run", TargetType: "backup", TargetID: id,
			Detail: map[string]any{"origin": origin, "rows": m.Stats.Rows, "blobs_new": m.Stats.BlobsNew, "bytes_new": m.Stats.BytesNew}}
		if err != nil {
			ch.Detail["error"] = err.Error()
		}
		if rerr := s.recordEnd(ctx, id, m.Stats, err, &ch); rerr != nil && err == nil {
			err = fmt.Errorf("record backup run: %w", rerr)
		}
	}()

	// a panic becomes err before the record above is written: failed, not ok
	defer s.opts.Guard.Recover("backup.run", &err)
	if len(s.opts.Keys.Recipients) == 0 {
		return Manifest{}, fmt.Errorf("%w: no backup recipient configured", ErrNoKey)
	}

	if s.repo.signer == nil {
		return Manifest{}, ErrNoSigningKey
	}

	if err := s.repo.ensure(ctx); err != nil {
		return Manifest{}, err
	}

	// A marker names the run in snapshots/ from its start: an interrupted
	// run is a snapshot directory without a manifest (its chunks and
	// copies live under data/), which forget removes with the objects no
	// manifest lists.
	mark := []byte(`{"id":"` + id + `","started_at":"` + started.UTC().Format(time.RFC3339Nano) + `"}`)
	if err := s.repo.bulk.Put(ctx, s.repo.key(snapshotsDir+id+"/"+startedName), bytes.NewReader(mark), int64(len(mark))); err != nil {
		return Manifest{}, fmt.Errorf("start backup %s: %w", id, err)
	}

	version, err := s.db.Version(ctx)
	if err != nil {
		return Manifest{}, err
	}

	var instance string
	if err := s.db.Read.QueryRowContext(ctx, `SELECT instance_id FROM instance WHERE id = 1`).Scan(&instance); err != nil {
		return Manifest{}, fmt.Errorf("instance id: %w", err)
	}

	m = Manifest{Format: ManifestFormat, ID: id, StartedAt: started.UTC(), Recipients: s.opts.Keys.Public, Tags: tags,
		Source: Source{Instance: instance, Engine: string(s.db.Dialect), SchemaVersion: version, Host: s.opts.Host}}
	prev, err := s.reusable(ctx, m.Source)
	if err != nil {
		return Manifest{}, err
	}

	// The keys of the snapshot's live customers go to the escrow, and the
	// entries of erased customers go, before the manifest: a backup is
	// never listed while an erased customer's entry exists. The entries
	// are written while the tables and blobs are copied, from the moment
	// the snapshot is pinned (writeEscrow reads the keys after it), not
	// after them, where they were a serial tail of the run; the purge of
	// destroyed keys' entries stays after the dump, so an erasure that
	// commits during it is purged by this run.
	ectx, ecancel := context.WithCancelCause(ctx)
	defer ecancel(nil)
	var escrow escrowWrites
	escrowDone := make(chan struct{})
	escrowStarted := false
	pinned := func() {
		escrowStarted = true
		go func() {
			defer close(escrowDone)
			if escrow = s.writeEscrow(ectx); escrow.err != nil {
				ecancel(escrow.err)
			}
		}()
	}
	fingerprints, err := s.dumpAndCopy(ectx, &m, prev, progress, pinned)
	defer func() { _ = fingerprints() }()
	if !escrowStarted {
		// dumpAndCopy failed before its snapshot was pinned.
		return Manifest{}, err
	}
	if err != nil {
		ecancel(err)
	}
	<-escrowDone
	if err != nil || escrow.err != nil {
		// The failure that came first (it cancelled the other); the
		// escrow's purge below still runs, so what it wrote of a customer
		// erased meanwhile goes.
		first := context.Cause(ectx)
		if first == nil {
			first = errors.Join(err, escrow.err)
		}
		escrow.err = first
	}
	if m.Stats.Escrow, err = s.finishEscrow(ctx, escrow); err != nil {
		return Manifest{}, err
	}
	m.KeyEscrow = EscrowFormat

	m.FinishedAt = s.opts.Now().UTC()
	m.Stats.DurationMS = m.FinishedAt.Sub(started).Milliseconds()

	// Every file durable, then the manifest last: until it exists the
	// backup is not listed, so an interrupted run can never be taken for a
	// complete one.
	if err := ctx.Err(); err != nil {
		return Manifest{}, err
	}

	if err := s.repo.seal(ctx); err != nil {
		return Manifest{}, err
	}

	if err := fingerprints(); err != nil {
		return Manifest{}, err
	}

	if err := s.repo.putSigned(ctx, id, m); err != nil {
		return Manifest{}, err
	}

	return m, nil
}

// attRef is an attachment blob the snapshot references.
type attRef struct {
	key  string
	size int64 // plaintext size
	// stored is the SHA-256 of the blob's stored bytes recorded at upload
	// ("" when the row has none: the copy hashes the blob).
	stored string
}

// rowSource reads t in q's snapshot: from its pages on SQLite when the
// page reader can (the row-by-row query was the full backup's critical
// path), else by a query, which also gives the caller each row's values
// when needValues.
func (s *Service) rowSource(ctx context.Context, q *sql.Tx, t table, needValues bool) (rowSource, error) {
	if s.db.Dialect != sqldb.SQLite || needValues {
		return queryRows(q, t), nil
	}
	src, err := pageRows(ctx, q, t)
	if errors.Is(err, sqlitebtree.ErrUnsupported) {
		return queryRows(q, t), nil
	}
	return src, err
}

// dumpAndCopy dumps every table into chunks and copies the attachment
// blobs the snapshot references, at the same time: the attachments table
// is dumped first, then its blobs are copied by workers while the other
// tables are read (the database read is one goroutine; compression,
// encryption and copies spread over the cores).
//
// A table that no earlier backup can stand in for (a first backup, or a
// table new to the repository) is dumped whatever its fingerprint, so its
// fingerprint is taken after all the dumps, still in the snapshot, while
// the run's files are made durable: the returned fingerprints waits for
// them, puts them into m's entries and ends the snapshot. In a first full
// backup they were a fifth of the snapshot thread's time, the run's
// critical path (issue 17 §4). Call it once dumpAndCopy returned, even
// after an error (it is idempotent).
func (s *Service) dumpAndCopy(ctx context.Context, m *Manifest, prev reuse, progress func(Progress), pinned func()) (fingerprints func() error, err error) {
	none := func() error { return nil }
	runCtx := ctx
	// A failed copy stops the dump and the other way round.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Begun under the run's context: database/sql rolls a transaction back
	// when its context ends, and the snapshot outlives ctx (fingerprints).
	tx, err := snapshotTx(runCtx, s.db)
	if err != nil {
		return none, err
	}
	snapshotHeld := false
	defer func() {
		if !snapshotHeld {
			_ = tx.Rollback()
		}
	}()

	// Counting first pins the snapshot (SQLite takes it at the first read)
	// and gives the progress bar its total.
	var total int64
	counts := make(map[string]int64, len(tables))
	m.SnapshotAt = s.opts.Now().UTC()
	for _, t := range tables {
		var n int64
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t.Name).Scan(&n); err != nil {
			return none, fmt.Errorf("count %s: %w", t.Name, err)
		}
		counts[t.Name] = n
		total += n
	}
	pinned()

	// One phase at a time for the progress bar: the copy's progress waits
	// (latest event kept) until the tables are done.
	var pmu sync.Mutex
	tablesDone := false
	var held *Progress
	blobProgress := func(p Progress) {
		pmu.Lock()
		defer pmu.Unlock()
		if !tablesDone {
			held = &p
			return
		}
		progress(p)
	}

	cs := newChunkStore(ctx, s.repo, s.opts.Keys.Recipients, prev.chunks, s.opts.Workers)
	var done int64
	var atts []attRef
	var blobs errgroup.Group
	pending := make([]*pendingTable, 0, len(tables))
	var later []table // dumped; fingerprints taken after the dumps
	err = func() error {
		for _, t := range dumpOrder() {
			each := func(vals []any) error {
				done++
				if done%2048 == 0 {
					progress(Progress{Phase: "tables", Done: done, Total: total, Unit: "rows"})
				}
				if t.Name == "attachments" {
					atts = append(atts, attRef{key: asString(vals[8]), size: asInt(vals[6]), stored: asString(vals[10])})
				}
				return nil
			}
			fp := ""
			switch {
			case !skipsByFingerprint(t):
			case !prev.names[t.Name]:
				later = append(later, t)
			default:
				var err error
				if fp, err = fingerprint(ctx, tx, s.db.Dialect, t); err != nil {
					return err
				}
			}
			var p *pendingTable
			if old, ok := prev.tables[t.Name+"\x00"+fp]; ok && fp != "" {
				p = cs.relist(old)
				done += old.Rows
				if t.Name == "attachments" {
					var err error
					if atts, err = attachmentRefs(ctx, tx); err != nil {
						return err
					}
				}
			} else {
				// The blob copy needs the attachments' values.
				src, err := s.rowSource(ctx, tx, t, t.Name == "attachments")
				if err != nil {
					return err
				}
				if p, err = cs.dump(ctx, src, t, each); err != nil {
					return err
				}

				// Both readers see the snapshot the counts were taken in: a
				// difference is a reader's fault, never a writer's.
				if p.entry.Rows != counts[t.Name] {
					return fmt.Errorf("dump %s: %d rows read, %d counted in the same snapshot", t.Name, p.entry.Rows, counts[t.Name])
				}
				p.entry.Fingerprint = fp
			}
			pending = append(pending, p)
			if t.Name == "attachments" {
				blobs.Go(func() error {
					err := s.copyBlobs(ctx, m, atts, prev.blobs, blobProgress)
					if err != nil {
						cancel(err)
					}
					return err
				})
			}
		}
		return nil
	}()
	if err != nil {
		cancel(err)
	}
	progress(Progress{Phase: "tables", Done: done, Total: total, Unit: "rows"})

	// The deferred fingerprints read the snapshot on their own goroutine;
	// then it is not needed any more: writers may checkpoint.
	fingerprints = none
	if err == nil {
		snapshotHeld = true
		fps := make(map[string]string, len(later))
		fpDone := make(chan error, 1)
		// runCtx, not ctx: ctx ends when this function returns.
		go func() {
			defer tx.Rollback()
			for _, t := range later {
				fp, err := fingerprint(runCtx, tx, s.db.Dialect, t)
				if err != nil {
					fpDone <- err
					return
				}
				fps[t.Name] = fp
			}
			fpDone <- nil
		}()
		fingerprints = sync.OnceValue(func() error {
			if err := <-fpDone; err != nil {
				return err
			}
			for i, te := range m.Tables {
				if fp, ok := fps[te.Name]; ok {
					m.Tables[i].Fingerprint = fp
				}
			}
			return nil
		})
	}
	pmu.Lock()
	tablesDone = true
	if held != nil {
		progress(*held)
	}
	pmu.Unlock()
	if werr := cs.wait(); err == nil {
		err = werr
	}
	if berr := blobs.Wait(); err == nil {
		err = berr
	}
	if err != nil {
		return fingerprints, err
	}

	byName := map[string]TableEntry{}
	for _, p := range pending {
		byName[p.entry.Name] = p.finish()
	}
	for _, t := range tables {
		te := byName[t.Name]
		m.Tables = append(m.Tables, te)
		m.Stats.Rows += te.Rows
		m.Stats.TableBytes += te.Size
	}
	m.Stats.ChunksNew, m.Stats.ChunksReused, m.Stats.TableBytesReused, m.Stats.TablesReused = cs.written, cs.reused, cs.bytesOld, cs.tablesReused
	return fingerprints, nil
}

// dumpOrder is tables with attachments first (its blobs are copied while
// the rest is dumped); the manifest keeps restore order.
func dumpOrder() []table {
	out := make([]table, 0, len(tables))
	for _, t := range tables {
		if t.Name == "attachments" {
			out = append([]table{t}, out...)
		} else {
			out = append(out, t)
		}
	}
	return out
}

// attachmentRefs lists the blobs the snapshot's attachments reference,
// for a run that lists the attachments table from an earlier backup
// instead of dumping it.
func attachmentRefs(ctx context.Context, q querier) ([]attRef, error) {
	rs, err := q.QueryContext(ctx, `SELECT blob_key, size, COALESCE(stored_sha256, '') FROM attachments ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("attachment blobs: %w", err)
	}
	defer rs.Close()
	var out []attRef
	for rs.Next() {
		var a attRef
		if err := rs.Scan(&a.key, &a.size, &a.stored); err != nil {
			return nil, fmt.Errorf("attachment blobs: %w", err)
		}
		out = append(out, a)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("attachment blobs: %w", err)
	}
	return out, nil
}

func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return ""
}

func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int32:
		return int64(x)
	}
	return 0
}

// reuse is what earlier backups stored that a run need not store again:
// attachment copies by blob key, table chunks by plain digest.
type reuse struct {
	blobs  map[string]BlobEntry
	chunks map[string]ChunkEntry
	// names are the tables that have an entry in tables: only those can
	// be listed from an earlier backup instead of dumped.
	names map[string]bool
	// tables are the latest entries of backups of this same instance,
	// engine and schema, keyed by table name and fingerprint, every chunk
	// still in the repository: an unchanged table is not dumped again.
	tables map[string]TableEntry
}

// reusable maps blob keys and chunk digests to objects that earlier
// backups stored and that are still in the repository with their size.
func (s *Service) reusable(ctx context.Context, src Source) (reuse, error) {
	// A damaged manifest only means its objects are not reused. Nor are an
	// unsigned one's: its mapping from blob key to object is unproven, and
	// this backup's signature would vouch for it.
	ms, _, err := s.repo.list(ctx, false)
	if err != nil {
		return reuse{}, err
	}
	have, err := s.repo.objects(ctx)
	if err != nil {
		return reuse{}, err
	}
	out := reuse{blobs: map[string]BlobEntry{}, chunks: map[string]ChunkEntry{}, names: map[string]bool{}, tables: map[string]TableEntry{}}
	for _, m := range ms {
		for _, b := range m.Blobs {
			if size, ok := have[b.Object]; ok && size == b.Size {
				out.blobs[b.Key] = b
			}
		}
		same := m.Format != formatV1 && src.Instance != "" && m.Source.Instance == src.Instance &&
			m.Source.Engine == src.Engine && m.Source.SchemaVersion == src.SchemaVersion
		for _, t := range m.Tables {
			whole := true
			for _, c := range t.Chunks {
				if size, ok := have[c.Object]; ok && size == c.Size {
					out.chunks[c.PlainSHA256] = c
				} else {
					whole = false
				}
			}
			// ms is oldest first: the latest backup's entry wins.
			if same && whole && t.Fingerprint != "" {
				out.tables[t.Name+"\x00"+t.Fingerprint] = t
				out.names[t.Name] = true
			}
		}
	}
	return out, nil
}

// objects lists the repository's data objects with their sizes.
func (r *Repo) objects(ctx context.Context) (map[string]int64, error) {
	have := map[string]int64{}
	err := r.st.List(ctx, r.key(dataDir), func(bi archive.BlobInfo) error {
		have[bi.Key[len(r.prefix):]] = bi.Size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list backup objects: %w", err)
	}
	return have, nil
}

func (s *Service) copyBlobs(ctx context.Context, m *Manifest, atts []attRef, prev map[string]BlobEntry, progress func(Progress)) error {
	var todo []attRef
	var total int64
	seen := map[string]bool{}
	for _, a := range atts {
		if seen[a.key] {
			continue
		}
		seen[a.key] = true
		if b, ok := prev[a.key]; ok {
			m.Blobs = append(m.Blobs, b)
			m.Stats.BlobsReused++
			continue
		}
		todo = append(todo, a)
		total += archive.EncryptedSize(a.size)
	}

	var mu sync.Mutex
	var done int64
	// One read buffer per worker, reused blob after blob.
	bufs := make(chan []byte, s.opts.Workers)
	for range s.opts.Workers {
		bufs <- nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Workers)
	for _, a := range todo {
		g.Go(func() error {
			buf := <-bufs
			b, err := s.copyBlob(gctx, a, &buf, func(n int64) {
				// Reported under the lock: workers reporting out of order
				// would let a stale count be the last one shown (and the
				// copy never look finished).
				mu.Lock()
				defer mu.Unlock()
				done += n
				progress(Progress{Phase: "attachments", Done: done, Total: total, Unit: "bytes"})
			})
			bufs <- buf
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, archive.ErrNotFound):
				m.Missing = append(m.Missing, a.key)
				return nil
			case err != nil:
				return err
			}
			m.Blobs = append(m.Blobs, b)
			m.Stats.BlobsNew++
			m.Stats.BytesNew += b.Size
			return nil
		})
	}

	if err := g.Wait(); err != nil {
		return err
	}

	m.Stats.Blobs = int64(len(m.Blobs))
	sortBlobs(m.Blobs)
	return nil
}

// blobInMemory is the largest blob copied through a worker's buffer
// (read once, hashed, written straight to its content address); a larger
// one streams to a temporary name and is renamed once its digest is known
// (on S3 a rename is a server-side copy, so only large blobs pay for it).
const blobInMemory = 8 << 20

// copyBlob copies one attachment blob verbatim: the attachment store's
// bytes are already encrypted under the customer's data key (archive's
// object format), so the copy adds no encryption of its own (BlobStored).
// The bytes are read once; the digest is both the object's name and the
// blob's digest. A blob that fits buf and whose row recorded the digest of
// its stored bytes at upload is not hashed: it is named by that digest
// once its size is the one the row's plaintext size encrypts to (a blob
// damaged in the store since is then caught by the digest checks of verify
// --read-data and restore, which a digest taken here would have vouched
// for). Otherwise it is hashed. buf is the worker's read buffer (grown
// here).
func (s *Service) copyBlob(ctx context.Context, a attRef, buf *[]byte, advance func(int64)) (BlobEntry, error) {
	key := a.key
	src, err := s.opts.Blobs.Get(ctx, key)
	if err != nil {
		return BlobEntry{}, fmt.Errorf("read attachment blob %s: %w", key, err)
	}
	defer src.Close()
	if *buf == nil {
		*buf = archive.AlignedBuffer(blobInMemory)
	}
	n, err := io.ReadFull(src, *buf)
	advance(int64(n))
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		d := a.stored
		if len(d) != 2*sha256.Size || !isHex(d) || int64(n) != archive.EncryptedSize(a.size) {
			sum := sha256.Sum256((*buf)[:n])
			d = hex.EncodeToString(sum[:])
		}
		obj := objectKey(d)
		if err := s.repo.bulk.Put(ctx, s.repo.key(obj), bytes.NewReader((*buf)[:n]), int64(n)); err != nil {
			return BlobEntry{}, fmt.Errorf("store object %s: %w", obj, err)
		}
		return BlobEntry{Key: key, Object: obj, Size: int64(n), Digest: d, Encoding: BlobStored}, nil
	case err != nil:
		return BlobEntry{}, fmt.Errorf("read attachment blob %s: %w", key, err)
	}

	// Larger than the buffer: stream the rest behind what was read.
	tmp := tmpDir + newID(s.opts.Now()) + "-" + randHex(8)
	h := newCountingHash(io.Discard)
	r := io.TeeReader(io.MultiReader(bytes.NewReader(*buf), progressReader{r: src, advance: advance}), h)
	if err := s.repo.bulk.Put(ctx, s.repo.key(tmp), r, -1); err != nil {
		_ = s.repo.st.Delete(context.WithoutCancel(ctx), s.repo.key(tmp))
		return BlobEntry{}, fmt.Errorf("read attachment blob %s: %w", key, err)
	}
	d := h.sum()
	obj := objectKey(d)
	if err := s.repo.bulk.Rename(ctx, s.repo.key(tmp), s.repo.key(obj)); err != nil {
		_ = s.repo.st.Delete(context.WithoutCancel(ctx), s.repo.key(tmp))
		return BlobEntry{}, fmt.Errorf("store object %s: %w", obj, err)
	}
	return BlobEntry{Key: key, Object: obj, Size: h.n, Digest: d, Encoding: BlobStored}, nil
}

type progressReader struct {
	r       io.Reader
	advance func(int64)
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.advance(int64(n))
	}
	return n, err
}
