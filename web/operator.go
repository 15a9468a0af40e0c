package web

import (
	"context"
	"errors"
	"regexp"
	"sort"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/cluster"
)

func (w *Console) operatorRoutes() []pageRoute {
	return []pageRoute{
		{method: "GET", path: "/backups", perm: auth.BackupWork, h: w.backupsPage},
		{method: "POST", path: "/backups", perm: auth.BackupWork, h: w.runBackup},
		{method: "POST", path: "/backups/:id/verify", perm: auth.BackupWork, h: w.verifyBackup},
		{method: "GET", path: "/status", perm: auth.BackupWork, h: w.statusPage},
	}
}

func (w *Console) backups() (*backup.Service, error) {
	if w.d.API.Backups == nil || w.d.API.Backups.Service == nil {
		return nil, &statusError{fiber.StatusNotFound, "backups are not configured"}
	}
	return w.d.API.Backups.Service, nil
}

func (w *Console) backupsPage(r *req) error {
	svc, err := w.backups()
	if err != nil {
		return err
	}
	ctx := r.c.UserContext()
	ms, damaged, err := svc.Repo().List(ctx)
	if err != nil && !errors.Is(err, backup.ErrNoRepository) {
		return err
	}
	items := make([]backup.Summary, 0, len(ms))
	for i := len(ms) - 1; i >= 0; i-- { // newest first
		items = append(items, ms[i].Summary(false))
	}
	runs, err := svc.Runs(ctx, 20)
	if err != nil {
		return err
	}
	return r.render("backups", r.L.T("backups.title"), map[string]any{"Backups": items, "Damaged": damaged, "Runs": runs})
}

// runBackup starts a backup, as POST /api/v1/backups: the run outlives
// the request but not the console (Close cancels it).
func (w *Console) runBackup(r *req) error {
	svc, err := w.backups()
	if err != nil {
		return err
	}
	if p := w.d.API.Backups.Ping; p != nil {
		if err := p(r.c.UserContext()); err != nil {
			return &statusError{fiber.StatusServiceUnavailable, r.L.T("backups.unreachable")}
		}
	}
	ctx, cancel := context.WithCancel(w.runCtx)
	// The run's id is known only once it started; the callback finds its
	// entry through the id it is given back.
	var id string
	ready := make(chan struct{})
	report := func(p backup.Progress) {
		<-ready
		w.ops.progress.report(id)(p)
	}
	id, done, err := svc.StartWithProgress(ctx, "console", r.actor, report)
	close(ready)
	if errors.Is(err, backup.ErrLocked) {
		cancel()
		return &statusError{fiber.StatusConflict, r.L.T("backups.running")}
	}
	if err != nil {
		cancel()
		return err
	}
	go func() {
		<-done
		w.ops.progress.end(id, w.cfg.Now())
		cancel()
	}()
	return r.redirect("/backups/runs/"+id, "backup_started")
}

// backupID is the API's check of a backup id (anything else never reaches
// the repository's store).
var backupID = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$`)

func (w *Console) verifyBackup(r *req) error {
	svc, err := w.backups()
	if err != nil {
		return err
	}
	id := r.c.Params("id")
	if !backupID.MatchString(id) {
		return cases.Invalid("id", "is not a backup id")
	}
	rep, err := svc.Repo().Verify(r.c.UserContext(), id, false, nil, nil)
	switch {
	case errors.Is(err, backup.ErrNotFound), errors.Is(err, backup.ErrNoRepository):
		return &statusError{fiber.StatusNotFound, "no backup " + id}
	case errors.Is(err, backup.ErrDamaged):
		rep = backup.VerifyReport{ID: id, Problems: []string{err.Error()}}
	case err != nil:
		return err
	}
	if err := r.audit("backup.verify", "backup", id, map[string]any{"read_data": false, "ok": rep.OK, "problems": len(rep.Problems)}); err != nil {
		return err
	}
	return r.render("verify", r.L.T("backups.verify_title", id), rep)
}

// checkView is one readiness probe's result.
type checkView struct {
	Name, State, Error string
}

func (w *Console) statusPage(r *req) error {
	ctx, cancel := context.WithTimeout(r.c.UserContext(), 3*time.Second)
	defer cancel()
	data := map[string]any{}
	var checks []checkView
	for _, chk := range w.d.API.Checks {
		_, err := chk.Probe(ctx)
		cv := checkView{Name: chk.Name, State: "ok"}
		if err != nil {
			cv.Error = err.Error()
			cv.State = "down"
			if chk.Degraded {
				cv.State = "degraded"
			}
		}
		checks = append(checks, cv)
	}
	data["Checks"] = checks
	if w.d.API.Search != nil {
		st, err := w.d.API.Search.Status(ctx)
		if err == nil {
			data["Index"] = st
		} else {
			data["IndexError"] = err.Error()
		}
	}
	if w.d.JobTicks != nil {
		ticks, err := w.d.JobTicks(ctx)
		if err != nil {
			return err
		}
		sort.Slice(ticks, func(i, j int) bool { return ticks[i].Job < ticks[j].Job })
		data["Jobs"] = ticks
	}
	return r.render("status", r.L.T("status.title"), data)
}

// JobTicks lists the last run of every cron job (cluster.Ticks.Last).
type JobTicks func(ctx context.Context) ([]cluster.JobTick, error)
