package api

import (
	"slices"
	"strings"

	"github.com/casevault/casevault/cases"
)

// param is one query-string parameter a route declares. The declaration is
// both the contract (the OpenAPI document lists it with its schema) and the
// gate (checkParams answers any undeclared parameter with 422).
type param struct {
	name   string
	doc    string
	schema map[string]any
	// many: the parameter may be repeated (?tag=a&tag=b).
	many bool
}

func pString(name, doc string) param {
	return param{name: name, doc: doc, schema: map[string]any{"type": "string"}}
}

// pEnum is one of values; ci says upper case is accepted too.
func pEnum[T ~string](name, doc string, values []T) param {
	vs := make([]any, len(values))
	for i, v := range values {
		vs[i] = string(v)
	}
	return param{name: name, doc: doc, schema: map[string]any{"type": "string", "enum": vs}}
}

// pList is a repeatable parameter whose every value is a comma-separated
// list; for a closed set, values names its members (matched without regard
// to case).
func pList[T ~string](name, doc string, values []T) param {
	if len(values) > 0 {
		names := make([]string, len(values))
		for i, v := range values {
			names[i] = string(v)
		}
		doc += " One or more of " + strings.Join(names, ", ") + ", comma-separated (case-insensitive)."
	}
	return param{name: name, doc: doc, many: true, schema: map[string]any{"type": "string"}}
}

func pTime(name, doc string) param {
	return param{name: name, doc: doc + " RFC 3339 time (2026-01-31T00:00:00Z) or date (2026-01-31).", schema: map[string]any{"type": "string"}}
}

func pBool(name, doc string) param {
	return param{name: name, doc: doc, schema: map[string]any{"type": "boolean"}}
}

func pInt(name, doc string, lo, hi int) param {
	s := map[string]any{"type": "integer", "minimum": lo}
	if hi > 0 {
		s["maximum"] = hi
	}
	return param{name: name, doc: doc, schema: s}
}

// pagingParams are the parameters of every paged list (page reads them).
func pagingParams() []param {
	return []param{pInt("limit", "Items per page.", 1, 500), pString("cursor", "The next_cursor of the previous page.")}
}

// params is every query parameter the route takes, in documentation order.
func (r route) params() []param {
	if !r.paged {
		return r.query
	}
	out := slices.Clone(r.query)
	for _, p := range pagingParams() {
		if !slices.ContainsFunc(out, func(q param) bool { return q.name == p.name }) {
			out = append(out, p)
		}
	}
	return out
}

func (r route) takes(name string) bool {
	return slices.ContainsFunc(r.params(), func(p param) bool { return p.name == name })
}

// unknownParam is the 422 message for a parameter the route does not take.
func (r route) unknownParam() string {
	ps := r.params()
	if len(ps) == 0 {
		return "is not a parameter of this route, which takes none"
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.name
	}
	return "is not a parameter of this route; valid: " + strings.Join(names, ", ")
}

// searchParams are GET /search's parameters (search.FilterFromValues reads
// the filters; the search handler q, page and sort).
func searchParams() []param {
	return []param{
		pString("q", "The query: words, \"phrases\", field terms (status:open, tag:vip, from:2026-01-01); see the README's search syntax."),
		pList("status", "Only cases in these statuses.", cases.Statuses),
		pList("channel", "Only these channels.", cases.Channels),
		pList("priority", "Only these priorities.", cases.Priorities),
		pList("purpose", "Only contacts collected for these purposes.", cases.Purposes),
		pList[string]("customer_id", "Only these customers' cases.", nil),
		pList[string]("tag", "Only cases with these tags.", nil),
		pList[string]("assignee", "Only cases assigned to these names.", nil),
		pTime("from", "Only contacts at or after this time."),
		pTime("to", "Only contacts before this time."),
		pInt("page", "Page number (1-based), instead of cursor.", 1, 0),
		pEnum("sort", "Order of the hits (relevance when left out).", []string{"newest", "oldest", "updated"}),
	}
}
