package search

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	textcases "golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/casevault/casevault/cases"
)

// Input limits keep a hostile query from turning into an expensive one: every
// word may fan out into fuzzy automata on the engine side.
const (
	MaxQueryBytes = 1000
	MaxQueryTerms = 32
	// MaxTextWords bounds the words of text (free words, every word of a
	// phrase, excluded words): Meilisearch reads only the first ten words
	// of its query and ignores the rest, so a longer query would mean one
	// thing on the embedded engine and another on Meilisearch.
	MaxTextWords = 10
)

// QueryError reports a query the user has to fix; Term is the offending
// input as typed (empty when the query as a whole is rejected).
type QueryError struct {
	Term    string
	Message string
}

func (e *QueryError) Error() string {
	if e.Term == "" {
		return "search query: " + e.Message
	}
	return fmt.Sprintf("search query: %q: %s", e.Term, e.Message)
}

// ParseQuery is ParseQueryAt at the current time (relative dates such as
// after:7d count back from now).
func ParseQuery(q string) (Query, error) { return ParseQueryAt(q, time.Now()) }

// ParseQueryAt turns what an agent typed into a Query; now anchors relative
// dates. The syntax (README "Search"):
//
//   - words are ANDed; "..." is a phrase; a leading - excludes a word, a
//     phrase, a field term (-tag:vip: no hit has the value) or a group;
//   - OR between two terms or groups makes alternatives, (...) groups.
//     Juxtaposition (AND) binds tighter than OR: a b OR c is (a b) OR c.
//     OR must be upper case (a lower-case "or" is a word);
//   - field terms (Fields) become filters; values of one field in the same
//     AND list are alternatives (status:open status:pending, or
//     status:open,pending); tag: and assignee: values are case-folded;
//     #1234 is number:1234;
//   - dates: after:D (inclusive), before:D (exclusive), updated:>D,
//     updated:<D, updated:D (that day), where D is YYYY-MM-DD, RFC 3339 or
//     a relative age Nh, Nd, Nw or Ny counted back from now (after:7d: the
//     last seven days; updated:<30d: not updated for 30 days);
//   - a "word:" prefix whose word is not a field is an UnknownFieldError.
//
// Payment and identity numbers in q are masked first (cases.MaskSensitive),
// as they are in everything stored: a card number finds the contacts that
// hold its masked form, and never reaches an engine, a log or an error
// message. Free text is NFKC-normalised, so full-width digits, ², ① or ⅻ
// search as the ASCII they stand for.
//
// A query never silently becomes match-all: a term that holds letters or
// numbers but no word an engine can index ("൰"), and a non-blank query left
// with no word, phrase, exclusion or filter ("****", `""`), are rejected
// with a QueryError naming the term. Pure punctuation between real terms
// ("refund ?") is ignored; an OR alternative or group left empty is an
// error (it would match everything).
//
// At most MaxQueryTerms terms: every word (including each of comma- or
// dot-joined words such as a,b,c), phrase and field value counts; and at
// most MaxTextWords words of text in the whole query, each word of a
// phrase counted.
func ParseQueryAt(q string, now time.Time) (Query, error) {
	if len(q) > MaxQueryBytes {
		return Query{}, &QueryError{Message: fmt.Sprintf("longer than %d bytes", MaxQueryBytes)}
	}

	if !utf8.ValidString(q) {
		return Query{}, &QueryError{Message: "not valid UTF-8"}
	}

	q, _ = cases.MaskSensitive(q)
	toks, err := tokenize(q)
	if err != nil {
		return Query{}, err
	}

	if len(toks) > MaxQueryTerms {
		return Query{}, &QueryError{Message: fmt.Sprintf("more than %d terms", MaxQueryTerms)}
	}

	p := &parser{toks: toks, now: now}
	alts, err := p.expr(0)
	if err != nil {
		return Query{}, err
	}

	if p.pos < len(p.toks) {
		return Query{}, &QueryError{Term: p.toks[p.pos].raw, Message: "unbalanced parenthesis"}
	}

	out, err := p.alternatives(alts)
	if err != nil {
		return Query{}, err
	}

	if p.ignored != "" && out.isEmpty() {
		return Query{}, &QueryError{Term: p.ignored, Message: "has no searchable word"}
	}

	return out, nil
}

