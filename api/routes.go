package api

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
)

// route is one entry of the route table: it is mounted (register) and
// described in /openapi.json from the same fields.
type route struct {
	method  string
	path    string // Fiber syntax, relative to the app root
	perm    auth.Permission
	summary string
	// read names the audit action recorded after a successful read of
	// personal data ("" = no read audit; writes are audited in their
	// transaction).
	read   string
	target string
	h      fiber.Handler
	ok     int // success status
	// request is a value of the JSON body's Go type (nil: the route takes
	// no JSON body); reply is a value of the success body's Go type (nil
	// only for a 204 or with media). Both are reflected into the OpenAPI
	// document's schemas: the handler decodes and encodes these very types.
	request any
	reply   any
	// media is the success body's content type when it is not JSON (a
	// download); upload marks a route whose body is a file (raw or
	// multipart), not JSON.
	media  string
	upload bool
	// bodyless: a write that takes no body; bodyOptional: its body may be
	// left out. example is an example request body for the document.
	bodyless     bool
	bodyOptional bool
	example      any
	// alt are other successful answers: status → a value of the body's
	// type (nil: no body).
	alt map[int]any
	// query declares the query-string parameters the route takes: the
	// guard answers any other with 422 listing these, and the OpenAPI
	// document lists them. A paged route takes limit and cursor too.
	query []param
	// paged: the route is a list that issues and accepts ?cursor= (every
	// other route rejects a cursor with 422).
	paged bool
}

// add puts r in the route table. A method and path added twice is a
// programming error (Fiber would run the first handler and silently never
// the second, and the OpenAPI document would list it twice): it panics, so
// every test that builds a Server catches it.
func (s *Server) add(r route) {
	for _, have := range s.routes {
		if have.method == r.method && have.path == r.path {
			panic(fmt.Sprintf("api: route %s %s added twice", r.method, r.path))
		}
	}
	s.routes = append(s.routes, r)
}

// register mounts a route with its guard and read audit. Every GET route
// answers HEAD too, with the same status and headers and no body (fasthttp
// drops the body of a HEAD response); a HEAD of personal data is audited
// like the GET it mirrors.
func (s *Server) register(r route) {
	handlers := []fiber.Handler{}
	if r.perm != "" {
		handlers = append(handlers, s.guard(r))
	} else {
		handlers = append(handlers, func(c *fiber.Ctx) error {
			if err := checkParams(c, r); err != nil {
				return err
			}
			return c.Next()
		})
	}
	if r.read != "" {
		handlers = append(handlers, s.auditRead(r.read, r.target))
	}
	s.app.Add(r.method, r.path, append(slices.Clone(handlers), r.h)...)
	if r.method == fiber.MethodGet {
		s.app.Add(fiber.MethodHead, r.path, append(handlers, headOf(r.h))...)
	}
}

// headOf answers HEAD with what h answers GET, minus a streamed body.
// fasthttp skips a HEAD response's body but still ends a chunked stream
// with its trailer's CRLF, which stays on a kept-alive connection and
// makes the client read the next response as malformed. Dropping the
// stream also closes it, so its writer (a whole export) stops.
func headOf(h fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		err := h(c)
		if c.Context().Response.IsBodyStream() {
			c.Context().Response.ResetBody()
		}
		return err
	}
}

