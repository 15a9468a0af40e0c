package search

import (
	"errors"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/casevault/casevault/cases"
)

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseQuery(t *testing.T) {
	tests := []struct {
		in   string
		want Query
	}{
		{"", Query{}},
		{"refund", Query{Words: []string{"refund"}}},
		{"  refund   card  refund ", Query{Words: []string{"refund", "card"}}},
		{`status:open channel:email refund`, Query{Words: []string{"refund"}, Filter: Filter{Statuses: []string{"open"}, Channels: []string{"email"}}}},
		{`status:OPEN status:pending,closed`, Query{Filter: Filter{Statuses: []string{"open", "pending", "closed"}}}},
		{`tag:vip tag:"gold member" customer:cus_1 assignee:"Jane Doe"`, Query{Filter: Filter{Tags: []string{"vip", "gold member"}, CustomerIDs: []string{"cus_1"}, Assignees: []string{"jane doe"}}}},
		{`purpose:fraud_monitoring priority:high`, Query{Filter: Filter{Purposes: []string{"fraud_monitoring"}, Priorities: []string{"high"}}}},
		{`after:2025-06-01 before:2026-01-01`, Query{Filter: Filter{From: day("2025-06-01"), To: day("2026-01-01")}}},
		{`after:2025-06-01 after:2025-07-01 before:2026-01-01 before:2025-12-01`, Query{Filter: Filter{From: day("2025-07-01"), To: day("2025-12-01")}}},
		{`after:2025-06-01T10:00:00+02:00`, Query{Filter: Filter{From: time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)}}},
		{`"exact phrase" -excluded word`, Query{Words: []string{"word"}, Phrases: []string{"exact phrase"}, Excluded: []string{"excluded"}}},
		{`-"not this" "unterminated phrase`, Query{Phrases: []string{"unterminated phrase"}, Excluded: []string{"not this"}}},
		{`re: 10:30 http://example.com`, Query{Words: []string{"re", "10", "30", "http", "example.com"}}},
		{`status: open`, Query{Words: []string{"status", "open"}}},
		{`阅读 记录`, Query{Words: []string{"阅读", "记录"}}},
		{`refund ? ****`, Query{Words: []string{"refund"}}},
		// Issue 12 §6: these used to give no word and match everything.
		{`４１１１`, Query{Words: []string{"4111"}}},
		{`ⅻ`, Query{Words: []string{"xii"}}},
		{`²³`, Query{Words: []string{"23"}}},
		{`① "②③"`, Query{Words: []string{"1"}, Phrases: []string{"23"}}},
		{`Ｒｅｆｕｎｄ`, Query{Words: []string{"Refund"}}},
		// Issue 12 §5: a card number is masked before anything else.
		{`card 4111 1111 1111 1111`, Query{Words: []string{"card", "1111"}}},
		{`４１１１.１１１１.１１１１.１１１１`, Query{Words: []string{"1111"}}},
		{`status:open OR customer:x`, Query{Groups: []Group{{Any: []Query{{Filter: Filter{Statuses: []string{"open"}}}, {Filter: Filter{CustomerIDs: []string{"x"}}}}}}}},
		{`(refund) AND \card\ "a\"b"`, Query{Words: []string{"AND", "card", "b"}, Phrases: []string{"a"}, Groups: []Group{{Any: []Query{{Words: []string{"refund"}}}}}}},
		{`customer:"x\" OR status=\"open"`, Query{Groups: []Group{{Any: []Query{{Filter: Filter{CustomerIDs: []string{`x\`}}}, {Words: []string{"status"}, Phrases: []string{"open"}}}}}}},
		{`o'brien e-mail user@example.com`, Query{Words: []string{"o'brien", "e-mail", "user@example.com"}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseQuery(tt.in)
			if err != nil {
				t.Fatalf("ParseQuery(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseQuery(%q)\n got %#v\nwant %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseQueryErrors(t *testing.T) {
	tests := []struct {
		in, term string
	}{
		{"status:opened", "status:opened"},
		{"refund channel:fax", "channel:fax"},
		{"purpose:marketing", "purpose:marketing"},
		{"priority:none", "priority:none"},
		{"status:open,bogus", "status:open,bogus"},
		{"before:yesterday", "before:yesterday"},
		{"after:2025-13-01", "after:2025-13-01"},
		{strings.Repeat("a", MaxQueryBytes+1), ""},
		{strings.Repeat("a ", MaxQueryTerms+1), ""},
		// Issue 12 §8: comma-joined words count one by one.
		{strings.TrimSuffix(strings.Repeat("a,", MaxQueryTerms+1), ","), ""},
		{`"` + strings.Repeat("a ", MaxQueryTerms+1) + `"` + strings.Repeat(" b", MaxQueryTerms), ""},
		{"customer:" + strings.TrimSuffix(strings.Repeat("c,", MaxQueryTerms+1), ","), ""},
		// Issue 20 §11: Meilisearch reads ten words; an eleventh would be
		// dropped there and kept by Bleve, so it is refused on both.
		{strings.Repeat("w ", MaxTextWords+1), ""},
		{`"` + strings.Repeat("p ", MaxTextWords-1) + `" w x`, ""},
		{strings.Repeat("w ", MaxTextWords-1) + "-x -y", ""},
		// Issue 12 §6: no term may silently vanish into match-all.
		{`**** ---- "" - :`, "****"},
		{`""`, `""`},
		{`?`, `?`},
		{"൰", "൰"},
		{`refund ൰ x`, `൰`},
		{"refund -൰", "-൰"},
		{"bad \xff utf8", ""},
		// A field term whose value is only commas names no value; it must
		// not become an empty (match-all) query or an ignored filter.
		{"stAtus:,", "stAtus:,"},
		{"refund tag:,,", "tag:,,"},
		{"customer:,", "customer:,"},
		{"-purpose:,", "-purpose:,"},
		{"number:,", "number:,"},
		{"refund OR channel:,", "channel:,"},
		{`priority:","`, `priority:","`},
		{"number:#,", "number:#,"},
		{"refund assignee:,", "assignee:,"},
		// A date at or before the zero time would read as no bound.
		{"After:0000-01-01", "After:0000-01-01"},
		{"refund before:0001-01-01", "before:0001-01-01"},
		{"updated:>0001-01-01T00:00:00Z", "updated:>0001-01-01T00:00:00Z"},
		// So would an age reaching back past it (ages are capped at
		// 36,600 of any unit, years included).
		{"after:36600y", "after:36600y"},
		{"refund after:3000y", "after:3000y"},
		{"updated:<36600y", "updated:<36600y"},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 40)], func(t *testing.T) {
			_, err := ParseQuery(tt.in)
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("ParseQuery(%q) error = %v, want *QueryError", tt.in, err)
			}
			if qe.Term != tt.term {
				t.Fatalf("Term = %q, want %q", qe.Term, tt.term)
			}
			if qe.Message == "" || tt.term != "" && !strings.Contains(err.Error(), strconv.Quote(tt.term)) {
				t.Fatalf("error %q does not name the term", err)
			}
		})
	}
}

func TestFilterFromValues(t *testing.T) {
	v := url.Values{
		"status": {"open,pending"}, "channel": {"email", "chat"}, "tag": {"vip"},
		"customer_id": {"c1"}, "assignee": {"ann"}, "purpose": {"security"},
		"priority": {"high"}, "from": {"2025-01-01"}, "to": {"2025-02-01T00:00:00Z"},
	}
	got, err := FilterFromValues(v)
	if err != nil {
		t.Fatal(err)
	}
	want := Filter{Statuses: []string{"open", "pending"}, Channels: []string{"email", "chat"}, Tags: []string{"vip"},
		CustomerIDs: []string{"c1"}, Assignees: []string{"ann"}, Purposes: []string{"security"}, Priorities: []string{"high"},
		From: day("2025-01-01"), To: day("2025-02-01")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
	for _, bad := range []url.Values{{"status": {"nope"}}, {"channel": {"fax"}}, {"from": {"x"}}, {"purpose": {"x"}},
		{"status": {","}}, {"channel": {" , "}}, {"tag": {",,"}}, {"customer_id": {","}}, {"priority": {"high", ","}}} {
		if _, err := FilterFromValues(bad); err == nil {
			t.Errorf("FilterFromValues(%v) accepted bad input", bad)
		}
	}

	// An empty parameter is no filter; a trailing comma is no extra value.
	got, err = FilterFromValues(url.Values{"status": {"", "open,"}, "tag": {""}, "customer_id": {" "}})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Filter{Statuses: []string{"open"}}); !reflect.DeepEqual(got, want) {
		t.Fatalf("empty parameters: got %#v, want %#v", got, want)
	}
}

func TestMergeFilter(t *testing.T) {
	tests := []struct {
		name   string
		a, b   Filter
		want   Filter
		wantOK bool
	}{
		{"disjoint fields", Filter{Statuses: []string{"open"}}, Filter{Tags: []string{"vip"}}, Filter{Statuses: []string{"open"}, Tags: []string{"vip"}}, true},
		{"intersection", Filter{Statuses: []string{"open", "pending"}}, Filter{Statuses: []string{"pending", "closed"}}, Filter{Statuses: []string{"pending"}}, true},
		{"empty intersection", Filter{Channels: []string{"email"}}, Filter{Channels: []string{"chat"}}, Filter{}, false},
		{"dates tighten", Filter{From: day("2025-01-01"), To: day("2025-12-01")}, Filter{From: day("2025-03-01"), To: day("2026-01-01")}, Filter{From: day("2025-03-01"), To: day("2025-12-01")}, true},
		{"empty range", Filter{From: day("2025-03-01")}, Filter{To: day("2025-03-01")}, Filter{From: day("2025-03-01"), To: day("2025-03-01")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := MergeFilter(tt.a, tt.b)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if ok && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

// FuzzParseQuery checks that no input panics and that whatever reaches an
// engine as text carries no query syntax.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"４１１１", "ⅻ", "²³", "൰", `**** "" -`, "a,b,c,d", "4111 1111 1111 1111", "refund", `status:open OR customer:x`, `"a \" b" -c`, `tag:"x`, `阅读记录 -"" ::`, `\\"(`, "after:2025-01-01T00:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuery(s)
		if err != nil {
			var qe *QueryError
			var ue *UnknownFieldError
			if !errors.As(err, &qe) && !errors.As(err, &ue) {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if strings.TrimSpace(s) != "" && q.isEmpty() {
			t.Fatalf("ParseQuery(%q) = %#v: non-blank input with no term or filter", s, q)
		}
		words := 0
		var walk func(q Query)
		walk = func(q Query) {
			checkParsed(t, s, q, &words)
			for _, g := range q.Groups {
				for _, a := range g.Any {
					if a.isEmpty() {
						t.Fatalf("ParseQuery(%q): empty alternative in %#v", s, q)
					}
					walk(a)
				}
			}
		}
		walk(q)
	})
}

// checkParsed checks one (sub)query of FuzzParseQuery; words counts the
// words of text over the whole query.
func checkParsed(t *testing.T, s string, q Query, words *int) {
	{
		check := func(kind, w string, spaces bool) {
			if w == "" {
				t.Fatalf("empty %s", kind)
			}
			if strings.ContainsAny(w, "\":\\()") {
				t.Fatalf("%s %q carries syntax", kind, w)
			}
			if !spaces && strings.ContainsFunc(w, unicode.IsSpace) {
				t.Fatalf("%s %q has spaces", kind, w)
			}
			if strings.HasPrefix(w, "-") {
				t.Fatalf("%s %q starts with -", kind, w)
			}
			if !strings.ContainsFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
				t.Fatalf("%s %q has no letter or digit", kind, w)
			}
		}
		for _, w := range q.Words {
			check("word", w, false)
		}
		for _, p := range q.Phrases {
			check("phrase", p, true)
		}
		for _, p := range q.Excluded {
			check("excluded", p, true)
		}
		if n := len(q.Words) + len(q.Phrases) + len(q.Excluded); n > MaxQueryTerms {
			t.Fatalf("%d terms", n)
		}
		*words += len(q.Words)
		for _, p := range append(slices.Clone(q.Phrases), q.Excluded...) {
			*words += len(strings.Fields(p))
		}
		if *words > MaxTextWords {
			t.Fatalf("ParseQuery(%q): %d words of text", s, *words)
		}
		// No card number reaches an engine.
		for _, w := range append(append(append([]string{}, q.Words...), q.Phrases...), q.Excluded...) {
			if m, n := cases.MaskSensitive(w); n != 0 {
				t.Fatalf("term %q holds a maskable number (%q)", w, m)
			}
		}
	}
}

// TestParseQueryIssue16 pins down the syntax of issue 16: negated field
// terms, OR and parentheses, numbers, relative and updated dates, folded
// keywords and unknown fields.
func TestParseQueryIssue16(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	or := func(alts ...Query) Group { return Group{Any: alts} }
	tests := []struct {
		in   string
		want Query
	}{
		{`refund -tag:VIP`, Query{Words: []string{"refund"}, Not: Filter{Tags: []string{"vip"}}}},
		{`-status:open -status:closed`, Query{Not: Filter{Statuses: []string{"open", "closed"}}}},
		{`refund OR chargeback`, Query{Groups: []Group{or(Query{Words: []string{"refund"}}, Query{Words: []string{"chargeback"}})}}},
		// AND binds tighter than OR
		{`a b OR c`, Query{Groups: []Group{or(Query{Words: []string{"a", "b"}}, Query{Words: []string{"c"}})}}},
		{`a (b OR c)`, Query{Words: []string{"a"}, Groups: []Group{or(Query{Words: []string{"b"}}, Query{Words: []string{"c"}})}}},
		{`refund -(tag:vip OR status:closed)`, Query{Words: []string{"refund"}, Groups: []Group{{Negated: true, Any: []Query{
			{Filter: Filter{Tags: []string{"vip"}}}, {Filter: Filter{Statuses: []string{"closed"}}}}}}}},
		{`refund or chargeback`, Query{Words: []string{"refund", "or", "chargeback"}}},
		{`tag:VIP assignee:Ålice`, Query{Filter: Filter{Tags: []string{"vip"}, Assignees: []string{"ålice"}}}},
		{`assignee:STRASSE tag:Straße`, Query{Filter: Filter{Tags: []string{"strasse"}, Assignees: []string{"strasse"}}}},
		{`#1234`, Query{Filter: Filter{Numbers: []int64{1234}}}},
		{`number:12,13 -#14`, Query{Filter: Filter{Numbers: []int64{12, 13}}, Not: Filter{Numbers: []int64{14}}}},
		{`number:#12,#13`, Query{Filter: Filter{Numbers: []int64{12, 13}}}},
		{`after:7d`, Query{Filter: Filter{From: now.AddDate(0, 0, -7)}}},
		{`before:2026-01-01 after:2w`, Query{Filter: Filter{From: now.AddDate(0, 0, -14), To: day("2026-01-01")}}},
		{`-after:24h`, Query{Filter: Filter{To: now.Add(-24 * time.Hour)}}},
		{`before:2000y`, Query{Filter: Filter{To: now.AddDate(-2000, 0, 0)}}},
		{`updated:>30d`, Query{Filter: Filter{UpdatedFrom: now.AddDate(0, 0, -30)}}},
		{`updated:<1y`, Query{Filter: Filter{UpdatedTo: now.AddDate(-1, 0, 0)}}},
		{`updated:>=2026-01-01 updated:<=2026-02-01`, Query{Filter: Filter{UpdatedFrom: day("2026-01-01"), UpdatedTo: day("2026-02-01")}}},
		{`updated:2026-01-05`, Query{Filter: Filter{UpdatedFrom: day("2026-01-05"), UpdatedTo: day("2026-01-06")}}},
		{`-updated:>30d`, Query{Filter: Filter{UpdatedTo: now.AddDate(0, 0, -30)}}},
		{`退 OR 款`, Query{Groups: []Group{or(Query{Words: []string{"退"}}, Query{Words: []string{"款"}})}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseQueryAt(tt.in, now)
			if err != nil {
				t.Fatalf("ParseQueryAt(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseQueryAt(%q)\n got %#v\nwant %#v", tt.in, got, tt.want)
			}
		})
	}

	bad := []struct{ in, term string }{
		{`refund OR`, "OR"},
		{`OR refund`, "OR"},
		{`a OR OR b`, "OR"},
		{`(refund`, "("},
		{`refund)`, ")"},
		{`()`, "()"},
		{`(a OR ?)`, "?"},
		{`number:abc`, "number:abc"},
		{`#0`, "#0"},
		{`updated:30d`, "updated:30d"},
		{`after:7x`, "after:7x"},
		{`-updated:2026-01-01`, "-updated:2026-01-01"},
		{`a b c d e OR f g h i j k`, ""},
		{`refund OR updated:>30d`, "updated:>30d"},
		{`(updated:<2026-01-01)`, "updated:<2026-01-01"},
	}
	for _, tt := range bad {
		t.Run("bad/"+tt.in, func(t *testing.T) {
			_, err := ParseQueryAt(tt.in, now)
			var qe *QueryError
			if !errors.As(err, &qe) || qe.Term != tt.term {
				t.Fatalf("ParseQueryAt(%q) = %v; want a QueryError on %q", tt.in, err, tt.term)
			}
		})
	}

	for _, in := range []string{`subject:refund`, `refund Subject:"late parcel"`, `-foo:bar`} {
		t.Run("unknown/"+in, func(t *testing.T) {
			_, err := ParseQueryAt(in, now)
			var ue *UnknownFieldError
			if !errors.As(err, &ue) || !slices.Equal(ue.Valid, Fields) || !strings.Contains(in, ue.Field+":") {
				t.Fatalf("ParseQueryAt(%q) = %v; want an UnknownFieldError", in, err)
			}
		})
	}
}
