package api

import (
	"context"
	"errors"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
)

// AuditTrail is the read side of the audit log.
type AuditTrail interface {
	List(ctx context.Context, f audit.Filter) ([]audit.Event, string, error)
	Verify(ctx context.Context) (audit.VerifyResult, error)
}

func (s *Server) addAuditRoutes() {
	if s.d.AuditTrail == nil {
		return
	}
	s.add(route{method: "GET", path: "/api/v1/audit", perm: auth.LegalWork, read: "audit.list", target: "audit", summary: "List audit events (actor, action, target, outcome, from, to)", h: s.listAudit, ok: 200, paged: true,
		reply: listBody[audit.Event]{}, query: []param{pString("actor", "Only events of this actor (token id or name)."), pString("action", "Only this action; a trailing * matches a prefix (contact.*)."),
			pString("target", "Only events about this target: type or type:id."), pString("outcome", "Only this outcome (ok, denied, failed)."),
			pTime("from", "Events at or after this time; with from or to the list is by time, newest first (ties by seq), not by seq."), pTime("to", "Events before this time.")}})
	s.add(route{method: "GET", path: "/api/v1/audit/verify", perm: auth.LegalWork, read: "audit.verify", target: "audit", summary: "Verify the audit hash chain", h: s.verifyAudit, ok: 200, reply: audit.VerifyResult{}})
}

func (s *Server) listAudit(c *fiber.Ctx) error {
	f := audit.Filter{Actor: c.Query("actor"), Action: c.Query("action"), Outcome: c.Query("outcome"), Cursor: c.Query("cursor")}
	f.TargetType, f.TargetID = audit.ParseTarget(c.Query("target"))
	var err error
	if f.From, err = cases.ParseTime("from", c.Query("from")); err != nil {
		return err
	}
	if f.To, err = cases.ParseTime("to", c.Query("to")); err != nil {
		return err
	}
	f.Limit = audit.DefaultListLimit
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 500 {
			return fieldError("bad limit", "limit", "must be an integer from 1 to 500")
		}
		f.Limit = n
	}
	items, next, err := s.d.AuditTrail.List(c.UserContext(), f)
	if err != nil {
		return mapAuditErr(err)
	}
	c.Locals(targetKey, "")
	c.Locals(detailKey, map[string]any{"count": len(items)})
	return list(c, items, next)
}

func (s *Server) verifyAudit(c *fiber.Ctx) error {
	res, err := s.d.AuditTrail.Verify(c.UserContext())
	if err != nil {
		return err
	}
	c.Locals(targetKey, "")
	c.Locals(detailKey, map[string]any{"ok": res.OK, "events": res.Events})
	return c.JSON(res)
}

// mapAuditErr turns the audit package's filter errors into 422s.
func mapAuditErr(err error) error {
	if err == nil {
		return nil
	}
	var fe *audit.FilterError
	if errors.As(err, &fe) {
		return cases.Invalid(fe.Field, fe.Message)
	}
	if errors.Is(err, audit.ErrInvalid) {
		return errStatus(fiber.StatusUnprocessableEntity, "%s", err.Error())
	}
	return err
}
