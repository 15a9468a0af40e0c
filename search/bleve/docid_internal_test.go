package bleve

import (
	"strconv"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
)

// TestNewContactsSortAfterEveryIndexedID: whichever case a new contact
// belongs to (an old one, or one created after the index last changed),
// its document ID sorts after every document ID the index holds, case-only
// documents included. zap looks an ID up in a segment's dictionary only
// when it is not above the segment's largest ID (DocNumbers), so the
// lookups of a batch of new contacts, existing's and scorch's own, skip
// every segment written before them. IDs led by the case's ID failed this
// for any contact of a case older than the newest indexed one.
func TestNewContactsSortAfterEveryIndexedID(t *testing.T) {
	ctx := t.Context()
	e := openInternal(t)
	kase, newContact := testCase, cases.NewID
	largest := func() string {
		t.Helper()
		r, err := e.reader()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		dr, err := r.DocIDReaderAll()
		if err != nil {
			t.Fatal(err)
		}
		defer dr.Close()
		var top string
		for {
			n, err := dr.Next()
			if err != nil {
				t.Fatal(err)
			}
			if n == nil {
				return top
			}
			id, err := r.ExternalID(n)
			if err != nil {
				t.Fatal(err)
			}
			top = max(top, id)
		}
	}

	old := cases.NewID()
	var newer []string
	steps := []struct {
		name  string
		write func() error
	}{
		{"a case-only document", func() error { return e.Index(ctx, []search.CaseDoc{kase(old)}) }},
		{"the old case's first contact", func() error { return e.AddContacts(ctx, []search.CaseDoc{kase(old, newContact())}) }},
		{"newer cases, case-only", func() error {
			for range 3 {
				newer = append(newer, cases.NewID())
			}
			return e.Index(ctx, []search.CaseDoc{kase(newer[0]), kase(newer[1]), kase(newer[2])})
		}},
		{"contacts of the newer cases", func() error {
			var docs []search.CaseDoc
			for _, c := range newer {
				docs = append(docs, kase(c, newContact(), newContact()))
			}
			return e.AddContacts(ctx, docs)
		}},
		{"a whole case rewritten", func() error {
			return e.Index(ctx, []search.CaseDoc{kase(newer[1], newContact())})
		}},
	}
	for _, s := range steps {
		if err := s.write(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		held := largest()
		// the next contact of the oldest case, and of a case newer than all
		for _, c := range []string{old, cases.NewID()} {
			if id := docID(c, cases.NewID()); id <= held {
				t.Errorf("after %s: a new contact of case %s has ID %q, not above the index's largest %q", s.name, c, id, held)
			}
		}
	}
}

// openInternal opens an engine in a fresh directory, closed with the test
// or benchmark.
func openInternal(t testing.TB) *Engine {
	t.Helper()
	e, err := Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// testCase is a case with one contact of each ID given.
func testCase(id string, contactIDs ...string) search.CaseDoc {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := search.CaseDoc{CaseID: id, Number: 1, Subject: "parcel", Status: "open", Priority: "normal", Channel: "email", CreatedAt: t0, UpdatedAt: t0}
	for _, ct := range contactIDs {
		c.Contacts = append(c.Contacts, search.ContactDoc{ID: ct, Channel: "email", Direction: "inbound", Author: "x", Body: "where is my parcel", OccurredAt: t0})
	}
	return c
}

// An index written by an older mapping (here: contact document IDs led by
// their case's, version 7) is reported Outdated when opened, so the server
// rebuilds it rather than mixing the two layouts; the current one is not.
func TestOlderMappingIsOutdated(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	tests := []struct {
		name     string
		version  int
		outdated bool
	}{
		{"current", MappingVersion, false},
		{"the version before", MappingVersion - 1, true},
		{"version 7 (case-led contact IDs)", 7, true},
	}
	for _, tt := range tests {
		e, err := Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.idx.SetInternal([]byte(mappingKey), []byte(strconv.Itoa(tt.version))); err != nil {
			t.Fatal(err)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		e, err = Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Outdated(); got != tt.outdated {
			t.Errorf("%s: Outdated() = %v, want %v", tt.name, got, tt.outdated)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