// Fields are the field terms the query language knows, in the order error
// messages list them.
var Fields = []string{"status", "channel", "priority", "tag", "customer", "assignee", "purpose",
	"number", "before", "after", "updated"}

// UnknownFieldError is a "field:value" term whose field the language does
// not know (subject:refund): silently searching it as text would find
// nothing and look like an answer.
type UnknownFieldError struct {
	Field string // as typed
	Term  string
	Valid []string
}

func (e *UnknownFieldError) Error() string {
	return fmt.Sprintf("search query: %q: unknown field %q (valid fields: %s)", e.Term, e.Field, strings.Join(e.Valid, ", "))
}

// hasLetterOrNumber reports whether s holds anything a user means as text
// (as opposed to punctuation or symbols typed as decoration).
func hasLetterOrNumber(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) })
}

func (f Filter) isZero() bool {
	return len(f.Statuses) == 0 && len(f.Channels) == 0 && len(f.Priorities) == 0 && len(f.CustomerIDs) == 0 &&
		len(f.Assignees) == 0 && len(f.Tags) == 0 && len(f.Purposes) == 0 && len(f.CaseIDs) == 0 &&
		len(f.Numbers) == 0 && f.From.IsZero() && f.To.IsZero() && f.UpdatedFrom.IsZero() && f.UpdatedTo.IsZero()
}

// IsZero reports whether the filter constrains nothing.
func (f Filter) IsZero() bool { return f.isZero() }

func (q Query) isEmpty() bool {
	return !q.HasText() && len(q.Excluded) == 0 && q.Filter.isZero() && q.Not.isZero() && len(q.Groups) == 0
}

type tokenKind int

const (
	tkTerm tokenKind = iota
	tkOr
	tkOpen // "(" or "-("
	tkClose
)

type token struct {
	kind    tokenKind
	raw     string // as typed, for error messages
	field   string // known field name, lower case; "" for text
	text    string // value or text
	phrase  bool
	negated bool
}

// knownFields maps the prefixes agents type to canonical field names.
var knownFields = map[string]string{
	"status": "status", "channel": "channel", "priority": "priority",
	"tag": "tag", "customer": "customer", "assignee": "assignee",
	"purpose": "purpose", "before": "before", "after": "after",
	"number": "number", "updated": "updated",
}

// fieldName reports whether s looks like a field name (ASCII letters and
// underscores), so that "subject:refund" is an unknown field while
// "10:30", "re:" or "http://x" stay text.
func fieldName(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if (c < 'a' || c > 'z') && s[i] != '_' {
			return false
		}
	}
	return true
}

// quoted reads a "..." starting at q[i]; an unterminated quote runs to the
// end. It returns the text and the index after it.
func quoted(q string, i int) (string, int) {
	end := strings.IndexByte(q[i+1:], '"')
	if end < 0 {
		return q[i+1:], len(q)
	}
	return q[i+1 : i+1+end], i + 1 + end + 1
}

