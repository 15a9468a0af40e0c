package bleve

import (
	"bytes"
	"slices"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/lang/cjk"
)

// widthFilter is Bleve's cjk_width for the tokens it can change. That
// filter turns every token into runes and back (a tenth of a contact
// document's analysis, issue 19), though it folds only the fullwidth ASCII
// variants (U+FF01–U+FF5E) and the halfwidth katakana (U+FF65–U+FF9F),
// whose UTF-8 begins with the byte 0xEF. A token of valid UTF-8 without
// that byte comes out of it as it went in (runes and back is the identity
// on valid UTF-8), so it is left as it is; every other token, invalid
// UTF-8 included (which the filter replaces by U+FFFD), goes through
// Bleve's filter.
type widthFilter struct{ fold analysis.TokenFilter }

func (w widthFilter) Filter(in analysis.TokenStream) analysis.TokenStream {
	for i, t := range in {
		if bytes.IndexByte(t.Term, 0xEF) >= 0 || !utf8.Valid(t.Term) {
			w.fold.Filter(in[i : i+1])
		}
	}
	return in
}

// fastWidth returns a's chain with widthFilter in place of the cjk_width
// filter that leads its token filters (a as it is otherwise): the same
// tokens, so documents analysed with it match queries the mapping's
// analyser reads, and the stored mapping is unchanged. A term it leaves
// is then a slice of the input, which the lower-case filter after it
// rewrites in place, as every Bleve analyser without a copying filter
// does: callers pass bytes of their own (each of ours converts a string).
func fastWidth(a analysis.Analyzer) analysis.Analyzer {
	d, ok := a.(*analysis.DefaultAnalyzer)
	if !ok || len(d.TokenFilters) == 0 {
		return a
	}

	if _, ok := d.TokenFilters[0].(*cjk.CJKWidthFilter); !ok {
		return a
	}

	fs := slices.Clone(d.TokenFilters)
	fs[0] = widthFilter{fold: fs[0]}
	return &analysis.DefaultAnalyzer{CharFilters: d.CharFilters, Tokenizer: d.Tokenizer, TokenFilters: fs}
}
