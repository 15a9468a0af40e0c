package bleve

import (
	"strconv"
	"testing"

	"github.com/casevault/casevault/search"
)

// AddContacts learns the cases it gives contact documents, so that its
// next call skips their look-ups (TestAddContactsAfterOtherWrites checks
// that what it learns stays true); Index and Delete make it forget theirs,
// and the set stays within its bound.
func TestKnownCases(t *testing.T) {
	ctx := t.Context()
	e := openInternal(t)
	kase := testCase
	steps := []struct {
		name  string
		write func() error
		known map[string]bool
	}{
		{"a case-only document", func() error { return e.Index(ctx, []search.CaseDoc{kase("a"), kase("b")}) }, map[string]bool{"a": false, "b": false}},
		{"contacts added", func() error { return e.AddContacts(ctx, []search.CaseDoc{kase("a", "a1"), kase("b", "b1")}) }, map[string]bool{"a": true, "b": true}},
		{"one rewritten", func() error { return e.Index(ctx, []search.CaseDoc{kase("a", "a1")}) }, map[string]bool{"a": false, "b": true}},
		{"only contacts already there", func() error { return e.AddContacts(ctx, []search.CaseDoc{kase("a", "a1")}) }, map[string]bool{"a": true, "b": true}},
		{"one deleted", func() error { return e.Delete(ctx, []string{"b"}) }, map[string]bool{"a": true, "b": false}},
	}
	for _, s := range steps {
		if err := s.write(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		for id, want := range s.known {
			if got := e.known.has(id); got != want {
				t.Errorf("after %s: case %s known %v, want %v", s.name, id, got, want)
			}
		}
	}

	k := knownCases{}
	for i := range maxKnownCases + 10 {
		k.add(strconv.Itoa(i))
	}
	if len(k) > maxKnownCases || !k.has(strconv.Itoa(maxKnownCases+9)) {
		t.Errorf("%d cases known after %d added, the last known: %v; want at most %d and the last", len(k), maxKnownCases+10, k.has(strconv.Itoa(maxKnownCases+9)), maxKnownCases)
	}
}
