package retention

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

func actorName(a cases.Actor) string {
	switch {
	case a.Name != "":
		return a.Name
	case a.TokenID != "":
		return a.TokenID
	}
	return "system"
}

func forUpdate(db *sqldb.DB) string {
	if db.Dialect == sqldb.Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// lockState takes the retention_state row for the rest of tx (PostgreSQL; on
// SQLite the write transaction already excludes every other writer) and
// returns the holds version.
func lockState(ctx context.Context, db *sqldb.DB, tx *sql.Tx) (int64, error) {
	var v int64
	if err := tx.QueryRowContext(ctx, db.Rebind(`SELECT holds_version FROM retention_state WHERE id = 1`+forUpdate(db))).Scan(&v); err != nil {
		return 0, sqldb.Fail("retention state", err)
	}
	return v, nil
}

// Policy is the schedule in force, shared by the store (to compute
// retain_until on writes), the sweeper, recompute and explain. Bound to a
// store (NewSchedules binds it), every decision reads the schedule through
// In, in the transaction that acts on it: one indexed read of the newest
// version number, and the document only when that version is not the one
// cached. So a schedule stored by another process (a replica, the CLI)
// governs this one's next decision, never a copy loaded at start-up.
// Unbound (tests without a store), the schedule given to NewPolicy or Set
// is the one in force. It is safe for concurrent use.
type Policy struct {
	db  atomic.Pointer[sqldb.DB]
	cur atomic.Pointer[Schedule]
}

// NewPolicy returns a Policy holding s.
func NewPolicy(s Schedule) *Policy {
	p := &Policy{}
	p.Set(s)
	return p
}

// Set replaces the cached schedule (the one in force while unbound).
func (p *Policy) Set(s Schedule) { p.cur.Store(&s) }

// Schedule returns the schedule last read (or set). Decisions use In.
func (p *Policy) Schedule() Schedule { return *p.cur.Load() }

// bind makes p read the schedule in force from db.
func (p *Policy) bind(db *sqldb.DB) { p.db.Store(db) }

// In returns the schedule in force as q (a transaction, or a read pool)
// sees it: the newest stored version, or DefaultSchedule when none was
// ever stored. Reading it in the transaction that acts on it is what
// makes the decision exact: a schedule change commits before or after
// that transaction, never halfway (a sweep batch and Schedules.Put both
// lock retention_state; on PostgreSQL every store write shares the write
// barrier that Put takes exclusively: barrier.go).
func (p *Policy) In(ctx context.Context, q rowQuerier) (Schedule, error) {
	db := p.db.Load()
	if db == nil {
		return p.Schedule(), nil
	}

	var v sql.NullInt64
	if err := db.QueryRowIn(ctx, q, qScheduleVersion).Scan(&v); err != nil {
		return Schedule{}, sqldb.Fail("schedule version", err)
	}
	if !v.Valid {
		return DefaultSchedule(), nil
	}
	if c := p.cur.Load(); c != nil && int64(c.Version) == v.Int64 {
		return *c, nil
	}

	var doc string
	if err := q.QueryRowContext(ctx, db.Rebind(`SELECT document FROM retention_schedules WHERE version = ?`), v.Int64).Scan(&doc); err != nil {
		return Schedule{}, sqldb.Fail("schedule", err)
	}
	sc, err := decodeSchedule(doc)
	if err != nil {
		return Schedule{}, err
	}
	sc.Version = int(v.Int64)
	p.remember(sc)
	return sc, nil
}

// schedule is the schedule in force as the batch's transaction sees it (a
// dry run: as the read pool does).
func (b *batch) schedule(ctx context.Context) (Schedule, error) {
	if b.tx == nil {
		return b.policy.In(ctx, b.db.Read)
	}
	return b.policy.In(ctx, b.tx)
}

// rowQuerier is a transaction or a connection pool.
type rowQuerier = sqldb.RowQuerier

// qScheduleVersion is read by every write (Policy.In); prepared by Prepare.
const qScheduleVersion = `SELECT MAX(version) FROM retention_schedules`

// Prepare prepares the reads every write transaction makes of retention:
// the schedule version (Policy.In) and the active holds (Holds.RecordWrite),
// and the insert of the hold items a write under an active hold records,
// so that the write path does not parse them each time (sqldb.PrepareWrite;
// on SQLite that parse was a visible share of the one writer's time). Call
// it at start-up, outside any transaction.
func Prepare(ctx context.Context, db *sqldb.DB) error {
	if err := db.PrepareWrite(ctx, qScheduleVersion, qActiveHolds); err != nil {
		return err
	}
	return db.PrepareRows(ctx, qRecordItem, 6)
}

// remember caches sc unless a newer version is cached already (a reader
// of an older snapshot must not move the cache backwards).
func (p *Policy) remember(sc Schedule) {
	for {
		old := p.cur.Load()
		if old != nil && old.Version > sc.Version {
			return
		}
		if p.cur.CompareAndSwap(old, &sc) {
			return
		}
	}
}

// RulesIn implements cases.RetentionPolicy: the store stamps retain_until
// with the schedule in force in its write transaction.
func (p *Policy) RulesIn(ctx context.Context, tx *sql.Tx) (cases.RetentionRules, error) {
	sc, err := p.In(ctx, tx)
	if err != nil {
		return nil, err
	}
	return policy{sc}, nil
}

var _ cases.RetentionPolicy = (*Policy)(nil)

// StoredSchedule is one version of the schedule as kept in the history.
type StoredSchedule struct {
	Schedule  Schedule  `json:"schedule"`
	CreatedAt time.Time `json:"created_at"`
	Actor     string    `json:"actor"`
}

// Schedules stores the versioned retention schedule.
type Schedules struct {
	db     *sqldb.DB
	policy *Policy
	now    func() time.Time
}

// NewSchedules builds the schedule store and binds policy (may be nil) to
// it: from then on the policy reads the schedule in force from db.
func NewSchedules(db *sqldb.DB, policy *Policy) *Schedules {
	if policy != nil {
		policy.bind(db)
	}
	return &Schedules{db: db, policy: policy, now: time.Now}
}

// Current returns the newest stored schedule, or DefaultSchedule when none
// was ever stored.
func (s *Schedules) Current(ctx context.Context) (Schedule, error) {
	var doc string
	err := s.db.Read.QueryRowContext(ctx, `SELECT document FROM retention_schedules ORDER BY version DESC LIMIT 1`).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return DefaultSchedule(), nil
	}
	if err != nil {
		return Schedule{}, sqldb.Fail("current schedule", err)
	}
	return decodeSchedule(doc)
}

