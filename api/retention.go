package api

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

// RetentionDeps are the retention services the routes call (nil: no
// retention routes).
type RetentionDeps struct {
	Schedules *retention.Schedules
	Holds     *retention.Holds
	Explainer *retention.Explainer
	Sweeper   *retention.Sweeper
	Deleter   *retention.Deleter
	// Recompute starts, in the background, the recomputation of due dates
	// after a schedule change, and returns at once.
	Recompute func(ctx context.Context)
	// AuditTx writes audit events inside retention transactions.
	AuditTx cases.TxHook
	// Flags mirrors holds onto the blob store's S3 legal-hold flags (nil:
	// holds carry no mirroring state).
	Flags HoldFlags
}

// HoldFlags mirrors holds onto the S3 legal-hold flags
// (retention.FlagMirror).
type HoldFlags interface {
	// MirrorHold brings a hold's flags up to date now.
	MirrorHold(ctx context.Context, h retention.Hold) (retention.Mirroring, error)
	// Status reports how far a hold's flags match what it covers.
	Status(ctx context.Context, h retention.Hold) (retention.Mirroring, error)
	// AttachmentAdded flags a new attachment's blob when a hold covers it.
	AttachmentAdded(ctx context.Context, attachmentID string) error
}

// holdMirrored is a placed or reinstated hold as the API answers it: with
// the state of its flags, which may still be pending (the bucket was down;
// the reconciler retries) while the hold itself is in force.
type holdMirrored struct {
	retention.Hold
	Mirroring string `json:"mirroring,omitempty"`
}

// mirror sets a placed or reinstated hold's flags. A failure does not fail
// the request: the hold is in force either way (the sweeper enforces it),
// and its state says pending until the reconciler has set them.
func (s *Server) mirror(c *fiber.Ctx, h retention.Hold) holdMirrored {
	out := holdMirrored{Hold: h}
	if s.d.Retention.Flags == nil {
		return out
	}
	m, err := s.d.Retention.Flags.MirrorHold(c.UserContext(), h)
	out.Mirroring = m.State
	if err != nil {
		s.log.Error("legal-hold flags not fully set; the reconciler retries", "hold", h.ID, "state", m.State, "pending", m.Pending, "err", err, "request_id", requestID(c))
		return out
	}
	s.log.Info("legal-hold flags set", "hold", h.ID, "state", m.State, "blobs", m.Blobs)
	return out
}

// flagUpload flags a committed upload's blob when a hold covers it; a
// failure leaves the holds pending for the reconciler (the upload stands).
func (s *Server) flagUpload(c *fiber.Ctx, attachmentID string) {
	if s.d.Retention == nil || s.d.Retention.Flags == nil {
		return
	}
	if err := s.d.Retention.Flags.AttachmentAdded(c.UserContext(), attachmentID); err != nil {
		s.log.Error("legal-hold flag of an upload into a held scope not set; the reconciler retries", "attachment", attachmentID, "err", err, "request_id", requestID(c))
	}
}

