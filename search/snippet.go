package search

import (
	"html"
	"slices"
	"strings"
	"unicode/utf8"
)

// Span is a matched byte range [Start, End) in a text.
type Span struct{ Start, End int }

// SnippetRunes is roughly how many characters of context a snippet keeps.
const SnippetRunes = 200

// Snippet renders text for a result list: every byte of the text is
// HTML-escaped, the matched spans are wrapped in <mark>…</mark>, and the text
// is cut to about maxRunes characters around the first match (with "…" where
// it was cut). Spans out of range, inside a rune or overlapping are
// tolerated, so engines can pass whatever offsets they got.
func Snippet(text string, matches []Span, maxRunes int) string {
	spans := cleanSpans(text, matches)
	from, to := window(text, spans, maxRunes)
	var b strings.Builder
	if from > 0 {
		b.WriteString("…")
	}
	pos := from
	for _, s := range spans {
		if s.End <= from || s.Start >= to {
			continue
		}
		st, en := max(s.Start, from), min(s.End, to)
		b.WriteString(html.EscapeString(text[pos:st]))
		b.WriteString("<mark>")
		b.WriteString(html.EscapeString(text[st:en]))
		b.WriteString("</mark>")
		pos = en
	}
	b.WriteString(html.EscapeString(text[pos:to]))
	if to < len(text) {
		b.WriteString("…")
	}
	return b.String()
}

// cleanSpans clamps spans to the text and to rune boundaries, sorts them and
// merges overlaps.
func cleanSpans(text string, in []Span) []Span {
	out := make([]Span, 0, len(in))
	for _, s := range in {
		s.Start, s.End = max(s.Start, 0), min(s.End, len(text))
		for s.Start > 0 && s.Start < len(text) && !utf8.RuneStart(text[s.Start]) {
			s.Start--
		}
		for s.End < len(text) && !utf8.RuneStart(text[s.End]) {
			s.End++
		}
		if s.Start < s.End {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Span) int { return a.Start - b.Start })
	merged := out[:0]
	for _, s := range out {
		if n := len(merged); n > 0 && s.Start <= merged[n-1].End {
			merged[n-1].End = max(merged[n-1].End, s.End)
			continue
		}
		merged = append(merged, s)
	}
	return merged
}

// window picks [from, to) holding about maxRunes runes: starting a little
// before the first match, never cutting a match or a rune in half, and
// preferring to cut at white space.
func window(text string, spans []Span, maxRunes int) (int, int) {
	if maxRunes <= 0 || utf8.RuneCountInString(text) <= maxRunes {
		return 0, len(text)
	}

	from := 0
	if len(spans) > 0 {
		// keep about a quarter of the budget as lead-in
		from = spans[0].Start
		for n := 0; from > 0 && n < maxRunes/4; n++ {
			_, size := utf8.DecodeLastRuneInString(text[:from])
			from -= size
		}
		if from > 0 {
			if sp := strings.IndexAny(text[from:spans[0].Start], " \n\t"); sp >= 0 {
				from += sp + 1
			}
		}
	}

	to := from
	for n := 0; to < len(text) && n < maxRunes; n++ {
		_, size := utf8.DecodeRuneInString(text[to:])
		to += size
	}

	for _, s := range spans {
		if s.Start < to && s.End > to {
			to = s.End
		}
	}

	if to < len(text) {
		if sp := strings.LastIndexAny(text[from:to], " \n\t"); sp > (to-from)/2 {
			cut := from + sp
			inside := false
			for _, s := range spans {
				if s.Start < cut && s.End > cut {
					inside = true
				}
			}
			if !inside {
				to = cut
			}
		}
	}

	return from, to
}
