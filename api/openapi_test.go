package api_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/casevault/casevault/auth"
)

// TestOpenAPIDocumentIsValid checks the served document against the
// OpenAPI 3.1 schema and that every route describes what it takes and
// answers: a route added without its types fails here.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	h := newHarness(t, "sqlite")
	if missing := h.srv.Undescribed(); len(missing) > 0 {
		t.Errorf("routes without a full description:\n%s", strings.Join(missing, "\n"))
	}

	r := h.do("GET", "/openapi.json", "", nil)
	if r.status != 200 {
		t.Fatalf("openapi.json = %d", r.status)
	}
	doc, err := libopenapi.NewDocument(r.body)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		t.Fatalf("openapi.json is not a valid OpenAPI 3.1 document:%s", describe(verrs))
	}

	// What a client generator needs: request and response schemas, the
	// parameters with their enums, the problem responses, the security
	// scheme.
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatal(err)
	}
	get := func(path ...string) any {
		var cur any = m
		for _, p := range path {
			mm, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("openapi.json has no %s", strings.Join(path, "."))
			}
			cur = mm[p]
		}
		if cur == nil {
			t.Fatalf("openapi.json has no %s", strings.Join(path, "."))
		}
		return cur
	}
	if got := get("paths", "/api/v1/cases", "post", "requestBody", "content", "application/json", "schema", "$ref"); got != "#/components/schemas/NewCase" {
		t.Errorf("POST /cases request schema = %v", got)
	}
	if got := get("paths", "/api/v1/cases/{id}", "get", "responses", "200", "content", "application/json", "schema", "$ref"); got != "#/components/schemas/CaseWithTimeline" {
		t.Errorf("GET /cases/{id} response schema = %v", got)
	}
	status := get("components", "schemas", "Case", "properties", "status", "enum").([]any)
	if len(status) != 4 || status[0] != "open" {
		t.Errorf("Case.status enum = %v", status)
	}
	var names []string
	for _, p := range get("paths", "/api/v1/search", "get", "parameters").([]any) {
		names = append(names, p.(map[string]any)["name"].(string))
	}
	for _, want := range []string{"q", "status", "tag", "from", "sort", "limit", "cursor"} {
		if !strings.Contains(","+strings.Join(names, ",")+",", ","+want+",") {
			t.Errorf("GET /search does not list parameter %s (has %v)", want, names)
		}
	}
	if got := get("paths", "/api/v1/cases/{id}", "get", "responses", "404", "content", "application/problem+json", "schema", "$ref"); got != "#/components/schemas/Problem" {
		t.Errorf("404 schema = %v", got)
	}
	if got := get("components", "securitySchemes", "bearer", "scheme"); got != "bearer" {
		t.Errorf("security scheme = %v", got)
	}
	if get("paths", "/api/v1/searches", "post", "requestBody", "content", "application/json", "example") == nil {
		t.Error("no example")
	}
}

