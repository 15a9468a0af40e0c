package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

// jobs are the server's cron jobs, one method each. They run under the
// serve command's context, which SIGTERM cancels, and through the app's
// bg.Guard, which recovers and reports their panics. Every replica's cron
// fires, and one replica runs each tick (owned).
type jobs struct {
	ctx context.Context
	a   *app
	// tick is the scheduled time of the run (zero outside the cron).
	tick time.Time
}

// schedule adds every enabled job to a new cron (UTC). A schedule that does
// not parse is a usage error naming its flag.
func (j jobs) schedule() (*cron.Cron, error) {
	cfg := j.a.cfg
	c := cron.New(cron.WithLocation(time.UTC))
	for _, job := range []struct {
		name, flag, spec string
		run              func(jobs)
		// optional jobs are off when their schedule is empty or "off"
		optional bool
	}{
		{"cron.audit_prune", "audit-prune-schedule", cfg.AuditPruneCron, jobs.auditPrune, false},
		{"cron.reconcile", "reconcile-schedule", cfg.ReconcileCron, jobs.reconcile, false},
		{"cron.legal_hold_flags", "legal-hold-flags-schedule", cfg.FlagsCron, jobs.legalHoldFlags, false},
		{"cron.retention", "retention-schedule", cfg.RetentionCron, jobs.retention, false},
		{"cron.export_expiry", "export-expiry-schedule", cfg.ExportExpiryCron, jobs.exportExpiry, false},
		{"cron.backup", "backup-schedule", cfg.Backup.Cron, jobs.backup, true},
		{"cron.backup_forget", "backup-forget-schedule", cfg.Backup.ForgetCron, jobs.backupForget, true},
		{"cron.backup_drill", "backup-drill-schedule", cfg.Backup.DrillCron, jobs.backupDrill, true},
	} {
		if job.optional && !cronEnabled(job.spec) {
			continue
		}
		var id cron.EntryID
		// The entry's Prev is the scheduled time of the run in progress:
		// cron sets it before it serves the next Entry call.
		tick := func() time.Time { return c.Entry(id).Prev }
		sched, err := parseSchedule(job.spec)
		if err != nil {
			return nil, usagef("--%s %q: %w", job.flag, job.spec, err)
		}
		id = c.Schedule(sched, cron.FuncJob(j.a.guard.Func(job.name, j.owned(job.name, tick, job.run))))
	}
	return c, nil
}

// parseSchedule parses a job's schedule. It takes an optional seconds
// field ("*/5 * * * * *" is every 5 s on the wall clock; a 5-field
// schedule means what it always did), and its ticks are the same in every
// replica, whenever each started (alignEvery), so that one replica claims
// each tick.
func parseSchedule(spec string) (cron.Schedule, error) {
	p := cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	s, err := p.Parse(spec)
	if err != nil {
		return nil, err
	}
	return alignEvery(s), nil
}

// alignEvery makes an "@every D" schedule fire on multiples of D since
// the zero time rather than D after this process started: replicas started
// at different moments then share their ticks, and one of them claims each
// (owned). robfig/cron counts @every from the start of each process, which
// gave two replicas different ticks and both of them ran every job.
func alignEvery(s cron.Schedule) cron.Schedule {
	if every, ok := s.(cron.ConstantDelaySchedule); ok {
		return alignedEvery{every.Delay}
	}
	return s
}

// alignedEvery fires at every multiple of d (at least a second: the
// cron's resolution, as for @every).
type alignedEvery struct{ d time.Duration }

func (a alignedEvery) Next(t time.Time) time.Time { return t.Truncate(a.d).Add(a.d) }

// owned runs a job's tick only on the replica that claims it: every
// replica's cron fires at the same scheduled time, and the job's
// bookkeeping in the database lets one of them through (cluster.Ticks).
// Not owning a tick is normal, so it is logged at info.
func (j jobs) owned(name string, tickOf func() time.Time, run func(jobs)) func() {
	return func() {
		tick := tickOf()
		if tick.IsZero() {
			tick = time.Now().Truncate(time.Second)
		}
		ok, err := j.a.ticks.Claim(j.ctx, name, tick)
		switch {
		case err != nil && j.ctx.Err() != nil:
			return // shutting down
		case err != nil:
			j.a.log.Error("scheduled job skipped: its tick could not be claimed", "job", name, "tick", tick, "err", err)
			return
		case !ok:
			j.a.log.Info("scheduled job's tick run by another replica", "job", name, "tick", tick)
			return
		}
		j.a.log.Info("scheduled job's tick claimed", "job", name, "tick", tick)
		run(jobs{ctx: j.ctx, a: j.a, tick: tick})
	}
}

// cronEnabled says whether a schedule setting turns a job on.
func cronEnabled(spec string) bool {
	s := strings.TrimSpace(strings.ToLower(spec))
	return s != "" && s != "off"
}

