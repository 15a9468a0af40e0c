package bleve_test

import (
	"context"
	"testing"
	"time"

	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/search/bleve"
)

// Adding a contact rewrites only its own document, so older documents keep
// an older updated_at: the updated sort must still use the newest, and a
// contact whose content changes under the same ID (retention anonymizing it)
// must be re-indexed.
func TestIncrementalIndexing(t *testing.T) {
	ctx := context.Background()
	eng, err := bleve.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	contact := func(id, body string, at time.Time) search.ContactDoc {
		return search.ContactDoc{ID: id, Channel: "email", Direction: "inbound", Author: "x", Body: body, OccurredAt: at, Purposes: []string{"customer_service"}}
	}
	c1 := search.CaseDoc{CaseID: "case-1", Number: 1, Subject: "one", Status: "open", Priority: "normal", Channel: "email",
		CreatedAt: t0, UpdatedAt: t0, Contacts: []search.ContactDoc{contact("a", "refund please", t0), contact("b", "still waiting", t0.Add(time.Hour))}}
	c2 := search.CaseDoc{CaseID: "case-2", Number: 2, Subject: "two", Status: "open", Priority: "normal", Channel: "email",
		CreatedAt: t0, UpdatedAt: t0.Add(2 * time.Hour), Contacts: []search.ContactDoc{contact("c", "refund too", t0)}}
	if err := eng.Index(ctx, []search.CaseDoc{c1, c2}); err != nil {
		t.Fatal(err)
	}
	order := func() []string {
		res, err := eng.Search(ctx, search.Query{Words: []string{"refund"}, Sort: search.SortUpdated, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, h := range res.Hits {
			ids = append(ids, h.CaseID)
		}
		return ids
	}
	if got := order(); len(got) != 2 || got[0] != "case-2" {
		t.Fatalf("before: %v, want case-2 first", got)
	}
	// A new contact on case 1 moves its updated_at past case 2's.
	c1.UpdatedAt = t0.Add(3 * time.Hour)
	c1.Contacts = append(c1.Contacts, contact("d", "any news", t0.Add(3*time.Hour)))
	if err := eng.Index(ctx, []search.CaseDoc{c1}); err != nil {
		t.Fatal(err)
	}
	if got := order(); len(got) != 2 || got[0] != "case-1" {
		t.Fatalf("after a new contact: %v, want case-1 first", got)
	}
	// Same contact ID, new content: the old words must be gone.
	c1.Contacts[0].Body = "[anonymized]"
	if err := eng.Index(ctx, []search.CaseDoc{c1}); err != nil {
		t.Fatal(err)
	}
	res, err := eng.Search(ctx, search.Query{Words: []string{"refund"}, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 1 || res.Hits[0].CaseID != "case-2" {
		t.Fatalf("anonymized contact still found: %+v", res.Hits)
	}
	// A status change rewrites every document of the case.
	c1.Status = "closed"
	if err := eng.Index(ctx, []search.CaseDoc{c1}); err != nil {
		t.Fatal(err)
	}
	res, err = eng.Search(ctx, search.Query{Words: []string{"waiting"}, Filter: search.Filter{Statuses: []string{"closed"}}, Limit: 10})
	if err != nil || res.Total != 1 {
		t.Fatalf("status change not applied to older contacts: %+v %v", res, err)
	}
}
