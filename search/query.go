package search

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

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

// ParseQuery turns what an agent typed into a Query. Known field terms
// (status:, channel:, priority:, tag:, customer:, assignee:, purpose:,
// before:, after:) become filters; "..." is a phrase; a leading - excludes a
// word or phrase; an unknown "field:" prefix is just text. Values of one field
// are alternatives (status:open status:pending, or status:open,pending).
// after:D is inclusive and before:D exclusive (the Filter's From/To).
// Sort, paging and facets are left for the caller.
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
// ("refund ?") is ignored.
//
// At most MaxQueryTerms terms: every word (including each of comma- or
// dot-joined words such as a,b,c), phrase and field value counts; and at
// most MaxTextWords words of text, each word of a phrase counted.
func ParseQuery(q string) (Query, error) {
	var out Query
	if len(q) > MaxQueryBytes {
		return out, &QueryError{Message: fmt.Sprintf("longer than %d bytes", MaxQueryBytes)}
	}

	if !utf8.ValidString(q) {
		return out, &QueryError{Message: "not valid UTF-8"}
	}

	q, _ = cases.MaskSensitive(q)
	toks := tokenize(q)
	if len(toks) > MaxQueryTerms {
		return out, &QueryError{Message: fmt.Sprintf("more than %d terms", MaxQueryTerms)}
	}

	terms, text := 0, 0
	count := func(n int) error {
		if terms += n; terms > MaxQueryTerms {
			return &QueryError{Message: fmt.Sprintf("more than %d terms", MaxQueryTerms)}
		}
		return nil
	}
	countText := func(n int) error {
		if text += n; text > MaxTextWords {
			return &QueryError{Message: fmt.Sprintf("more than %d words", MaxTextWords)}
		}
		return count(n)
	}

	ignored := "" // the first term that was pure punctuation
	for _, t := range toks {
		var words []string
		if t.field == "" {
			words = textWords(t.text)
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
			// Joining a phrase's words with spaces can make a number the
			// input's punctuation kept apart ("0!0 0 0000000000") look like
			// a card number again: mask the phrase as joined, too.
			if masked, n := cases.MaskSensitive(strings.Join(words, " ")); n != 0 {
				words = textWords(masked)
			}
			if err := countText(len(words)); err != nil {
				return Query{}, err
			}
			p := strings.Join(words, " ")
			if t.negated {
				out.Excluded = appendUnique(out.Excluded, p)
			} else {
				out.Phrases = appendUnique(out.Phrases, p)
			}
		case t.field != "":
			if err := count(max(1, len(plainValues(t.text)))); err != nil {
				return Query{}, err
			}
			if err := applyField(&out.Filter, t.field, t.text, t.raw); err != nil {
				return Query{}, err
			}
		default:
			if err := countText(len(words)); err != nil {
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

	if ignored != "" && !out.HasText() && len(out.Excluded) == 0 && out.Filter.isZero() {
		return Query{}, &QueryError{Term: ignored, Message: "has no searchable word"}
	}

	return out, nil
}

// hasLetterOrNumber reports whether s holds anything a user means as text
// (as opposed to punctuation or symbols typed as decoration).
func hasLetterOrNumber(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) })
}

func (f Filter) isZero() bool {
	return len(f.Statuses) == 0 && len(f.Channels) == 0 && len(f.Priorities) == 0 && len(f.CustomerIDs) == 0 &&
		len(f.Assignees) == 0 && len(f.Tags) == 0 && len(f.Purposes) == 0 && len(f.CaseIDs) == 0 &&
		f.From.IsZero() && f.To.IsZero()
}

type token struct {
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
}