func decodeSchedule(doc string) (Schedule, error) {
	var sc Schedule
	if err := json.Unmarshal([]byte(doc), &sc); err != nil {
		return Schedule{}, fmt.Errorf("stored schedule: %w: %w", sqldb.ErrBadRow, err)
	}
	return sc, nil
}

// Load reads the current schedule into the policy (at start-up, and on
// replicas that did not make the last change).
func (s *Schedules) Load(ctx context.Context) (Schedule, error) {
	sc, err := s.Current(ctx)
	if err != nil {
		return Schedule{}, err
	}
	if s.policy != nil {
		s.policy.remember(sc)
	}
	return sc, nil
}

// Put validates sc and stores it as the next version (the previous version
// plus one; the default schedule counts as version 1), whatever sc.Version
// says. hook (may be nil) runs in the same transaction with a
// "retention.schedule.update" change. On success the policy switches to the
// new schedule; the caller then runs Recompute so that stored retain_until
// values follow. It returns the stored schedule.
func (s *Schedules) Put(ctx context.Context, sc Schedule, actor cases.Actor, hook cases.TxHook) (Schedule, error) {
	return s.put(ctx, sc, actor, hook, "api", nil, nil)
}

// ApplyFile stores sc, read from the schedule file named file, as the next
// version unless it equals the schedule in force (then it returns that one
// and false: nothing is stored or audited). It is what `casevault
// retention schedule apply FILE` does: the only command that makes a file
// the schedule. The audit event says where it came from (source "file").
func (s *Schedules) ApplyFile(ctx context.Context, sc Schedule, file string, actor cases.Actor, hook cases.TxHook) (Schedule, bool, error) {
	return s.applyFile(ctx, sc, file, "file", actor, hook, func(ctx context.Context, tx *sql.Tx, want string) (bool, error) {
		cur, err := s.policyIn(ctx, tx)
		return contentDigest(cur) == want, err
	})
}

