package api

import (
	"context"
	"database/sql"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
)

func (s *Server) add(r route) { s.routes = append(s.routes, r) }

// register mounts a route with its guard and read audit. Every GET route
// answers HEAD too, with the same status and headers and no body (fasthttp
// drops the body of a HEAD response); a HEAD of personal data is audited
// like the GET it mirrors.
func (s *Server) register(r route) {
	handlers := []fiber.Handler{}
	if r.perm != "" {
		handlers = append(handlers, s.guard(r.perm, r.method+" "+r.path, r.paged))
	}
	if r.read != "" {
		handlers = append(handlers, s.auditRead(r.read, r.target))
	}
	handlers = append(handlers, r.h)
	s.app.Add(r.method, r.path, handlers...)
	if r.method == fiber.MethodGet {
		s.app.Add(fiber.MethodHead, r.path, handlers...)
	}
}

func (s *Server) buildRoutes() {
	// Operations, unauthenticated: they reveal no personal data.
	s.add(route{method: "GET", path: "/healthz", summary: "Process is up", h: s.healthz, ok: 200})
	s.add(route{method: "GET", path: "/readyz", summary: "Store, index and blob store reachable", h: s.readyz, ok: 200})
	s.add(route{method: "GET", path: "/metrics", summary: "Prometheus metrics", h: s.metricsHandler(), ok: 200})
	s.add(route{method: "GET", path: "/openapi.json", summary: "This API's OpenAPI document", h: s.openapi, ok: 200})

	const v1 = "/api/v1"
	s.add(route{method: "POST", path: v1 + "/tokens", perm: auth.Admin, summary: "Create a token", h: s.createToken, ok: 201, request: "TokenInput"})
	s.add(route{method: "GET", path: v1 + "/tokens", perm: auth.Admin, read: "token.list", target: "token", summary: "List tokens", h: s.listTokens, ok: 200})
	s.add(route{method: "DELETE", path: v1 + "/tokens/:id", perm: auth.Admin, summary: "Revoke a token", h: s.revokeToken, ok: 204})

	s.add(route{method: "POST", path: v1 + "/customers", perm: auth.CaseWrite, summary: "Create a customer", h: s.createCustomer, ok: 201, request: "CustomerInput"})
	s.add(route{method: "GET", path: v1 + "/customers/:id", perm: auth.CaseRead, read: "customer.read", target: "customer", summary: "Read a customer", h: s.getCustomer, ok: 200})
	s.add(route{method: "PATCH", path: v1 + "/customers/:id", perm: auth.CaseWrite, summary: "Update a customer", h: s.patchCustomer, ok: 200, request: "CustomerInput"})
	s.add(route{method: "GET", path: v1 + "/customers/:id/cases", perm: auth.CaseRead, read: "customer.cases", target: "customer", summary: "List a customer's cases", h: s.customerCases, ok: 200, paged: true})

	s.add(route{method: "POST", path: v1 + "/cases", perm: auth.CaseWrite, summary: "Create a case", h: s.createCase, ok: 201, request: "CaseInput"})
	s.add(route{method: "GET", path: v1 + "/cases", perm: auth.CaseRead, read: "case.list", target: "case", summary: "List cases, newest first", h: s.listCases, ok: 200, paged: true})
	s.add(route{method: "GET", path: v1 + "/cases/:id", perm: auth.CaseRead, read: "case.read", target: "case", summary: "Read a case with its timeline", h: s.getCase, ok: 200})
	s.add(route{method: "PATCH", path: v1 + "/cases/:id", perm: auth.CaseWrite, summary: "Update a case (closing and reassigning need supervisor)", h: s.patchCase, ok: 200, request: "CasePatch"})

	s.add(route{method: "POST", path: v1 + "/cases/:id/contacts", perm: auth.CaseWrite, summary: "Log a contact", h: s.createContact, ok: 201, request: "ContactInput"})
	s.add(route{method: "GET", path: v1 + "/contacts/:id", perm: auth.CaseRead, read: "contact.read", target: "contact", summary: "Read a contact", h: s.getContact, ok: 200})
	for _, m := range []string{"PATCH", "PUT", "DELETE"} {
		s.add(route{method: m, path: v1 + "/contacts/:id", perm: auth.Authenticated, summary: "Contacts are immutable (405 for any token, 401 without one)", h: s.immutable, ok: 405})
	}
	s.addExtraRoutes()
	s.addBackupRoutes()
}

func (s *Server) immutable(c *fiber.Ctx) error {
	c.Set(fiber.HeaderAllow, "GET, HEAD")
	return errStatus(fiber.StatusMethodNotAllowed, "contacts are immutable once written")
}

// --- tokens ---

type tokenInput struct {
	Name *string `json:"name"`
	Role *string `json:"role"`
}

func (s *Server) createToken(c *fiber.Ctx) error {
	var in tokenInput
	if err := s.decodeJSON(c, &in); err != nil {
		return err
	}
	var v cases.ValidationError
	if in.Name == nil {
		v.Fields = append(v.Fields, cases.FieldError{Field: "name", Message: "is required"})
	}
	if in.Role == nil {
		v.Fields = append(v.Fields, cases.FieldError{Field: "role", Message: "is required"})
	}
	if len(v.Fields) > 0 {
		return &v
	}
	role, err := auth.ParseRole(*in.Role)
	if err != nil {
		return cases.Invalid("role", err.Error())
	}
	a := actor(c)
	tok, secret, err := s.d.Tokens.Create(c.UserContext(), *in.Name, role, func(ctx context.Context, tx *sql.Tx, tok auth.Token) error {
		if s.d.AuditTx == nil {
			return nil
		}
		return s.d.AuditTx(ctx, tx, cases.Change{Actor: a, Action: "token.create", TargetType: "token", TargetID: tok.ID,
			Detail: map[string]any{"name": tok.Name, "role": string(tok.Role)}})
	})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"id": tok.ID, "name": tok.Name, "role": tok.Role, "token": secret, "created_at": tok.CreatedAt})
}

func (s *Server) listTokens(c *fiber.Ctx) error {
	toks, err := s.d.Tokens.List(c.UserContext())
	if err != nil {
		return err
	}
	c.Locals(targetKey, "")
	c.Locals(detailKey, map[string]any{"count": len(toks)})
	return c.JSON(fiber.Map{"items": toks, "next_cursor": nil})
}

func (s *Server) revokeToken(c *fiber.Ctx) error {
	a := actor(c)
	id := c.Params("id")
	err := s.d.Tokens.Revoke(c.UserContext(), id, func(ctx context.Context, tx *sql.Tx) error {
		if s.d.AuditTx == nil {
			return nil
		}
		return s.d.AuditTx(ctx, tx, cases.Change{Actor: a, Action: "token.revoke", TargetType: "token", TargetID: id})
	})
	if err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

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

func page(c *fiber.Ctx) (cases.Page, error) {
	p := cases.Page{Limit: 50, Cursor: c.Query("cursor")}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 500 {
			return p, cases.Invalid("limit", "must be an integer from 1 to 500")
		}
		p.Limit = n
	}
	return p, nil
}

func list[T any](c *fiber.Ctx, items []T, next string) error {
	var nc any
	if next != "" {
		nc = next
	}
	if items == nil {
		items = []T{}
	}
	return c.JSON(fiber.Map{"items": items, "next_cursor": nc})
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
