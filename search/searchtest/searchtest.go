// Package searchtest is the conformance suite every search.Engine must pass.
//
// It indexes a seeded, generated corpus (English and Chinese text, cases
// without contacts, special cases with markup, masked numbers and quotes)
// and compares every answer with a reference model of the same data
// (data.go). Semantics it pins down:
//
//   - An engine matches contacts: all words, phrases and contact filters
//     (channel, purpose, from/to) hold for the same contact, whose text is
//     the case subject plus the contact body. A case without contacts is a
//     single document with the subject only; contact filters never match
//     it. The snippet shows the body, or the subject when only it matched.
//   - Words are ANDed; a word with no letter or digit is ignored; a word of
//     several tokens ("e-mail") needs all of them. A word of 5–8 characters
//     tolerates one typo, of 9 and more two, shorter none, and a typo on the
//     first character counts as two (Meilisearch's rules). Chinese is
//     matched by substring (阅读 finds 阅读记录). Excluded entries are
//     phrases that must not occur.
//   - One hit per case; Total counts cases; facets count cases (for channel
//     and purpose: cases with a matching contact having the value).
//   - Sorts: newest/oldest by the newest/oldest matching contact's
//     occurred_at (a case without contacts by its created_at); updated by
//     the case's updated_at; relevance without words behaves as newest.
//   - Paging by Offset/Limit reaches every case exactly once.
//
// Engines may be eventually consistent: assertions poll until they hold or
// a timeout passes.
package searchtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/testkit"
)

// Options tune a run; the zero value is the full suite.
type Options struct {
	Cases   int           // generated cases (default 1300; deep paging needs 1200+)
	Timeout time.Duration // how long to poll for eventual consistency (default 30s)
	// NoStemming: the engine matches English words as typed, with typos
	// but without their inflections (Meilisearch); the suite then checks
	// that documented difference instead of stemming.
	NoStemming bool
}

// Run runs the suite. newEngine must return an empty engine (a fresh index)
// each time it is called; the suite closes it.
func Run(t *testing.T, newEngine func(t *testing.T) search.Engine) {
	RunWith(t, Options{}, newEngine)
}

// RunWith is Run with options.
func RunWith(t *testing.T, o Options, newEngine func(t *testing.T) search.Engine) {
	if o.Cases == 0 {
		o.Cases = 1300
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if err := checkVocabulary(); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	c := generate(42, o.Cases)
	eng := newEngine(t)
	t.Cleanup(func() { _ = eng.Close() })
	if err := eng.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	for chunk := range slices.Chunk(c.cases, 250) {
		if err := eng.Index(ctx, chunk); err != nil {
			t.Fatalf("Index: %v", err)
		}
	}
	s := &suite{eng: eng, c: c, timeout: o.Timeout}
	s.eventually(t, "Count", func() error { return checkCount(ctx, eng, int64(len(c.cases))) })
	if eng.Name() == "" || eng.IndexName() == "" {
		t.Errorf("Name %q IndexName %q: both must be set", eng.Name(), eng.IndexName())
	}

	t.Run("Filters", s.testFilters)
	t.Run("Sorts", s.testSorts)
	t.Run("Facets", s.testFacets)
	t.Run("Typos", s.testTypos)
	t.Run("Exact", s.testExact)
	t.Run("Chinese", s.testChinese)
	t.Run("PhraseAndExclusion", s.testPhraseExclusion)
	t.Run("DeepPaging", s.testDeepPaging)
	t.Run("OneHitPerCase", s.testOneHitPerCase)
	t.Run("Snippet", s.testSnippet)
	t.Run("MaskedNumbers", s.testMasked)
	t.Run("NoToken", s.testNoToken)
	t.Run("Injection", s.testInjection)
	t.Run("DeleteAndReplace", func(t *testing.T) { testMutations(t, newEngine, o.Timeout) })
	t.Run("Agreement", func(t *testing.T) { testAgreement(t, newEngine, o.Timeout) })
	t.Run("Issue16", func(t *testing.T) { testIssue16(t, newEngine, o.Timeout) })
	t.Run("Issue16Words", func(t *testing.T) { testIssue16Words(t, newEngine, o) })
	t.Run("Customers", func(t *testing.T) { testCustomers(t, newEngine, o.Timeout) })
	t.Run("Appended", func(t *testing.T) { testAppended(t, newEngine, o.Timeout) })
}

type suite struct {
	eng     search.Engine
	c       *corpus
	timeout time.Duration
}

// eventually retries check until it returns nil or the timeout passes.
func (s *suite) eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	eventually(t, s.timeout, what, check)
}

func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	var last error
	// Eventually stops the test with Goexit, which still runs this: the
	// failure then says why the last check failed.
	defer func() {
		if last != nil {
			t.Logf("%s: last check: %v", what, last)
		}
	}()
	testkit.Eventually(t, timeout, what, func() bool {
		last = check()
		return last == nil
	})
}

// all pages through q (limit per page) and returns the hits in order, or an
// error if a page is inconsistent with the total.
func all(ctx context.Context, eng search.Engine, q search.Query, limit int) ([]search.Hit, int64, error) {
	q.Limit = limit
	var hits []search.Hit
	var total int64 = -1
	for q.Offset = 0; ; q.Offset += limit {
		res, err := eng.Search(ctx, q)
		if err != nil {
			return nil, 0, err
		}
		if total >= 0 && res.Total != total {
			return nil, 0, fmt.Errorf("total changed between pages: %d then %d", total, res.Total)
		}
		total = res.Total
		if len(res.Hits) > limit {
			return nil, 0, fmt.Errorf("page of %d hits for limit %d", len(res.Hits), limit)
		}
		hits = append(hits, res.Hits...)
		if len(res.Hits) < limit {
			break
		}
		if q.Offset > 100000 {
			return nil, 0, fmt.Errorf("paging does not end")
		}
	}
	return hits, total, nil
}

func caseIDs(hits []search.Hit) []string {
	ids := make([]string, len(hits))
	for i, h := range hits {
		ids[i] = h.CaseID
	}
	return ids
}