// TestOpenAPIReflectsTheWire is the check of the reflection rules the
// document relies on: a response that breaks its schema is reported by the
// validating transport of every other test; here, on purpose, documents
// that must not validate.
func TestOpenAPIRejectsWhatTheTypesDoNot(t *testing.T) {
	h := newHarness(t, "sqlite")
	v, err := sharedValidator.get(h.srv)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, body string
	}{
		{"unknown member", `{"id":"c1","number":1,"customer_id":"x","subject":"s","status":"open","priority":"normal","channel":"phone","tags":[],"assignee":"","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","closed_at":null,"colour":"red"}`},
		{"status outside its enum", `{"id":"c1","number":1,"customer_id":"x","subject":"s","status":"lost","priority":"normal","channel":"phone","tags":[],"assignee":"","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","closed_at":null}`},
		{"required member missing", `{"id":"c1"}`},
		{"number as a string", `{"id":"c1","number":"1","customer_id":"x","subject":"s","status":"open","priority":"normal","channel":"phone","tags":[],"assignee":"","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","closed_at":null}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("PATCH", h.base+"/api/v1/cases/c1", strings.NewReader(`{"subject":"x"}`))
			req.Header.Set("Content-Type", "application/json")
			res := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Request: req,
				Body: http.NoBody}
			res.Body = nopBody(tc.body)
			if ok, _ := v.ValidateHttpResponse(req, res); ok {
				t.Errorf("a Case %s validated", tc.name)
			}
		})
	}
}

func nopBody(s string) *bodyString { return &bodyString{Reader: strings.NewReader(s)} }

type bodyString struct{ *strings.Reader }

func (bodyString) Close() error { return nil }

// TestUnknownQueryParameters: a parameter a route does not declare is a
// 422 naming it and listing those it takes, on every route (issue 16 §1).
func TestUnknownQueryParameters(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.tokens[auth.RoleAdmin]
		tests := []struct {
			name, path string
			status     int
			field      string
			lists      string
		}{
			{"number on the case list", "/api/v1/cases?number=2", 422, "number", "status, customer_id, assignee, tag, limit, cursor"},
			{"priority on the case list", "/api/v1/cases?priority=high", 422, "priority", "status"},
			{"declared filter", "/api/v1/cases?status=open&limit=5", 200, "", ""},
			{"parameter on a route that takes none", "/api/v1/tokens?all=1", 422, "all", "takes none"},
			{"misspelt search filter", "/api/v1/search?q=x&stauts=open", 422, "stauts", "status"},
			{"declared search filters", "/api/v1/search?q=x&status=open,pending&tag=vip&sort=newest", 200, "", ""},
			{"unauthenticated route", "/healthz?verbose=1", 422, "verbose", "takes none"},
			{"audit list", "/api/v1/audit?actor=x&who=y", 422, "who", "actor, action, target"},
		}
		for _, tc := range tests {
			r := h.do("GET", tc.path, tok, nil)
			if r.status != tc.status {
				t.Errorf("%s: GET %s = %d %s", tc.name, tc.path, r.status, r.body)
				continue
			}
			if tc.status != 422 {
				continue
			}
			p := r.json(t)
			errs, _ := p["errors"].([]any)
			if len(errs) != 1 || errs[0].(map[string]any)["field"] != tc.field || !strings.Contains(errs[0].(map[string]any)["message"].(string), tc.lists) {
				t.Errorf("%s: problem = %s (want field %s listing %q)", tc.name, r.body, tc.field, tc.lists)
			}
		}

		// Authentication still comes first: no token, no parameter check.
		if r := h.do("GET", "/api/v1/cases?number=2", "", nil); r.status != 401 {
			t.Errorf("unknown parameter without a token = %d", r.status)
		}
	})
}

// TestCaseByNumber: GET /cases/by-number/{n} reads the case as GET
// /cases/{id} does, audited against the case's id (issue 16 §2).
func TestCaseByNumber(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Ada"})
		var made []map[string]any
		for _, subj := range []string{"first", "second"} {
			made = append(made, h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust["id"], "subject": subj, "channel": "email"}))
		}
		agent := h.tokens[auth.RoleAgent]
		for _, c := range made {
			n := strconv.FormatInt(int64(c["number"].(float64)), 10)
			r := h.do("GET", "/api/v1/cases/by-number/"+n, agent, nil)
			if r.status != 200 {
				t.Fatalf("by-number %s = %d %s", n, r.status, r.body)
			}
			got := r.json(t)
			if got["id"] != c["id"] || got["subject"] != c["subject"] || got["timeline"] == nil {
				t.Errorf("by-number %s = %v, want case %v", n, got, c["id"])
			}
			if !h.audit.has("case.read:ok:" + c["id"].(string)) {
				t.Errorf("read of case %s by number not audited as case.read against its id", c["id"])
			}
		}

		bad := []struct {
			n      string
			status int
		}{{"999999", 404}, {"0", 422}, {"-3", 422}, {"abc", 422}, {"1.5", 422}, {"99999999999999999999", 422}}
		for _, b := range bad {
			r := h.do("GET", "/api/v1/cases/by-number/"+b.n, agent, nil)
			if r.status != b.status {
				t.Errorf("by-number %q = %d %s, want %d", b.n, r.status, r.body, b.status)
			}
			if b.status == 422 && !strings.Contains(string(r.body), `"field":"number"`) {
				t.Errorf("by-number %q problem does not name number: %s", b.n, r.body)
			}
		}
		if r := h.do("GET", "/api/v1/cases/by-number/1", h.tokens[auth.RoleBackup], nil); r.status != 403 {
			t.Errorf("backup role reading a case by number = %d", r.status)
		}
	})
}