// tokenize splits on white space and parentheses, keeping "quoted
// phrases" and field:"quoted values" together.
func tokenize(q string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(q) {
		r, size := utf8.DecodeRuneInString(q[i:])
		if unicode.IsSpace(r) {
			i += size
			continue
		}
		start := i
		negated := false
		if q[i] == '-' && i+1 < len(q) && !unicode.IsSpace(rune(q[i+1])) {
			negated = true
			i++
		}
		switch q[i] {
		case '(':
			i++
			toks = append(toks, token{kind: tkOpen, raw: q[start:i], negated: negated})
			continue
		case ')':
			i++
			toks = append(toks, token{kind: tkClose, raw: q[start:i]})
			continue
		case '"':
			var text string
			text, i = quoted(q, i)
			toks = append(toks, token{raw: q[start:i], text: text, phrase: true, negated: negated})
			continue
		}
		// a bare word, possibly field:value or field:"value"
		j := i
		for j < len(q) {
			r, size := utf8.DecodeRuneInString(q[j:])
			if unicode.IsSpace(r) || r == '"' || r == '(' || r == ')' {
				break
			}
			j += size
		}
		word := q[i:j]
		if word == "OR" && !negated {
			toks = append(toks, token{kind: tkOr, raw: word})
			i = j
			continue
		}
		if len(word) > 1 && word[0] == '#' && strings.Trim(word[1:], "0123456789") == "" {
			toks = append(toks, token{raw: q[start:j], field: "number", text: word[1:], negated: negated})
			i = j
			continue
		}
		if c := strings.IndexByte(word, ':'); c > 0 && fieldName(word[:c]) {
			f, known := knownFields[strings.ToLower(word[:c])]
			val := word[c+1:]
			if val == "" && j < len(q) && q[j] == '"' {
				val, j = quoted(q, j)
			}
			if strings.TrimSpace(val) != "" && !strings.HasPrefix(val, "//") {
				if !known {
					return nil, &UnknownFieldError{Field: word[:c], Term: q[start:j], Valid: Fields}
				}
				toks = append(toks, token{raw: q[start:j], field: f, text: val, negated: negated})
				i = j
				continue
			}
		}
		toks = append(toks, token{raw: q[start:j], text: word, negated: negated})
		i = j
	}

	return toks, nil
}

// parser reads tokens into nested alternatives; counters span the whole
// query (the word limit is Meilisearch's, per request).
type parser struct {
	toks    []token
	pos     int
	now     time.Time
	terms   int
	text    int
	ignored string // the first term that was pure punctuation
}

// node is a term or a parenthesised group.
type node struct {
	tok   token
	group [][]node // set for a group: its alternatives
}

// expr reads alternatives (AND lists joined by OR) up to a closing
// parenthesis or the end.
func (p *parser) expr(depth int) ([][]node, error) {
	if depth > 8 {
		return nil, &QueryError{Message: "parentheses nested too deep"}
	}
	var alts [][]node
	var cur []node
	orTok := ""
	for p.pos < len(p.toks) {
		t := p.toks[p.pos]
		switch t.kind {
		case tkClose:
			if depth == 0 {
				return nil, &QueryError{Term: t.raw, Message: "unbalanced parenthesis"}
			}
			if len(cur) == 0 && (orTok != "" || len(alts) == 0) {
				return nil, &QueryError{Term: "()", Message: "empty group"}
			}
			return append(alts, cur), nil
		case tkOr:
			if len(cur) == 0 {
				return nil, &QueryError{Term: t.raw, Message: "OR needs a term on each side"}
			}
			alts, cur, orTok = append(alts, cur), nil, t.raw
			p.pos++
		case tkOpen:
			p.pos++
			g, err := p.expr(depth + 1)
			if err != nil {
				return nil, err
			}
			if p.pos >= len(p.toks) {
				return nil, &QueryError{Term: t.raw, Message: "unbalanced parenthesis"}
			}
			p.pos++ // the closing parenthesis
			cur = append(cur, node{tok: t, group: g})
		default:
			cur = append(cur, node{tok: t})
			p.pos++
		}
	}
	if depth > 0 {
		return nil, &QueryError{Term: "(", Message: "unbalanced parenthesis"}
	}
	if len(cur) == 0 && orTok != "" {
		return nil, &QueryError{Term: orTok, Message: "OR needs a term on each side"}
	}
	return append(alts, cur), nil
}

// alternatives turns alternatives into one Query: the AND list itself when
// there is one, else a Query holding one group.
func (p *parser) alternatives(alts [][]node) (Query, error) {
	if len(alts) == 1 {
		return p.andList(alts[0], false)
	}
	g, err := p.group(alts, false)
	if err != nil {
		return Query{}, err
	}
	return Query{Groups: []Group{g}}, nil
}

func (p *parser) group(alts [][]node, negated bool) (Group, error) {
	g := Group{Negated: negated}
	for _, a := range alts {
		q, err := p.andList(a, true)
		if err != nil {
			return g, err
		}
		g.Any = append(g.Any, q)
	}
	return g, nil
}

