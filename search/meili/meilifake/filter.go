package meilifake

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// This file is the fake server's reading of Meilisearch's filter syntax,
// limited to the single-Predicate shapes the adapter's constructors produce
// (attribute, operator, literal). It is deliberately strict: anything else —
// a bare OR, a second Predicate, text after a closing quote — is a parse
// error, so a value that broke out of its quotes makes the test fail.

type Predicate struct {
	Attr  string
	op    string // = != >= > <= < IN, NOT IN, or expr (a whole expression)
	Strs  []string
	num   float64
	isNum bool
	expr  *filterNode
	// folded is Strs as a set of foldKey forms: the adapter's clean-up
	// filters name hundreds of ids, and comparing each with every document
	// made the fake, not casevault, the cost of shared_bench.
	folded map[string]bool
}

// foldKey is the form under which the fake compares string filter values:
// Meilisearch normalizes them (lower case, among others), so "VIP" = "vip".
func foldKey(s string) string { return strings.ToLower(strings.ToUpper(s)) }

// ReadString reads one double-quoted literal at the start of s. A backslash
// makes the next character literal (so \" is a quote and \\ a backslash).
func ReadString(s string) (val, rest string, err error) {
	if !strings.HasPrefix(s, `"`) {
		return "", s, errors.New("expected opening quote")
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 >= len(s) {
				return "", "", errors.New("dangling backslash")
			}
			i++
			b.WriteByte(s[i])
		case '"':
			return b.String(), s[i+1:], nil
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated string")
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func ParsePredicate(s string) (Predicate, error) {
	p, rest, err := readPredicate(s)
	if err != nil {
		return p, err
	}
	if strings.TrimSpace(rest) != "" {
		return p, fmt.Errorf("unexpected %q after Predicate", rest)
	}
	return p, nil
}

// readPredicate reads one Predicate (attribute, operator, literal) at the
// start of s and returns what follows it.
func readPredicate(s string) (Predicate, string, error) {
	var p Predicate
	s = strings.TrimLeft(s, " ")
	i := 0
	for i < len(s) && isIdentByte(s[i]) {
		i++
	}
	if i == 0 {
		return p, s, fmt.Errorf("expected attribute in %q", s)
	}
	p.Attr, s = s[:i], strings.TrimLeft(s[i:], " ")
	for _, op := range []string{"!=", ">=", "<=", "=", ">", "<", "IN ", "NOT IN "} {
		if strings.HasPrefix(s, op) {
			p.op, s = strings.TrimSpace(op), strings.TrimLeft(s[len(op):], " ")
			break
		}
	}
	if p.op == "" {
		return p, s, fmt.Errorf("expected operator in %q", s)
	}
	var err error
	switch {
	case p.op == "IN" || p.op == "NOT IN":
		if !strings.HasPrefix(s, "[") {
			return p, s, errors.New("expected [ after IN")
		}
		s = strings.TrimLeft(s[1:], " ")
		for {
			var v string
			if v, s, err = ReadString(s); err != nil {
				return p, s, err
			}
			p.Strs = append(p.Strs, v)
			s = strings.TrimLeft(s, " ")
			if strings.HasPrefix(s, ",") {
				s = strings.TrimLeft(s[1:], " ")
				continue
			}
			if !strings.HasPrefix(s, "]") {
				return p, s, fmt.Errorf("expected , or ] in %q", s)
			}
			s = s[1:]
			break
		}
	case strings.HasPrefix(s, `"`):
		var v string
		if v, s, err = ReadString(s); err != nil {
			return p, s, err
		}
		p.Strs = []string{v}
	default:
		j := 0
		for j < len(s) && (s[j] == '-' || s[j] == '.' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		if p.num, err = strconv.ParseFloat(s[:j], 64); err != nil {
			return p, s, fmt.Errorf("expected value in %q", s)
		}
		p.isNum, s = true, s[j:]
	}
	if !p.isNum {
		p.folded = make(map[string]bool, len(p.Strs))
		for _, v := range p.Strs {
			p.folded[foldKey(v)] = true
		}
	}
	if s != "" && s[0] != ' ' && s[0] != ')' {
		return p, s, fmt.Errorf("unexpected %q after Predicate", s)
	}
	return p, s, nil
}

// filterNode is a parsed filter expression: the string form Meilisearch
// accepts with AND, OR and parentheses (as the adapter's stale-document
// filters use), strictly: a stray word is an error.
type filterNode struct {
	op   string // "and", "or", "not", "pred"
	kids []filterNode
	pred Predicate
}

func parseExpr(s string) (filterNode, error) {
	n, rest, err := parseOr(s)
	if err != nil {
		return n, err
	}
	if strings.TrimSpace(rest) != "" {
		return n, fmt.Errorf("unexpected %q", rest)
	}
	return n, nil
}

func parseOr(s string) (filterNode, string, error) {
	first, rest, err := parseAnd(s)
	if err != nil {
		return first, rest, err
	}
	out := filterNode{op: "or", kids: []filterNode{first}}
	for {
		t := strings.TrimLeft(rest, " ")
		if !strings.HasPrefix(t, "OR ") {
			break
		}
		var n filterNode
		if n, rest, err = parseAnd(t[3:]); err != nil {
			return n, rest, err
		}
		out.kids = append(out.kids, n)
	}
	if len(out.kids) == 1 {
		return first, rest, nil
	}
	return out, rest, nil
}

func parseAnd(s string) (filterNode, string, error) {
	first, rest, err := parseFactor(s)
	if err != nil {
		return first, rest, err
	}
	out := filterNode{op: "and", kids: []filterNode{first}}
	for {
		t := strings.TrimLeft(rest, " ")
		if !strings.HasPrefix(t, "AND ") {
			break
		}
		var n filterNode
		if n, rest, err = parseFactor(t[4:]); err != nil {
			return n, rest, err
		}
		out.kids = append(out.kids, n)
	}
	if len(out.kids) == 1 {
		return first, rest, nil
	}
	return out, rest, nil
}

func parseFactor(s string) (filterNode, string, error) {
	s = strings.TrimLeft(s, " ")
	if strings.HasPrefix(s, "NOT ") {
		n, rest, err := parseFactor(s[4:])
		if err != nil {
			return n, rest, err
		}
		return filterNode{op: "not", kids: []filterNode{n}}, rest, nil
	}
	if strings.HasPrefix(s, "(") {
		n, rest, err := parseOr(s[1:])
		if err != nil {
			return n, rest, err
		}
		rest = strings.TrimLeft(rest, " ")
		if !strings.HasPrefix(rest, ")") {
			return n, rest, fmt.Errorf("expected ) in %q", rest)
		}
		return n, rest[1:], nil
	}
	p, rest, err := readPredicate(s)
	return filterNode{op: "pred", pred: p}, rest, err
}

func (n filterNode) match(doc map[string]any) bool {
	switch n.op {
	case "and":
		for _, k := range n.kids {
			if !k.match(doc) {
				return false
			}
		}
		return true
	case "or":
		for _, k := range n.kids {
			if k.match(doc) {
				return true
			}
		}
		return false
	case "not":
		return !n.kids[0].match(doc)
	}
	return n.pred.match(doc)
}

func (n filterNode) preds() []Predicate {
	if n.op == "pred" {
		return []Predicate{n.pred}
	}
	var out []Predicate
	for _, k := range n.kids {
		out = append(out, k.preds()...)
	}
	return out
}

// parseFilter reads the array form: AND of elements, OR within an inner array.
func parseFilter(f any) ([][]Predicate, error) {
	var out [][]Predicate
	// An element is one predicate or, as Meilisearch accepts, a whole
	// expression (AND, OR, NOT, parentheses) kept as one expr predicate.
	one := func(v any) (Predicate, error) {
		s, ok := v.(string)
		if !ok {
			return Predicate{}, fmt.Errorf("filter element %T is not a string", v)
		}
		if p, err := ParsePredicate(s); err == nil {
			return p, nil
		}
		n, err := parseExpr(s)
		if err != nil {
			return Predicate{}, err
		}
		return Predicate{op: "expr", expr: &n}, nil
	}
	switch f := f.(type) {
	case nil:
		return nil, nil
	case string:
		if p, err := ParsePredicate(f); err == nil {
			return [][]Predicate{{p}}, nil
		}
		n, err := parseExpr(f)
		if err != nil {
			return nil, err
		}
		// An expression is kept whole as a one-Predicate group whose
		// Predicate evaluates the tree.
		return [][]Predicate{{{Attr: "", op: "expr", expr: &n}}}, nil
	case []any:
		for _, el := range f {
			var group []Predicate
			if inner, ok := el.([]any); ok {
				for _, v := range inner {
					p, err := one(v)
					if err != nil {
						return nil, err
					}
					group = append(group, p)
				}
			} else {
				p, err := one(el)
				if err != nil {
					return nil, err
				}
				group = append(group, p)
			}
			out = append(out, group)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("filter of type %T", f)
	}
}

func (p Predicate) match(doc map[string]any) bool {
	if p.expr != nil {
		return p.expr.match(doc)
	}
	v := doc[p.Attr]
	if p.isNum {
		n, ok := v.(float64)
		if !ok {
			return false
		}
		switch p.op {
		case "=":
			return n == p.num
		case "!=":
			return n != p.num
		case ">=":
			return n >= p.num
		case ">":
			return n > p.num
		case "<=":
			return n <= p.num
		case "<":
			return n < p.num
		}
		return false
	}
	var vals []string
	switch v := v.(type) {
	case string:
		vals = []string{v}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				vals = append(vals, s)
			}
		}
	}
	hit := false
	for _, x := range vals {
		hit = hit || p.folded[foldKey(x)]
	}
	if p.op == "!=" || p.op == "NOT IN" {
		return !hit
	}
	return hit
}

func matchFilter(groups [][]Predicate, doc map[string]any) bool {
	for _, g := range groups {
		ok := false
		for _, p := range g {
			if p.match(doc) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