// ApplyStartupFile stores sc, the server's --retention-schedule-file, unless
// that content was ever stored before (as any version, or the built-in
// default): a file is applied once per content, so restarting a replica, or
// starting several with one file, never reverts a change an admin made
// since (source "startup-file").
func (s *Schedules) ApplyStartupFile(ctx context.Context, sc Schedule, file string, actor cases.Actor, hook cases.TxHook) (Schedule, bool, error) {
	return s.applyFile(ctx, sc, file, "startup-file", actor, hook, func(ctx context.Context, tx *sql.Tx, want string) (bool, error) {
		if contentDigest(DefaultSchedule()) == want {
			return true, nil
		}
		docs, err := sqldb.Collect(ctx, tx, `SELECT document FROM retention_schedules`, nil, func(rows *sql.Rows) (string, error) {
			var doc string
			return doc, rows.Scan(&doc)
		})
		if err != nil {
			return false, sqldb.Fail("schedule history", err)
		}
		for _, doc := range docs {
			old, err := decodeSchedule(doc)
			if err == nil && contentDigest(old) == want {
				return true, nil
			}
		}
		return false, nil
	})
}

func (s *Schedules) applyFile(ctx context.Context, sc Schedule, file, source string, actor cases.Actor, hook cases.TxHook,
	known func(ctx context.Context, tx *sql.Tx, digest string) (bool, error)) (Schedule, bool, error) {
	if err := sc.Validate(); err != nil {
		return Schedule{}, false, err
	}
	want := contentDigest(sc)
	stored, err := s.put(ctx, sc, actor, hook, source, map[string]any{"file": file}, func(ctx context.Context, tx *sql.Tx) (bool, error) {
		return known(ctx, tx, want)
	})
	if errors.Is(err, errUnchanged) {
		cur, err := s.Current(ctx)
		return cur, false, err
	}
	return stored, err == nil, err
}

// errUnchanged ends a put whose schedule needs no new version.
var errUnchanged = errors.New("schedule unchanged")

// policyIn is the schedule in force as tx sees it.
func (s *Schedules) policyIn(ctx context.Context, tx *sql.Tx) (Schedule, error) {
	if s.policy != nil {
		return s.policy.In(ctx, tx)
	}
	p := &Policy{}
	p.bind(s.db)
	return p.In(ctx, tx)
}

// contentDigest identifies what a schedule says, whatever its version.
func contentDigest(sc Schedule) string {
	return digestOf(sc, 0)
}

// digestOf is the digest sc would be stored with as version v.
func digestOf(sc Schedule, v int) string {
	sc.Version = v
	doc, _ := json.Marshal(sc)
	return Digest(string(doc))
}