func (p *parser) count(n int) error {
	if p.terms += n; p.terms > MaxQueryTerms {
		return &QueryError{Message: fmt.Sprintf("more than %d terms", MaxQueryTerms)}
	}
	return nil
}

func (p *parser) countText(n int) error {
	if p.text += n; p.text > MaxTextWords {
		return &QueryError{Message: fmt.Sprintf("more than %d words", MaxTextWords)}
	}
	return p.count(n)
}

// andList builds the Query of one AND list; inGroup says it is an
// alternative, which must not end up empty (it would match everything).
func (p *parser) andList(list []node, inGroup bool) (Query, error) {
	var out Query
	ignored := ""
	for _, n := range list {
		t := n.tok
		if n.group != nil {
			g, err := p.group(n.group, t.negated)
			if err != nil {
				return Query{}, err
			}
			out.Groups = append(out.Groups, g)
			continue
		}
		var words []string
		if t.field == "" {
			words = maskWords(textWords(t.text))
			if len(words) == 0 {
				if hasLetterOrNumber(t.text) {
					return Query{}, &QueryError{Term: t.raw, Message: "has no searchable word"}
				}
				if ignored == "" {
					ignored = t.raw
				}
				continue
			}
		}
		switch {
		case t.phrase:
			if err := p.countText(len(words)); err != nil {
				return Query{}, err
			}
			ph := strings.Join(words, " ")
			if t.negated {
				out.Excluded = appendUnique(out.Excluded, ph)
			} else {
				out.Phrases = appendUnique(out.Phrases, ph)
			}
		case t.field != "":
			if err := p.count(max(1, len(plainValues(t.text)))); err != nil {
				return Query{}, err
			}
			if t.field == "updated" && inGroup {
				return Query{}, &QueryError{Term: t.raw, Message: "updated: applies to the whole query: put it outside OR and parentheses"}
			}
			if err := p.applyField(&out, t); err != nil {
				return Query{}, err
			}
		default:
			if err := p.countText(len(words)); err != nil {
				return Query{}, err
			}
			for _, w := range words {
				if t.negated {
					out.Excluded = appendUnique(out.Excluded, w)
				} else {
					out.Words = appendUnique(out.Words, w)
				}
			}
		}
	}

	if ignored != "" && out.isEmpty() {
		if inGroup {
			return Query{}, &QueryError{Term: ignored, Message: "has no searchable word"}
		}
		if p.ignored == "" {
			p.ignored = ignored
		}
	}

	return out, nil
}

// applyField adds a field term to q: to its Filter, or negated to Not
// (dates flip to the opposite bound instead).
func (p *parser) applyField(q *Query, t token) error {
	f := &q.Filter
	if t.negated {
		f = &q.Not
	}
	val, raw := t.text, t.raw
	if len(plainValues(val)) == 0 {
		// "status:," would otherwise add no value and leave the query
		// empty, or drop the term from a longer one without a word.
		return &QueryError{Term: raw, Message: noValue}
	}

	switch t.field {
	case "status":
		return enumInto(&f.Statuses, val, raw, cases.Statuses)
	case "channel":
		return enumInto(&f.Channels, val, raw, cases.Channels)
	case "priority":
		return enumInto(&f.Priorities, val, raw, cases.Priorities)
	case "purpose":
		return enumInto(&f.Purposes, val, raw, cases.Purposes)
	case "tag":
		for _, v := range plainValues(val) {
			f.Tags = appendUnique(f.Tags, FoldKeyword(v))
		}
	case "customer":
		f.CustomerIDs = appendUnique(f.CustomerIDs, plainValues(val)...)
	case "assignee":
		f.Assignees = appendUnique(f.Assignees, FoldKeyword(val))
	case "number":
		for _, v := range plainValues(val) {
			n, err := strconv.ParseInt(strings.TrimPrefix(v, "#"), 10, 64)
			if err != nil || n < 1 {
				return &QueryError{Term: raw, Message: "number must be a positive integer"}
			}
			if !slices.Contains(f.Numbers, n) {
				f.Numbers = append(f.Numbers, n)
			}
		}
	case "after", "before":
		d, err := parseDate(val, raw, p.now)
		if err != nil {
			return err
		}
		if (t.field == "after") != t.negated {
			setFrom(&q.Filter.From, d)
		} else {
			setTo(&q.Filter.To, d)
		}
	case "updated":
		return p.applyUpdated(q, val, raw, t.negated)
	}

	return nil
}

