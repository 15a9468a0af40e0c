package meili

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// This file is the fake server's reading of Meilisearch's filter syntax,
// limited to the single-predicate shapes the adapter's constructors produce
// (attribute, operator, literal). It is deliberately strict: anything else —
// a bare OR, a second predicate, text after a closing quote — is a parse
// error, so a value that broke out of its quotes makes the test fail.

type predicate struct {
	attr  string
	op    string // = != >= > <= < IN
	strs  []string
	num   float64
	isNum bool
}

// readString reads one double-quoted literal at the start of s. A backslash
// makes the next character literal (so \" is a quote and \\ a backslash).
func readString(s string) (val, rest string, err error) {
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

func parsePredicate(s string) (predicate, error) {
	var p predicate
	s = strings.TrimLeft(s, " ")
	i := 0
	for i < len(s) && isIdentByte(s[i]) {
		i++
	}
	if i == 0 {
		return p, fmt.Errorf("expected attribute in %q", s)
	}
	p.attr, s = s[:i], strings.TrimLeft(s[i:], " ")
	for _, op := range []string{"!=", ">=", "<=", "=", ">", "<", "IN "} {
		if strings.HasPrefix(s, op) {
			p.op, s = strings.TrimSpace(op), strings.TrimLeft(s[len(op):], " ")
			break
		}
	}
	if p.op == "" {
		return p, fmt.Errorf("expected operator in %q", s)
	}
	var err error
	switch {
	case p.op == "IN":
		if !strings.HasPrefix(s, "[") {
			return p, errors.New("expected [ after IN")
		}
		s = strings.TrimLeft(s[1:], " ")
		for {
			var v string
			if v, s, err = readString(s); err != nil {
				return p, err
			}
			p.strs = append(p.strs, v)
			s = strings.TrimLeft(s, " ")
			if strings.HasPrefix(s, ",") {
				s = strings.TrimLeft(s[1:], " ")
				continue
			}
			if !strings.HasPrefix(s, "]") {
				return p, fmt.Errorf("expected , or ] in %q", s)
			}
			s = s[1:]
			break
		}
	case strings.HasPrefix(s, `"`):
		var v string
		if v, s, err = readString(s); err != nil {
			return p, err
		}
		p.strs = []string{v}
	default:
		j := 0
		for j < len(s) && (s[j] == '-' || s[j] == '.' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		if p.num, err = strconv.ParseFloat(s[:j], 64); err != nil {
			return p, fmt.Errorf("expected value in %q", s)
		}
		p.isNum, s = true, s[j:]
	}
	if strings.TrimSpace(s) != "" {
		return p, fmt.Errorf("unexpected %q after predicate", s)
	}
	return p, nil
}

// parseFilter reads the array form: AND of elements, OR within an inner array.
func parseFilter(f any) ([][]predicate, error) {
	var out [][]predicate
	one := func(v any) (predicate, error) {
		s, ok := v.(string)
		if !ok {
			return predicate{}, fmt.Errorf("filter element %T is not a string", v)
		}
		return parsePredicate(s)
	}
	switch f := f.(type) {
	case nil:
		return nil, nil
	case string:
		p, err := parsePredicate(f)
		if err != nil {
			return nil, err
		}
		return [][]predicate{{p}}, nil
	case []any:
		for _, el := range f {
			var group []predicate
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

func (p predicate) match(doc map[string]any) bool {
	v := doc[p.attr]
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
		for _, want := range p.strs {
			if x == want {
				hit = true
			}
		}
	}
	if p.op == "!=" {
		return !hit
	}
	return hit
}

func matchFilter(groups [][]predicate, doc map[string]any) bool {
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