// auditPrune removes audit events past the audit retention. A prune that
// fails or refuses (a chain that does not verify) leaves an event saying
// so: the trail must show that pruning did not happen, and why.
func (j jobs) auditPrune() {
	n, err := j.a.audit.PruneExpired(j.ctx)
	if err != nil {
		j.a.log.Error("audit prune failed", "err", err)
		recordPruneFailure(j.ctx, j.a.audit, systemChange, err, j.a.cfg.AuditRetention.d.String())
		return
	}
	j.a.log.Info("audit pruned", "events", n, "retention", j.a.cfg.AuditRetention.d.String())
	if j.a.sessions != nil {
		// Console sessions that ended more than a day ago go on the same
		// daily schedule.
		if n, err := j.a.sessions.Prune(j.ctx); err != nil {
			j.a.log.Error("console session prune failed", "err", err)
		} else {
			j.a.log.Info("console sessions pruned", "sessions", n)
		}
	}
}

// reconcile removes orphan blobs and reports attachments without one, and
// retries the key escrow deletions an erasure could not finish.
func (j jobs) reconcile() {
	log := j.a.log
	j.retryEscrow()
	rep, err := j.a.attachments.Reconcile(j.ctx, time.Hour, false)
	if err != nil {
		log.Error("attachment reconcile failed", "err", err)
		return
	}
	detail := map[string]any{"orphans": len(rep.OrphanBlobsRemoved), "leftover_versions": len(rep.LeftoverVersionsRemoved), "missing": len(rep.MissingBlobs)}
	if !j.tick.IsZero() {
		// One run per tick across replicas: the tick names it.
		detail["tick"] = j.tick.UTC().Format(time.RFC3339)
	}
	_ = j.a.audit.Record(j.ctx, audit.FromChange(systemChange("attachments.reconcile", "attachments", "", detail), audit.OutcomeOK))
	if len(rep.MissingBlobs) > 0 {
		log.Error("attachments without a blob", "count", len(rep.MissingBlobs), "ids", rep.MissingBlobs)
	}
	log.Info("attachments reconciled", "orphans_removed", len(rep.OrphanBlobsRemoved), "leftover_versions_removed", len(rep.LeftoverVersionsRemoved), "missing", len(rep.MissingBlobs))
}

// legalHoldFlags converges the S3 legal-hold flags on the holds (pending
// holds every run, every hold hourly); a pass another replica is running
// is not an error.
func (j jobs) legalHoldFlags() {
	log := j.a.log
	rep, err := j.a.flags.Reconcile(j.ctx, retention.ReconcileOptions{})
	switch {
	case errors.Is(err, retention.ErrFlagsBusy):
		log.Info("another replica is reconciling legal-hold flags; skipping this run")
	case err != nil:
		log.Error("legal-hold flag pass failed; the next run retries", "err", err, "pending_holds", len(rep.Pending))
	case !rep.Available:
	case rep.Set+rep.Cleared+rep.Restored > 0 || len(rep.Pending) > 0:
		log.Info("legal-hold flags reconciled", "full", rep.Full, "holds", rep.Holds, "set", rep.Set, "cleared", rep.Cleared,
			"verified", rep.Verified, "restored", rep.Restored, "pending_holds", len(rep.Pending))
	}
}

// retention runs one retention sweep, audited like one started through the
// API or the CLI (the sweep's dispositions have events of their own).
// Another replica's sweep holding the lock is normal, not an error.
func (j jobs) retention() {
	rep, err := j.a.retention.sweeper.Run(j.ctx, retention.RunOptions{})
	if errors.Is(err, retention.ErrSweepRunning) {
		// Another replica's (or an API or CLI) sweep is still running:
		// normal with several replicas, not an error.
		j.a.log.Info("retention sweep skipped: another sweep is running")
		return
	}
	outcome := audit.OutcomeOK
	if err != nil {
		outcome = audit.OutcomeFailed
	}
	detail := map[string]any{"dry_run": false, "scheduled": true, "status": rep.Status,
		"deleted": rep.Deleted, "anonymized": rep.Anonymized, "redacted": rep.Redacted, "held": rep.SkippedHeld, "errors": rep.Errors}
	if !j.tick.IsZero() {
		// One run per tick across replicas: the tick names it.
		detail["tick"] = j.tick.UTC().Format(time.RFC3339)
	}
	ch := systemChange("retention.run", "retention_run", rep.ID, detail)
	ch.Actor = retention.SweeperActor()
	if aerr := j.a.audit.Record(j.ctx, audit.FromChange(ch, outcome)); aerr != nil {
		j.a.log.Error("retention sweep not audited", "run", rep.ID, "err", aerr)
	}
	if err != nil {
		j.a.log.Error("retention sweep failed", "err", err)
		return
	}
	j.a.log.Info("retention sweep", "status", rep.Status, "examined", rep.Examined, "deleted", rep.Deleted,
		"anonymized", rep.Anonymized, "redacted", rep.Redacted, "held", rep.SkippedHeld, "errors", rep.Errors)
}

