package bleve_test

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/search/bleve"
)

// TestPrefilterMatchesWalk: searches answered from the postings bitmaps
// (prefilter.go) return exactly what walking every match with Bleve's
// searchers returns: totals, hits in order with their scores and
// snippets, and the (disjunctive) facet counts. On several segments with
// deletions too, where documents are numbered across segments and a
// deleted document's terms are still in its segment's dictionary, and
// where a case's documents lie in several segments. Half of
// the queries run split over goroutines (a walk in two halves merged, the
// facet views beside it), half in one; the walk without the prefilter is
// compared split in two halves too.
func TestPrefilterMatchesWalk(t *testing.T) {
	ctx := t.Context()
	eng, err := bleve.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	docs := benchCorpus(3000)
	// several segments: indexed in small batches, some cases deleted,
	// some re-indexed with other statuses
	for chunk := range slices.Chunk(docs, 40) {
		if err := eng.Index(ctx, chunk); err != nil {
			t.Fatal(err)
		}
	}
	var gone []string
	for i := 0; i < len(docs); i += 7 {
		gone = append(gone, docs[i].CaseID)
	}
	if err := eng.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}
	for i := 3; i < len(docs); i += 11 {
		docs[i].Status = "closed"
		docs[i].Tags = []string{"vip"}
		if err := eng.Index(ctx, docs[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	// cases spanning segments: a new contact rewrites only its own
	// document and the case's, the others stay in their older segment
	for i, c := range docs {
		if i%5 != 1 || i%7 == 0 {
			continue
		}
		at := c.UpdatedAt.Add(time.Hour)
		c.Contacts = append(slices.Clip(c.Contacts), search.ContactDoc{ID: c.CaseID + "-late", Channel: "sms", Direction: "inbound",
			Author: "customer", Body: "late reply about the refund and the courier", OccurredAt: at, Purposes: []string{string(cases.Purposes[2])}})
		c.UpdatedAt = at
		docs[i] = c
		if err := eng.Index(ctx, docs[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}

	rng := rand.New(rand.NewPCG(3, 5))
	bt := newBenchText(rng)
	filters := []search.Filter{
		{},
		{Statuses: []string{"open"}, Channels: []string{"email"}},
		{Tags: []string{"vip"}, Statuses: []string{"open", "pending"}},
		{Purposes: []string{string(cases.Purposes[2])}, Priorities: []string{"high"}},
		{Channels: []string{"phone", "chat"}, Tags: []string{"billing"}, Assignees: []string{"ann"}},
		{Statuses: []string{"pending"}, From: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)},
		{Statuses: []string{"open"}, UpdatedFrom: time.Date(2024, 9, 1, 0, 0, 0, 0, time.UTC)},
	}
	nots := []search.Filter{{}, {Tags: []string{"legal"}}, {Statuses: []string{"closed"}, Channels: []string{"sms"}}}
	sorts := []search.SortOrder{"", search.SortNewest, search.SortOldest, search.SortUpdated}
	// then on one segment, as a compacted index is: the split walk's merge
	// finds cases by their ord in the segment there (collector.merge)
	for _, phase := range []string{"segments", "compacted"} {
		if phase == "compacted" {
			if err := eng.Compact(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 150 {
			// every other query split over goroutines whatever its size
			// (prefiltered, collector.merge), the rest as production splits
			if i%2 == 0 {
				eng.SetSplitMin(1)
			} else {
				eng.SetSplitMin(1 << 30)
			}
			// every third query scores from decoded postings whatever
			// their length (postings.go)
			if i%3 == 0 {
				eng.SetDecodeMin(1)
			} else {
				eng.SetDecodeMin(1 << 30)
			}
			q := search.Query{Limit: 10, Offset: rng.IntN(3) * 5, Facets: rng.IntN(4) > 0, Filter: filters[rng.IntN(len(filters))], Not: nots[rng.IntN(len(nots))], Sort: sorts[rng.IntN(len(sorts))]}
			for range rng.IntN(3) {
				w := bt.words[rng.IntN(200)]
				switch rng.IntN(6) {
				case 0:
					w = typo(rng, w)
				case 1:
					w = []string{"阅读", "退款", "账户", "物流"}[rng.IntN(4)]
				}
				q.Words = append(q.Words, w)
			}
			if rng.IntN(8) == 0 {
				q.Excluded = []string{bt.words[rng.IntN(40)]}
			}
			q.Exact = rng.IntN(10) == 0
			if i%3 == 0 {
				// the first search has the postings decoded in the
				// background; the one compared scores from them
				if _, err := eng.Search(ctx, q); err != nil {
					t.Fatal(err)
				}
				eng.WaitDecodes()
			}
			got, err := eng.Search(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			want, err := eng.SearchByWalk(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s query %d %+v:\nprefilter %+v\nwalk      %+v", phase, i, q, got, want)
			}
			bleveScored, err := eng.SearchByBleveScores(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(bleveScored, want) {
				t.Fatalf("%s query %d %+v:\nprefilter, Bleve's scores %+v\nwalk                      %+v", phase, i, q, bleveScored, want)
			}
			split, err := eng.SearchBySplitWalk(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(split, want) {
				t.Fatalf("%s query %d %+v:\nsplit walk %+v\nwalk       %+v", phase, i, q, split, want)
			}
			if n := eng.SparesTaken(); n != 0 {
				t.Fatalf("%s query %d: %d spare cores still taken after the searches", phase, i, n)
			}
		}
	}
}

// TestFuzzyCacheFollowsWrites: a typo's expansion is cached per snapshot,
// so a deleted document's word stops matching once it is deleted and a
// new document's word matches as soon as it is indexed.
func TestFuzzyCacheFollowsWrites(t *testing.T) {
	ctx := t.Context()
	eng, err := bleve.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	doc := func(id, body string) search.CaseDoc {
		return search.CaseDoc{CaseID: id, Subject: "s", Status: "open", CreatedAt: at, UpdatedAt: at,
			Contacts: []search.ContactDoc{{ID: id + "-1", Channel: "email", Body: body, OccurredAt: at}}}
	}
	if err := eng.Index(ctx, []search.CaseDoc{doc("a", "zebrafish tank"), doc("b", "printer")}); err != nil {
		t.Fatal(err)
	}
	find := func(word string, f search.Filter) []string {
		t.Helper()
		res, err := eng.Search(ctx, search.Query{Words: []string{word}, Filter: f, Facets: true, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, h := range res.Hits {
			ids = append(ids, h.CaseID)
		}
		return ids
	}
	open := search.Filter{Statuses: []string{"open"}} // the bitmap path
	for _, f := range []search.Filter{{}, open} {
		if got := find("zebrafisx", f); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("before delete %+v: %v", f, got)
		}
	}
	if err := eng.Delete(ctx, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []search.Filter{{}, open} {
		if got := find("zebrafisx", f); len(got) != 0 {
			t.Fatalf("after delete %+v: %v", f, got)
		}
	}
	if err := eng.Index(ctx, []search.CaseDoc{doc("c", "zebrafist")}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []search.Filter{{}, open} {
		if got := find("zebrafisx", f); !slices.Equal(got, []string{"c"}) {
			t.Fatalf("after add %+v: %v", f, got)
		}
	}
}

var _ = bleve.Open

// TestPagesCutFromOneOrder: every page of a broad query, cut by selecting
// its cases rather than sorting them all, is the slice of the full order
// (paged through with a limit covering everything), for every sort.
func TestPagesCutFromOneOrder(t *testing.T) {
	ctx := t.Context()
	eng, err := bleve.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := eng.Index(ctx, benchCorpus(5000)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []search.SortOrder{"", search.SortNewest, search.SortOldest, search.SortUpdated} {
		for _, words := range [][]string{{"the"}, nil} {
			all, err := eng.Search(ctx, search.Query{Words: words, Sort: s, Limit: search.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			if len(all.Hits) < 100 {
				t.Fatalf("sort %q: only %d hits", s, len(all.Hits))
			}
			for _, off := range []int{0, 7, 40, 90} {
				res, err := eng.Search(ctx, search.Query{Words: words, Sort: s, Offset: off, Limit: 10})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(res.Hits, all.Hits[off:off+10]) {
					t.Fatalf("sort %q words %v offset %d: %+v, want %+v", s, words, off, res.Hits, all.Hits[off:off+10])
				}
			}
		}
	}
}