// applyUpdated reads updated:>D, updated:>=D, updated:<D, updated:<=D and
// updated:D (the day D). Bounds are at microsecond precision, so > and >=
// (< and <=) are the same bound.
func (p *parser) applyUpdated(q *Query, val, raw string, negated bool) error {
	op := ""
	for _, o := range []string{">=", "<=", ">", "<"} {
		if strings.HasPrefix(val, o) {
			op, val = o[:1], val[len(o):]
			break
		}
	}
	d, err := parseDate(val, raw, p.now)
	if err != nil {
		return err
	}
	f := &q.Filter
	switch {
	case op == "" && negated:
		return &QueryError{Term: raw, Message: "a negated updated: needs > or < (-updated:>30d)"}
	case op == "":
		if _, err := time.Parse(time.DateOnly, strings.TrimSpace(val)); err != nil {
			return &QueryError{Term: raw, Message: "updated: needs > or < before a time or an age (updated:>30d, updated:<2026-01-01)"}
		}
		setFrom(&f.UpdatedFrom, d)
		setTo(&f.UpdatedTo, d.AddDate(0, 0, 1))
	case (op == ">") != negated:
		setFrom(&f.UpdatedFrom, d)
	default:
		setTo(&f.UpdatedTo, d)
	}
	return nil
}

func setFrom(dst *time.Time, t time.Time) {
	if t.After(*dst) {
		*dst = t
	}
}

func setTo(dst *time.Time, t time.Time) {
	if dst.IsZero() || t.Before(*dst) {
		*dst = t
	}
}

// textWords splits free text into the words engines see: runs of letters,
// digits and marks (plus inner ' _ . @ & joining them), so that query syntax
// characters never reach an engine as meaning. Runs with no letter or digit
// (masked "****") are dropped: they can never match and engines disagree on
// how to treat them.
//
// The text is NFKC-normalised first: engines index "４１１１" as nothing or
// as "4111", and "ⅻ" or "²³" are no letters or digits at all before it.
func textWords(s string) []string {
	s = norm.NFKC.String(s)
	var words []string
	isWordRune := func(r rune) bool {
		return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
	}

	isJoiner := func(r rune) bool {
		return r == '\'' || r == '_' || r == '.' || r == '@' || r == '&' || r == '-'
	}

	rs := []rune(s)
	for i := 0; i < len(rs); {
		if !unicode.IsLetter(rs[i]) && !unicode.IsDigit(rs[i]) {
			i++
			continue
		}
		j := i
		for j < len(rs) {
			if isWordRune(rs[j]) {
				j++
				continue
			}
			if isJoiner(rs[j]) && j+1 < len(rs) && isWordRune(rs[j+1]) {
				j++
				continue
			}
			break
		}
		words = append(words, string(rs[i:j]))
		i = j
	}

	return words
}

// maskWords masks a term's words as the engine will see them, until
// nothing in them is maskable. q was masked as typed, but textWords can
// still make a number: NFKC expands a rune into several ("¾" is "3⁄4",
// whose 4 then joins the digits after it), and joining a phrase's words
// with spaces joins digits the input's punctuation kept apart
// ("0!0 0 0000000000"). Dropping a masked run joins its neighbours anew,
// hence the loop; each round removes digits, so it ends, and a masked
// number keeps its last four, so words stay.
func maskWords(words []string) []string {
	for {
		masked, n := cases.MaskSensitive(strings.Join(words, " "))
		if n == 0 {
			return words
		}
		words = textWords(masked)
	}
}

// noValue is the message for a field given only commas.
const noValue = "has no value (values are separated by commas)"

