package api

import (
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/cases"
)

// Handlers of the core records: customers, cases and their contacts.

// --- customers ---

func (s *Server) createCustomer(c *fiber.Ctx) error {
	var in cases.NewCustomer
	if err := s.decodeJSON(c, &in); err != nil {
		return err
	}
	cust, err := s.d.Cases.CreateCustomer(c.UserContext(), in, actor(c))
	if err != nil {
		return err
	}
	c.Location("/api/v1/customers/" + cust.ID)
	return c.Status(fiber.StatusCreated).JSON(cust)
}

func (s *Server) getCustomer(c *fiber.Ctx) error {
	cust, err := s.d.Cases.GetCustomer(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(cust)
}

func (s *Server) patchCustomer(c *fiber.Ctx) error {
	var in cases.CustomerPatch
	if err := s.decodeJSON(c, &in); err != nil {
		return err
	}
	cust, err := s.d.Cases.UpdateCustomer(c.UserContext(), c.Params("id"), in, actor(c))
	if err != nil {
		return err
	}
	out, err := s.applyConsents(c, cust, in.Consents)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (s *Server) customerCases(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	items, next, err := s.d.Cases.ListCustomerCases(c.UserContext(), c.Params("id"), p)
	if err != nil {
		return err
	}
	return list(c, items, next)
}

// --- cases ---

func (s *Server) createCase(c *fiber.Ctx) error {
	var in cases.NewCase
	if err := s.decodeJSON(c, &in); err != nil {
		return err
	}
	cs, err := s.d.Cases.CreateCase(c.UserContext(), in, actor(c))
	if err != nil {
		return err
	}
	c.Location("/api/v1/cases/" + cs.ID)
	return c.Status(fiber.StatusCreated).JSON(cs)
}

func (s *Server) listCases(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	f := cases.CaseFilter{Status: cases.Status(c.Query("status")), CustomerID: c.Query("customer_id"),
		Assignee: c.Query("assignee"), Tag: c.Query("tag")}
	items, next, err := s.d.Cases.ListCases(c.UserContext(), f, p)
	if err != nil {
		return err
	}
	c.Locals(targetKey, "")
	c.Locals(detailKey, map[string]any{"count": len(items)})
	return list(c, items, next)
}

func (s *Server) getCase(c *fiber.Ctx) error {
	cs, err := s.d.Cases.GetCase(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return s.caseTimeline(c, cs)
}

// getCaseByNumber reads a case by the number agents quote; the read is
// audited like GET /cases/{id}, against the case's id.
func (s *Server) getCaseByNumber(c *fiber.Ctx) error {
	raw := c.Params("number")
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 1 {
		return cases.Invalid("number", "must be a positive integer")
	}

	cs, err := s.d.Cases.GetCaseByNumber(c.UserContext(), n)
	if err != nil {
		return err
	}

	c.Locals(targetKey, cs.ID)
	return s.caseTimeline(c, cs)
}

func (s *Server) caseTimeline(c *fiber.Ctx, cs cases.Case) error {
	if cs.Contacts == nil {
		cs.Contacts = []cases.Contact{}
	}
	return c.JSON(caseWithTimeline{Case: cs, Contacts: cs.Contacts, Timeline: timeline(cs.Contacts, cs.History)})
}

// caseWithTimeline always renders "contacts", even when empty, and the
// timeline: contacts and changes interleaved in time order.
type caseWithTimeline struct {
	cases.Case
	Contacts []cases.Contact `json:"contacts"`
	Timeline []timelineEntry `json:"timeline"`
}

// timelineEntry is a contact (its id and envelope; the whole contact is in
// "contacts") or a change of the case (old → new, who).
type timelineEntry struct {
	Type      string          `json:"type"` // "contact" or "change"
	At        time.Time       `json:"at"`
	ContactID string          `json:"contact_id,omitempty"`
	Channel   cases.Channel   `json:"channel,omitempty"`
	Direction cases.Direction `json:"direction,omitempty"`
	Author    string          `json:"author,omitempty"`
	// Corrects and CorrectedBy link a correction and the contact it
	// corrects, so that a reader of the timeline sees them together.
	Corrects    string                       `json:"corrects,omitempty"`
	CorrectedBy []string                     `json:"corrected_by,omitempty"`
	Actor       string                       `json:"actor,omitempty"`
	Role        string                       `json:"role,omitempty"`
	Changes     map[string]cases.FieldChange `json:"changes,omitempty"`
}

// timeline merges contacts (by occurred_at) and changes (by when they were
// made); at equal times a contact comes first.
func timeline(contacts []cases.Contact, history []cases.CaseEvent) []timelineEntry {
	out := make([]timelineEntry, 0, len(contacts)+len(history))
	for _, ct := range contacts {
		out = append(out, timelineEntry{Type: "contact", At: ct.OccurredAt, ContactID: ct.ID, Channel: ct.Channel, Direction: ct.Direction, Author: ct.Author,
			Corrects: ct.Corrects, CorrectedBy: ct.CorrectedBy})
	}
	for _, ev := range history {
		out = append(out, timelineEntry{Type: "change", At: ev.At, Actor: ev.Actor, Role: ev.Role, Changes: ev.Changes})
	}
	slices.SortStableFunc(out, func(a, b timelineEntry) int { return a.At.Compare(b.At) })
	return out
}

func (s *Server) patchCase(c *fiber.Ctx) error {
	var in cases.CasePatch
	if err := s.decodeJSON(c, &in); err != nil {
		return err
	}
	a := actor(c)
	cs, err := s.d.Cases.UpdateCase(c.UserContext(), c.Params("id"), in, a)
	var forbidden *cases.ForbiddenError
	if errors.As(err, &forbidden) {
		// Closing and reassigning are supervisor work (api.md, Roles); the
		// service decides, the refusal is audited like the guard's.
		s.deny(c, a, "auth.forbidden", "PATCH /api/v1/cases/:id "+deniedPatch(forbidden.Change))
	}
	if err != nil {
		return err
	}
	return c.JSON(cs)
}

// deniedPatch names, in the audit event of a refused case update, the part
// of the patch that needed a supervisor.
func deniedPatch(change string) string {
	if change == "close" {
		return "status=closed"
	}
	return "assignee"
}

// --- contacts ---

func (s *Server) createContact(c *fiber.Ctx) error {
	var in cases.NewContact
	if err := s.decodeJSON(c, &in); err != nil {
		return err
	}
	res, err := s.d.Cases.AddContact(c.UserContext(), c.Params("id"), in, actor(c))
	if err != nil {
		return err
	}
	c.Location("/api/v1/contacts/" + res.ID)
	return c.Status(fiber.StatusCreated).JSON(res)
}

func (s *Server) getContact(c *fiber.Ctx) error {
	ct, err := s.d.Cases.GetContact(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(ct)
}
