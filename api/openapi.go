package api

import (
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

var fiberParam = regexp.MustCompile(`:([a-zA-Z_]+)`)

// openAPIPath turns Fiber's :id into OpenAPI's {id}.
func openAPIPath(p string) string { return fiberParam.ReplaceAllString(p, "{$1}") }

// oneOf is a reply that is one of several types (a backup, or its run
// while it is not complete).
type oneOf []any

// pathParamSchema describes a path parameter; ids are opaque strings.
func pathParamSchema(name string) map[string]any {
	if name == "number" {
		return map[string]any{"type": "integer", "format": "int64", "minimum": 1}
	}
	return map[string]any{"type": "string"}
}

// enumOverrides describe the closed sets of the domain by their own lists,
// so a new status or role appears in the document with no edit here.
func enumOverrides() map[reflect.Type]schemaOverride {
	out := map[reflect.Type]schemaOverride{}
	add := func(t reflect.Type, values []string) {
		vs := make([]any, len(values))
		for i, v := range values {
			vs[i] = v
		}
		out[t] = func() map[string]any { return map[string]any{"type": "string", "enum": vs} }
	}
	add(reflect.TypeFor[cases.Status](), strs(cases.Statuses))
	add(reflect.TypeFor[cases.Channel](), strs(cases.Channels))
	add(reflect.TypeFor[cases.Priority](), strs(cases.Priorities))
	add(reflect.TypeFor[cases.Direction](), strs(cases.Directions))
	add(reflect.TypeFor[cases.Purpose](), strs(cases.Purposes))
	add(reflect.TypeFor[cases.Category](), strs(cases.Categories))
	add(reflect.TypeFor[auth.Role](), strs(auth.Roles))
	out[reflect.TypeFor[retention.Duration]()] = func() map[string]any {
		return map[string]any{"type": "string", "description": "A duration: a number and a unit (30d, 6m, 7y, 12h).", "examples": []any{"30d", "7y"}}
	}
	return out
}

func strs[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// Undescribed lists the routes whose description is incomplete: a success
// without a body type, a write without a request type, a type given by name
// instead of by value. A test fails on any, so a route cannot be added to
// the table without describing what it takes and answers.
func (s *Server) Undescribed() []string {
	var out []string
	for _, r := range s.routes {
		name := r.method + " " + r.path
		if r.summary == "" {
			out = append(out, name+": no summary")
		}
		if r.ok == 0 {
			out = append(out, name+": no success status (ok)")
		}
		if _, isName := r.request.(string); isName {
			out = append(out, name+": request names a type; give a value of it (request: pkg.Type{})")
		}
		if _, isName := r.reply.(string); isName {
			out = append(out, name+": reply names a type; give a value of it (reply: pkg.Type{})")
		}
		if r.ok < 300 && r.ok != fiber.StatusNoContent && r.reply == nil && r.media == "" {
			out = append(out, name+": no reply type (or media) for its "+strconv.Itoa(r.ok))
		}
		write := r.method == fiber.MethodPost || r.method == fiber.MethodPut || r.method == fiber.MethodPatch
		if write && r.ok < 300 && r.request == nil && !r.upload && !r.bodyless {
			out = append(out, name+": no request type (or upload, or bodyless)")
		}
	}
	return out
}

// Document builds the OpenAPI 3.1 description from the registered route
// table, so it can never list a route that does not exist or miss one, and
// the schemas from the Go types the handlers decode and encode.
func (s *Server) Document() map[string]any {
	g := newSchemas(enumOverrides())
	problem := g.of(reflect.TypeFor[Problem](), modeResponse)
	// Answers claim the plain component names first; a type that is also
	// a request body gets an "Input" twin (strict, nothing required).
	for _, r := range s.routes {
		if r.reply != nil {
			replySchema(g, r.reply)
		}
		for _, body := range r.alt {
			if body != nil {
				replySchema(g, body)
			}
		}
	}
	paths := map[string]any{}
	for _, r := range s.routes {
		p := openAPIPath(r.path)
		item, _ := paths[p].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[p] = item
		}

		op := s.operation(g, r, problem)
		item[strings.ToLower(r.method)] = op
		if r.method == fiber.MethodGet {
			item["head"] = headOperation(op)
		}
	}

	return map[string]any{
		"openapi":           "3.1.0",
		"jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
		"info": map[string]any{"title": "casevault", "version": s.cfg.Version,
			"description": "Customer-service interaction and case archive. Errors are RFC 9457 problem documents; " +
				"a 422 names the invalid field or parameter in errors[]. Every GET also answers HEAD.",
			"license": map[string]any{"name": "Proprietary", "identifier": "LicenseRef-casevault"}},
		"servers": []any{map[string]any{"url": "/"}},
		"paths":   paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer",
				"description": "An API token (casevault token create, or POST /api/v1/tokens)."}},
			"schemas": g.defs,
		},
	}
}

