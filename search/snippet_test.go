package search

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSnippet(t *testing.T) {
	long := strings.Repeat("lorem ipsum ", 40) + "refund now " + strings.Repeat("dolor sit ", 40)
	at := strings.Index(long, "refund")
	tests := []struct {
		name  string
		text  string
		spans []Span
		max   int
		want  string
	}{
		{"escape and mark", "<script>alert(1)</script> refund", []Span{{26, 32}}, 200, "&lt;script&gt;alert(1)&lt;/script&gt; <mark>refund</mark>"},
		{"no match", `a & b "c"`, nil, 200, "a &amp; b &#34;c&#34;"},
		{"overlap merged", "abcdef", []Span{{1, 3}, {2, 5}}, 200, "a<mark>bcde</mark>f"},
		{"out of range clamped", "abc", []Span{{-5, 1}, {2, 99}}, 200, "<mark>a</mark>b<mark>c</mark>"},
		{"inside rune widened", "阅读记录", []Span{{1, 4}}, 200, "<mark>阅读</mark>记录"},
		{"markup inside match escaped", "x<b>y", []Span{{0, 5}}, 200, "<mark>x&lt;b&gt;y</mark>"},
		{"empty", "", []Span{{0, 3}}, 200, ""},
		{"long trimmed around match", long, []Span{{at, at + 6}}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Snippet(tt.text, tt.spans, tt.max)
			if tt.want != "" || tt.text == "" {
				if got != tt.want {
					t.Fatalf("got %q\nwant %q", got, tt.want)
				}
				return
			}
			if !strings.Contains(got, "<mark>refund</mark>") || !strings.HasPrefix(got, "…") || !strings.HasSuffix(got, "…") {
				t.Fatalf("trimmed snippet %q", got)
			}
			if n := utf8.RuneCountInString(got); n > 230 || n < 100 {
				t.Fatalf("snippet length %d runes: %q", n, got)
			}
		})
	}
}