// Digest identifies a stored schedule document: "sha256:" and the hex
// SHA-256 of the JSON text as stored.
func Digest(doc string) string {
	sum := sha256.Sum256([]byte(doc))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// put stores sc as the next version; source and extra go into the audit
// event's detail. skip (may be nil) runs first in the transaction, under
// the lock that orders schedule changes, and ends it with errUnchanged
// when it says sc needs no new version.
func (s *Schedules) put(ctx context.Context, sc Schedule, actor cases.Actor, hook cases.TxHook, source string, extra map[string]any,
	skip func(ctx context.Context, tx *sql.Tx) (bool, error)) (Schedule, error) {
	sc.Version = 0
	if err := sc.Validate(); err != nil {
		return Schedule{}, err
	}

	err := exclusiveTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := lockState(ctx, s.db, tx); err != nil {
			return err
		}
		if skip != nil {
			if same, err := skip(ctx, tx); err != nil || same {
				return cmp.Or(err, errUnchanged)
			}
		}

		var prev sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(version) FROM retention_schedules`).Scan(&prev); err != nil {
			return sqldb.Fail("schedule version", err)
		}
		sc.Version = DefaultSchedule().Version + 1
		if prev.Valid {
			sc.Version = int(prev.Int64) + 1
		}

		doc, err := json.Marshal(sc)
		if err != nil {
			return fmt.Errorf("encode schedule: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO retention_schedules (version, document, created_at, actor) VALUES (?, ?, ?, ?)`),
			sc.Version, string(doc), sqldb.Micros(s.now()), actorName(actor)); err != nil {
			return sqldb.Fail("store schedule", err)
		}

		if hook != nil {
			detail := map[string]any{"version": sc.Version, "previous": sc.Version - 1, "digest": Digest(string(doc)), "source": source}
			for k, v := range extra {
				detail[k] = v
			}
			ch := cases.Change{Actor: actor, Action: "retention.schedule.update", TargetType: "retention_schedule",
				TargetID: fmt.Sprint(sc.Version), Detail: detail}
			if err := hook(ctx, tx, ch); err != nil {
				return fmt.Errorf("audit: %w", err)
			}
		}
		return nil
	})

	if err != nil {
		return Schedule{}, err
	}
	if s.policy != nil {
		s.policy.remember(sc)
	}
	return sc, nil
}

// ScheduleVersion is one entry of the schedule's history: which version,
// who stored it and when, and the digest of the document as stored.
type ScheduleVersion struct {
	Version   int        `json:"version"`
	Actor     string     `json:"actor"`
	CreatedAt *time.Time `json:"created_at"` // nil: the built-in default, never stored
	Digest    string     `json:"digest"`
	Current   bool       `json:"current"`
}

// Versions lists the schedule's versions, newest (the one in force) first;
// with none stored, the default schedule alone (actor "default").
func (s *Schedules) Versions(ctx context.Context) ([]ScheduleVersion, error) {
	out, err := sqldb.Collect(ctx, s.db.Read, `SELECT version, document, created_at, actor FROM retention_schedules ORDER BY version DESC`, nil,
		func(rows *sql.Rows) (ScheduleVersion, error) {
			var v ScheduleVersion
			var doc string
			var at int64
			if err := rows.Scan(&v.Version, &doc, &at, &v.Actor); err != nil {
				return v, err
			}
			t := sqldb.FromMicros(at)
			v.CreatedAt, v.Digest = &t, Digest(doc)
			return v, nil
		})
	if err != nil {
		return nil, sqldb.Fail("schedule versions", err)
	}

	if len(out) == 0 {
		d := DefaultSchedule()
		out = append(out, ScheduleVersion{Version: d.Version, Actor: "default", Digest: digestOf(d, d.Version)})
	}
	out[0].Current = true
	return out, nil
}

// History lists every stored version, newest first; with none stored it
// lists the default schedule alone (zero CreatedAt, actor "default").
func (s *Schedules) History(ctx context.Context) ([]StoredSchedule, error) {
	out, err := sqldb.Collect(ctx, s.db.Read, `SELECT document, created_at, actor FROM retention_schedules ORDER BY version DESC`, nil,
		func(rows *sql.Rows) (StoredSchedule, error) {
			var doc string
			var at int64
			var st StoredSchedule
			if err := rows.Scan(&doc, &at, &st.Actor); err != nil {
				return st, err
			}
			st.CreatedAt = sqldb.FromMicros(at)
			var err error
			st.Schedule, err = decodeSchedule(doc)
			return st, err
		})
	if err != nil {
		return nil, sqldb.Fail("schedule history", err)
	}

	if len(out) == 0 {
		out = append(out, StoredSchedule{Schedule: DefaultSchedule(), Actor: "default"})
	}
	return out, nil
}