// operation describes one route.
func (s *Server) operation(g *schemas, r route, problem map[string]any) map[string]any {
	op := map[string]any{
		"summary":     r.summary,
		"operationId": operationID(r.method, r.path),
		"tags":        []any{tagOf(r.path)},
	}

	var params []any
	for _, m := range fiberParam.FindAllStringSubmatch(r.path, -1) {
		params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": pathParamSchema(m[1])})
	}
	for _, p := range r.params() {
		q := map[string]any{"name": p.name, "in": "query", "description": p.doc, "schema": p.schema}
		if p.many {
			// Repeatable and comma-separated (status=open,pending): one
			// string per occurrence, commas allowed as they are.
			q["description"] = p.doc + " Repeatable."
			q["allowReserved"] = true
		}
		params = append(params, q)
	}
	if params != nil {
		op["parameters"] = params
	}

	if r.perm != "" {
		op["security"] = []any{map[string]any{"bearer": []any{}}}
		op["x-permission"] = string(r.perm)
		op["description"] = "Roles: " + strings.Join(rolesAllowed(r.perm), ", ") + "."
	}

	switch {
	case r.upload:
		op["requestBody"] = map[string]any{"required": true, "description": "The file: the raw bytes (optionally with X-Content-SHA256), or multipart/form-data with one file part.",
			"content": map[string]any{
				"multipart/form-data": map[string]any{"schema": map[string]any{"type": "object", "properties": map[string]any{
					"file": map[string]any{"type": "string", "contentMediaType": "application/octet-stream"}}}},
				"*/*": map[string]any{"schema": map[string]any{"type": "string", "contentMediaType": "application/octet-stream"}},
			}}
	case r.request != nil:
		media := map[string]any{"schema": g.of(reflect.TypeOf(r.request), modeRequest)}
		if r.example != nil {
			media["example"] = r.example
		}
		op["requestBody"] = map[string]any{"required": !r.bodyOptional, "content": map[string]any{"application/json": media}}
	}

	responses := map[string]any{}
	if r.ok < 400 {
		responses[strconv.Itoa(r.ok)] = s.success(g, r, r.ok, r.reply)
	}
	for code, body := range r.alt {
		rr := r
		rr.media = ""
		if body == nil {
			rr.media = r.media
		}
		responses[strconv.Itoa(code)] = s.success(g, rr, code, body)
	}
	for _, code := range errorStatuses(r) {
		if _, ok := responses[strconv.Itoa(code)]; ok {
			continue
		}
		responses[strconv.Itoa(code)] = map[string]any{"description": http.StatusText(code),
			"content": map[string]any{"application/problem+json": map[string]any{"schema": problem}}}
	}
	responses["default"] = map[string]any{"description": "Error (RFC 9457 problem document)",
		"content": map[string]any{"application/problem+json": map[string]any{"schema": problem}}}
	op["responses"] = responses
	return op
}

// success describes a successful answer with body (nil: none, or r.media).
func (s *Server) success(g *schemas, r route, code int, body any) map[string]any {
	out := map[string]any{"description": http.StatusText(code)}
	switch {
	case body != nil:
		out["content"] = map[string]any{"application/json": map[string]any{"schema": replySchema(g, body)}}
	case r.media != "":
		out["content"] = map[string]any{r.media: map[string]any{"schema": map[string]any{"type": "string", "contentMediaType": r.media}}}
	}
	if loc := r.method == fiber.MethodPost && (code == fiber.StatusCreated || code == fiber.StatusAccepted); loc {
		out["headers"] = map[string]any{"Location": map[string]any{"description": "The created resource (or the run to poll).", "schema": map[string]any{"type": "string"}}}
	}
	return out
}

func replySchema(g *schemas, body any) map[string]any {
	if alts, ok := body.(oneOf); ok {
		var any_ []any
		for _, a := range alts {
			any_ = append(any_, g.of(reflect.TypeOf(a), modeResponse))
		}
		return map[string]any{"anyOf": any_}
	}
	return g.of(reflect.TypeOf(body), modeResponse)
}

// errorStatuses are the problem answers a route can give, besides default.
func errorStatuses(r route) []int {
	var out []int
	if r.perm != "" {
		out = append(out, fiber.StatusUnauthorized, fiber.StatusForbidden)
	}
	if strings.Contains(r.path, ":") {
		out = append(out, fiber.StatusNotFound)
	}
	if r.request != nil {
		out = append(out, fiber.StatusBadRequest, fiber.StatusRequestEntityTooLarge, fiber.StatusUnsupportedMediaType)
	}
	if r.perm != "" || r.request != nil || len(r.params()) > 0 {
		out = append(out, fiber.StatusUnprocessableEntity)
	}
	if r.ok >= 400 {
		out = append(out, r.ok)
	}
	if r.perm != "" {
		out = append(out, fiber.StatusServiceUnavailable)
	}
	return out
}

// headOperation is the HEAD twin of a GET: same parameters and statuses,
// no bodies.
func headOperation(get map[string]any) map[string]any {
	out := clone(get)
	out["operationId"] = "head" + strings.TrimPrefix(get["operationId"].(string), "get")
	out["summary"] = "Headers of: " + get["summary"].(string)
	delete(out, "requestBody")
	rs := map[string]any{}
	for code, v := range get["responses"].(map[string]any) {
		resp := clone(v.(map[string]any))
		delete(resp, "content")
		rs[code] = resp
	}
	out["responses"] = rs
	return out
}

// operationID names an operation for generated clients: the method and the
// path without /api/v1, parameters as By<Name> (GET /cases/:id →
// getCasesById).
func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, seg := range strings.Split(strings.TrimPrefix(path, "/api/v1"), "/") {
		if seg == "" {
			continue
		}
		if name, ok := strings.CutPrefix(seg, ":"); ok {
			b.WriteString("By")
			seg = name
		}
		for _, w := range strings.FieldsFunc(seg, func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
			b.WriteString(exported(w))
		}
	}
	return b.String()
}

// tagOf groups operations by their first path segment under /api/v1.
func tagOf(path string) string {
	rest, ok := strings.CutPrefix(path, "/api/v1/")
	if !ok {
		return "operations"
	}
	seg, _, _ := strings.Cut(rest, "/")
	return seg
}

func rolesAllowed(p auth.Permission) []string {
	var out []string
	for _, r := range auth.Roles {
		if r.Allows(p) {
			out = append(out, string(r))
		}
	}
	slices.Sort(out)
	return out
}

func (s *Server) openapi(c *fiber.Ctx) error { return c.JSON(s.Document()) }
