package meili

import (
	"strings"
	"unicode"
)

// Chinese, Japanese and Korean text means the same on both engines: a CJK
// word matches wherever its characters occur in a row (收到 finds 没收到,
// 卡号 finds 银行卡号码). Bleve indexes CJK bigrams; Meilisearch segments
// Chinese with jieba, whose words do not cut where the agent's query does
// (没收到 is 没收 + 到). So every document carries a hidden searchable field
// (cjk) holding the bigrams of its CJK runs, each bigram a word of its own,
// and the query sends each CJK run as a phrase of its bigrams: a phrase of
// consecutive bigrams is exactly "these characters in a row".

// isCJK is the set Bleve's CJK bigram filter works on: ideographs, kana and
// hangul.
func isCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul)
}

// cjkRuns returns the runs of CJK characters in s.
func cjkRuns(s string) [][]rune {
	var out [][]rune
	var cur []rune
	for _, r := range s {
		if isCJK(r) {
			cur = append(cur, r)
			continue
		}
		if len(cur) > 0 {
			out = append(out, cur)
			cur = nil
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// bigrams renders a run as space-separated bigrams (a lone character as
// itself, as Bleve's filter does).
func bigrams(run []rune) string {
	if len(run) == 1 {
		return string(run)
	}
	var b strings.Builder
	for i := 0; i+1 < len(run); i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(string(run[i : i+2]))
	}
	return b.String()
}

// unigrams renders a run as space-separated characters.
func unigrams(run []rune) string {
	var b strings.Builder
	for i, r := range run {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// cjkField is the hidden field's value for one text: its runs' bigrams,
// runs separated by a full stop so that no phrase spans two runs. Empty
// when the text has no CJK.
func cjkField(text string) string {
	runs := cjkRuns(text)
	parts := make([]string, 0, 2*len(runs))
	for _, r := range runs {
		parts = append(parts, bigrams(r))
		// and its characters one by one, as a part of their own so that
		// no bigram phrase runs into them: a one-character query (退, sent
		// as a phrase of itself) finds every contact holding it, also
		// where it ends a run (请帮我退 has no bigram starting with 退) or
		// where Meilisearch's segmenter keeps a bigram whole (退款).
		if len(r) > 1 {
			parts = append(parts, unigrams(r))
		}
	}
	return strings.Join(parts, ". ")
}

// cjkTerm rewrites a query word or phrase for Meilisearch: every CJK run
// becomes its bigrams, so the phrase built from the result matches the
// hidden field. ok is false when term has no CJK (sent as it is).
func cjkTerm(term string) (string, bool) {
	if len(cjkRuns(term)) == 0 {
		return term, false
	}
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) > 0 {
			b.WriteByte(' ')
			b.WriteString(bigrams(run))
			b.WriteByte(' ')
			run = nil
		}
	}
	for _, r := range term {
		if isCJK(r) {
			run = append(run, r)
			continue
		}
		flush()
		b.WriteRune(r)
	}
	flush()
	return strings.Join(strings.Fields(b.String()), " "), true
}
