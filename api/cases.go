package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/auth"
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
	return c.JSON(cust)
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
	if cs.Contacts == nil {
		cs.Contacts = []cases.Contact{}
	}
	return c.JSON(caseWithTimeline{Case: cs, Contacts: cs.Contacts})
}

// caseWithTimeline always renders "contacts", even when empty.
type caseWithTimeline struct {
	cases.Case
	Contacts []cases.Contact `json:"contacts"`
}

func (s *Server) patchCase(c *fiber.Ctx) error {
	var in cases.CasePatch
	if err := s.decodeJSON(c, &in); err != nil {
		return err
	}
	a := actor(c)
	role := auth.Role(a.Role)
	if !role.Allows(auth.CaseManage) {
		// Closing and reassigning are supervisor work (api.md, Roles).
		if in.Status != nil && *in.Status == cases.StatusClosed {
			s.deny(c, a, "auth.forbidden", "PATCH /api/v1/cases/:id status=closed")
			return errStatus(fiber.StatusForbidden, "role %s may not close cases", role)
		}
		if in.Assignee != nil {
			cur, err := s.d.Cases.GetCase(c.UserContext(), c.Params("id"))
			if err != nil {
				return err
			}
			if cur.Assignee != "" && cur.Assignee != *in.Assignee {
				s.deny(c, a, "auth.forbidden", "PATCH /api/v1/cases/:id assignee")
				return errStatus(fiber.StatusForbidden, "role %s may not reassign cases", role)
			}
		}
	}
	cs, err := s.d.Cases.UpdateCase(c.UserContext(), c.Params("id"), in, a)
	if err != nil {
		return err
	}
	return c.JSON(cs)
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