// buildRoutes is the route table: every route of the API, in the order the
// OpenAPI document lists them. The routes of one subject (search, audit,
// attachments, retention, backups) are added by the file that holds their
// handlers.
func (s *Server) buildRoutes() {
	// Operations, unauthenticated: they reveal no personal data.
	s.add(route{method: "GET", path: "/healthz", summary: "Process is up", h: s.healthz, ok: 200, reply: health{}})
	s.add(route{method: "GET", path: "/readyz", summary: "Store, index and blob store reachable", h: s.readyz, ok: 200, reply: readiness{},
		alt: map[int]any{503: readiness{}}})
	s.add(route{method: "GET", path: "/metrics", summary: "Prometheus metrics", h: s.metricsHandler(), ok: 200, media: "text/plain"})
	s.add(route{method: "GET", path: "/openapi.json", summary: "This API's OpenAPI document", h: s.openapi, ok: 200, reply: openAPIDocument{}})

	const v1 = "/api/v1"
	s.add(route{method: "POST", path: v1 + "/tokens", perm: auth.Admin, summary: "Create a token", h: s.createToken, ok: 201, request: tokenInput{}, reply: createdToken{}})
	s.add(route{method: "GET", path: v1 + "/tokens", perm: auth.Admin, read: "token.list", target: "token", summary: "List tokens", h: s.listTokens, ok: 200, reply: listBody[auth.Token]{}})
	s.add(route{method: "DELETE", path: v1 + "/tokens/:id", perm: auth.Admin, summary: "Revoke a token", h: s.revokeToken, ok: 204})

	s.add(route{method: "POST", path: v1 + "/customers", perm: auth.CaseWrite, summary: "Create a customer", h: s.createCustomer, ok: 201, request: cases.NewCustomer{}, reply: cases.Customer{}})
	s.add(route{method: "GET", path: v1 + "/customers/:id", perm: auth.CaseRead, read: "customer.read", target: "customer", summary: "Read a customer", h: s.getCustomer, ok: 200, reply: cases.Customer{}})
	s.add(route{method: "PATCH", path: v1 + "/customers/:id", perm: auth.CaseWrite, summary: "Update a customer", h: s.patchCustomer, ok: 200, request: cases.CustomerPatch{}, reply: customerWithWithdrawal{}})
	s.add(route{method: "GET", path: v1 + "/customers/:id/cases", perm: auth.CaseRead, read: "customer.cases", target: "customer", summary: "List a customer's cases", h: s.customerCases, ok: 200, paged: true, reply: listBody[cases.Case]{}})

	s.add(route{method: "POST", path: v1 + "/cases", perm: auth.CaseWrite, summary: "Create a case", h: s.createCase, ok: 201, request: cases.NewCase{}, reply: cases.Case{}})
	s.add(route{method: "GET", path: v1 + "/cases", perm: auth.CaseRead, read: "case.list", target: "case", summary: "List cases, newest first", h: s.listCases, ok: 200, paged: true, reply: listBody[cases.Case]{},
		query: []param{pEnum("status", "Only cases in this status.", cases.Statuses), pString("customer_id", "Only this customer's cases."),
			pString("assignee", "Only cases assigned to this name."), pString("tag", "Only cases with this tag.")}})
	s.add(route{method: "GET", path: v1 + "/cases/by-number/:number", perm: auth.CaseRead, read: "case.read", target: "case", summary: "Read a case by its number, with its timeline", h: s.getCaseByNumber, ok: 200, reply: caseWithTimeline{}})
	s.add(route{method: "GET", path: v1 + "/cases/:id", perm: auth.CaseRead, read: "case.read", target: "case", summary: "Read a case with its timeline", h: s.getCase, ok: 200, reply: caseWithTimeline{}})
	s.add(route{method: "PATCH", path: v1 + "/cases/:id", perm: auth.CaseWrite, summary: "Update a case (closing and reassigning need supervisor)", h: s.patchCase, ok: 200, request: cases.CasePatch{}, reply: cases.Case{}})

	s.add(route{method: "POST", path: v1 + "/cases/:id/contacts", perm: auth.CaseWrite, summary: "Log a contact", h: s.createContact, ok: 201, request: cases.NewContact{}, reply: cases.ContactResult{}})
	s.add(route{method: "GET", path: v1 + "/contacts/:id", perm: auth.CaseRead, read: "contact.read", target: "contact", summary: "Read a contact", h: s.getContact, ok: 200, reply: cases.Contact{}})
	for _, m := range []string{"PATCH", "PUT", "DELETE"} {
		s.add(route{method: m, path: v1 + "/contacts/:id", perm: auth.Authenticated, summary: "Contacts are immutable (405 for any token, 401 without one)", h: s.immutable, ok: 405})
	}
	s.addSearchRoutes()
	s.addSavedSearchRoutes()
	s.addAuditRoutes()
	s.addAttachmentRoutes()
	s.addRetentionRoutes()
	s.addExportRoutes()
	s.addPrivacyRoutes()
	s.addBackupRoutes()
}

func (s *Server) immutable(c *fiber.Ctx) error {
	c.Set(fiber.HeaderAllow, "GET, HEAD")
	return errStatus(fiber.StatusMethodNotAllowed, "contacts are immutable once written")
}

// page reads ?limit= (1..500, default 50) and ?cursor= of a list route.
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

// listBody is a page of a list; next_cursor is null on the last page.
type listBody[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

// list renders a page of items.
func list[T any](c *fiber.Ctx, items []T, next string) error {
	out := listBody[T]{Items: items}
	if next != "" {
		out.NextCursor = &next
	}
	if out.Items == nil {
		out.Items = []T{}
	}
	return c.JSON(out)
}
