package meili

import (
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/casevault/casevault/search"
)

// attr is a filterable attribute of the index. The type is unexported and
// every value is a constant below, so no caller can smuggle text into the
// attribute position of a filter expression.
type attr string

// The string attributes are the hex forms (encodeValue): Meilisearch
// case-folds and normalizes filter values, the embedded engine compares
// them exactly, and hex has nothing to fold.
const (
	attrCaseID     attr = "x_case_id"
	attrStatus     attr = "x_status"
	attrChannel    attr = "x_channel"
	attrPriority   attr = "x_priority"
	attrCustomerID attr = "x_customer_id"
	attrAssignee   attr = "x_assignee"
	attrTags       attr = "x_tags"
	attrPurposes   attr = "x_purposes"
	attrOccurredAt attr = "occurred_at"
	attrRev        attr = "rev"
	attrNumber     attr = "number"
	attrUpdatedAt  attr = "updated_at"
	attrContactID  attr = "x_contact_id"
	attrDocKind    attr = "doc_kind" // docWhole, docAppended or docCaseOnly (a number)
)

// encodeValue is a string attribute's filter form: lower-case hex of its
// bytes, so that Meilisearch's filter normalization cannot make two values
// equal that the store tells apart.
func encodeValue(s string) string { return hex.EncodeToString([]byte(s)) }

// decodeValue reverses encodeValue for facet values; anything that is not
// hex (never written by this adapter) comes back as it is.
func decodeValue(s string) string {
	b, err := hex.DecodeString(s)
	if err != nil {
		return s
	}
	return string(b)
}

// filterExpr is one Meilisearch filter expression. It can only be produced by
// the constructors in this file, which quote and escape every string value,
// so the expression always has exactly the shape the constructor intends
// (one attribute, one operator, literal values).
type filterExpr struct{ s string }

func (e filterExpr) String() string { return e.s }

// quote renders s as a Meilisearch filter string literal: backslash and
// double quote are escaped and the whole value is wrapped in double quotes.
// Inside such a literal Meilisearch treats every other character (spaces,
// parentheses, AND/OR/NOT, brackets, commas) as plain text.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// eq is `attr = "value"`.
func eq(a attr, value string) filterExpr {
	return filterExpr{string(a) + " = " + quote(value)}
}

// in is `attr IN ["v1", "v2"]`. Callers never pass an empty list (see
// buildFilter); an empty list would match nothing.
func in(a attr, values []string) filterExpr {
	var b strings.Builder
	b.WriteString(string(a))
	b.WriteString(" IN [")
	for i, v := range values {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(v))
	}
	b.WriteString("]")
	return filterExpr{b.String()}
}

// anyOf is eq for one value and in for several.
func anyOf(a attr, values []string) filterExpr {
	if len(values) == 1 {
		return eq(a, values[0])
	}
	return in(a, values)
}

// gte and lt compare a numeric attribute; numbers are formatted by strconv,
// never taken from user text.
func gte(a attr, n int64) filterExpr {
	return filterExpr{string(a) + " >= " + strconv.FormatInt(n, 10)}
}

func lt(a attr, n int64) filterExpr {
	return filterExpr{string(a) + " < " + strconv.FormatInt(n, 10)}
}

func gt(a attr, n int64) filterExpr {
	return filterExpr{string(a) + " > " + strconv.FormatInt(n, 10)}
}

func eqNum(a attr, n int64) filterExpr {
	return filterExpr{string(a) + " = " + strconv.FormatInt(n, 10)}
}

func neNum(a attr, n int64) filterExpr {
	return filterExpr{string(a) + " != " + strconv.FormatInt(n, 10)}
}

// notIn is `id NOT IN ["v1", ...]` over document ids (never user text).
func notIn(a string, values []string) filterExpr {
	e := in(attr(a), values)
	return filterExpr{strings.Replace(e.s, " IN [", " NOT IN [", 1)}
}