func (s *Server) addRetentionRoutes() {
	if s.d.Retention == nil {
		return
	}
	const v1 = "/api/v1"
	s.add(route{method: "GET", path: v1 + "/retention/schedule", perm: auth.LegalWork, summary: "The retention schedule in force", h: s.getSchedule, ok: 200, reply: retention.Schedule{}})
	s.add(route{method: "GET", path: v1 + "/retention/schedule/versions", perm: auth.LegalWork, summary: "The schedule's history: every version with who stored it, when, and its digest (newest, the one in force, first)", h: s.scheduleVersions, ok: 200, reply: listBody[retention.ScheduleVersion]{}})
	s.add(route{method: "PUT", path: v1 + "/retention/schedule", perm: auth.Admin, summary: "Replace the retention schedule (versioned, audited)", h: s.putSchedule, ok: 200, request: retention.Schedule{}, reply: retention.Schedule{}})
	s.add(route{method: "GET", path: v1 + "/cases/:id/retention", perm: auth.LegalWork, read: "retention.explain", target: "case", summary: "Explain a case's retention", h: s.explainCase, ok: 200, reply: retention.CaseExplanation{}})
	s.add(route{method: "GET", path: v1 + "/customers/:id/retention", perm: auth.LegalWork, read: "retention.explain", target: "customer", summary: "Explain a customer profile's retention (customer_profile rule)", h: s.explainCustomer, ok: 200, reply: retention.ProfileExplanation{}})
	s.add(route{method: "GET", path: v1 + "/contacts/:id/retention", perm: auth.LegalWork, read: "retention.explain", target: "contact", summary: "Explain a contact's retention", h: s.explainContact, ok: 200, reply: retention.ContactExplanation{}})
	s.add(route{method: "POST", path: v1 + "/retention/runs", perm: auth.SweepPreview, summary: "Start a retention sweep (dry_run: legal may preview; a real sweep needs admin)", h: s.startRun, ok: 202, bodyOptional: true, request: runInput{}, reply: started{}})
	s.add(route{method: "GET", path: v1 + "/retention/runs/:id", perm: auth.SweepPreview, summary: "A retention sweep's report", h: s.getRun, ok: 200, reply: retention.RunReport{}})
	s.add(route{method: "DELETE", path: v1 + "/cases/:id", perm: auth.CaseManage, summary: "Delete a case with its contacts and attachments (409 naming the hold when held)", h: s.deleteCase, ok: 204})
	s.add(route{method: "POST", path: v1 + "/holds", perm: auth.LegalWork, summary: "Place a legal hold", h: s.placeHold, ok: 201, request: retention.HoldInput{}, reply: holdMirrored{}})
	s.add(route{method: "GET", path: v1 + "/holds", perm: auth.LegalWork, summary: "List legal holds (active, matter)", h: s.listHolds, ok: 200, paged: true, reply: listBody[retention.Hold]{},
		query: []param{pBool("active", "Only holds in force."), pString("matter", "Only holds of this matter.")}})
	s.add(route{method: "GET", path: v1 + "/holds/:id", perm: auth.LegalWork, summary: "A legal hold with counts of what it holds, in all and per custodian", h: s.getHold, ok: 200, reply: holdDetail{}})
	s.add(route{method: "GET", path: v1 + "/holds/:id/items", perm: auth.LegalWork, read: "hold.report", target: "hold", summary: "A hold's report: the cases, contacts and attachments it covers or covered, with why and since (custodian)", h: s.holdItems, ok: 200, paged: true, reply: listBody[retention.ReportItem]{},
		query: []param{pString("custodian", "Only the items of this custodian (customer id).")}})
	s.add(route{method: "GET", path: v1 + "/holds/:id/release-preview", perm: auth.LegalWork, summary: "What releasing a hold would make due", h: s.releasePreview, ok: 200, reply: retention.ReleasePreview{}})
	s.add(route{method: "POST", path: v1 + "/holds/:id/release", perm: auth.LegalWork, summary: "Release a legal hold (holds are never deleted; it preserves for the release grace)", h: s.releaseHold, ok: 200, request: releaseInput{}, reply: retention.Hold{}})
	s.add(route{method: "POST", path: v1 + "/holds/:id/mirror", perm: auth.LegalWork, summary: "Set (or, once its grace has ended, clear) a hold's S3 legal-hold flags now, and report its mirroring", h: s.mirrorHold, ok: 200, bodyless: true, reply: mirrorReport{}})
	s.add(route{method: "POST", path: v1 + "/holds/:id/reinstate", perm: auth.LegalWork, summary: "Undo a release within its grace (409 after it)", h: s.reinstateHold, ok: 200, bodyOptional: true, request: reinstateInput{}, reply: holdMirrored{}})
	s.add(route{method: "GET", path: v1 + "/matters/:matter", perm: auth.LegalWork, summary: "A matter: all its holds with their combined coverage", h: s.getMatter, ok: 200, reply: retention.Matter{}})
}

