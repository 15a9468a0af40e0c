package api

import (
	"context"
	"errors"
	"regexp"
	"strconv"

	"filippo.io/age"
	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
)

// BackupDeps serve the backup routes (nil: none).
type BackupDeps struct {
	Service *backup.Service
	// Identity decrypts for verify ?read_data=true (nil: the encrypted
	// bytes are re-hashed, not decrypted).
	Identity age.Identity
	// Ping checks that the backup target answers (503 when it does not).
	Ping func(ctx context.Context) error
}

// backupIDRE matches backup and run IDs (backup.newID, "forget-" runs);
// anything else is refused before it can reach the repository's store.
var backupIDRE = regexp.MustCompile(`^(forget-)?[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$`)

func (s *Server) addBackupRoutes() {
	if s.d.Backups == nil || s.d.Backups.Service == nil {
		return
	}
	const v1 = "/api/v1"
	s.add(route{method: "POST", path: v1 + "/backups", perm: auth.BackupWork, summary: "Start a backup now (409 while one runs)", h: s.startBackup, ok: 202, bodyless: true, reply: started{}})
	s.add(route{method: "GET", path: v1 + "/backups", perm: auth.BackupWork, summary: "Complete backups in the repository and the latest runs", h: s.listBackups, ok: 200, reply: backupList{}})
	s.add(route{method: "GET", path: v1 + "/backups/:id", perm: auth.BackupWork, summary: "A backup's manifest summary, or its run while not complete", h: s.getBackup, ok: 200, reply: oneOf{backup.Summary{}, backupRun{}}})
	s.add(route{method: "POST", path: v1 + "/backups/:id/verify", perm: auth.BackupWork, summary: "Verify a backup (?read_data=true re-reads every byte)", h: s.verifyBackup, ok: 200, bodyless: true, reply: backup.VerifyReport{},
		query: []param{pBool("read_data", "Re-read and decrypt every byte, not only check that each object is there.")}})
}

func (s *Server) backupID(c *fiber.Ctx) (string, error) {
	id := c.Params("id")
	if !backupIDRE.MatchString(id) {
		return "", &httpError{status: fiber.StatusBadRequest, detail: "not a backup id (e.g. 20261128T020000Z-1a2b3c)",
			fields: []cases.FieldError{{Field: "id", Message: "malformed"}}}
	}
	return id, nil
}

func unreachable(err error) error {
	return errStatus(fiber.StatusServiceUnavailable, "the backup target is unavailable; retry later (%v)", err)
}

func (s *Server) startBackup(c *fiber.Ctx) error {
	b := s.d.Backups
	if b.Ping != nil {
		if err := b.Ping(c.UserContext()); err != nil {
			return unreachable(err)
		}
	}
	// The run outlives the request but not the server (Shutdown cancels
	// it; an interrupted run is never listed as complete).
	ctx, cancel := s.runs.detach(c.UserContext())
	id, done, err := b.Service.Start(ctx, "api", actor(c))
	if err != nil {
		cancel()
	}
	if errors.Is(err, backup.ErrLocked) {
		return errStatus(fiber.StatusConflict, "a backup or forget is already running")
	}
	if err != nil {
		return err
	}
	go func() {
		<-done
		cancel()
	}()
	c.Location("/api/v1/backups/" + id)
	return c.Status(fiber.StatusAccepted).JSON(started{ID: id})
}

func (s *Server) listBackups(c *fiber.Ctx) error {
	ctx := c.UserContext()
	svc := s.d.Backups.Service
	ms, damaged, err := svc.Repo().List(ctx)
	if err != nil && !errors.Is(err, backup.ErrNoRepository) {
		return err
	}
	if damaged == nil {
		damaged = []backup.Damaged{}
	}
	items := make([]backup.Summary, 0, len(ms))
	for i := len(ms) - 1; i >= 0; i-- { // newest first
		items = append(items, ms[i].Summary(false))
	}
	runs, err := svc.Runs(ctx, 20)
	if err != nil {
		return err
	}
	if runs == nil {
		runs = []backup.Run{}
	}
	return c.JSON(backupList{Items: items, Damaged: damaged, Runs: runs})
}

func (s *Server) getBackup(c *fiber.Ctx) error {
	id, err := s.backupID(c)
	if err != nil {
		return err
	}

	ctx := c.UserContext()
	svc := s.d.Backups.Service
	m, err := svc.Repo().Manifest(ctx, id)
	if err == nil {
		return c.JSON(m.Summary(true))
	}

	if errors.Is(err, backup.ErrDamaged) {
		// Unreadable, unsigned or not verifying: nothing in it is shown.
		return errStatus(fiber.StatusConflict, "backup %s cannot be trusted: %v", id, err)
	}

	if !errors.Is(err, backup.ErrNotFound) && !errors.Is(err, backup.ErrNoRepository) {
		return err
	}

	run, rerr := svc.GetRun(ctx, id)
	if errors.Is(rerr, backup.ErrNotFound) {
		return errStatus(fiber.StatusNotFound, "no backup or run %s", id)
	}

	if rerr != nil {
		return rerr
	}

	if run.Status == backup.StatusDone {
		// The run finished between the two reads: its manifest is there
		// now (it is written before the run is recorded done).
		if m, err := svc.Repo().Manifest(ctx, id); err == nil {
			return c.JSON(m.Summary(true))
		}
	}

	return c.JSON(backupRun{ID: run.ID, Status: run.Status, Run: run})
}

func (s *Server) verifyBackup(c *fiber.Ctx) error {
	id, err := s.backupID(c)
	if err != nil {
		return err
	}
	readData := false
	if v := c.Query("read_data"); v != "" {
		if readData, err = strconv.ParseBool(v); err != nil {
			return cases.Invalid("read_data", "must be true or false")
		}
	}
	rep, err := s.d.Backups.Service.Repo().Verify(c.UserContext(), id, readData, s.d.Backups.Identity, nil)
	switch {
	case errors.Is(err, backup.ErrNotFound), errors.Is(err, backup.ErrNoRepository):
		return errStatus(fiber.StatusNotFound, "no backup %s", id)
	case errors.Is(err, backup.ErrWrongKey):
		return errStatus(fiber.StatusInternalServerError, "the configured backup identity does not decrypt backup %s", id)
	case errors.Is(err, backup.ErrDamaged):
		rep = backup.VerifyReport{ID: id, ReadData: readData, Problems: []string{err.Error()}}
	case err != nil:
		return err
	}
	if s.d.Audit != nil {
		if err := s.d.Audit.Record(c.UserContext(), cases.Change{Actor: actor(c), Action: "backup.verify", TargetType: "backup", TargetID: id,
			Detail: map[string]any{"read_data": readData, "ok": rep.OK, "problems": len(rep.Problems)}}, "ok"); err != nil {
			return err
		}
	}
	return c.JSON(rep)
}