// exportExpiry marks interrupted the exports whose run's lease expired and
// deletes the packages of expired e-discovery exports.
func (j jobs) exportExpiry() {
	// A run whose process died after this one started has its lease
	// expire later: each pass marks the runs whose lease has expired.
	if n, err := j.a.exports.Recover(j.ctx); err != nil {
		j.a.log.Error("marking interrupted exports failed", "err", err)
	} else if n > 0 {
		j.a.log.Warn("exports whose process stopped marked interrupted", "exports", n)
	}

	n, err := j.a.exports.Expire(j.ctx)
	if err != nil {
		j.a.log.Error("export expiry failed", "expired", n, "err", err)
		return
	}
	if n > 0 {
		j.a.log.Info("expired exports deleted", "exports", n)
	}
}

// backup takes a scheduled backup; another replica's run is not an error.
func (j jobs) backup() {
	log := j.a.log
	m, err := j.a.backup.svc.Backup(j.ctx, "schedule", cases.SystemActor(), nil)
	switch {
	case errors.Is(err, backup.ErrLocked):
		log.Info("another replica is backing up; skipping this run")
	case err != nil:
		log.Error("backup failed", "err", err)
	case len(m.Missing) > 0:
		log.Warn("backup incomplete: attachment blobs deleted meanwhile", "id", m.ID, "missing", len(m.Missing))
	default:
		log.Info("backup done", "id", m.ID, "rows", m.Stats.Rows, "blobs", m.Stats.Blobs, "blobs_new", m.Stats.BlobsNew,
			"bytes_new", m.Stats.BytesNew, "duration_ms", m.Stats.DurationMS)
	}
}

// backupForget applies the keep rules to the backups.
func (j jobs) backupForget() {
	log := j.a.log
	// The backups' own retention is part of the schedule: the stored one,
	// which another replica may have changed.
	sc, err := j.a.retention.schedules.Current(j.ctx)
	if err != nil {
		log.Error("backup forget: retention schedule unreadable", "err", err)
		return
	}
	keep := j.a.cfg.keepPolicy(sc)
	rep, err := j.a.backup.svc.Forget(j.ctx, keep, false, "schedule", cases.SystemActor())
	switch {
	case errors.Is(err, backup.ErrLocked):
		log.Info("another replica is backing up; forget skipped")
	case errors.Is(err, backup.ErrNoRepository):
		log.Info("backup forget: no backups yet")
	case err != nil:
		log.Error("backup forget failed", "err", err)
	default:
		log.Info("backup forget", "removed", len(rep.Removed), "objects_removed", rep.ObjectsRemoved, "bytes_freed", rep.BytesFreed)
	}
}

// recordPruneFailure audits an audit prune that failed or refused
// ("audit.prune_failed", outcome failed; "refused" when the chain does not verify: prune does not remove
// what it cannot prove untouched). change builds the event for the
// caller's actor (systemChange, cliChange).
func recordPruneFailure(ctx context.Context, log *audit.Log, change func(action, targetType, targetID string, detail map[string]any) cases.Change, err error, keep string) {
	detail := map[string]any{"retention": keep, "error": err.Error(), "refused": errors.Is(err, audit.ErrTampered)}
	// A cancelled command still leaves its record.
	// "audit.prune" itself is the checkpoint only a prune writes.
	_ = log.Record(context.WithoutCancel(ctx), audit.FromChange(change("audit.prune_failed", "audit", "", detail), audit.OutcomeFailed))
}

// backupDrill runs the disaster-recovery drill (backup drill) and logs
// what it found; a failed drill is an error in the log, for alerting.
func (j jobs) backupDrill() {
	log := j.a.log
	// The scratch server's warnings and errors go to this log, marked;
	// its info lines (listening, migrations) would read as this server's.
	dlog := slog.New(warnOnly{j.a.log.With("drill", true).Handler()})
	rep, err := drill(j.ctx, j.a.cfg, drillOptions{sample: 20, log: dlog})
	switch {
	case err != nil:
		log.Error("backup drill failed", "err", err)
	case len(rep.Problems) > 0:
		log.Error("backup drill found problems", "backup", rep.Backup, "problems", len(rep.Problems), "first", rep.Problems[0])
	default:
		log.Info("backup drill", "backup", rep.Backup, "readyz", rep.Server.ReadyzStatus, "audit_events", rep.AuditEvents,
			"attachments_checked", rep.AttachmentsChecked, "scratch_removed", rep.Removed)
	}
}

// warnOnly passes on warnings and errors only.
type warnOnly struct{ slog.Handler }

func (h warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}
func (h warnOnly) WithAttrs(as []slog.Attr) slog.Handler { return warnOnly{h.Handler.WithAttrs(as)} }
func (h warnOnly) WithGroup(name string) slog.Handler    { return warnOnly{h.Handler.WithGroup(name)} }
