package bleve_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/search/bleve"
)

// TestTermScorerMatchesBleve: the term-at-a-time scorer (scorer.go) gives
// every match the score Bleve's searchers give it, bit for bit, so that
// hits, their order and scores, best contacts, totals and facets are those
// of the plain walk; on an index of several segments with deletions
// (document frequencies and the document count are the snapshot's live
// documents; a term may be missing from a segment) and again compacted.
func TestTermScorerMatchesBleve(t *testing.T) {
	ctx := t.Context()
	eng, err := bleve.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()

	at := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	filler := strings.Fields("the parcel was late and the courier left it at the wrong door so please send a new one soon")
	// typos of zebrafishes: a fuzzy clause with many expansions (Bleve's
	// heap disjunction, whose order of equal documents is its own)
	variants := []string{"zebrafishes", "zebrafishez", "zebrafishas", "zebrafisher", "zebrafishis", "zebrafishos",
		"zebrafishus", "zebrafished", "zebrafishe", "zebrafishea", "zebrafisheb", "zebrafishec"}
	var docs []search.CaseDoc
	for i := range 240 {
		c := search.CaseDoc{CaseID: fmt.Sprintf("c%03d", i), Number: int64(i + 1), Subject: "case " + filler[i%len(filler)],
			Status: []string{"open", "pending", "closed"}[i%3], Channel: "email", CreatedAt: at, UpdatedAt: at.Add(time.Duration(i) * time.Minute)}
		for j := range 1 + i%4 {
			words := []string{}
			for k := range 4 + (i*7+j*3)%17 {
				words = append(words, filler[(i+j*5+k*3)%len(filler)])
			}
			switch {
			case i%5 == 0:
				words = append(words, "refund", "refunds")
			case i%5 == 1:
				words = append(words, "refund", "refund", "refunding")
			case i%5 == 2:
				words = append(words, "refnud", "damaged")
			}
			if i%9 == 0 {
				words = append(words, "damaged", "courier", "courier")
			}
			if i >= 200 {
				// only in the last segments
				words = append(words, "lateword")
			}
			// one or two typos of zebrafishes per contact, or three
			// (ambiguous order) in case c007
			words = append(words, variants[(i+j)%len(variants)])
			if j%2 == 1 {
				words = append(words, variants[(i+j+3)%len(variants)])
			}
			if i == 7 {
				words = append(words, variants[1], variants[2], variants[3])
			}
			c.Contacts = append(c.Contacts, search.ContactDoc{ID: fmt.Sprintf("c%03d-%d", i, j), Channel: []string{"email", "chat"}[j%2],
				Body: strings.Join(words, " "), OccurredAt: at.Add(time.Duration(i*10+j) * time.Minute)})
		}
		docs = append(docs, c)
	}
	for i := 0; i < len(docs); i += 30 {
		if err := eng.Index(ctx, docs[i:min(i+30, len(docs))]); err != nil {
			t.Fatal(err)
		}
	}
	var gone []string
	for i := 0; i < len(docs); i += 6 {
		gone = append(gone, docs[i].CaseID)
	}
	if err := eng.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}

	group := func(negated bool, alts ...[]string) []search.Group {
		g := search.Group{Negated: negated}
		for _, a := range alts {
			g.Any = append(g.Any, search.Query{Words: a})
		}
		return []search.Group{g}
	}
	cases := []struct {
		name   string
		q      search.Query
		scorer bool // the term-at-a-time scorer answers (no fallback)
	}{
		{"single exact term", search.Query{Words: []string{"refund"}, Exact: true}, true},
		{"term and stem", search.Query{Words: []string{"refund"}}, true},
		{"fuzzy with edit-distance boosts", search.Query{Words: []string{"refnud"}}, true},
		{"AND", search.Query{Words: []string{"damaged", "courier"}}, true},
		{"OR group", search.Query{Groups: group(false, []string{"refunding"}, []string{"damaged", "courier"})}, true},
		{"NOT word", search.Query{Words: []string{"refund"}, Excluded: []string{"refunds"}}, true},
		{"NOT group", search.Query{Words: []string{"courier"}, Groups: group(true, []string{"refund"})}, true},
		{"term missing from early segments", search.Query{Words: []string{"lateword"}}, true},
		{"term missing everywhere", search.Query{Words: []string{"courier", "nowhere"}}, true},
		{"with filter", search.Query{Words: []string{"refund", "parcel"}, Filter: search.Filter{Statuses: []string{"open"}}}, true},
		{"heap disjunction, at most two children per document", search.Query{Words: []string{"zebrafishxs", "refunding"}, Filter: search.Filter{Statuses: []string{"closed"}}}, true},
		{"heap disjunction, three children in one document", search.Query{Words: []string{"zebrafishxs"}}, false},
		{"phrase falls back", search.Query{Phrases: []string{"case the"}}, false},
	}
	for _, phase := range []string{"segments", "compacted"} {
		if phase == "compacted" {
			if err := eng.Compact(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range cases {
			for _, facets := range []bool{false, true} {
				q := tc.q
				q.Limit, q.Facets = 50, facets
				ok, err := eng.ScoresByTerms(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if ok != tc.scorer {
					t.Errorf("%s %s: scored by terms %v, want %v", phase, tc.name, ok, tc.scorer)
				}
				got, err := eng.Search(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				want, err := eng.SearchByWalk(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if len(want.Hits) == 0 && tc.name != "term missing everywhere" {
					t.Errorf("%s %s: no hits, the case tests nothing", phase, tc.name)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s %s (facets %v):\nscorer %+v\nwalk   %+v", phase, tc.name, facets, got, want)
				}
			}
		}
	}
}