func (s *Server) getSchedule(c *fiber.Ctx) error {
	sc, err := s.d.Retention.Schedules.Current(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(sc)
}

func (s *Server) scheduleVersions(c *fiber.Ctx) error {
	vs, err := s.d.Retention.Schedules.Versions(c.UserContext())
	if err != nil {
		return err
	}
	return list(c, vs, "")
}

func (s *Server) putSchedule(c *fiber.Ctx) error {
	var sc retention.Schedule
	if err := s.decodeJSON(c, &sc); err != nil {
		return err
	}
	if err := sc.Validate(); err != nil {
		return err
	}
	stored, err := s.d.Retention.Schedules.Put(c.UserContext(), sc, actor(c), s.d.Retention.AuditTx)
	if err != nil {
		return err
	}
	if s.d.Retention.Recompute != nil {
		s.d.Retention.Recompute(context.WithoutCancel(c.UserContext()))
	}
	return c.JSON(stored)
}

func (s *Server) explainCase(c *fiber.Ctx) error {
	x, err := s.d.Retention.Explainer.ExplainCase(c.UserContext(), c.Params("id"), time.Now())
	if err != nil {
		return err
	}
	return c.JSON(x)
}

func (s *Server) explainCustomer(c *fiber.Ctx) error {
	x, err := s.d.Retention.Explainer.ExplainCustomer(c.UserContext(), c.Params("id"), time.Now())
	if err != nil {
		return err
	}
	return c.JSON(x)
}

func (s *Server) explainContact(c *fiber.Ctx) error {
	x, err := s.d.Retention.Explainer.ExplainContact(c.UserContext(), c.Params("id"), time.Now())
	if err != nil {
		return err
	}
	return c.JSON(x)
}

type runInput struct {
	DryRun *bool `json:"dry_run"`
}

func (s *Server) startRun(c *fiber.Ctx) error {
	var in runInput
	if len(c.Body()) > 0 || c.Request().Header.ContentLength() != 0 {
		if err := s.decodeJSON(c, &in); err != nil {
			return err
		}
	}
	dry := in.DryRun != nil && *in.DryRun
	if a := actor(c); !dry && !auth.Role(a.Role).Allows(auth.Admin) {
		s.deny(c, a, "auth.forbidden", "POST /api/v1/retention/runs (dry_run false)")
		return errStatus(fiber.StatusForbidden, "role %s may only start a dry run (a real sweep needs admin)", a.Role)
	}
	id, _, err := s.d.Retention.Sweeper.Start(context.WithoutCancel(c.UserContext()), retention.RunOptions{DryRun: dry})
	if errors.Is(err, retention.ErrSweepRunning) {
		return errStatus(fiber.StatusConflict, "a retention sweep is already running")
	}
	if err != nil {
		return err
	}
	if s.d.Audit != nil {
		_ = s.d.Audit.Record(c.UserContext(), cases.Change{Actor: actor(c), Action: "retention.run", TargetType: "retention_run", TargetID: id,
			Detail: map[string]any{"dry_run": dry}}, "ok")
	}
	c.Location("/api/v1/retention/runs/" + id)
	return c.Status(fiber.StatusAccepted).JSON(started{ID: id})
}

func (s *Server) getRun(c *fiber.Ctx) error {
	rep, err := s.d.Retention.Sweeper.GetRun(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(rep)
}

func (s *Server) placeHold(c *fiber.Ctx) error {
	var in retention.HoldInput
	if err := s.decodeJSON(c, &in); err != nil {
		return err
	}
	h, err := s.d.Retention.Holds.Place(c.UserContext(), in, actor(c), s.d.Retention.AuditTx)
	if err != nil {
		return err
	}
	out := s.mirror(c, h)
	c.Location("/api/v1/holds/" + h.ID)
	return c.Status(fiber.StatusCreated).JSON(out)
}

func (s *Server) listHolds(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	active, _ := strconv.ParseBool(c.Query("active"))
	items, next, err := s.d.Retention.Holds.List(c.UserContext(), retention.HoldFilter{ActiveOnly: active, Matter: c.Query("matter")}, p.Limit, p.Cursor)
	if errors.Is(err, retention.ErrBadCursor) {
		return cases.Invalid("cursor", "was not issued by this list")
	}
	if err != nil {
		return err
	}
	return list(c, items, next)
}

func (s *Server) getHold(c *fiber.Ctx) error {
	h, err := s.d.Retention.Holds.Get(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	counts, err := s.d.Retention.Holds.Counts(c.UserContext(), h.ID)
	if err != nil {
		return err
	}
	per, err := s.d.Retention.Holds.Custodians(c.UserContext(), h.ID)
	if err != nil {
		return err
	}
	out := holdDetail{Hold: h, Counts: counts, Custodians: per}
	if s.d.Retention.Flags != nil {
		m, err := s.d.Retention.Flags.Status(c.UserContext(), h)
		if err != nil {
			return err
		}
		out.Mirroring, out.MirroringDetail = m.State, &m
	}
	return c.JSON(out)
}

// mirrorHold sets a hold's flags now (or clears them once its grace has
// ended) and reports the outcome; what it could not do stays pending.
func (s *Server) mirrorHold(c *fiber.Ctx) error {
	h, err := s.d.Retention.Holds.Get(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	out := mirrorReport{HoldID: h.ID}
	if s.d.Retention.Flags == nil {
		out.Mirroring = retention.MirrorUnavailable
		return c.JSON(out)
	}
	m, err := s.d.Retention.Flags.MirrorHold(c.UserContext(), h)
	if err != nil {
		s.log.Warn("legal-hold flags not fully set on demand", "hold", h.ID, "err", err, "request_id", requestID(c))
	}
	out.Mirroring, out.MirroringDetail = m.State, &m
	return c.JSON(out)
}

func (s *Server) holdItems(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	f := retention.ItemFilter{Custodian: c.Query("custodian")}
	items, next, err := s.d.Retention.Holds.Items(c.UserContext(), c.Params("id"), f, p.Limit, p.Cursor)
	if errors.Is(err, retention.ErrBadCursor) {
		return cases.Invalid("cursor", "was not issued by this report")
	}
	if err != nil {
		return err
	}
	return list(c, items, next)
}

func (s *Server) releasePreview(c *fiber.Ctx) error {
	p, err := s.d.Retention.Holds.ReleasePreview(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(p)
}

func (s *Server) getMatter(c *fiber.Ctx) error {
	name, err := url.PathUnescape(c.Params("matter"))
	if err != nil {
		return cases.Invalid("matter", "is not a valid URL path segment")
	}
	m, err := s.d.Retention.Holds.Matter(c.UserContext(), name)
	if err != nil {
		return err
	}
	return c.JSON(m)
}

type releaseInput struct {
	Reason *string `json:"reason"`
}

func (s *Server) releaseHold(c *fiber.Ctx) error {
	var in releaseInput
	if err := s.decodeJSON(c, &in); err != nil {
		return err
	}
	if in.Reason == nil || *in.Reason == "" {
		return cases.Invalid("reason", "is required")
	}
	h, err := s.d.Retention.Holds.Release(c.UserContext(), c.Params("id"), *in.Reason, actor(c), s.d.Retention.AuditTx)
	if err != nil {
		return err
	}
	// The S3 flags stay through the release grace (a sweep clears them
	// once it has ended), so a reinstated hold has lost nothing anywhere.
	return c.JSON(h)
}

type reinstateInput struct {
	Reason string `json:"reason"`
}

func (s *Server) reinstateHold(c *fiber.Ctx) error {
	var in reinstateInput
	if len(c.Body()) > 0 || c.Request().Header.ContentLength() > 0 {
		if err := s.decodeJSON(c, &in); err != nil {
			return err
		}
	}
	h, err := s.d.Retention.Holds.Reinstate(c.UserContext(), c.Params("id"), in.Reason, actor(c), s.d.Retention.AuditTx)
	if err != nil {
		return err
	}
	return c.JSON(s.mirror(c, h))
}

func (s *Server) deleteCase(c *fiber.Ctx) error {
	if err := s.d.Retention.Deleter.DeleteCase(c.UserContext(), c.Params("id"), actor(c)); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
