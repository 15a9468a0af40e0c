package web

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

// The operator pages of issue 18 beyond the list: a running backup's
// progress, the forget preview and the restore of one case.

// runProgress keeps the live progress of the backups this console started
// (per run, per phase: a backup dumps tables while it copies attachments).
// The run's own record (backup_runs) says when it ended; this only adds
// how far it got meanwhile, so it is forgotten a while after the end.
type runProgress struct {
	mu   sync.Mutex
	runs map[string]*runState
}

type runState struct {
	phases map[string]backup.Progress
	ended  time.Time
}

func newRunProgress() *runProgress { return &runProgress{runs: map[string]*runState{}} }

// report returns the callback the run calls (from its goroutine).
func (p *runProgress) report(id string) func(backup.Progress) {
	return func(pr backup.Progress) {
		p.mu.Lock()
		defer p.mu.Unlock()
		st := p.runs[id]
		if st == nil {
			st = &runState{phases: map[string]backup.Progress{}}
			p.runs[id] = st
		}
		st.phases[pr.Phase] = pr
	}
}

// end marks a run ended and forgets runs that ended over progressKeep ago
// (bounded memory: one entry per recent run).
func (p *runProgress) end(id string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st := p.runs[id]; st != nil {
		st.ended = now
	}
	for k, st := range p.runs {
		if !st.ended.IsZero() && now.Sub(st.ended) > progressKeep {
			delete(p.runs, k)
		}
	}
}

// phaseView is one phase's progress as the page shows it.
type phaseView struct {
	Phase, Unit string
	Done, Total int64
	Percent     int
	TotalKnown  bool
}

func (p *runProgress) phases(id string) []phaseView {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.runs[id]
	if st == nil {
		return nil
	}
	out := make([]phaseView, 0, len(st.phases))
	for _, pr := range st.phases {
		v := phaseView{Phase: pr.Phase, Unit: pr.Unit, Done: pr.Done, Total: pr.Total, TotalKnown: pr.Total > 0}
		if pr.Total > 0 {
			v.Percent = int(min(pr.Done*100/pr.Total, 100))
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Phase < out[j].Phase })
	return out
}

// backupRunPage is a run's progress: its record, and while it runs the
// live phases of a run this console started; the page reloads itself
// (Refresh header) until the run ends, then links the verify.
func (w *Console) backupRunPage(r *req) error {
	svc, err := w.backups()
	if err != nil {
		return err
	}
	id := r.c.Params("id")
	if !backupID.MatchString(id) {
		return cases.Invalid("id", "is not a backup id")
	}
	run, err := svc.GetRun(r.c.UserContext(), id)
	if errors.Is(err, backup.ErrNotFound) {
		return &statusError{fiber.StatusNotFound, "no backup run " + id}
	}
	if err != nil {
		return err
	}
	running := run.Status == backup.StatusRunning
	if running {
		r.c.Set("Refresh", "2")
	}
	var elapsed time.Duration
	if run.FinishedAt != nil {
		elapsed = run.FinishedAt.Sub(run.StartedAt)
	} else {
		elapsed = w.cfg.Now().Sub(run.StartedAt)
	}
	return r.render("backuprun", r.L.T("backuprun.title", run.ID), map[string]any{"Run": run, "Running": running,
		"Done": run.Status == backup.StatusDone, "Phases": w.ops.progress.phases(id), "Elapsed": elapsed.Round(time.Second).String()})
}

// forgetPolicy reads keep rules from the query (the forget form is a GET:
// it changes nothing).
func forgetPolicy(c *fiber.Ctx) (backup.KeepPolicy, map[string]string, error) {
	var p backup.KeepPolicy
	vals := map[string]string{}
	for _, f := range []struct {
		name string
		dst  *int
	}{{"keep_last", &p.Last}, {"keep_daily", &p.Daily}, {"keep_weekly", &p.Weekly}, {"keep_monthly", &p.Monthly}} {
		v := strings.TrimSpace(c.Query(f.name))
		vals[f.name] = strings.Clone(v)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 100000 {
			return p, vals, cases.Invalid(f.name, "must be a whole number from 0")
		}
		*f.dst = n
	}
	v := strings.TrimSpace(c.Query("keep_within"))
	vals["keep_within"] = strings.Clone(v)
	if v != "" {
		d, err := retention.ParseDuration(v)
		if err != nil {
			return p, vals, cases.Invalid("keep_within", err.Error())
		}
		p.Within = d.Std()
	}
	return p, vals, nil
}

