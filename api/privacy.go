package api

import (
	"context"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

// PrivacyDeps serves data-subject requests (issue 15): erasure and finding
// the customer a request is about.
type PrivacyDeps struct {
	// Eraser erases customers (DELETE /customers/{id}).
	Eraser *retention.Eraser
	// FindCustomers is the exact lookup on the keyed e-mail and phone
	// hashes (sqlstore.Store.FindCustomers).
	FindCustomers func(ctx context.Context, email, phone string) ([]cases.Customer, error)
	// Consents redacts what a customer's withdrawn consents forbid (nil:
	// a withdrawal changes the profile only).
	Consents ConsentApplier
	// Exporter writes a customer's access export (nil: no route).
	Exporter CustomerExporter
}

func (s *Server) addPrivacyRoutes() {
	if s.d.Privacy == nil {
		return
	}
	const v1 = "/api/v1"
	s.add(route{method: "GET", path: v1 + "/customers", perm: auth.CaseRead, read: "customer.lookup", target: "customer",
		summary: "Find customers by exact e-mail and/or phone (keyed hash; e-mail case and phone punctuation ignored)", h: s.findCustomers, ok: 200, reply: listBody[cases.Customer]{},
		query: []param{pString("email", "Exact e-mail address (case-insensitive)."), pString("phone", "Exact phone number (compared by its digits)."), pString("q", "Name search (not served here: 422).")}})
	s.add(route{method: "DELETE", path: v1 + "/customers/:id", perm: auth.CaseManage,
		summary: "Erase a customer: cases, contacts, attachments, profile and data key (409 naming the holds when held, or with open cases unless force=true)",
		h:       s.eraseCustomer, ok: 200, request: EraseInput{}, reply: retention.Erasure{},
		query: []param{pBool("force", "Erase a customer with open cases too.")}})
	if s.d.Privacy.Exporter != nil {
		s.add(route{method: "GET", path: v1 + "/customers/:id/export", perm: auth.SubjectAccess, read: "customer.export", target: "customer",
			summary: "Download everything stored about a customer (ZIP)", h: s.exportCustomer, ok: 200, media: "application/zip"})
	}
}

// EraseInput is the body of DELETE /customers/{id}.
type EraseInput struct {
	Reason string `json:"reason"`
}

// maxReason bounds an erasure's reason (it goes into the audit trail).
const maxReason = 1000

func (s *Server) eraseCustomer(c *fiber.Ctx) error {
	var in EraseInput
	if err := s.decodeJSON(c, &in); err != nil {
		return err
	}
	reason := strings.TrimSpace(in.Reason)
	switch {
	case reason == "":
		return fieldError("an erasure needs a reason", "reason", "required")
	case len(reason) > maxReason:
		return fieldError("reason too long", "reason", "at most 1000 bytes")
	}
	force := false
	switch c.Query("force") {
	case "", "false":
	case "true":
		force = true
	default:
		return fieldError("force must be true or false", "force", "must be true or false")
	}

	// Params point into a reused buffer: the id is kept in the result.
	id := strings.Clone(c.Params("id"))
	out, err := s.d.Privacy.Eraser.Erase(c.UserContext(), retention.EraseRequest{CustomerID: id, Reason: reason, Force: force}, actor(c))
	if err != nil {
		return err
	}
	return c.JSON(out)
}

// findCustomers is the exact lookup. The name search through the index
// (?q=) is another route's part; here q is refused rather than ignored.
func (s *Server) findCustomers(c *fiber.Ctx) error {
	if c.Query("q") != "" {
		return fieldError("name search is not available here", "q", "not supported; use email or phone")
	}
	email, phone := strings.TrimSpace(c.Query("email")), strings.TrimSpace(c.Query("phone"))
	if email == "" && phone == "" {
		return fieldError("give email or phone", "email", "email or phone is required")
	}
	if len(email) > 320 {
		return fieldError("email too long", "email", "at most 320 bytes")
	}
	if len(phone) > 64 {
		return fieldError("phone too long", "phone", "at most 64 bytes")
	}

	found, err := s.d.Privacy.FindCustomers(c.UserContext(), email, phone)
	if err != nil {
		return err
	}
	ids := make([]string, len(found))
	for i, f := range found {
		ids[i] = f.ID
	}
	// The audit event names who was found, never what was asked for.
	c.Locals(targetKey, "")
	c.Locals(detailKey, map[string]any{"found": ids, "by_email": email != "", "by_phone": phone != ""})
	return list(c, found, "")
}
