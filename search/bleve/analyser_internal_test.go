package bleve

import (
	"testing"

	"github.com/blevesearch/bleve/v2/analysis"
)

// widthTexts are texts the engine's analyser must analyse exactly as the
// mapping's: Latin in mixed case, CJK, the fullwidth and halfwidth forms
// cjk_width folds (katakana with voiced marks that combine with the kana
// before them, and one that cannot), letters whose lower case is longer
// or shorter in UTF-8, invalid UTF-8 and the replacement character.
var widthTexts = []string{
	"Hello, I was charged TWICE for my order last week and would like a refund. 我的订单被重复扣款了，请帮我退款。",
	"ＡＢＣ ｄｅｆ １２３ Ｈｅｌｌｏ－Ｗｏｒｌｄ！",
	"ｶﾞｷﾞｸﾞ ﾊﾟﾋﾟ ｳﾞ ｱﾞ ﾞ ｰ ･ ｺﾝﾆﾁﾊ",
	"İstanbul ΣΊΣΥΦΟΣ Straße ǅemal Ⱥlpha ſtop ꞮKELVIN K",
	"mixedＷｉｄｔｈ日本語テキストｶﾀｶﾅ and 中文 한국어 text",
	"bad \xff\xfe bytes \xef\xbc word\xe6\x97 \xef\xbf\xbd end",
	"\xd40 part\xd4s", // a lead byte the tokenizer keeps in a token (found by FuzzFastWidth)
	"emoji 👍🏽 café naïve résumé",
	"",
}

// TestFastWidthAnalysesAsTheMapping: the engine's analyser (widthFilter in
// place of Bleve's cjk_width) makes exactly the tokens of the mapping's
// analyser, so documents analysed with it match queries analysed with the
// mapping's; and it is the engine's analyser.
func TestFastWidthAnalysesAsTheMapping(t *testing.T) {
	e := openInternal(t)
	d, ok := e.text.(*analysis.DefaultAnalyzer)
	if !ok || len(d.TokenFilters) == 0 {
		t.Fatalf("the engine's analyser is %T", e.text)
	}
	if _, ok := d.TokenFilters[0].(widthFilter); !ok {
		t.Fatalf("the engine's analyser leads with %T, not widthFilter", d.TokenFilters[0])
	}

	for _, s := range widthTexts {
		sameTokens(t, e, s)
	}
}

// FuzzFastWidth: any text, the same tokens.
func FuzzFastWidth(f *testing.F) {
	for _, s := range widthTexts {
		f.Add(s)
	}
	e := openInternal(f)
	f.Fuzz(func(t *testing.T, s string) { sameTokens(t, e, s) })
}

func sameTokens(t *testing.T, e *Engine, s string) {
	t.Helper()
	want := e.m.AnalyzerNamed(textAnalyzer).Analyze([]byte(s))
	got := e.text.Analyze([]byte(s))
	if len(got) != len(want) {
		t.Fatalf("%q: %d tokens, the mapping's analyser made %d", s, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if string(g.Term) != string(w.Term) || g.Start != w.Start || g.End != w.End || g.Position != w.Position || g.Type != w.Type || g.KeyWord != w.KeyWord {
			t.Fatalf("%q: token %d is %+v (%q), the mapping's analyser made %+v (%q)", s, i, *g, g.Term, *w, w.Term)
		}
	}
}
