package meili

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/casevault/casevault/search"
)

// buildTerms renders the typed query parts of one branch as Meilisearch's q string. Meilisearch
// gives two characters a meaning in q: a double quote opens or closes a phrase
// and a minus sign at the start of a word or phrase excludes it. User text
// cannot carry either meaning here: double quotes are removed from every
// part, a minus sign survives only inside a word (e-mail), and the quotes and
// minus signs of the result are the ones added below.
//
// Phrases and exclusions come first because Meilisearch reads only the first
// ten words of q and those parts are hard constraints; free words follow.
func buildTerms(words, phrases, excluded []string) string {
	var parts []string
	for _, p := range phrases {
		if s := cleanTerm(p); s != "" {
			s, _ = cjkTerm(s)
			parts = append(parts, `"`+s+`"`)
		}
	}
	for _, x := range excluded {
		// Always a negated phrase, even for one word: exclusion is exact
		// (no typo, no prefix), and `-"e-mail"` cannot be misread as two
		// terms the way `-e-mail` could.
		if s := cleanTerm(x); s != "" {
			s, _ = cjkTerm(s)
			parts = append(parts, `-"`+s+`"`)
		}
	}
	for _, w := range words {
		if s := cleanTerm(w); s != "" {
			// A CJK word is a phrase of its bigrams (cjk.go): matched in
			// a row, never with typos, as on the embedded engine.
			if c, ok := cjkTerm(s); ok {
				s = `"` + c + `"`
			}
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " ")
}

// cleanTerm removes the characters that are syntax in q: every double quote,
// and every minus sign that is not between two letters or digits (only a
// minus at the start of a word negates, and separators never match anyway).
// Whitespace runs collapse to one space.
func cleanTerm(s string) string {
	rs := []rune(s)
	out := make([]rune, 0, len(rs))
	wordChar := func(i int) bool {
		return i >= 0 && i < len(rs) && (unicode.IsLetter(rs[i]) || unicode.IsDigit(rs[i]))
	}
	for i, r := range rs {
		switch {
		case r == '"':
			r = ' '
		case r == '-' && !(wordChar(i-1) && wordChar(i+1)):
			r = ' '
		case unicode.IsSpace(r) || unicode.IsControl(r):
			r = ' '
		}
		out = append(out, r)
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

// hasTerms reports whether words and phrases leave anything to match: a
// word without letters or digits is no term (Meilisearch treats it as a
// separator), so such a query is a placeholder search.
func hasTerms(words, phrases []string) bool {
	for _, r := range buildTerms(words, phrases, nil) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return true
		}
	}
	return false
}

// everyTermSearchable reports whether each word and each phrase keeps a
// letter or digit once cleaned: every one of them must match (matching
// strategy "all"), so one that Meilisearch cannot search for means the
// query matches nothing.
func everyTermSearchable(words, phrases []string) bool {
	for _, w := range words {
		if !hasTerms([]string{w}, nil) {
			return false
		}
	}
	for _, p := range phrases {
		if !hasTerms(nil, []string{p}) {
			return false
		}
	}
	return true
}

// matchBounds is one entry of Meilisearch's _matchesPosition: byte offsets
// into the attribute's value.
type matchBounds struct {
	Start  int `json:"start"`
	Length int `json:"length"`
}

// snippet renders text with the given matches wrapped in <mark>…</mark> and
// everything else HTML-escaped, cut around the first match (search.Snippet,
// shared by all engines). It never uses Meilisearch's own highlighted
// output, because Meilisearch does not escape the rest of the text: a body
// containing "<mark>" or "<script>" literally must come out as text. Match
// bounds come from the server and are untrusted; search.Snippet clamps them
// to the text and to UTF-8 boundaries and merges overlaps.
func snippet(text string, matches []matchBounds) string {
	spans := make([]search.Span, 0, len(matches))
	for _, m := range matches {
		if m.Length > 0 && m.Start >= 0 {
			spans = append(spans, search.Span{Start: m.Start, End: m.Start + m.Length})
		}
	}
	return search.Snippet(text, spans, search.SnippetRunes)
}

// maxBranches bounds how many searches one query with OR over text becomes
// (see branches).
const maxBranches = 16

// branch is one conjunctive search Meilisearch can answer in one request:
// q's words, phrases and exclusions, and filter elements that are ANDed.
type branch struct {
	words, phrases, excluded []string
	filters                  []filterExpr
	none                     bool // matches nothing
}

func (b branch) and(o branch) branch {
	return branch{
		words:    append(slices.Clone(b.words), o.words...),
		phrases:  append(slices.Clone(b.phrases), o.phrases...),
		excluded: append(slices.Clone(b.excluded), o.excluded...),
		filters:  append(slices.Clone(b.filters), o.filters...),
		none:     b.none || o.none,
	}
}

func (b branch) text() string { return buildTerms(b.words, b.phrases, b.excluded) }

func cross(as, bs []branch) []branch {
	out := make([]branch, 0, len(as)*len(bs))
	for _, a := range as {
		for _, b := range bs {
			out = append(out, a.and(b))
		}
	}
	return out
}

// hasText reports whether q or any of its groups holds words, phrases or
// exclusions: a group without them is a filter expression.
func hasText(q search.Query) bool {
	if len(q.Words)+len(q.Phrases)+len(q.Excluded) > 0 {
		return true
	}
	for _, g := range q.Groups {
		for _, a := range g.Any {
			if hasText(a) {
				return true
			}
		}
	}
	return false
}

// filterOf is the filter expression of a query without text; ok is false
// when it constrains nothing (matches every document).
func filterOf(q search.Query) (filterExpr, bool) {
	parts := append(buildFilter(q.Filter), buildNot(q.Not)...)
	for _, g := range q.Groups {
		if e, ok := groupFilter(g); ok {
			parts = append(parts, e)
		} else if g.Negated {
			return filterExpr{string(attrRev) + " < 0"}, true // NOT everything: nothing
		}
	}
	if len(parts) == 0 {
		return filterExpr{}, false
	}
	return and(parts...), true
}

// groupFilter is a text-free group as one expression.
func groupFilter(g search.Group) (filterExpr, bool) {
	alts := make([]filterExpr, 0, len(g.Any))
	for _, a := range g.Any {
		e, ok := filterOf(a)
		if !ok {
			return filterExpr{}, false // an alternative that holds always
		}
		alts = append(alts, e)
	}
	e := or(alts...)
	if g.Negated {
		e = not(e)
	}
	return e, true
}

// branches turns q into its disjunctive normal form over text: Meilisearch
// has one q per search, so OR between texts needs one search per
// alternative (Search unions them by case). Filter-only groups stay one
// filter expression. Inside a negated group words are exact (as excluded
// words are): a negated word becomes an exclusion, a word negated twice a
// one-word phrase.
func branches(q search.Query, exact bool) ([]branch, error) {
	base := branch{phrases: slices.Clone(q.Phrases), excluded: slices.Clone(q.Excluded)}
	if exact {
		base.phrases = append(base.phrases, q.Words...)
	} else {
		base.words = slices.Clone(q.Words)
	}
	base.filters = append(buildFilter(q.Filter), buildNot(q.Not)...)
	out := []branch{base}
	for _, g := range q.Groups {
		var alts []branch
		switch {
		case !hasText(search.Query{Groups: []search.Group{g}}):
			if e, ok := groupFilter(g); ok {
				alts = []branch{{filters: []filterExpr{e}}}
			} else if g.Negated {
				alts = []branch{{none: true}}
			} else {
				alts = []branch{{}}
			}
		case !g.Negated:
			for _, a := range g.Any {
				bs, err := branches(a, exact)
				if err != nil {
					return nil, err
				}
				alts = append(alts, bs...)
			}
		default:
			// NOT (a1 OR a2) = NOT a1 AND NOT a2
			alts = []branch{{}}
			for _, a := range g.Any {
				ns, err := negation(a)
				if err != nil {
					return nil, err
				}
				alts = cross(alts, ns)
			}
		}
		out = cross(out, alts)
		if len(out) > maxBranches {
			return nil, tooManyBranches()
		}
	}
	return slices.DeleteFunc(out, func(b branch) bool { return b.none }), nil
}

// negation is NOT q as branches: the OR of each of its parts negated.
func negation(q search.Query) ([]branch, error) {
	var out []branch
	for _, w := range append(slices.Clone(q.Words), q.Phrases...) {
		out = append(out, branch{excluded: []string{w}})
	}
	for _, x := range q.Excluded {
		out = append(out, branch{phrases: []string{x}})
	}
	if e, ok := filterOf(search.Query{Filter: q.Filter, Not: q.Not}); ok {
		out = append(out, branch{filters: []filterExpr{not(e)}})
	}
	for _, g := range q.Groups {
		// NOT g: for a negated g, g's alternatives themselves (exact)
		bs, err := branches(search.Query{Groups: []search.Group{{Any: g.Any, Negated: !g.Negated}}}, true)
		if err != nil {
			return nil, err
		}
		out = append(out, bs...)
	}
	if len(out) > maxBranches {
		return nil, tooManyBranches()
	}
	return out, nil
}

func tooManyBranches() error {
	return &search.QueryError{Message: fmt.Sprintf("more than %d OR alternatives over text (Meilisearch answers each with its own search)", maxBranches)}
}
