package bleve

import (
	"fmt"
	"testing"
	"time"

	"github.com/casevault/casevault/search"
)

// TestDecodedBudgetFollowsSegments: the bytes counted against the decoded
// postings budget are those the index's live segments keep, after
// searches decode postings and after a merge replaces their segments.
func TestDecodedBudgetFollowsSegments(t *testing.T) {
	ctx := t.Context()
	e := openInternal(t)
	e.decodeMin = 1
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for b := range 4 { // several segments
		var docs []search.CaseDoc
		for i := range 30 {
			id := fmt.Sprintf("c%d-%d", b, i)
			docs = append(docs, search.CaseDoc{CaseID: id, Subject: "s", Status: "open", CreatedAt: at, UpdatedAt: at,
				Contacts: []search.ContactDoc{{ID: id + "-1", Channel: "email", Body: "refund for the damaged parcel", OccurredAt: at}}})
		}
		if err := e.Index(ctx, docs); err != nil {
			t.Fatal(err)
		}
	}
	kept := func() int64 {
		e.cols.mu.Lock()
		defer e.cols.mu.Unlock()
		var n int64
		for _, c := range e.cols.segs {
			if cols := c.builtColumns(); cols != nil {
				cols.decoded.mu.Lock()
				n += cols.decoded.size
				cols.decoded.mu.Unlock()
			}
		}
		return n
	}
	run := func() {
		t.Helper()
		for range 2 { // the first decodes in the background
			if _, err := e.Search(ctx, search.Query{Words: []string{"refund", "parcel"}, Limit: 5}); err != nil {
				t.Fatal(err)
			}
			e.WaitDecodes()
		}
	}

	run()
	if got, want := e.cols.decodedSize.Load(), kept(); got == 0 || got != want {
		t.Fatalf("budget counts %d bytes, the segments keep %d (want equal, not 0)", got, want)
	}
	if err := e.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	run()
	if got, want := e.cols.decodedSize.Load(), kept(); got != want {
		t.Fatalf("after the merge the budget counts %d bytes, the live segments keep %d", got, want)
	}
}
