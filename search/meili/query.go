package meili

import (
	"slices"
	"strings"
	"unicode"

	"github.com/casevault/casevault/search"
)

// buildQ renders the typed query parts as Meilisearch's q string. Meilisearch
// gives two characters a meaning in q: a double quote opens or closes a phrase
// and a minus sign at the start of a word or phrase excludes it. User text
// cannot carry either meaning here: double quotes are removed from every
// part, a minus sign survives only inside a word (e-mail), and the quotes and
// minus signs of the result are the ones added below.
//
// Phrases and exclusions come first because Meilisearch reads only the first
// ten words of q and those parts are hard constraints; free words follow.
func buildQ(q search.Query) string {
	// Typo tolerance cannot be turned off per search request (only in the
	// index settings): an exact word is sent as a one-word phrase, which
	// Meilisearch matches without typos or prefixes.
	if q.Exact {
		return buildTerms(nil, append(slices.Clone(q.Phrases), q.Words...), q.Excluded)
	}
	return buildTerms(q.Words, q.Phrases, q.Excluded)
}

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
