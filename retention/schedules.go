package retention

import (
	"context"
	"database/sql"
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
// retain_until on writes), the sweeper and explain. It is safe for
// concurrent use; Set swaps the whole schedule at once, so a caller never
// sees half of an old and half of a new schedule.
type Policy struct {
	cur atomic.Pointer[Schedule]
}

// NewPolicy returns a Policy holding s.
func NewPolicy(s Schedule) *Policy {
	p := &Policy{}
	p.Set(s)
	return p
}

// Set replaces the schedule in force.
func (p *Policy) Set(s Schedule) { p.cur.Store(&s) }

// Schedule returns the schedule in force.
func (p *Policy) Schedule() Schedule { return *p.cur.Load() }

// RetainUntil implements cases.RetentionPolicy with the schedule in force.
func (p *Policy) RetainUntil(purposes []cases.Purpose, capturedAt time.Time, caseClosedAt *time.Time) *time.Time {
	until, _ := p.cur.Load().RetainUntil(purposes, capturedAt, caseClosedAt)
	return until
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

// NewSchedules builds the schedule store; policy (may be nil) is updated
// whenever a new schedule is stored or loaded.
func NewSchedules(db *sqldb.DB, policy *Policy) *Schedules {
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
		s.policy.Set(sc)
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
	sc.Version = 0
	if err := sc.Validate(); err != nil {
		return Schedule{}, err
	}

	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := lockState(ctx, s.db, tx); err != nil {
			return err
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
			ch := cases.Change{Actor: actor, Action: "retention.schedule.update", TargetType: "retention_schedule",
				TargetID: fmt.Sprint(sc.Version), Detail: map[string]any{"version": sc.Version}}
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
		s.policy.Set(sc)
	}
	return sc, nil
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