// forgetPreview shows what `casevault backup forget` with these keep rules
// would remove, as its --dry-run: Service.Forget with dryRun (under the
// run lease, so never while a backup runs; nothing is removed).
func (w *Console) forgetPreview(r *req) error {
	svc, err := w.backups()
	if err != nil {
		return err
	}
	p, vals, err := forgetPolicy(r.c)
	data := map[string]any{"Form": vals}
	if err != nil {
		return err
	}
	if p.HasRule() {
		rep, err := svc.Forget(r.c.UserContext(), p, true, "console", r.actor)
		if errors.Is(err, backup.ErrLocked) {
			return &statusError{fiber.StatusConflict, r.L.T("backups.running")}
		}
		if err != nil && !errors.Is(err, backup.ErrNoRepository) {
			return err
		}
		removed, kept := 0, 0
		for _, d := range rep.Decisions {
			if d.Keep {
				kept++
			} else {
				removed++
			}
		}
		data["Report"], data["Removed"], data["Kept"] = rep, removed, kept
	} else if r.c.Query("preview") != "" {
		data["NoRule"] = true
	}
	return r.render("forget", r.L.T("forget.title"), data)
}

// CaseRestorer puts one case from a backup back into this instance
// (backup.Repo.RestoreCase wired with the instance's blobs, keys and
// holds, as `casevault backup restore --case` does).
type CaseRestorer func(ctx context.Context, backupID, caseID string, overwrite bool, actor cases.Actor) (backup.CaseRestoreReport, error)

// restoreCasePage is the confirmation of a single-case restore: which
// backup, which case, whether it is in the backup and still live here.
func (w *Console) restoreCasePage(r *req) error {
	svc, err := w.backups()
	if err != nil {
		return err
	}
	id := r.c.Params("id")
	if !backupID.MatchString(id) {
		return cases.Invalid("id", "is not a backup id")
	}
	m, err := svc.Repo().Manifest(r.c.UserContext(), id)
	if errors.Is(err, backup.ErrNotFound) || errors.Is(err, backup.ErrNoRepository) {
		return &statusError{fiber.StatusNotFound, "no backup " + id}
	}
	if err != nil {
		return err
	}
	caseID := strings.Clone(strings.TrimSpace(r.c.Query("case_id"))) // audited: see explainPage
	data := map[string]any{"Backup": m.Summary(false), "CaseID": caseID, "Enabled": w.d.Ops.RestoreCase != nil}
	if caseID != "" {
		cs, err := w.d.API.Cases.GetCase(r.c.UserContext(), caseID)
		switch {
		case err == nil:
			data["Live"] = cs.Subject
			data["LiveNumber"] = cs.Number
			if err := r.audit("case.read", "case", caseID, map[string]any{"for": "restore"}); err != nil {
				return err
			}
		case errors.Is(err, cases.ErrNotFound):
			data["Missing"] = true
		default:
			return err
		}
	}
	return r.render("restorecase", r.L.T("restorecase.title", id), data)
}

// restoreCase runs the single-case restore once confirmed.
func (w *Console) restoreCase(r *req) error {
	if w.d.Ops.RestoreCase == nil {
		return &statusError{fiber.StatusNotFound, "single-case restore is not configured"}
	}
	id := strings.Clone(r.c.Params("id"))
	if !backupID.MatchString(id) {
		return cases.Invalid("id", "is not a backup id")
	}
	caseID := strings.TrimSpace(r.c.FormValue("case_id"))
	if caseID == "" {
		return cases.Invalid("case_id", "is required")
	}
	if r.c.FormValue("confirm") != "yes" {
		return cases.Invalid("confirm", "tick the box to confirm the restore")
	}
	rep, err := w.d.Ops.RestoreCase(r.c.UserContext(), id, strings.Clone(caseID), r.c.FormValue("overwrite") == "1", r.actor)
	switch {
	case errors.Is(err, backup.ErrNotFound):
		return &statusError{fiber.StatusNotFound, err.Error()}
	case errors.Is(err, backup.ErrDeleted):
		return &statusError{fiber.StatusConflict, r.L.T("restorecase.deleted")}
	case errors.Is(err, backup.ErrHeld):
		return &statusError{fiber.StatusConflict, err.Error()}
	case err != nil:
		return err
	}
	return r.render("restored", r.L.T("restorecase.done_title", rep.Case), rep)
}