// filterArray renders expressions as Meilisearch's array form: every element
// is ANDed with the others. Keeping each constraint a separate element (rather
// than joining strings with AND) means a constraint the caller mandates can
// never be widened by another element, whatever that element contains.
func filterArray(exprs ...filterExpr) []any {
	out := make([]any, 0, len(exprs))
	for _, e := range exprs {
		out = append(out, e.s)
	}
	return out
}

// timeValue is the numeric form of a time in the index: Unix microseconds,
// the store's own precision, so From/To bounds are exact. (Microsecond
// timestamps stay below 2^53 and are therefore exact in Meilisearch's f64.)
func timeValue(t time.Time) int64 { return t.UnixMicro() }

// buildFilter maps a search.Filter to filter expressions, one element per
// constrained field (values within a field are alternatives). Tags and
// assignees are compared folded (search.FoldKeyword), as they are indexed.
func buildFilter(f search.Filter) []filterExpr {
	var out []filterExpr
	add := func(a attr, values []string) {
		if len(values) > 0 {
			out = append(out, anyOf(a, encodeAll(values)))
		}
	}
	add(attrCaseID, f.CaseIDs)
	add(attrStatus, f.Statuses)
	add(attrChannel, f.Channels)
	add(attrPriority, f.Priorities)
	add(attrCustomerID, f.CustomerIDs)
	add(attrAssignee, search.FoldKeywords(f.Assignees))
	add(attrTags, search.FoldKeywords(f.Tags))
	add(attrPurposes, f.Purposes)
	if len(f.Numbers) > 0 {
		out = append(out, anyNumber(attrNumber, f.Numbers))
	}
	if !f.From.IsZero() {
		out = append(out, gte(attrOccurredAt, timeValue(f.From)))
	}
	if !f.To.IsZero() {
		out = append(out, lt(attrOccurredAt, timeValue(f.To)))
	}
	if !f.UpdatedFrom.IsZero() {
		out = append(out, gte(attrUpdatedAt, timeValue(f.UpdatedFrom)))
	}
	if !f.UpdatedTo.IsZero() {
		out = append(out, lt(attrUpdatedAt, timeValue(f.UpdatedTo)))
	}
	return out
}

// buildNot maps negated field terms: one element per field, holding when
// the document has none of its values (a document without the attribute,
// such as a case-only one for channel, has none).
func buildNot(f search.Filter) []filterExpr {
	var out []filterExpr
	add := func(a attr, values []string) {
		if len(values) > 0 {
			out = append(out, notIn(string(a), encodeAll(values)))
		}
	}
	add(attrCaseID, f.CaseIDs)
	add(attrStatus, f.Statuses)
	add(attrChannel, f.Channels)
	add(attrPriority, f.Priorities)
	add(attrCustomerID, f.CustomerIDs)
	add(attrAssignee, search.FoldKeywords(f.Assignees))
	add(attrTags, search.FoldKeywords(f.Tags))
	add(attrPurposes, f.Purposes)
	if len(f.Numbers) > 0 {
		out = append(out, not(anyNumber(attrNumber, f.Numbers)))
	}
	return out
}

func encodeAll(values []string) []string {
	enc := make([]string, len(values))
	for i, v := range values {
		enc[i] = encodeValue(v)
	}
	return enc
}

// anyNumber is `(a = n1 OR a = n2 ...)`.
func anyNumber(a attr, ns []int64) filterExpr {
	parts := make([]filterExpr, len(ns))
	for i, n := range ns {
		parts[i] = eqNum(a, n)
	}
	return or(parts...)
}

// and, or and not combine expressions with parentheses, so that each
// keeps its own meaning whatever surrounds it.
func and(es ...filterExpr) filterExpr { return join(" AND ", es) }

func or(es ...filterExpr) filterExpr { return join(" OR ", es) }

func not(e filterExpr) filterExpr { return filterExpr{"NOT (" + e.s + ")"} }

func join(sep string, es []filterExpr) filterExpr {
	if len(es) == 1 {
		return es[0]
	}
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.s
	}
	return filterExpr{"(" + strings.Join(parts, sep) + ")"}
}
