package meili

import (
	"html"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
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
func buildQ(words, phrases, excluded []string) string {
	var parts []string
	for _, p := range phrases {
		if s := cleanTerm(p); s != "" {
			parts = append(parts, `"`+s+`"`)
		}
	}
	for _, x := range excluded {
		// Always a negated phrase, even for one word: exclusion is exact
		// (no typo, no prefix), and `-"e-mail"` cannot be misread as two
		// terms the way `-e-mail` could.
		if s := cleanTerm(x); s != "" {
			parts = append(parts, `-"`+s+`"`)
		}
	}
	for _, w := range words {
		if s := cleanTerm(w); s != "" {
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

// matchBounds is one entry of Meilisearch's _matchesPosition: byte offsets
// into the attribute's value.
type matchBounds struct {
	Start  int `json:"start"`
	Length int `json:"length"`
}

const (
	snippetMax    = 240 // bytes of source text shown around the first match
	snippetBefore = 60  // bytes of context kept before the first match
	markOpen      = "<mark>"
	markClose     = "</mark>"
	ellipsis      = "…"
)

// snippet renders text with the given matches wrapped in <mark>…</mark> and
// everything else HTML-escaped. It never uses Meilisearch's own highlighted
// output, because Meilisearch does not escape the rest of the text: a body
// containing "<mark>" or "<script>" literally must come out as text.
// Match bounds come from the server and are treated as untrusted: they are
// clamped to the text, aligned to UTF-8 boundaries and de-overlapped.
func snippet(text string, matches []matchBounds) string {
	ms := normalizeMatches(text, matches)

	from, to := 0, len(text)
	if len(text) > snippetMax {
		anchor := 0
		if len(ms) > 0 {
			anchor = ms[0].Start
		}
		from = max(0, anchor-snippetBefore)
		to = min(len(text), from+snippetMax)
		if to-from < snippetMax { // near the end: show a full window
			from = max(0, to-snippetMax)
		}
		from = runeStart(text, from)
		to = runeEnd(text, to)
	}

	var b strings.Builder
	if from > 0 {
		b.WriteString(ellipsis)
	}
	pos := from
	for _, m := range ms {
		s, e := max(m.Start, from), min(m.Start+m.Length, to)
		if s >= e {
			continue
		}
		b.WriteString(html.EscapeString(text[pos:s]))
		b.WriteString(markOpen)
		b.WriteString(html.EscapeString(text[s:e]))
		b.WriteString(markClose)
		pos = e
	}
	b.WriteString(html.EscapeString(text[pos:to]))
	if to < len(text) {
		b.WriteString(ellipsis)
	}
	return b.String()
}

func normalizeMatches(text string, in []matchBounds) []matchBounds {
	out := make([]matchBounds, 0, len(in))
	for _, m := range in {
		if m.Length <= 0 || m.Start < 0 || m.Start >= len(text) {
			continue
		}
		s := runeStart(text, m.Start)
		e := runeEnd(text, min(len(text), m.Start+m.Length))
		if e > s {
			out = append(out, matchBounds{Start: s, Length: e - s})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	merged := out[:0]
	for _, m := range out {
		if n := len(merged); n > 0 && m.Start <= merged[n-1].Start+merged[n-1].Length {
			last := &merged[n-1]
			last.Length = max(last.Length, m.Start+m.Length-last.Start)
			continue
		}
		merged = append(merged, m)
	}
	return merged
}

// runeStart moves i back to the first byte of the rune containing it.
func runeStart(s string, i int) int {
	for i > 0 && i < len(s) && !utf8.RuneStart(s[i]) {
		i--
	}
	return i
}

// runeEnd moves i forward past the rune it falls inside of.
func runeEnd(s string, i int) int {
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return i
}
