package api

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

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
		summary: "Find customers by exact e-mail and/or phone (keyed hash; e-mail case and phone punctuation ignored), or by name (q); paged, best match first", h: s.findCustomers, ok: 200, paged: true, reply: listBody[cases.Customer]{},
		query: []param{pString("email", "Exact e-mail address (case-insensitive)."), pString("phone", "Exact phone number (compared by its digits)."), pString("q", "Find customers by name (any script, typo-tolerant, Chinese by substring; through the search index, with or without a case), or by an exact e-mail or phone number typed here. Not together with email or phone.")}})
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

// findCustomers is the exact lookup (email, phone) or the search (q).
func (s *Server) findCustomers(c *fiber.Ctx) error {
	if c.Context().QueryArgs().Has("q") {
		return s.searchCustomers(c)
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

	p, offset, err := customerPage(c)
	if err != nil {
		return err
	}
	all, err := s.d.Privacy.FindCustomers(c.UserContext(), email, phone)
	if err != nil {
		return err
	}
	// at most 100 (sqlstore's maxLookup), paged like the name search
	found := window(all, offset, p.Limit)
	next := ""
	if offset+len(found) < len(all) {
		next = encodeOffset(offset + len(found))
	}
	ids := make([]string, len(found))
	for i, f := range found {
		ids[i] = f.ID
	}
	// The audit event names who was found, never what was asked for.
	c.Locals(targetKey, "")
	c.Locals(detailKey, map[string]any{"found": ids, "by_email": email != "", "by_phone": phone != ""})
	return list(c, found, next)
}

// customerPage reads the page of GET /customers: limit (1..500, default
// 50) and the cursor, an offset into the best-first list (search's cursor
// form, at most maxOffset deep).
func customerPage(c *fiber.Ctx) (cases.Page, int, error) {
	p, err := page(c)
	if err != nil {
		return p, 0, err
	}
	if p.Cursor == "" {
		return p, 0, nil
	}
	off, err := decodeOffset(p.Cursor)
	if err != nil {
		return p, 0, fieldError("malformed cursor", "cursor", "malformed cursor")
	}
	return p, off, nil
}

// searchCustomers is GET /customers?q=: q is what an agent types into a
// "find customer" box, resolved as a customer: term is (CustomerSearch):
// an e-mail or phone number exactly, anything else by name through the
// index. Customers come from the store, so an erased one (whose index
// documents may not be gone yet) is never shown.
func (s *Server) searchCustomers(c *fiber.Ctx) error {
	q := strings.TrimSpace(c.Query("q"))
	switch {
	case c.Query("email") != "" || c.Query("phone") != "":
		return fieldError("q cannot be combined with email or phone", "q", "give q alone, or email and/or phone")
	case q == "":
		return fieldError("q is empty", "q", "required: a name, e-mail or phone number")
	case len(q) > maxCustomerTerm:
		return fieldError("q too long", "q", fmt.Sprintf("at most %d bytes", maxCustomerTerm))
	case !utf8.ValidString(q):
		return fieldError("q is not valid UTF-8", "q", "not valid UTF-8")
	case !strings.ContainsFunc(q, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }):
		return fieldError("q has no letter or digit", "q", "must hold a letter or digit")
	}
	p, offset, err := customerPage(c)
	if err != nil {
		return err
	}
	r, ok := s.d.Search.(customerResolver)
	if !ok {
		return errStatus(fiber.StatusServiceUnavailable, "this server has no search index to find customers by name")
	}
	// one more than the page: whether a next page exists
	ids, err := r.CustomerWindow(c.UserContext(), q, offset, p.Limit+1)
	if err != nil {
		return err
	}
	next := ""
	if len(ids) > p.Limit {
		ids = ids[:p.Limit]
		if offset+p.Limit <= maxOffset {
			next = encodeOffset(offset + p.Limit)
		}
	}
	found := []cases.Customer{}
	for _, id := range ids {
		cu, err := s.d.Cases.GetCustomer(c.UserContext(), id)
		if errors.Is(err, cases.ErrNotFound) || errors.Is(err, cases.ErrErased) {
			continue // erased or deleted since the index saw them
		}
		if err != nil {
			return err
		}
		found = append(found, cu)
	}
	got := make([]string, len(found))
	for i, f := range found {
		got[i] = f.ID
	}
	// The audit event names who was found, never what was typed.
	c.Locals(targetKey, "")
	c.Locals(detailKey, map[string]any{"found": got, "by_name": !emailShaped(q) && !phoneShaped(q), "by_email": emailShaped(q), "by_phone": phoneShaped(q)})
	// A page may be shorter than limit when customers erased since the
	// index saw them were skipped; next_cursor still leads on.
	return list(c, found, next)
}