// findExactly waits until q finds exactly the cases want (hits and total).
func findExactly(t *testing.T, ctx context.Context, eng search.Engine, timeout time.Duration, q search.Query, want ...string) {
	t.Helper()
	slices.Sort(want)
	eventually(t, timeout, fmt.Sprintf("%+v", q), func() error {
		res, err := eng.Search(ctx, q)
		if err != nil {
			return err
		}
		got := caseIDs(res.Hits)
		slices.Sort(got)
		if !slices.Equal(got, want) || res.Total != int64(len(want)) {
			return fmt.Errorf("got %v (total %d), want %v", got, res.Total, want)
		}
		return nil
	})
}

func diff(got, want []string) string {
	g, w := map[string]bool{}, map[string]bool{}
	for _, x := range got {
		g[x] = true
	}
	for _, x := range want {
		w[x] = true
	}
	var extra, missing []string
	for x := range g {
		if !w[x] {
			extra = append(extra, x)
		}
	}
	for x := range w {
		if !g[x] {
			missing = append(missing, x)
		}
	}
	slices.Sort(extra)
	slices.Sort(missing)
	trim := func(s []string) []string { return s[:min(len(s), 8)] }
	return fmt.Sprintf("got %d want %d; unexpected %v (%d), missing %v (%d)", len(got), len(want), trim(extra), len(extra), trim(missing), len(missing))
}

// sameSet checks the engine's hits for q against the model (order ignored,
// one hit per case, each hit's contact a matching one).
func (s *suite) sameSet(t *testing.T, name string, q search.Query) expected {
	t.Helper()
	ex := s.c.expect(q)
	s.eventually(t, name, func() error {
		hits, total, err := all(t.Context(), s.eng, q, 200)
		if err != nil {
			return err
		}
		got := caseIDs(hits)
		if total != int64(len(ex.ids)) || len(got) != len(ex.ids) {
			return fmt.Errorf("total %d, %s", total, diff(got, ex.ids))
		}
		sorted := slices.Clone(got)
		slices.Sort(sorted)
		if !slices.Equal(sorted, slices.Sorted(slices.Values(ex.ids))) {
			return fmt.Errorf("%s", diff(got, ex.ids))
		}
		return checkContacts(hits, ex)
	})
	return ex
}

