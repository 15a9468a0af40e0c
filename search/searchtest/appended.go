package searchtest

import (
	"testing"
	"time"

	"github.com/casevault/casevault/search"
)

// testAppended (issue 19): new contacts written alone (search.Appender,
// as the indexer writes them) are found like contacts written with their
// case: in a case indexed before, and in a case that had no contact
// yet (its case-only document gives way). A retried batch changes nothing,
// and a later whole write of the case decides what is left, a contact
// erased meanwhile included.
func testAppended(t *testing.T, newEngine func(t *testing.T) search.Engine, timeout time.Duration) {
	ctx := t.Context()
	eng := newEngine(t)
	t.Cleanup(func() { _ = eng.Close() })
	app, ok := eng.(search.Appender)
	if !ok {
		t.Fatalf("engine %s does not implement search.Appender", eng.Name())
	}
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	mk := func(id string, rev int64, contacts ...string) search.CaseDoc {
		c := search.CaseDoc{CaseID: id, Number: 7, CustomerID: "cus-a", Subject: "appended " + id, Status: "open",
			Priority: "low", Channel: "chat", CreatedAt: at, UpdatedAt: at, Rev: rev}
		for i := 0; i+1 < len(contacts); i += 2 {
			c.Contacts = append(c.Contacts, search.ContactDoc{ID: contacts[i], Channel: "chat", Direction: "inbound",
				Body: contacts[i+1], OccurredAt: at.Add(time.Duration(i) * time.Minute), Purposes: []string{"customer_service"}})
		}
		return c
	}
	find := func(word string, want ...string) {
		t.Helper()
		findExactly(t, ctx, eng, timeout, search.Query{Words: []string{word}}, want...)
	}
	count := func(want int64) {
		t.Helper()
		eventually(t, timeout, "Count", func() error { return checkCount(ctx, eng, want) })
	}

	if err := eng.Index(ctx, []search.CaseDoc{mk("ap1", 10, "ap1-a", "kettle refund"), mk("ap2", 10)}); err != nil {
		t.Fatal(err)
	}
	count(2)
	for attempt := range 2 { // the second is a retried batch, at a later position
		err := app.AddContacts(ctx, []search.CaseDoc{
			mk("ap1", int64(11+attempt), "ap1-b", "walrus delivery"),
			mk("ap2", int64(11+attempt), "ap2-a", "walrus invoice"),
		})
		if err != nil {
			t.Fatalf("AddContacts, attempt %d: %v", attempt+1, err)
		}
		find("walrus", "ap1", "ap2")
		find("kettle", "ap1")
		find("invoice", "ap2")
		count(2)
	}
	// a case's contacts without words of the query do not make it a hit
	findExactly(t, ctx, eng, timeout, search.Query{Words: []string{"walrus"}, Filter: search.Filter{CaseIDs: []string{"ap2"}}}, "ap2")

	// The whole case written again without ap1-a (erased): only what it
	// holds is left, appended contacts included.
	if err := eng.Index(ctx, []search.CaseDoc{mk("ap1", 20, "ap1-b", "walrus delivery")}); err != nil {
		t.Fatal(err)
	}
	find("kettle")
	find("walrus", "ap1", "ap2")
	count(2)

	for _, bad := range []search.CaseDoc{{Rev: 21, Contacts: []search.ContactDoc{{ID: "x"}}}, mk("ap1", 21, "", "no id")} {
		if err := app.AddContacts(ctx, []search.CaseDoc{bad}); err == nil {
			t.Errorf("AddContacts(%+v) accepted a case or contact without an id", bad)
		}
	}
	find("walrus", "ap1", "ap2")
}
