package meili

import (
	"strings"
	"testing"

	"github.com/casevault/casevault/search"
)

func TestBuildQ(t *testing.T) {
	tests := []struct {
		name                     string
		words, phrases, excluded []string
		want                     string
	}{
		{"nothing", nil, nil, nil, ""},
		{"words", []string{"refund", "late"}, nil, nil, "refund late"},
		{"phrase and exclusion first", []string{"card"}, []string{"chargeback filed"}, []string{"spam"}, `"chargeback filed" -"spam" card`},
		{"quote in word cannot open a phrase", []string{`foo"`, `"bar`}, nil, nil, "foo bar"},
		{"quote in phrase cannot close it", nil, []string{`a" -secret "b`}, nil, `"a secret b"`},
		{"leading minus in word is not an exclusion", []string{"-refund", "--x"}, nil, nil, "refund x"},
		{"minus after space inside word", []string{"a -b"}, nil, nil, "a b"},
		{"hyphen inside word kept", []string{"e-mail"}, nil, []string{"re-open"}, `-"re-open" e-mail`},
		{"minus after punctuation dropped", []string{"x.-y"}, nil, nil, "x. y"},
		{"exclusion cannot smuggle a positive phrase", nil, nil, []string{`x" "y`}, `-"x y"`},
		{"empty parts dropped", []string{"", `"`, "-"}, []string{" ", `""`}, []string{"--"}, ""},
		{"whitespace and control collapse", []string{"a\t\nb\x00c"}, nil, nil, "a b c"},
		{"chinese", []string{"退款"}, []string{"银行 卡"}, nil, `"银行 卡" "退款"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := buildTerms(tt.words, tt.phrases, tt.excluded); got != tt.want {
				t.Fatalf("buildQ = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSnippet(t *testing.T) {
	long := strings.Repeat("lorem ipsum ", 60) + "REFUND here" + strings.Repeat(" dolor sit", 60)
	at := strings.Index(long, "REFUND")
	tests := []struct {
		name    string
		text    string
		matches []matchBounds
		want    string
	}{
		{"no match", "hello <b>", nil, "hello &lt;b&gt;"},
		{"one match", "my refund please", []matchBounds{{3, 6}}, "my <mark>refund</mark> please"},
		{"markup in body is escaped", `<mark>x</mark> <script>alert(1)</script> refund`, []matchBounds{{41, 6}},
			"&lt;mark&gt;x&lt;/mark&gt; &lt;script&gt;alert(1)&lt;/script&gt; <mark>refund</mark>"},
		{"match text escaped too", `a&b`, []matchBounds{{0, 3}}, "<mark>a&amp;b</mark>"},
		{"multibyte", "我要退款谢谢", []matchBounds{{6, 6}}, "我要<mark>退款</mark>谢谢"},
		{"mid-rune bounds widened", "我要退款", []matchBounds{{7, 2}}, "我要<mark>退</mark>款"},
		{"out of range ignored", "abc", []matchBounds{{10, 2}, {-1, 2}, {1, 0}}, "abc"},
		{"length past end clamped", "abc", []matchBounds{{1, 99}}, "a<mark>bc</mark>"},
		{"overlapping merged", "abcdef", []matchBounds{{3, 2}, {1, 3}}, "a<mark>bcde</mark>f"},
		{"unsorted", "ab cd", []matchBounds{{3, 2}, {0, 2}}, "<mark>ab</mark> <mark>cd</mark>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := snippet(tt.text, tt.matches); got != tt.want {
				t.Fatalf("snippet = %q\nwant      %q", got, tt.want)
			}
		})
	}

	t.Run("long text windows around the first match", func(t *testing.T) {
		got := snippet(long, []matchBounds{{at, 6}})
		if !strings.HasPrefix(got, "…") || !strings.HasSuffix(got, "…") {
			t.Fatalf("want ellipses on both sides: %q", got)
		}
		if !strings.Contains(got, "<mark>REFUND</mark> here") {
			t.Fatalf("match missing: %q", got)
		}
		plain := strings.NewReplacer("<mark>", "", "</mark>", "", "…", "").Replace(got)
		if n := len([]rune(plain)); n > search.SnippetRunes+20 {
			t.Fatalf("window of %d runes, want about %d", n, search.SnippetRunes)
		}
	})
	t.Run("long text without match shows the start", func(t *testing.T) {
		got := snippet(long, nil)
		if !strings.HasPrefix(got, "lorem ipsum") || !strings.HasSuffix(got, "…") {
			t.Fatalf("got %q", got)
		}
	})
}

func TestHasTerms(t *testing.T) {
	tests := []struct {
		words, phrases []string
		want           bool
	}{
		{nil, nil, false},
		{[]string{"*", `"`, "--"}, []string{"()"}, false},
		{[]string{"refund"}, nil, true},
		{nil, []string{"退款"}, true},
		{[]string{"4111"}, nil, true},
	}
	for _, tt := range tests {
		if got := hasTerms(tt.words, tt.phrases); got != tt.want {
			t.Errorf("hasTerms(%q, %q) = %v", tt.words, tt.phrases, got)
		}
	}
}

func TestPageFor(t *testing.T) {
	for _, tt := range []struct{ offset, limit int }{
		{0, 20}, {20, 20}, {1, 10}, {15, 10}, {999_990, 20}, {1_000_005, 10}, {7, 1}, {123_457, 50},
	} {
		page, per, ok := pageFor(tt.offset, tt.limit)
		if !ok {
			t.Errorf("pageFor(%d,%d) found no page", tt.offset, tt.limit)
			continue
		}
		lo, hi := (page-1)*per, page*per
		if per < tt.limit || lo > tt.offset || hi < tt.offset+tt.limit {
			t.Errorf("pageFor(%d,%d) = page %d of %d covers [%d,%d)", tt.offset, tt.limit, page, per, lo, hi)
		}
	}
}