func checkContacts(hits []search.Hit, ex expected) error {
	for _, h := range hits {
		us := ex.units[h.CaseID]
		ok := false
		for _, u := range us {
			if u.ct == nil && h.ContactID == "" || u.ct != nil && u.ct.ID == h.ContactID {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("hit %s shows contact %q, which does not match", h.CaseID, h.ContactID)
		}
	}
	return nil
}

func (s *suite) testFilters(t *testing.T) {
	from := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		q    search.Query
	}{
		{"all", search.Query{}},
		{"status", search.Query{Filter: search.Filter{Statuses: []string{"open"}}}},
		{"statuses", search.Query{Filter: search.Filter{Statuses: []string{"pending", "closed"}}}},
		{"channel", search.Query{Filter: search.Filter{Channels: []string{"email"}}}},
		{"priority", search.Query{Filter: search.Filter{Priorities: []string{"urgent", "high"}}}},
		{"customer", search.Query{Filter: search.Filter{CustomerIDs: []string{"cus-007", "cus-042"}}}},
		{"assignee", search.Query{Filter: search.Filter{Assignees: []string{"chen wei"}}}},
		{"tag", search.Query{Filter: search.Filter{Tags: []string{"vip"}}}},
		{"tags", search.Query{Filter: search.Filter{Tags: []string{"legal", "follow-up"}}}},
		{"purpose", search.Query{Filter: search.Filter{Purposes: []string{"fraud_monitoring"}}}},
		{"case ids", search.Query{Filter: search.Filter{CaseIDs: []string{"case-00001", "case-00002", "case-00003", "nope"}}}},
		{"from", search.Query{Filter: search.Filter{From: from}}},
		{"to", search.Query{Filter: search.Filter{To: to}}},
		{"from to", search.Query{Filter: search.Filter{From: from, To: to}}},
		{"word", search.Query{Words: []string{"refund"}}},
		{"two words", search.Query{Words: []string{"refund", "printer"}}},
		{"three words two filters", search.Query{Words: []string{"invoice", "late", "courier"}, Filter: search.Filter{Statuses: []string{"open", "pending"}, Channels: []string{"email", "chat"}}}},
		{"word channel purpose same contact", search.Query{Words: []string{"warranty"}, Filter: search.Filter{Channels: []string{"phone"}, Purposes: []string{"security"}}}},
		{"word in subject or body", search.Query{Words: []string{commonWord, "battery"}}},
		{"everything", search.Query{Words: []string{"payment"}, Filter: search.Filter{
			Statuses: []string{"open", "pending", "resolved"}, Channels: []string{"email", "web", "phone"},
			Priorities: []string{"normal", "high", "low"}, Tags: []string{"vip", "billing", "legal"},
			Assignees: []string{"ann", "bob"}, Purposes: []string{"customer_service", "security", "notification", "consented"},
			From: from, To: to.AddDate(0, 3, 0)}}},
		{"no match", search.Query{Words: []string{"zzzzzzzz"}}},
		// issue 16: negated field terms, OR, groups, numbers, updated,
		// folded keywords
		{"negated tag", search.Query{Words: []string{"refund"}, Not: search.Filter{Tags: []string{"vip"}}}},
		{"negated status", search.Query{Not: search.Filter{Statuses: []string{"open"}}}},
		{"negated channel purpose", search.Query{Words: []string{"printer"}, Not: search.Filter{Channels: []string{"email"}, Purposes: []string{"security"}}}},
		{"negated customer assignee priority", search.Query{Not: search.Filter{CustomerIDs: []string{"cus-007"}, Assignees: []string{"Ann"}, Priorities: []string{"low"}}}},
		{"or words", search.Query{Groups: []search.Group{{Any: []search.Query{{Words: []string{"refund"}}, {Words: []string{"printer"}}}}}}},
		{"or filters", search.Query{Groups: []search.Group{{Any: []search.Query{{Filter: search.Filter{Statuses: []string{"open"}}}, {Filter: search.Filter{Tags: []string{"vip"}}}}}}}},
		{"or mixed", search.Query{Words: []string{"cable"}, Groups: []search.Group{{Any: []search.Query{{Words: []string{"laptop"}}, {Filter: search.Filter{Channels: []string{"phone"}}}}}}}},
		{"or typo", search.Query{Groups: []search.Group{{Any: []search.Query{{Words: []string{"refxnd"}}, {Phrases: []string{"late parcel"}}}}}}},
		{"negated group", search.Query{Words: []string{"refund"}, Groups: []search.Group{{Negated: true, Any: []search.Query{{Words: []string{"printer"}}, {Filter: search.Filter{Tags: []string{"billing"}}}}}}}},
		{"negated group of two", search.Query{Words: []string{"invoice"}, Groups: []search.Group{{Negated: true, Any: []search.Query{{Words: []string{"late", "courier"}}}}}}},
		{"nested", search.Query{Groups: []search.Group{{Any: []search.Query{
			{Words: []string{"invoice"}, Groups: []search.Group{{Any: []search.Query{{Words: []string{"late"}}, {Words: []string{"courier"}}}}}},
			{Phrases: []string{"late parcel"}, Filter: search.Filter{Statuses: []string{"closed"}}}}}}}},
		{"or dates", search.Query{Words: []string{"battery"}, Groups: []search.Group{{Any: []search.Query{{Filter: search.Filter{From: to}}, {Filter: search.Filter{Statuses: []string{"closed"}}}}}}}},
		{"negated date group", search.Query{Words: []string{"monitor"}, Groups: []search.Group{{Negated: true, Any: []search.Query{{Filter: search.Filter{From: from, To: to}}}}}}},
		{"or chinese", search.Query{Groups: []search.Group{{Any: []search.Query{{Words: []string{"退款"}}, {Words: []string{"账户安全"}, Filter: search.Filter{Statuses: []string{"open"}}}}}}}},
		{"numbers", search.Query{Filter: search.Filter{Numbers: []int64{1, 2, 3, 500, 99999}}}},
		{"negated numbers", search.Query{Words: []string{"refund"}, Not: search.Filter{Numbers: []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}}},
		{"updated", search.Query{Filter: search.Filter{UpdatedFrom: from, UpdatedTo: to}}},
		{"updated or number", search.Query{Filter: search.Filter{UpdatedTo: to}, Groups: []search.Group{{Any: []search.Query{{Words: []string{"cable"}}, {Filter: search.Filter{Numbers: []int64{900}}}}}}}},
		{"folded tag assignee", search.Query{Filter: search.Filter{Tags: []string{"VIP", "Legal"}, Assignees: []string{"Chen Wei"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := s.sameSet(t, tt.name, tt.q)
			if tt.name != "no match" && len(ex.ids) == 0 {
				t.Fatalf("generated data has no match for %s: the test would prove nothing", tt.name)
			}
		})
	}
}

func (s *suite) testSorts(t *testing.T) {
	for _, sort := range []search.SortOrder{search.SortNewest, search.SortOldest, search.SortUpdated} {
		for _, q := range []search.Query{
			{Sort: sort},
			{Sort: sort, Words: []string{"delivery"}, Filter: search.Filter{Statuses: []string{"open", "resolved"}}},
			{Sort: sort, Filter: search.Filter{Channels: []string{"chat"}, From: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)}},
			{Sort: sort, Groups: []search.Group{{Any: []search.Query{{Words: []string{"voucher"}}, {Words: []string{"coupon"}, Filter: search.Filter{Statuses: []string{"open"}}}}}}},
		} {
			name := fmt.Sprintf("%s/%v/%v/%d", sort, q.Words, q.Filter.Channels, len(q.Groups))
			t.Run(name, func(t *testing.T) {
				ex := s.c.expect(q)
				s.eventually(t, name, func() error {
					hits, _, err := all(t.Context(), s.eng, q, 100)
					if err != nil {
						return err
					}
					got := caseIDs(hits)
					if !slices.Equal(got, ex.ids) {
						for i := range min(len(got), len(ex.ids)) {
							if got[i] != ex.ids[i] {
								return fmt.Errorf("order differs at %d: got %s want %s (%s)", i, got[i], ex.ids[i], diff(got, ex.ids))
							}
						}
						return fmt.Errorf("%s", diff(got, ex.ids))
					}
					return nil
				})
			})
		}
	}
	t.Run("relevance", func(t *testing.T) {
		q := search.Query{Words: []string{"refund", "cable"}}
		s.sameSet(t, "relevance", q)
		res, err := s.eng.Search(t.Context(), search.Query{Words: []string{"refund", "cable"}, Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(res.Hits); i++ {
			if res.Hits[i].Score > res.Hits[i-1].Score {
				t.Fatalf("relevance order: hit %d score %v above hit %d score %v", i, res.Hits[i].Score, i-1, res.Hits[i-1].Score)
			}
		}
	})
}

func (s *suite) testFacets(t *testing.T) {
	for _, q := range []search.Query{
		{Facets: true},
		{Facets: true, Words: []string{"password"}},
		{Facets: true, Words: []string{"login"}, Filter: search.Filter{Statuses: []string{"open"}, Channels: []string{"email", "chat"}}},
		{Facets: true, Filter: search.Filter{Purposes: []string{"authentication"}}},
		{Facets: true, Not: search.Filter{Tags: []string{"vip"}}, Groups: []search.Group{{Any: []search.Query{{Words: []string{"router"}}, {Words: []string{"screen"}}}}}},
	} {
		name := fmt.Sprintf("%v/%v/%v/%d", q.Words, q.Filter.Statuses, q.Filter.Purposes, len(q.Groups))
		t.Run(name, func(t *testing.T) {
			ex := s.c.expect(q)
			s.eventually(t, name, func() error {
				res, err := s.eng.Search(t.Context(), q)
				if err != nil {
					return err
				}
				if res.Total != int64(len(ex.ids)) {
					return fmt.Errorf("total %d want %d", res.Total, len(ex.ids))
				}
				for _, f := range []string{"status", "channel", "tag", "purpose"} {
					got := maps.Clone(res.Facets[f])
					maps.DeleteFunc(got, func(_ string, n int64) bool { return n == 0 })
					if got == nil {
						got = map[string]int64{}
					}
					if !maps.Equal(got, ex.facets[f]) {
						return fmt.Errorf("facet %s = %v, want %v", f, got, ex.facets[f])
					}
				}
				return nil
			})
		})
	}
}

func (s *suite) testTypos(t *testing.T) {
	tests := []struct {
		typed, meant string // meant "" = must match nothing
	}{
		{"refund", "refund"},
		{"refxnd", "refund"},             // 6 letters, 1 typo
		{"refxnx", ""},                   // 6 letters, 2 typos
		{"ordxr", ""},                    // not in the data either way
		{"lapxop", "laptop"},             // 6, 1
		{"courixr", "courier"},           // 7, 1
		{"delixexy", ""},                 // 8 letters, 2 typos: too many
		{"delivery", "delivery"},         // exact
		{"delivexy", "delivery"},         // 8, 1
		{"complaxnt", "complaint"},       // 9, 1
		{"complxixt", "complaint"},       // 9, 2
		{"instaxlatixn", "installation"}, // 12, 2
		{"ixstaxlatixn", ""},             // 12, 3
		{"cxrd", ""},                     // 4 letters: no typo allowed
		{"baxk", ""},                     // 4
		{"card", "card"},                 // 4, exact
		{"xefund", ""},                   // 6, first-character typo counts two
		{"xomplaint", "complaint"},       // 9, first-character typo (two) is allowed
		{"xomplaixt", ""},                // 9, first-character typo plus one more
		{"cabxe", "cable"},               // 5, 1
	}
	for _, tt := range tests {
		t.Run(tt.typed, func(t *testing.T) {
			q := search.Query{Words: []string{tt.typed}}
			ex := s.sameSet(t, tt.typed, q)
			if tt.meant == "" {
				if len(ex.ids) != 0 {
					t.Fatalf("model: %q matches %d cases; the vocabulary is too close", tt.typed, len(ex.ids))
				}
				return
			}
			exact := s.c.expect(search.Query{Words: []string{tt.meant}})
			if len(exact.ids) == 0 || !slices.Equal(ex.ids, exact.ids) {
				t.Fatalf("model: %q should find exactly the %d cases of %q, finds %d", tt.typed, len(exact.ids), tt.meant, len(ex.ids))
			}
		})
	}
}

// testExact: an Exact query (legal holds) finds a word as typed, never
// with a typo.
func (s *suite) testExact(t *testing.T) {
	for _, tt := range []struct {
		typed string
		finds bool
	}{{"refund", true}, {"refxnd", false}, {"complaint", true}, {"complxixt", false}} {
		res, err := s.eng.Search(t.Context(), search.Query{Words: []string{tt.typed}, Exact: true, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if res.Total > 0 != tt.finds {
			t.Errorf("exact %q: %d cases, want found=%v", tt.typed, res.Total, tt.finds)
		}
	}
}

func (s *suite) testChinese(t *testing.T) {
	for _, w := range []string{"阅读", "阅读记录", "退款", "账户安全", "信息"} {
		t.Run(w, func(t *testing.T) {
			q := search.Query{Words: []string{w}, Limit: 20}
			ex := s.sameSet(t, w, q)
			if len(ex.ids) == 0 {
				t.Fatal("generated data has no match")
			}
			res, err := s.eng.Search(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range res.Hits {
				if !strings.Contains(h.Snippet, "<mark>") && !strings.Contains(h.Subject, w) {
					t.Errorf("hit %s snippet %q has no <mark>", h.CaseID, h.Snippet)
				}
			}
		})
	}
	s.sameSet(t, "chinese phrase", search.Query{Phrases: []string{"退款申请"}, Words: []string{"refund"}})
}

func (s *suite) testPhraseExclusion(t *testing.T) {
	tests := []search.Query{
		{Phrases: []string{"refund invoice"}},
		{Phrases: []string{"late parcel"}, Filter: search.Filter{Statuses: []string{"open", "closed"}}},
		{Words: []string{"printer"}, Excluded: []string{"cable"}},
		{Words: []string{"printer"}, Excluded: []string{"cable", "refund"}},
		{Words: []string{"router"}, Excluded: []string{"bank transfer"}},
		{Words: []string{"balance"}, Excluded: []string{"阅读记录"}},
		{Excluded: []string{"mobile"}, Filter: search.Filter{Statuses: []string{"pending"}}},
	}
	for _, q := range tests {
		name := fmt.Sprintf("%v-%v-%v", q.Words, q.Phrases, q.Excluded)
		t.Run(name, func(t *testing.T) {
			ex := s.sameSet(t, name, q)
			if len(ex.ids) == 0 {
				t.Fatal("generated data has no match")
			}
		})
	}
}

func (s *suite) testDeepPaging(t *testing.T) {
	for _, q := range []search.Query{
		{Sort: search.SortNewest},
		{Sort: search.SortUpdated},
		{Words: []string{commonWord}},
	} {
		name := fmt.Sprintf("%s/%v", q.Sort, q.Words)
		t.Run(name, func(t *testing.T) {
			ex := s.c.expect(q)
			if len(ex.ids) < 1200 {
				t.Fatalf("only %d matching cases; deep paging needs 1200+", len(ex.ids))
			}
			s.eventually(t, name, func() error {
				hits, total, err := all(t.Context(), s.eng, q, 50)
				if err != nil {
					return err
				}
				seen := map[string]int{}
				for _, h := range hits {
					seen[h.CaseID]++
					if seen[h.CaseID] > 1 {
						return fmt.Errorf("case %s on two pages", h.CaseID)
					}
				}
				if total != int64(len(ex.ids)) || len(hits) != len(ex.ids) {
					return fmt.Errorf("total %d, %s", total, diff(caseIDs(hits), ex.ids))
				}
				return nil
			})
			res, err := s.eng.Search(t.Context(), search.Query{Words: q.Words, Sort: q.Sort, Offset: len(ex.ids), Limit: 50})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Hits) != 0 || res.Total != int64(len(ex.ids)) {
				t.Fatalf("past the end: %d hits, total %d", len(res.Hits), res.Total)
			}
		})
	}
}

func (s *suite) testOneHitPerCase(t *testing.T) {
	// cases where several contacts hold the word
	q := search.Query{Words: []string{"monitor"}}
	ex := s.sameSet(t, "monitor", q)
	multi := 0
	for _, us := range ex.units {
		if len(us) > 1 {
			multi++
		}
	}
	if multi == 0 {
		t.Fatal("generated data has no case with two matching contacts")
	}
}

func (s *suite) findOne(t *testing.T, q search.Query, caseID string) search.Hit {
	t.Helper()
	var hit search.Hit
	s.eventually(t, caseID, func() error {
		res, err := s.eng.Search(t.Context(), q)
		if err != nil {
			return err
		}
		if res.Total != 1 || len(res.Hits) != 1 || res.Hits[0].CaseID != caseID {
			return fmt.Errorf("want only %s, got total %d hits %v", caseID, res.Total, caseIDs(res.Hits))
		}
		hit = res.Hits[0]
		return nil
	})
	return hit
}

func (s *suite) testSnippet(t *testing.T) {
	h := s.findOne(t, search.Query{Words: []string{"refund"}, Filter: search.Filter{CustomerIDs: []string{snippetCustomer}}}, "case-snippet")
	want := "&lt;script&gt;alert(1)&lt;/script&gt; <mark>refund</mark> &amp; &#34;quotes&#34;"
	if h.Snippet != want {
		t.Errorf("snippet %q\nwant %q", h.Snippet, want)
	}
	if h.ContactID != "case-snippet-c" || h.Number == 0 || h.Subject != "special" || h.Status != "open" || h.CustomerID != snippetCustomer || h.SnippetField != "body" {
		t.Errorf("hit fields %+v", h)
	}
	// issue 16: the snippet comes from the field that matched and says
	// which; a match only in the subject shows the subject, marked
	h = s.findOne(t, search.Query{Words: []string{"special"}, Filter: search.Filter{CustomerIDs: []string{snippetCustomer}}}, "case-snippet")
	if h.SnippetField != "subject" || h.Snippet != "<mark>special</mark>" {
		t.Errorf("subject-only match: snippet %q from %q", h.Snippet, h.SnippetField)
	}
	// a long body is trimmed around the first match
	res, err := s.eng.Search(t.Context(), search.Query{Words: []string{"refund"}, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range res.Hits {
		if strings.Contains(h.Snippet, "<script") || len([]rune(h.Snippet)) > 400 {
			t.Errorf("snippet of %s: %q", h.CaseID, h.Snippet)
		}
		if !strings.Contains(strings.ToLower(h.Snippet), "<mark>refund</mark>") {
			t.Errorf("snippet of %s lacks the match: %q", h.CaseID, h.Snippet)
		}
		if h.SnippetField != "body" && h.SnippetField != "subject" {
			t.Errorf("snippet of %s from field %q", h.CaseID, h.SnippetField)
		}
	}
}

func (s *suite) testMasked(t *testing.T) {
	s.findOne(t, search.Query{Words: []string{"1234"}, Filter: search.Filter{CustomerIDs: []string{maskedCustomer}}}, "case-masked")
	for _, q := range []search.Query{
		{Words: []string{maskedOriginal}},
		{Words: []string{maskedOriginal[:6]}},
		{Words: []string{"4111"}},
		{Phrases: []string{"card " + maskedOriginal}},
	} {
		res, err := s.eng.Search(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if res.Total != 0 {
			t.Errorf("%+v finds %d cases: digits behind the mask are searchable", q, res.Total)
		}
	}
	// the '*' run itself is not a token: a query made of it is rejected
	// rather than turned into match-all (issue 12 §6)
	var qe *search.QueryError
	if q, err := search.ParseQuery("************"); !errors.As(err, &qe) {
		t.Errorf("ParseQuery(****) = %+v, %v; want a QueryError", q, err)
	}
}

// testNoToken: a word or phrase the engine cannot index matches nothing,
// alone or beside other terms; it is never dropped (which made "４１１１",
// "ⅻ" and "²³" match every case, issue 12 §6).
func (s *suite) testNoToken(t *testing.T) {
	for _, w := range []string{"４１１１", "²³", "ⅻ", "①", "൰", "****", "\u200b"} {
		for _, q := range []search.Query{
			{Words: []string{w}},
			{Phrases: []string{w}},
			{Words: []string{"refund", w}},
			{Words: []string{w}, Filter: search.Filter{Statuses: []string{"open"}}},
		} {
			res, err := s.eng.Search(t.Context(), q)
			if err != nil {
				t.Fatalf("%+v: %v", q, err)
			}
			if res.Total != 0 || len(res.Hits) != 0 {
				t.Errorf("%+v matches %d cases, want none", q, res.Total)
			}
		}
	}
	// Through the parser the same input either searches its normalised
	// form or is rejected; it never matches every case.
	everything, err := s.eng.Count(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"４１１１", "²³", "ⅻ", "൰", `"" ****`} {
		q, err := search.ParseQuery(in)
		if err != nil {
			continue
		}
		res, err := s.eng.Search(t.Context(), q)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if res.Total == everything {
			t.Errorf("%q matches all %d cases", in, everything)
		}
	}
}

var injections = []string{
	`status:open OR customer:x`,
	`x" OR status = "open`,
	`x\" OR status = \"open`,
	`x' OR '1'='1`,
	`(status = open)`,
	`) OR (status = open`,
	`\`,
	`"`,
	`customer_id != "nobody"`,
	`* OR 1=1 --`,
	`status IN [open, closed]`,
	`_geoRadius(0, 0, 1)`,
}

func (s *suite) testInjection(t *testing.T) {
	ctx := t.Context()
	for _, in := range injections {
		t.Run(in, func(t *testing.T) {
			for _, f := range []search.Filter{
				{CustomerIDs: []string{in}},
				{Tags: []string{in}},
				{Assignees: []string{in}},
				{Statuses: []string{in}},
				{Channels: []string{in}},
				{Purposes: []string{in}},
				{CaseIDs: []string{in}},
				{Statuses: []string{"closed"}, CustomerIDs: []string{in}},
			} {
				res, err := s.eng.Search(ctx, search.Query{Filter: f})
				if err != nil {
					t.Fatalf("filter %+v: %v", f, err)
				}
				if res.Total != 0 {
					t.Fatalf("filter value %q matched %d cases", in, res.Total)
				}
			}
			for _, q := range []search.Query{
				{Words: []string{in}},
				{Phrases: []string{in}},
				{Words: []string{"refund"}, Excluded: []string{in}},
			} {
				res, err := s.eng.Search(ctx, q)
				if err != nil {
					t.Fatalf("query %+v: %v", q, err)
				}
				ex := s.c.expect(q)
				if len(q.Excluded) > 0 {
					// excluding text no document holds excludes nothing
					if res.Total != int64(len(s.c.expect(search.Query{Words: q.Words}).ids)) {
						t.Fatalf("%+v: total %d", q, res.Total)
					}
					continue
				}
				if res.Total != 0 && int64(len(ex.ids)) == 0 {
					t.Fatalf("%+v matched %d cases", q, res.Total)
				}
			}
			pq, err := search.ParseQuery(in)
			if err == nil {
				if _, err := s.eng.Search(ctx, pq); err != nil {
					t.Fatalf("parsed %q: %v", in, err)
				}
			}
		})
	}
	// values with quotes and backslashes match exactly themselves
	s.findOne(t, search.Query{Filter: search.Filter{CustomerIDs: []string{quoteCustomer}}}, "case-quoted")
	s.findOne(t, search.Query{Filter: search.Filter{Tags: []string{quoteTag}}}, "case-quoted")
	s.findOne(t, search.Query{Words: []string{"quoted"}, Filter: search.Filter{Tags: []string{quoteTag}, CustomerIDs: []string{quoteCustomer}}}, "case-quoted")
}

// testMutations uses its own engine: delete, replace and re-index.
func testMutations(t *testing.T, newEngine func(t *testing.T) search.Engine, timeout time.Duration) {
	ctx := t.Context()
	eng := newEngine(t)
	t.Cleanup(func() { _ = eng.Close() })
	at := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	mk := func(id, status string, bodies ...string) search.CaseDoc {
		c := search.CaseDoc{CaseID: id, Number: 1, CustomerID: "cus-m", Subject: "mutation " + id, Status: status,
			Priority: "low", Channel: "chat", CreatedAt: at, UpdatedAt: at}
		for i, b := range bodies {
			c.Contacts = append(c.Contacts, search.ContactDoc{ID: fmt.Sprintf("%s-%d", id, i), Channel: "chat",
				Direction: "inbound", Body: b, OccurredAt: at.Add(time.Duration(i) * time.Minute), Purposes: []string{"customer_service"}})
		}
		return c
	}
	find := func(q search.Query, want ...string) {
		t.Helper()
		findExactly(t, ctx, eng, timeout, q, want...)
	}
	count := func(want int64) {
		t.Helper()
		eventually(t, timeout, "Count", func() error { return checkCount(ctx, eng, want) })
	}
	docs := []search.CaseDoc{
		mk("m1", "open", "walrus refund", "zeppelin question"),
		mk("m2", "open", "walrus laptop"),
		mk("m3", "pending"),
		mk("m4", "closed", "walrus"),
	}
	if err := eng.Index(ctx, docs); err != nil {
		t.Fatal(err)
	}
	count(4)
	find(search.Query{Words: []string{"walrus"}}, "m1", "m2", "m4")
	find(search.Query{Words: []string{"zeppelin"}}, "m1")
	find(search.Query{Filter: search.Filter{Statuses: []string{"pending"}}}, "m3")

	// re-index m1 without its zeppelin contact and with a new status
	m1 := mk("m1", "resolved", "walrus refund")
	if err := eng.Index(ctx, []search.CaseDoc{m1}); err != nil {
		t.Fatal(err)
	}
	find(search.Query{Words: []string{"zeppelin"}})
	find(search.Query{Filter: search.Filter{Statuses: []string{"open"}}}, "m2")
	find(search.Query{Filter: search.Filter{Statuses: []string{"resolved"}}, Words: []string{"walrus"}}, "m1")
	count(4)

	// a case that gains its first contact loses its case-only document
	if err := eng.Index(ctx, []search.CaseDoc{mk("m3", "pending", "zeppelin")}); err != nil {
		t.Fatal(err)
	}
	find(search.Query{Words: []string{"zeppelin"}}, "m3")
	find(search.Query{Filter: search.Filter{Statuses: []string{"pending"}}}, "m3")
	res, err := eng.Search(ctx, search.Query{Filter: search.Filter{CaseIDs: []string{"m3"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hits) != 1 || res.Hits[0].ContactID != "m3-0" {
		t.Fatalf("m3 hits %+v", res.Hits)
	}
	// and one that loses all contacts gets one
	if err := eng.Index(ctx, []search.CaseDoc{mk("m4", "closed")}); err != nil {
		t.Fatal(err)
	}
	find(search.Query{Words: []string{"walrus"}}, "m1", "m2")
	find(search.Query{Filter: search.Filter{Statuses: []string{"closed"}}}, "m4")

	if err := eng.Delete(ctx, []string{"m2", "m4", "never-indexed"}); err != nil {
		t.Fatal(err)
	}
	count(2)
	find(search.Query{Words: []string{"walrus"}}, "m1")
	find(search.Query{}, "m1", "m3")
	if err := eng.Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := eng.Index(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// checkVocabulary guards the generator's promise that typo tolerance and
// prefix search cannot confuse two vocabulary words.
func checkVocabulary() error {
	words := append(slices.Clone(vocabulary), commonWord)
	for i, a := range words {
		for _, b := range words[i+1:] {
			if d := levenshtein(a, b); d < 3 {
				return fmt.Errorf("vocabulary words %q and %q are %d edits apart", a, b, d)
			}
			if strings.HasPrefix(a, b) || strings.HasPrefix(b, a) {
				return fmt.Errorf("vocabulary word %q is a prefix of %q", a, b)
			}
		}
	}
	return nil
}

// checkCount checks that the index holds want cases: the total of a search
// for everything, and Count, which is cheap and may count documents
// (Meilisearch: contacts and contactless cases) rather than cases, so it
// is never below.
func checkCount(ctx context.Context, eng search.Engine, want int64) error {
	res, err := eng.Search(ctx, search.Query{Limit: 1})
	if err != nil {
		return err
	}
	if res.Total != want {
		return fmt.Errorf("search total = %d, want %d cases", res.Total, want)
	}
	n, err := eng.Count(ctx)
	if err != nil {
		return err
	}
	if n < want {
		return fmt.Errorf("count = %d, below %d cases", n, want)
	}
	return nil
}

// testAgreement pins down meanings the two engines used to disagree on
// (issue 20 §10, §11), on a small index of its own.
func testAgreement(t *testing.T, newEngine func(t *testing.T) search.Engine, timeout time.Duration) {
	ctx := t.Context()
	eng := newEngine(t)
	t.Cleanup(func() { _ = eng.Close() })
	at := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	mk := func(id, customer string, tags []string, bodies ...string) search.CaseDoc {
		c := search.CaseDoc{CaseID: id, Number: 1, CustomerID: customer, Subject: "agreement " + id, Status: "open",
			Priority: "low", Channel: "chat", Tags: tags, CreatedAt: at, UpdatedAt: at}
		for i, b := range bodies {
			c.Contacts = append(c.Contacts, search.ContactDoc{ID: fmt.Sprintf("%s-%d", id, i), Channel: "chat",
				Direction: "inbound", Body: b, OccurredAt: at.Add(time.Duration(i) * time.Minute), Purposes: []string{"customer_service"}})
		}
		return c
	}
	docs := []search.CaseDoc{
		mk("zh1", "cus-zh", nil, "我的包裹还没收到"),
		mk("zh2", "cus-zh", nil, "请核对银行卡号码"),
		mk("zh3", "cus-zh", nil, "我的信用卡被盗刷了"),
		mk("up1", "Cus-Upper", []string{"VIP"}, "upper walrus", "second walrus", "third walrus"),
		mk("lo1", "cus-lower", []string{"billing"}, "lower walrus"),
	}
	if err := eng.Index(ctx, docs); err != nil {
		t.Fatal(err)
	}
	find := func(t *testing.T, q search.Query, want ...string) {
		t.Helper()
		findExactly(t, ctx, eng, timeout, q, want...)
	}

	// Chinese is matched by substring on both engines, whatever a word
	// segmenter makes of the text: 收到 is in 没收到 although jieba cuts
	// 没收 + 到.
	t.Run("ChineseSubstring", func(t *testing.T) {
		for _, tt := range []struct{ word, want string }{
			{"收到", "zh1"}, {"卡号", "zh2"}, {"盗刷", "zh3"}, {"银行卡号码", "zh2"}, {"被盗刷", "zh3"},
		} {
			t.Run(tt.word, func(t *testing.T) {
				find(t, search.Query{Words: []string{tt.word}}, tt.want)
				find(t, search.Query{Phrases: []string{tt.word}}, tt.want)
				find(t, search.Query{Words: []string{"agreement"}, Excluded: []string{tt.word}, Filter: search.Filter{CustomerIDs: []string{"cus-zh"}}},
					slices.DeleteFunc([]string{"zh1", "zh2", "zh3"}, func(s string) bool { return s == tt.want })...)
			})
		}
	})

	// Identifiers compare exactly, as typed; tags and assignees are
	// case-folded on both sides (issue 16: tag:VIP found nothing).
	t.Run("ExactFilters", func(t *testing.T) {
		find(t, search.Query{Filter: search.Filter{Tags: []string{"VIP"}}}, "up1")
		find(t, search.Query{Filter: search.Filter{Tags: []string{"vip"}}}, "up1")
		find(t, search.Query{Filter: search.Filter{Tags: []string{"Billing"}}}, "lo1")
		find(t, search.Query{Filter: search.Filter{CustomerIDs: []string{"Cus-Upper"}}}, "up1")
		find(t, search.Query{Filter: search.Filter{CustomerIDs: []string{"cus-upper"}}})
		find(t, search.Query{Filter: search.Filter{CustomerIDs: []string{"CUS-LOWER"}}})
	})

	// Facets count cases on every page, also where an engine cannot use
	// its page mode (an offset no page size covers).
	t.Run("FacetsOnAnyPage", func(t *testing.T) {
		want := map[string]int64{"vip": 1, "billing": 1}
		for _, w := range []struct{ offset, limit int }{{0, 20}, {839, 2}, {1, 2}, {3, 2}} {
			q := search.Query{Words: []string{"walrus"}, Facets: true, Offset: w.offset, Limit: w.limit}
			eventually(t, timeout, fmt.Sprintf("facets at %d/%d", w.offset, w.limit), func() error {
				res, err := eng.Search(ctx, q)
				if err != nil {
					return err
				}
				got := maps.Clone(res.Facets["tag"])
				maps.DeleteFunc(got, func(_ string, n int64) bool { return n == 0 })
				if res.Total != 2 || !maps.Equal(got, want) || res.Facets["status"]["open"] != 2 || res.Facets["channel"]["chat"] != 2 {
					return fmt.Errorf("total %d facets %v", res.Total, res.Facets)
				}
				return nil
			})
		}
	})
}

// testIssue16 runs the queries of issue 16 §1 and §2 as an agent types
// them (through ParseQuery), on a small index of its own.
func testIssue16(t *testing.T, newEngine func(t *testing.T) search.Engine, timeout time.Duration) {
	ctx := t.Context()
	eng := newEngine(t)
	t.Cleanup(func() { _ = eng.Close() })
	now := time.Now().UTC()
	mk := func(id string, number int64, status, assignee string, updated time.Time, tags []string, bodies ...string) search.CaseDoc {
		c := search.CaseDoc{CaseID: id, Number: number, CustomerID: "cus-16", Subject: "issue sixteen " + id, Status: status,
			Priority: "low", Channel: "email", Assignee: assignee, Tags: tags, CreatedAt: updated, UpdatedAt: updated}
		for i, b := range bodies {
			c.Contacts = append(c.Contacts, search.ContactDoc{ID: fmt.Sprintf("%s-%d", id, i), Channel: "email",
				Direction: "inbound", Body: b, OccurredAt: updated.Add(-time.Duration(i+1) * time.Hour), Purposes: []string{"customer_service"}})
		}
		return c
	}
	old := now.AddDate(0, 0, -60)
	docs := []search.CaseDoc{
		mk("v1", 1234, "open", "Alice", now, []string{"VIP"}, "refund for the duplicate charge"),
		mk("v2", 1235, "closed", "Bob", old, []string{"billing"}, "refund declined", "chargeback filed by the bank"),
		mk("v3", 1236, "pending", "ALICE", now, nil, "chargeback question"),
		mk("v4", 1237, "open", "", old, []string{"vip", "legal"}),
	}
	if err := eng.Index(ctx, docs); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		q    string
		want []string
	}{
		{"refund -tag:vip", []string{"v2"}},
		{"refund -tag:VIP", []string{"v2"}},
		{"-status:open", []string{"v2", "v3"}},
		{"-status:open -status:closed", []string{"v3"}},
		{"refund OR chargeback", []string{"v1", "v2", "v3"}},
		{"refund chargeback", []string{}},
		{"(refund OR chargeback) -status:closed", []string{"v1", "v3"}},
		{"refund OR chargeback -tag:billing", []string{"v1", "v2", "v3"}},
		{"sixteen -(refund OR chargeback)", []string{"v4"}},
		{"status:closed OR tag:legal", []string{"v2", "v4"}},
		{"tag:VIP", []string{"v1", "v4"}},
		{"tag:Legal", []string{"v4"}},
		{"assignee:alice", []string{"v1", "v3"}},
		{"assignee:Alice -tag:vip", []string{"v3"}},
		{"#1234", []string{"v1"}},
		{"number:1235,1236", []string{"v2", "v3"}},
		{"-#1234 refund", []string{"v2"}},
		{"updated:>30d", []string{"v1", "v3"}},
		{"updated:<30d", []string{"v2", "v4"}},
		{"after:7d", []string{"v1", "v3"}},
		{"before:7d", []string{"v2"}},
		{"chargeback after:7d", []string{"v3"}},
	} {
		t.Run(tt.q, func(t *testing.T) {
			q, err := search.ParseQuery(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			findExactly(t, ctx, eng, timeout, q, tt.want...)
		})
	}

	// Facets are disjunctive within a field: selecting status:open still
	// shows how many cases are pending or closed; other fields' facets
	// follow the filter.
	t.Run("DisjunctiveFacets", func(t *testing.T) {
		q, err := search.ParseQuery("sixteen status:open")
		if err != nil {
			t.Fatal(err)
		}
		q.Facets = true
		wantStatus := map[string]int64{"open": 2, "closed": 1, "pending": 1}
		wantTag := map[string]int64{"vip": 2, "legal": 1}
		eventually(t, timeout, "disjunctive facets", func() error {
			res, err := eng.Search(ctx, q)
			if err != nil {
				return err
			}
			st, tg := maps.Clone(res.Facets["status"]), maps.Clone(res.Facets["tag"])
			maps.DeleteFunc(st, func(_ string, n int64) bool { return n == 0 })
			maps.DeleteFunc(tg, func(_ string, n int64) bool { return n == 0 })
			if res.Total != 2 || !maps.Equal(st, wantStatus) || !maps.Equal(tg, wantTag) {
				return fmt.Errorf("total %d status %v tag %v", res.Total, st, tg)
			}
			return nil
		})
	})
}

// testIssue16Words: English words find their inflections where the engine
// stems ("refund" misses "Refunded the duplicate charge" otherwise), and a
// single Chinese character finds every contact holding it although the
// index is of bigrams.
func testIssue16Words(t *testing.T, newEngine func(t *testing.T) search.Engine, o Options) {
	ctx := t.Context()
	eng := newEngine(t)
	t.Cleanup(func() { _ = eng.Close() })
	at := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	mk := func(id, body string) search.CaseDoc {
		return search.CaseDoc{CaseID: id, Number: 1, CustomerID: "cus-w", Subject: "words " + id, Status: "open",
			Priority: "low", Channel: "chat", CreatedAt: at, UpdatedAt: at,
			Contacts: []search.ContactDoc{{ID: id + "-0", Channel: "chat", Direction: "inbound", Body: body,
				OccurredAt: at, Purposes: []string{"customer_service"}}}}
	}
	docs := []search.CaseDoc{
		mk("en1", "Refunded the duplicate charge"),
		mk("en2", "refund requested by phone"),
		mk("en3", "the customer refunds nothing and charges twice"),
		mk("en4", "the parcel never arrived"),
		mk("zh1", "退款"),       // 退 only inside a word (jieba keeps 退款 whole)
		mk("zh2", "我要退款"),     // in the middle of a run
		mk("zh3", "请帮我退"),     // last character of a run: no bigram starts with it
		mk("zh4", "退 refund"), // alone
		mk("zh5", "没有问题，谢谢"),  // no 退
	}
	if err := eng.Index(ctx, docs); err != nil {
		t.Fatal(err)
	}
	type row struct {
		q    string
		want []string
	}
	// English: stemmed on Bleve; Meilisearch matches whole words with
	// typos (one from 5 letters) and, prefixSearch being disabled, no
	// prefixes (README, Search: the engines differ here).
	rows := []row{
		{"refund", []string{"en1", "en2", "en3", "zh4"}},
		{"refunded", []string{"en1", "en2", "en3", "zh4"}},
		{"duplicate refund", []string{"en1"}},
	}
	if o.NoStemming {
		rows = []row{
			{"refund", []string{"en2", "en3", "zh4"}},
			{"refunded", []string{"en1"}},
			{"duplicate refund", []string{}},
		}
	}
	rows = append(rows,
		row{"charge", []string{"en1", "en3"}},
		row{`"refund"`, []string{"en2", "zh4"}}, // a phrase is exact: no stemming
		row{"退", []string{"zh1", "zh2", "zh3", "zh4"}},
		row{"退款", []string{"zh1", "zh2"}},
		row{"我退", []string{"zh3"}},
		row{"退 refund", []string{"zh4"}},
	)
	for _, tt := range rows {
		t.Run(tt.q, func(t *testing.T) {
			q, err := search.ParseQuery(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			findExactly(t, ctx, eng, o.Timeout, q, tt.want...)
		})
	}
}
