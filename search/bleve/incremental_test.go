package bleve_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
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
	eng := openTemp(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
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

// AddContacts adds documents without reading the case, and must keep
// exactly one head document per case (Count counts heads) whatever the case
// held before: nothing, a case-only document, contacts, or the same contact.
func TestAddContacts(t *testing.T) {
	ctx := context.Background()
	eng := openTemp(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	kase := func(id string, cts ...search.ContactDoc) search.CaseDoc {
		return search.CaseDoc{CaseID: id, Number: 1, CustomerID: "cus", Subject: "parcel " + id, Status: "open", Priority: "normal",
			Channel: "email", CreatedAt: t0, UpdatedAt: t0, Contacts: cts}
	}
	counts := func(step string, cases int64, docs uint64) {
		t.Helper()
		if n, err := eng.Count(ctx); err != nil || n != cases {
			t.Fatalf("%s: Count = %d %v, want %d cases", step, n, err, cases)
		}
		if n, err := eng.DocCount(); err != nil || n != docs {
			t.Fatalf("%s: DocCount = %d %v, want %d documents", step, n, err, docs)
		}
	}
	hits := func(q search.Query) []search.Hit {
		t.Helper()
		q.Limit = 50
		res, err := eng.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return res.Hits
	}

	// a case never indexed: its first new contact becomes its head
	if err := eng.AddContacts(ctx, []search.CaseDoc{kase("fresh", contact("f1", "walrus", t0), contact("f2", "narwhal", t0.Add(time.Minute)))}); err != nil {
		t.Fatal(err)
	}
	counts("fresh case", 1, 2)

	// a case indexed with no contacts has a case-only document, replaced by its first contact
	if err := eng.Index(ctx, []search.CaseDoc{kase("empty")}); err != nil {
		t.Fatal(err)
	}
	counts("case-only document", 2, 3)
	if err := eng.AddContacts(ctx, []search.CaseDoc{kase("empty", contact("e1", "octopus", t0))}); err != nil {
		t.Fatal(err)
	}
	counts("case-only document replaced", 2, 3)
	if h := hits(search.Query{Filter: search.Filter{CaseIDs: []string{"empty"}}}); len(h) != 1 || h[0].ContactID != "e1" {
		t.Fatalf("case 'empty' hits = %+v, want its contact e1 only", h)
	}

	// a case with contacts: no second head, and a contact already there is skipped
	up := kase("fresh", contact("f3", "squid", t0.Add(-time.Hour)), contact("f1", "walrus", t0))
	up.UpdatedAt = t0.Add(time.Hour)
	if err := eng.AddContacts(ctx, []search.CaseDoc{up}); err != nil {
		t.Fatal(err)
	}
	counts("contact added to a case", 2, 4)
	if err := eng.AddContacts(ctx, []search.CaseDoc{up}); err != nil {
		t.Fatal(err)
	}
	counts("same batch again", 2, 4)
	for _, w := range []string{"walrus", "narwhal", "squid", "octopus"} {
		if h := hits(search.Query{Words: []string{w}}); len(h) != 1 {
			t.Fatalf("%q: %d hits, want 1", w, len(h))
		}
	}
	// the newest updated_at of the case's documents is its sort key
	if h := hits(search.Query{Sort: search.SortUpdated}); len(h) != 2 || h[0].CaseID != "fresh" {
		t.Fatalf("updated sort = %+v, want case 'fresh' first", h)
	}

	// a full rewrite afterwards moves the head to the earliest contact (f3)
	// and leaves one head, not two
	full := kase("fresh", contact("f3", "squid", t0.Add(-time.Hour)), contact("f1", "walrus", t0), contact("f2", "narwhal", t0.Add(time.Minute)))
	full.UpdatedAt = up.UpdatedAt
	if err := eng.Index(ctx, []search.CaseDoc{full}); err != nil {
		t.Fatal(err)
	}
	counts("full rewrite", 2, 4)
	// and a contact removed by a full rewrite is gone (deletions never go through AddContacts)
	full.Contacts = full.Contacts[1:]
	if err := eng.Index(ctx, []search.CaseDoc{full}); err != nil {
		t.Fatal(err)
	}
	counts("contact removed", 2, 3)
	if h := hits(search.Query{Words: []string{"squid"}}); len(h) != 0 {
		t.Fatalf("squid still found: %+v", h)
	}

	for _, bad := range []search.CaseDoc{{}, kase("x", search.ContactDoc{Body: "no id"})} {
		if err := eng.AddContacts(ctx, []search.CaseDoc{bad}); err == nil {
			t.Errorf("AddContacts(%+v) accepted a document without an ID", bad)
		}
	}
	counts("after refused input", 2, 3)
}

func contact(id, body string, at time.Time) search.ContactDoc {
	return search.ContactDoc{ID: id, Channel: "email", Direction: "inbound", Author: "x", Body: body, OccurredAt: at, Purposes: []string{"customer_service"}}
}

// openTemp opens an engine in a fresh directory, closed with the test.
func openTemp(t *testing.T) *bleve.Engine {
	t.Helper()
	eng, err := bleve.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// Index and AddContacts apply a Bleve batch whenever the documents built
// or their contact text reach the engine's bounds, between cases: a case's
// documents change in one batch however many it has, and nothing is lost
// across the split. A call that changes nothing applies no batch.
func TestWritesSplitBatchesBetweenCases(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := func(sizes []int) []search.CaseDoc {
		var out []search.CaseDoc
		for i, n := range sizes {
			c := search.CaseDoc{CaseID: fmt.Sprintf("case-%d", i), Number: int64(i + 1), Subject: "split", Status: "open", Priority: "normal",
				Channel: "email", CreatedAt: t0, UpdatedAt: t0}
			for j := range n {
				c.Contacts = append(c.Contacts, contact(fmt.Sprintf("c%d-%d", i, j), "refund please", t0.Add(time.Duration(j)*time.Minute)))
			}
			out = append(out, c)
		}
		return out
	}
	const text = len("x") + len("refund please") // a contact's author and body
	tests := []struct {
		name       string
		sizes      []int
		docs, text int
		want       uint64 // batches applied
	}{
		{"cut after the case that reaches the documents bound", []int{3, 3, 1, 5, 2}, 4, 1 << 20, 3},
		{"a case above the bounds stays whole", []int{10}, 4, 1 << 20, 1},
		{"cut exactly at the documents bound", []int{1, 1, 1, 1}, 2, 1 << 20, 2},
		{"under the bounds one batch", []int{2, 2}, 100, 1 << 20, 1},
		{"cut at the text bound", []int{2, 2, 2}, 100, 2 * text, 3},
		{"cut after the case that passes the text bound", []int{2, 2, 2}, 100, 2*text + 1, 2},
	}
	writes := []struct {
		name  string
		write func(*bleve.Engine, context.Context, []search.CaseDoc) error
	}{
		{"Index", (*bleve.Engine).Index},
		{"AddContacts", (*bleve.Engine).AddContacts},
	}
	for _, w := range writes {
		for _, tt := range tests {
			t.Run(w.name+"/"+tt.name, func(t *testing.T) {
				ctx := context.Background()
				eng := openTemp(t)
				eng.SetBatchBounds(tt.docs, tt.text)
				docs := cases(tt.sizes)
				before := eng.Batches()
				if err := w.write(eng, ctx, docs); err != nil {
					t.Fatal(err)
				}
				if got := eng.Batches() - before; got != tt.want {
					t.Errorf("batches applied: %d, want %d", got, tt.want)
				}

				total := 0
				for _, n := range tt.sizes {
					total += n
				}
				n, err := eng.DocCount()
				if err != nil {
					t.Fatal(err)
				}
				if n != uint64(total) {
					t.Errorf("documents: %d, want %d", n, total)
				}
				heads, err := eng.Count(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if heads != int64(len(tt.sizes)) {
					t.Errorf("cases counted: %d, want %d", heads, len(tt.sizes))
				}

				before = eng.Batches()
				if err := w.write(eng, ctx, docs); err != nil {
					t.Fatal(err)
				}
				if got := eng.Batches() - before; got != 0 {
					t.Errorf("unchanged cases applied %d batches, want 0", got)
				}
			})
		}
	}
}

// A large Index call is built in one part per core the engine was given
// (WithCores), each part applying its own batch: serve runs twice as many
// Ps as cores, and a part per P took more time, CPU and memory.
func TestIndexBuildsOnePartPerCore(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	docs := make([]search.CaseDoc, 128) // 128 cases: up to 128/32 = 4 parts
	for i := range docs {
		docs[i] = search.CaseDoc{CaseID: fmt.Sprintf("case-%03d", i), Number: int64(i + 1), Subject: "parts", Status: "open", Priority: "normal",
			Channel: "email", CreatedAt: t0, UpdatedAt: t0, Contacts: []search.ContactDoc{contact(fmt.Sprintf("c%d", i), "refund please", t0)}}
	}

	tests := []struct {
		cores int
		want  uint64 // batches applied: one per part, the bounds never reached
	}{
		{1, 1},
		{2, 2},
		{3, 3},
		{8, 4}, // at least 32 cases a part
		{0, 4}, // ignored: GOMAXPROCS, of which this test asks at least 4
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("cores=%d", tt.cores), func(t *testing.T) {
			if tt.cores == 0 {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
			}
			eng, err := bleve.Open(t.Context(), t.TempDir(), bleve.WithCores(tt.cores))
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			eng.SetBatchBounds(1<<20, 1<<30)
			before := eng.Batches()

			if err := eng.Index(t.Context(), docs); err != nil {
				t.Fatal(err)
			}

			if got := eng.Batches() - before; got != tt.want {
				t.Errorf("batches applied: %d, want %d", got, tt.want)
			}
			if n, err := eng.DocCount(); err != nil || n != uint64(len(docs)) {
				t.Errorf("documents: %d (%v), want %d", n, err, len(docs))
			}
		})
	}
}

// AddContacts remembers which cases it gave contact documents (to skip
// their look-ups next time); a full rewrite or a deletion of such a case
// in between must leave the next AddContacts with exactly one head and no
// case-only document beside the contacts.
func TestAddContactsAfterOtherWrites(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	kase := func(cts ...string) search.CaseDoc {
		c := search.CaseDoc{CaseID: "c", Number: 1, CustomerID: "cus", Subject: "parcel", Status: "open", Priority: "normal",
			Channel: "email", CreatedAt: t0, UpdatedAt: t0}
		for i, id := range cts {
			c.Contacts = append(c.Contacts, contact(id, "walrus "+id, t0.Add(time.Duration(i)*time.Minute)))
		}
		return c
	}
	type step struct {
		write      func(ctx context.Context, e *bleve.Engine) error
		cases      int64
		docs       uint64
		contactIDs []string // what a search of the case shows
	}
	add := func(cts ...string) func(context.Context, *bleve.Engine) error {
		return func(ctx context.Context, e *bleve.Engine) error {
			return e.AddContacts(ctx, []search.CaseDoc{kase(cts...)})
		}
	}
	rewrite := func(cts ...string) func(context.Context, *bleve.Engine) error {
		return func(ctx context.Context, e *bleve.Engine) error { return e.Index(ctx, []search.CaseDoc{kase(cts...)}) }
	}
	del := func(ctx context.Context, e *bleve.Engine) error { return e.Delete(ctx, []string{"c"}) }
	tests := []struct {
		name  string
		steps []step
	}{
		{"deleted, then a contact added", []step{
			{add("a1"), 1, 1, []string{"a1"}},
			{del, 0, 0, nil},
			{add("a2"), 1, 1, []string{"a2"}},
		}},
		{"rewritten without contacts, then a contact added", []step{
			{add("a1"), 1, 1, []string{"a1"}},
			{rewrite(), 1, 1, []string{""}},
			{add("a2"), 1, 1, []string{"a2"}},
		}},
		{"rewritten with more contacts, then one added", []step{
			{add("a1"), 1, 1, []string{"a1"}},
			{rewrite("a0", "a1"), 1, 2, []string{"a0", "a1"}},
			{add("a2"), 1, 3, []string{"a0", "a1", "a2"}},
		}},
		{"contacts added twice, then again with one already there", []step{
			{add("a1"), 1, 1, []string{"a1"}},
			{add("a2"), 1, 2, []string{"a1", "a2"}},
			{add("a2", "a3"), 1, 3, []string{"a1", "a2", "a3"}},
		}},
		{"deleted, rewritten without contacts, then added", []step{
			{add("a1"), 1, 1, []string{"a1"}},
			{del, 0, 0, nil},
			{rewrite(), 1, 1, []string{""}},
			{add("a2"), 1, 1, []string{"a2"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			eng := openTemp(t)
			for i, s := range tt.steps {
				if err := s.write(ctx, eng); err != nil {
					t.Fatalf("step %d: %v", i+1, err)
				}
				if n, err := eng.Count(ctx); err != nil || n != s.cases {
					t.Fatalf("step %d: Count = %d %v, want %d (one head per case)", i+1, n, err, s.cases)
				}
				if n, err := eng.DocCount(); err != nil || n != s.docs {
					t.Fatalf("step %d: DocCount = %d %v, want %d", i+1, n, err, s.docs)
				}
				var got []string
				for _, w := range []string{"walrus", "parcel"} {
					res, err := eng.Search(ctx, search.Query{Words: []string{w}, Filter: search.Filter{CaseIDs: []string{"c"}}, Limit: 10})
					if err != nil {
						t.Fatal(err)
					}
					for _, h := range res.Hits {
						got = append(got, h.ContactID)
					}
				}
				if len(s.contactIDs) == 0 && len(got) != 0 || len(s.contactIDs) > 0 && !slices.Contains(s.contactIDs, got[len(got)-1]) {
					t.Fatalf("step %d: hits show contacts %q, want one of %q", i+1, got, s.contactIDs)
				}
			}
		})
	}
}