func plainValues(val string) []string {
	var out []string
	for v := range strings.SplitSeq(val, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func enumInto[T ~string](dst *[]string, val, raw string, valid []T) error {
	vals, err := enumValues(val, raw, valid)
	*dst = appendUnique(*dst, vals...)
	return err
}

func enumValues[T ~string](val, raw string, valid []T) ([]string, error) {
	vals := plainValues(strings.ToLower(val))
	for _, v := range vals {
		if !slices.Contains(valid, T(v)) {
			names := make([]string, len(valid))
			for i, x := range valid {
				names[i] = string(x)
			}
			return nil, &QueryError{Term: raw, Message: fmt.Sprintf("unknown value %q (one of %s)", v, strings.Join(names, ", "))}
		}
	}
	return vals, nil
}

// parseDate reads a date term as the API reads every time bound
// (cases.ParseTime), or a relative age (7d, 12h, 2w, 1y) counted back from
// now; raw is the term in messages.
func parseDate(val, raw string, now time.Time) (time.Time, error) {
	val = strings.TrimSpace(val)
	if n := len(val); n >= 2 {
		if k, err := strconv.Atoi(val[:n-1]); err == nil && k >= 0 && k <= 100*366 {
			var t time.Time
			switch val[n-1] {
			case 'h':
				t = now.Add(-time.Duration(k) * time.Hour)
			case 'd':
				t = now.AddDate(0, 0, -k)
			case 'w':
				t = now.AddDate(0, 0, -7*k)
			case 'y':
				t = now.AddDate(-k, 0, 0)
			}
			if !t.IsZero() {
				if err := cases.CheckTimeBound(raw, val, t); err != nil {
					return time.Time{}, &QueryError{Term: raw, Message: "an age must end after year 1"}
				}
				return t.UTC(), nil
			}
		}
	}
	t, err := cases.ParseTime(raw, val)
	if err != nil || val == "" {
		return time.Time{}, &QueryError{Term: raw, Message: "date must be YYYY-MM-DD, RFC 3339 or an age such as 7d (h, d, w, y)"}
	}
	return t, nil
}

// FoldKeyword is the one normalisation of keyword values (tags, assignee
// names) that engines apply when they index and when they filter: Unicode
// case folding and NFKC, so tag:VIP finds "vip" and assignee:ALICE "Alice".
// The store keeps the values as typed; only the index holds folded forms.
func FoldKeyword(s string) string {
	return textcases.Fold().String(norm.NFKC.String(strings.TrimSpace(s)))
}

// FoldKeywords applies FoldKeyword to every value.
func FoldKeywords(vals []string) []string {
	if vals == nil {
		return nil
	}
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		out = appendUnique(out, FoldKeyword(v))
	}
	return out
}

func appendUnique(dst []string, vals ...string) []string {
	for _, v := range vals {
		if v != "" && !slices.Contains(dst, v) {
			dst = append(dst, v)
		}
	}
	return dst
}

// FilterFromValues reads the search URL's filter parameters (status,
// channel, priority, customer_id, assignee, tag, purpose, from, to); each may
// repeat or hold comma-separated alternatives.
func FilterFromValues(v url.Values) (Filter, error) {
	var f Filter
	enum := func(key string, dst *[]string, apply func(val, raw string) ([]string, error)) error {
		for _, raw := range v[key] {
			// An empty parameter is no filter (a form's "any"), but
			// "status=," names values and gives none: as status:, in q,
			// it is refused rather than read as match-all.
			if strings.TrimSpace(raw) != "" && len(plainValues(raw)) == 0 {
				return &QueryError{Term: key + "=" + raw, Message: noValue}
			}

			vals, err := apply(raw, key+"="+raw)
			if err != nil {
				return err
			}
			*dst = appendUnique(*dst, vals...)
		}
		return nil
	}

	plain := func(val, _ string) ([]string, error) { return plainValues(val), nil }
	if err := enum("status", &f.Statuses, func(val, raw string) ([]string, error) { return enumValues(val, raw, cases.Statuses) }); err != nil {
		return f, err
	}

	if err := enum("channel", &f.Channels, func(val, raw string) ([]string, error) { return enumValues(val, raw, cases.Channels) }); err != nil {
		return f, err
	}

	if err := enum("priority", &f.Priorities, func(val, raw string) ([]string, error) { return enumValues(val, raw, cases.Priorities) }); err != nil {
		return f, err
	}

	if err := enum("purpose", &f.Purposes, func(val, raw string) ([]string, error) { return enumValues(val, raw, cases.Purposes) }); err != nil {
		return f, err
	}

	if err := enum("customer_id", &f.CustomerIDs, plain); err != nil {
		return f, err
	}

	if err := enum("tag", &f.Tags, func(val, _ string) ([]string, error) { return FoldKeywords(plainValues(val)), nil }); err != nil {
		return f, err
	}

	for _, a := range v["assignee"] {
		f.Assignees = appendUnique(f.Assignees, FoldKeyword(a))
	}

	if s := v.Get("from"); s != "" {
		t, err := parseDate(s, "from="+s, time.Now())
		if err != nil {
			return f, err
		}
		f.From = t
	}

	if s := v.Get("to"); s != "" {
		t, err := parseDate(s, "to="+s, time.Now())
		if err != nil {
			return f, err
		}
		f.To = t
	}

	return f, nil
}

// MergeFilter combines two filters with AND (typically the URL parameters
// and the field terms of q). For a field constrained on both sides only the
// common values remain; ok is false when that leaves nothing, meaning the
// search can match nothing and need not be sent to an engine.
func MergeFilter(a, b Filter) (f Filter, ok bool) {
	ok = true
	both := func(x, y []string) []string {
		if len(x) == 0 {
			return slices.Clone(y)
		}
		if len(y) == 0 {
			return slices.Clone(x)
		}
		var out []string
		for _, v := range x {
			if slices.Contains(y, v) && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
		if len(out) == 0 {
			ok = false
		}
		return out
	}

	f.Statuses = both(a.Statuses, b.Statuses)
	f.Channels = both(a.Channels, b.Channels)
	f.Priorities = both(a.Priorities, b.Priorities)
	f.CustomerIDs = both(a.CustomerIDs, b.CustomerIDs)
	f.Assignees = both(a.Assignees, b.Assignees)
	f.Tags = both(a.Tags, b.Tags)
	f.Purposes = both(a.Purposes, b.Purposes)
	f.CaseIDs = both(a.CaseIDs, b.CaseIDs)
	for _, n := range a.Numbers {
		if len(b.Numbers) == 0 || slices.Contains(b.Numbers, n) {
			f.Numbers = append(f.Numbers, n)
		}
	}
	if len(a.Numbers) == 0 {
		f.Numbers = slices.Clone(b.Numbers)
	} else if len(b.Numbers) > 0 && len(f.Numbers) == 0 {
		ok = false
	}

	f.UpdatedFrom, f.UpdatedTo = a.UpdatedFrom, a.UpdatedTo
	setFrom(&f.UpdatedFrom, b.UpdatedFrom)
	if !b.UpdatedTo.IsZero() {
		setTo(&f.UpdatedTo, b.UpdatedTo)
	}
	if !f.UpdatedFrom.IsZero() && !f.UpdatedTo.IsZero() && !f.UpdatedFrom.Before(f.UpdatedTo) {
		ok = false
	}

	f.From = a.From
	if b.From.After(f.From) {
		f.From = b.From
	}

	f.To = a.To
	if !b.To.IsZero() && (f.To.IsZero() || b.To.Before(f.To)) {
		f.To = b.To
	}

	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		ok = false
	}

	return f, ok
}

// HasText reports whether the query has any words or phrases to rank by,
// itself or in a group that is not negated; without them engines order by
// recency.
func (q Query) HasText() bool {
	if len(q.Words) > 0 || len(q.Phrases) > 0 {
		return true
	}
	for _, g := range q.Groups {
		if g.Negated {
			continue
		}
		for _, a := range g.Any {
			if a.HasText() {
				return true
			}
		}
	}
	return false
}
