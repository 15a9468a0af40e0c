// Package cluster is what the replicas serving one database agree on
// through it: which replica runs each tick of a scheduled job (Ticks), and
// which replicas are live and how their backups are configured (Registry).
// Both work the same on SQLite (one process, usually) and PostgreSQL
// (several replicas), with plain rows rather than locks held for a run:
// a tick is claimed once, whoever is slow or crashes.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/casevault/casevault/sqldb"
)

// Ticks claims the ticks of scheduled jobs: every replica's cron fires at
// the same scheduled time, and only the replica whose claim moves the
// job's last tick forward runs it.
type Ticks struct {
	db    *sqldb.DB
	owner string
	now   func() time.Time
}

// NewTicks builds the tick claims of one replica (owner names it in the
// table, for operators).
func NewTicks(db *sqldb.DB, owner string, now func() time.Time) *Ticks {
	if now == nil {
		now = time.Now
	}
	return &Ticks{db: db, owner: owner, now: now}
}

// Claim reports whether this replica owns the job's tick (its scheduled
// time): true for exactly one claim of a tick, and false for a tick not
// after one already claimed (a replica whose cron fired late).
func (t *Ticks) Claim(ctx context.Context, job string, tick time.Time) (bool, error) {
	res, err := t.db.Write.ExecContext(ctx, t.db.Rebind(`INSERT INTO job_ticks (job, tick, owner, claimed_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (job) DO UPDATE SET tick = excluded.tick, owner = excluded.owner, claimed_at = excluded.claimed_at
		WHERE job_ticks.tick < excluded.tick`), job, tick.UnixMicro(), t.owner, t.now().UnixMicro())
	if err != nil {
		return false, sqldb.Fail("claim job tick", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, sqldb.Fail("claim job tick", err)
	}
	return n == 1, nil
}

// NewReplicaID returns a random id for a replica's run.
func NewReplicaID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// JobTick is the last claimed tick of a job: when it was scheduled, which
// replica ran it and when that replica claimed it.
type JobTick struct {
	Job       string
	Tick      time.Time
	Owner     string
	ClaimedAt time.Time
}

// Last lists the last claimed tick of every job, by job name (the
// console's system status shows the last run of each cron job).
func (t *Ticks) Last(ctx context.Context) ([]JobTick, error) {
	rows, err := t.db.Read.QueryContext(ctx, `SELECT job, tick, owner, claimed_at FROM job_ticks ORDER BY job`)
	if err != nil {
		return nil, sqldb.Fail("list job ticks", err)
	}
	defer rows.Close()
	var out []JobTick
	for rows.Next() {
		var jt JobTick
		var tick, claimed int64
		if err := rows.Scan(&jt.Job, &tick, &jt.Owner, &claimed); err != nil {
			return nil, sqldb.Fail("list job ticks", err)
		}
		jt.Tick, jt.ClaimedAt = time.UnixMicro(tick).UTC(), time.UnixMicro(claimed).UTC()
		out = append(out, jt)
	}
	return out, sqldb.Fail("list job ticks", rows.Err())
}
