package api

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
)

var fiberParam = regexp.MustCompile(`:([a-zA-Z_]+)`)

// openAPIPath turns Fiber's :id into OpenAPI's {id}.
func openAPIPath(p string) string { return fiberParam.ReplaceAllString(p, "{$1}") }

// Document builds the OpenAPI 3.1 description from the registered route
// table, so it can never list a route that does not exist or miss one.
func (s *Server) Document() map[string]any {
	paths := map[string]any{}
	for _, r := range s.routes {
		p := openAPIPath(r.path)
		item, _ := paths[p].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[p] = item
		}
		op := map[string]any{
			"summary":     r.summary,
			"operationId": strings.ToLower(r.method) + strings.NewReplacer("/", "_", "{", "", "}", "", ":", "").Replace(r.path),
			"responses": map[string]any{
				strconv.Itoa(r.ok): map[string]any{"description": fiberStatus(r.ok)},
				"default": map[string]any{"description": "Error", "content": map[string]any{
					"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}},
			},
		}
		var params []any
		for _, m := range fiberParam.FindAllStringSubmatch(r.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if r.perm != "" {
			op["security"] = []any{map[string]any{"bearer": []any{}}}
			op["x-permission"] = string(r.perm)
		}
		if r.request != "" {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}, "description": r.request}
		}
		item[strings.ToLower(r.method)] = op
	}

	return map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": "casevault", "version": s.cfg.Version, "description": "Customer-service interaction and case archive."},
		"paths":   paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
			"schemas": map[string]any{"Problem": map[string]any{"type": "object", "properties": map[string]any{
				"type": map[string]any{"type": "string"}, "title": map[string]any{"type": "string"},
				"status": map[string]any{"type": "integer"}, "detail": map[string]any{"type": "string"},
				"errors": map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
					"field": map[string]any{"type": "string"}, "message": map[string]any{"type": "string"}}}},
			}}},
		},
	}
}

func fiberStatus(code int) string { return utilsStatusText(code) }

func (s *Server) openapi(c *fiber.Ctx) error { return c.JSON(s.Document()) }