// tokenize splits on white space, keeping "quoted phrases" and
// field:"quoted values" together. An unterminated quote runs to the end.
func tokenize(q string) []token {
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
		if q[i] == '-' && i+1 < len(q) {
			negated = true
			i++
		}
		if q[i] == '"' {
			end := strings.IndexByte(q[i+1:], '"')
			var text string
			if end < 0 {
				text = q[i+1:]
				i = len(q)
			} else {
				text = q[i+1 : i+1+end]
				i = i + 1 + end + 1
			}
			toks = append(toks, token{raw: q[start:i], text: text, phrase: true, negated: negated})
			continue
		}
		// a bare word, possibly field:value or field:"value"
		j := i
		for j < len(q) {
			r, size := utf8.DecodeRuneInString(q[j:])
			if unicode.IsSpace(r) || r == '"' {
				break
			}
			j += size
		}
		word := q[i:j]
		if c := strings.IndexByte(word, ':'); c > 0 && !negated {
			if f, ok := knownFields[strings.ToLower(word[:c])]; ok {
				val := word[c+1:]
				if val == "" && j < len(q) && q[j] == '"' {
					end := strings.IndexByte(q[j+1:], '"')
					if end < 0 {
						val = q[j+1:]
						j = len(q)
					} else {
						val = q[j+1 : j+1+end]
						j = j + 1 + end + 1
					}
				}
				if strings.TrimSpace(val) != "" {
					toks = append(toks, token{raw: q[start:j], field: f, text: val})
					i = j
					continue
				}
			}
		}
		toks = append(toks, token{raw: q[start:j], text: word, negated: negated})
		i = j
	}

	return toks
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

func applyField(f *Filter, field, val, raw string) error {
	switch field {
	case "status":
		vals, err := enumValues(val, raw, cases.Statuses)
		if err != nil {
			return err
		}
		f.Statuses = appendUnique(f.Statuses, vals...)
	case "channel":
		vals, err := enumValues(val, raw, cases.Channels)
		if err != nil {
			return err
		}
		f.Channels = appendUnique(f.Channels, vals...)
	case "priority":
		vals, err := enumValues(val, raw, cases.Priorities)
		if err != nil {
			return err
		}
		f.Priorities = appendUnique(f.Priorities, vals...)
	case "purpose":
		vals, err := enumValues(val, raw, cases.Purposes)
		if err != nil {
			return err
		}
		f.Purposes = appendUnique(f.Purposes, vals...)
	case "tag":
		f.Tags = appendUnique(f.Tags, plainValues(val)...)
	case "customer":
		f.CustomerIDs = appendUnique(f.CustomerIDs, plainValues(val)...)
	case "assignee":
		f.Assignees = appendUnique(f.Assignees, strings.TrimSpace(val))
	case "after":
		t, err := parseDate(val, raw)
		if err != nil {
			return err
		}
		if t.After(f.From) {
			f.From = t
		}
	case "before":
		t, err := parseDate(val, raw)
		if err != nil {
			return err
		}
		if f.To.IsZero() || t.Before(f.To) {
			f.To = t
		}
	}

	return nil
}

func plainValues(val string) []string {
	var out []string
	for v := range strings.SplitSeq(val, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
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
// (cases.ParseTime); raw is the term in messages.
func parseDate(val, raw string) (time.Time, error) {
	val = strings.TrimSpace(val)
	t, err := cases.ParseTime(raw, val)
	if err != nil || val == "" {
		return time.Time{}, &QueryError{Term: raw, Message: "date must be YYYY-MM-DD or RFC 3339"}
	}
	return t, nil
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

	if err := enum("tag", &f.Tags, plain); err != nil {
		return f, err
	}

	for _, a := range v["assignee"] {
		f.Assignees = appendUnique(f.Assignees, strings.TrimSpace(a))
	}

	if s := v.Get("from"); s != "" {
		t, err := parseDate(s, "from="+s)
		if err != nil {
			return f, err
		}
		f.From = t
	}

	if s := v.Get("to"); s != "" {
		t, err := parseDate(s, "to="+s)
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

// HasText reports whether the query has any words or phrases to rank by;
// without them engines order by recency.
func (q Query) HasText() bool { return len(q.Words) > 0 || len(q.Phrases) > 0 }
