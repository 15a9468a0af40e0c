package search_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/casevault/casevault/bg"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/search/bleve"
	"github.com/casevault/casevault/testkit"
)

// memSource is an in-memory store with an outbox, standing in for the SQL
// store (which has its own Source test).
type memSource struct {
	mu       sync.Mutex
	cases    map[string]search.CaseDoc
	outbox   []search.OutboxEntry
	seq      int64
	done     []int64
	failLoad int // LoadCaseDocs and LoadContactDocs calls left to fail
	// loads counts LoadCaseDocs calls and contactLoads LoadContactDocs calls.
	loads, contactLoads int
	consumers           map[string]*search.Consumer
	pruned              int64
}

func newMemSource() *memSource { return &memSource{cases: map[string]search.CaseDoc{}} }

// put writes a case and its outbox entry, like a store transaction.
func (m *memSource) put(c search.CaseDoc) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cases[c.CaseID] = c
	m.seq++
	m.outbox = append(m.outbox, search.OutboxEntry{Seq: m.seq, CaseID: c.CaseID, CreatedAt: time.Now()})
}

// addContact appends a contact to a case with a contact-only outbox entry,
// like the store's CreateContact.
func (m *memSource) addContact(caseID string, ct search.ContactDoc) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.cases[caseID]; ok { // else: deleted since, the entry stays
		c.Contacts = append(slices.Clone(c.Contacts), ct)
		m.cases[caseID] = c
	}
	m.seq++
	m.outbox = append(m.outbox, search.OutboxEntry{Seq: m.seq, CaseID: caseID, ContactID: ct.ID, CreatedAt: time.Now()})
}

func (m *memSource) remove(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.cases, id)
	m.seq++
	m.outbox = append(m.outbox, search.OutboxEntry{Seq: m.seq, CaseID: id, CreatedAt: time.Now()})
}

func (m *memSource) ReadFeed(_ context.Context, after int64, limit int) ([]search.OutboxEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []search.OutboxEntry
	for _, e := range m.outbox {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *memSource) FeedHead(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seq, nil
}

func (m *memSource) ClaimConsumer(_ context.Context, c search.Claim) (search.Consumer, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.consumers == nil {
		m.consumers = map[string]*search.Consumer{}
	}
	cur, ok := m.consumers[c.ID]
	if !ok {
		cur = &search.Consumer{ID: c.ID, Kind: c.Kind}
		if m.pruned > 0 || c.MustRebuild {
			cur.Position = -1
		}
		m.consumers[c.ID] = cur
	}
	if cur.Owner != "" && cur.Owner != c.Owner && cur.LeaseUntil != nil && cur.LeaseUntil.After(c.Now) {
		return *cur, false, nil
	}
	if cur.Position < m.pruned || c.MustRebuild {
		cur.Position = -1
	}
	until := c.Now.Add(c.TTL)
	cur.Owner, cur.LeaseUntil, cur.SeenAt, cur.Expired = c.Owner, &until, c.Now, false
	return *cur, true, nil
}

func (m *memSource) AdvanceConsumer(_ context.Context, id, owner string, pos int64, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.consumers[id]
	if c == nil || c.Owner != owner {
		return search.ErrLeaseLost
	}
	for _, e := range m.outbox {
		if e.Seq > c.Position && e.Seq <= pos {
			m.done = append(m.done, e.Seq)
		}
	}
	c.Position, c.SeenAt = max(c.Position, pos), now
	return nil
}

func (m *memSource) ReleaseConsumer(_ context.Context, id, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.consumers[id]; c != nil && c.Owner == owner {
		c.LeaseUntil = nil
	}
	return nil
}

func (m *memSource) FeedStatus(_ context.Context, now time.Time) (search.FeedStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := search.FeedStatus{Head: m.seq, PrunedThrough: m.pruned}
	for _, id := range slices.Sorted(maps.Keys(m.consumers)) {
		c := *m.consumers[id]
		c.MustRebuild = c.Position < 0
		c.Pending = m.seq - max(c.Position, 0)
		for _, e := range m.outbox {
			if e.Seq > c.Position {
				c.LagSeconds = now.Sub(e.CreatedAt).Seconds()
				break
			}
		}
		st.Consumers = append(st.Consumers, c)
	}
	return st, nil
}

func (m *memSource) PruneFeed(_ context.Context, now, expireBefore time.Time) (int64, []string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var expired []string
	low := int64(-1)
	for _, id := range slices.Sorted(maps.Keys(m.consumers)) {
		c := m.consumers[id]
		if !c.Expired && c.SeenAt.Before(expireBefore) {
			c.Expired, c.Position, c.Owner = true, -1, ""
			expired = append(expired, id)
		}
		if !c.Expired && (low == -1 || c.Position < low) {
			low = c.Position
		}
	}
	if low <= m.pruned {
		return 0, expired, nil
	}
	n := len(m.outbox)
	m.outbox = slices.DeleteFunc(m.outbox, func(e search.OutboxEntry) bool { return e.Seq <= low })
	m.pruned = low
	return int64(n - len(m.outbox)), expired, nil
}

func (m *memSource) LoadCaseDocs(_ context.Context, ids []string) (map[string]search.CaseDoc, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(ids) > 0 {
		m.loads++
	}
	if err := m.failing(); err != nil {
		return nil, err
	}
	out := map[string]search.CaseDoc{}
	for _, id := range ids {
		if c, ok := m.cases[id]; ok {
			c.Contacts = slices.Clone(c.Contacts)
			out[id] = c
		}
	}
	return out, nil
}

func (m *memSource) LoadContactDocs(_ context.Context, want map[string][]string) (map[string]search.CaseDoc, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.contactLoads++
	if err := m.failing(); err != nil {
		return nil, err
	}
	out := map[string]search.CaseDoc{}
	for id, cts := range want {
		c, ok := m.cases[id]
		if !ok {
			continue
		}
		c.Contacts = slices.DeleteFunc(slices.Clone(c.Contacts), func(ct search.ContactDoc) bool { return !slices.Contains(cts, ct.ID) })
		out[id] = c
	}
	return out, nil
}

// failing consumes one of the failures asked for with failLoad (m.mu held).
func (m *memSource) failing() error {
	if m.failLoad > 0 {
		m.failLoad--
		return errors.New("store unavailable")
	}
	return nil
}

func (m *memSource) ListCaseIDs(_ context.Context, after string, limit int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := slices.Sorted(maps.Keys(m.cases))
	i, _ := slices.BinarySearch(ids, after)
	for i < len(ids) && ids[i] <= after {
		i++
	}
	return ids[i:min(i+limit, len(ids))], nil
}

// pending counts the entries the least advanced consumer has not applied
// (every entry while none registered).
func (m *memSource) pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	low := int64(0)
	for i, id := range slices.Sorted(maps.Keys(m.consumers)) {
		if p := m.consumers[id].Position; i == 0 || p < low {
			low = p
		}
	}
	n := 0
	for _, e := range m.outbox {
		if e.Seq > low {
			n++
		}
	}
	return n
}

// flakyEngine fails its next N writes, like an engine that is down.
type flakyEngine struct {
	search.Engine
	fail   atomic.Int64
	writes atomic.Int64 // attempted writes
}

var errDown = errors.New("engine down")

func (f *flakyEngine) Index(ctx context.Context, docs []search.CaseDoc) error {
	f.writes.Add(1)
	if f.fail.Add(-1) >= 0 {
		return errDown
	}
	return f.Engine.Index(ctx, docs)
}

func (f *flakyEngine) Delete(ctx context.Context, ids []string) error {
	f.writes.Add(1)
	if f.fail.Add(-1) >= 0 {
		return errDown
	}
	return f.Engine.Delete(ctx, ids)
}

func mkCase(i int, words string) search.CaseDoc {
	at := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	return search.CaseDoc{
		CaseID: fmt.Sprintf("c%04d", i), Number: int64(i), CustomerID: "cus", Subject: "case " + words,
		Status: "open", Priority: "normal", Channel: "email", CreatedAt: at, UpdatedAt: at,
		Contacts: []search.ContactDoc{{ID: fmt.Sprintf("k%04d", i), Channel: "email", Body: words, OccurredAt: at}},
	}
}

func openBleve(t *testing.T, dir string) *bleve.Engine {
	t.Helper()
	e, err := bleve.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// waitFor is how long the indexer gets to reach a state.
const waitFor = 30 * time.Second

func total(t *testing.T, ix *search.Indexer, q search.Query) int64 {
	t.Helper()
	res, err := ix.Search(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	return res.Total
}

func startIndexer(t *testing.T, src search.Source, eng search.Engine, opts search.Options) *search.Indexer {
	t.Helper()
	ix := search.NewIndexer(src, eng, slog.New(slog.NewTextHandler(t.Output(), nil)), opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		_ = ix.Close()
	})
	return ix
}

func TestIndexerDrainsOutbox(t *testing.T) {
	src := newMemSource()
	for i := range 120 {
		src.put(mkCase(i, "walrus"))
	}
	src.put(mkCase(5, "walrus narwhal")) // a duplicate in the same batch: latest state wins
	ix := startIndexer(t, src, openBleve(t, t.TempDir()), search.Options{BatchSize: 50, PollInterval: time.Hour})
	testkit.Eventually(t, waitFor, "outbox drained", func() bool { return src.pending() == 0 })
	if n := total(t, ix, search.Query{Words: []string{"walrus"}}); n != 120 {
		t.Fatalf("walrus: %d cases", n)
	}
	if n := total(t, ix, search.Query{Words: []string{"narwhal"}}); n != 1 {
		t.Fatalf("narwhal: %d cases", n)
	}
	src.mu.Lock()
	done := len(src.done)
	src.mu.Unlock()
	if done != 121 {
		t.Fatalf("%d outbox rows marked done, want 121", done)
	}

	// with an hour's poll interval, only Kick can bring these in
	src.remove("c0007")
	src.put(mkCase(500, "octopus"))
	ix.Kick()
	testkit.Eventually(t, waitFor, "kicked batch", func() bool { return src.pending() == 0 })
	if n := total(t, ix, search.Query{Words: []string{"walrus"}}); n != 119 {
		t.Fatalf("after delete: %d walrus cases", n)
	}
	if n := total(t, ix, search.Query{Words: []string{"octopus"}}); n != 1 {
		t.Fatalf("octopus: %d", n)
	}

	st, err := ix.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Consumers) != 1 || st.Consumers[0].ID != "default" || st.Consumers[0].Position != 123 {
		t.Fatalf("consumers %+v, want the one default consumer at 123", st.Consumers)
	}
	st.Consumers = nil
	want := search.Status{Engine: "bleve", Index: "cases_v1", Documents: 120, Pending: 0, LagSeconds: 0, Healthy: true,
		Consumer: "default", Position: 123, Head: 123, Writer: true}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("status %+v, want %+v", st, want)
	}
	b, _ := json.Marshal(st)
	if string(b) != `{"engine":"bleve","index":"cases_v1","documents":120,"pending":0,"lag_seconds":0,"healthy":true,"consumer":"default","position":123,"head":123,"writer":true,"rebuilding":false,"must_rebuild":false,"consumers":null}` {
		t.Fatalf("status JSON %s", b)
	}
}

func TestIndexerRetriesWithoutLosingRows(t *testing.T) {
	src := newMemSource()
	for i := range 10 {
		src.put(mkCase(i, "walrus"))
	}
	eng := &flakyEngine{Engine: openBleve(t, t.TempDir())}
	eng.fail.Store(4)
	ix := startIndexer(t, src, eng, search.Options{BatchSize: 100, PollInterval: time.Hour, MaxBackoff: 100 * time.Millisecond})

	testkit.Eventually(t, waitFor, "first failure", func() bool { return eng.writes.Load() >= 1 })
	if p := src.pending(); p != 10 {
		t.Fatalf("%d rows pending after a failed write, want all 10", p)
	}
	st, err := ix.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Healthy || st.Pending != 10 || st.LagSeconds <= 0 {
		t.Fatalf("status while failing: %+v", st)
	}

	testkit.Eventually(t, waitFor, "recovery", func() bool { return src.pending() == 0 })
	if w := eng.writes.Load(); w != 5 {
		t.Fatalf("%d write attempts, want 4 failures + 1 success", w)
	}
	if n := total(t, ix, search.Query{Words: []string{"walrus"}}); n != 10 {
		t.Fatalf("%d cases indexed", n)
	}
	testkit.Eventually(t, waitFor, "healthy", func() bool {
		st, err := ix.Status(t.Context())
		return err == nil && st.Healthy
	})

	// a store failure is retried the same way
	src.mu.Lock()
	src.failLoad = 2
	src.mu.Unlock()
	src.put(mkCase(50, "octopus"))
	ix.Kick()
	testkit.Eventually(t, waitFor, "store recovery", func() bool { return src.pending() == 0 })
	if n := total(t, ix, search.Query{Words: []string{"octopus"}}); n != 1 {
		t.Fatalf("octopus: %d", n)
	}
}

// A new contact reaches the index without its case being reloaded: only
// the contact is loaded and added. Any other change to the case in the same
// batch makes the indexer load it whole. The index must end up answering
// exactly as one built from whole cases.
func TestIndexerAddsContactsWithoutReloadingCases(t *testing.T) {
	src := newMemSource()
	for i := range 20 {
		src.put(mkCase(i, "walrus"))
	}
	eng := openBleve(t, t.TempDir())
	ix := startIndexer(t, src, eng, search.Options{BatchSize: 1000, PollInterval: time.Hour})
	testkit.Eventually(t, waitFor, "initial indexing", func() bool { return src.pending() == 0 })
	src.mu.Lock()
	loads := src.loads
	src.mu.Unlock()

	at := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	words := []string{"octopus", "squid", "kraken", "nautilus"}
	for i := range 200 {
		src.addContact(fmt.Sprintf("c%04d", i%20), search.ContactDoc{ID: fmt.Sprintf("n%04d", i), Channel: "chat", Body: words[(i/20)%4], OccurredAt: at.Add(time.Duration(i) * time.Second)})
	}
	ix.Kick()
	testkit.Eventually(t, waitFor, "contacts indexed", func() bool { return src.pending() == 0 })
	src.mu.Lock()
	if src.loads != loads || src.contactLoads == 0 {
		t.Errorf("new contacts made %d whole-case loads and %d contact loads, want 0 and some", src.loads-loads, src.contactLoads)
	}
	src.mu.Unlock()
	for _, w := range words {
		if n := total(t, ix, search.Query{Words: []string{w}}); n != 20 {
			t.Errorf("%s: %d cases, want 20", w, n)
		}
	}

	// a case change and a new contact in one batch: the case is loaded whole
	c := mkCase(3, "walrus cuttlefish")
	src.mu.Lock()
	c.Contacts = src.cases["c0003"].Contacts
	src.mu.Unlock()
	src.put(c)
	src.addContact("c0003", search.ContactDoc{ID: "late", Channel: "chat", Body: "anemone", OccurredAt: at})
	src.addContact("c0999", search.ContactDoc{ID: "orphan", Body: "anemone"}) // a case that is gone
	src.put(mkCase(40, "kelp"))                                               // a new case, no contacts yet
	src.put(search.CaseDoc{CaseID: "c0041", Subject: "bare", Status: "open", CreatedAt: at, UpdatedAt: at})
	ix.Kick()
	testkit.Eventually(t, waitFor, "mixed batch", func() bool { return src.pending() == 0 })
	src.addContact("c0041", search.ContactDoc{ID: "first", Channel: "email", Body: "anemone", OccurredAt: at})
	ix.Kick()
	testkit.Eventually(t, waitFor, "first contact of a bare case", func() bool { return src.pending() == 0 })
	src.mu.Lock()
	if src.loads != loads+1 {
		t.Errorf("%d whole-case loads for the mixed batch, want 1", src.loads-loads)
	}
	src.mu.Unlock()

	// the same answers as an index built from whole cases
	ref := answersLikeWholeCases(t, ix, src, 100,
		search.Query{Words: []string{"walrus"}}, search.Query{Words: []string{"cuttlefish"}}, search.Query{Words: []string{"anemone"}},
		search.Query{Words: []string{"kraken"}}, search.Query{Words: []string{"bare"}}, search.Query{Filter: search.Filter{Channels: []string{"chat"}}},
		search.Query{Sort: search.SortUpdated}, search.Query{Words: []string{"squid"}, Sort: search.SortNewest})
	src.mu.Lock()
	all := len(src.cases)
	src.mu.Unlock()
	for _, e := range []search.Engine{eng, ref} {
		if n, err := e.Count(t.Context()); err != nil || n != int64(all) {
			t.Errorf("%s Count = %d %v, want %d", e.IndexName(), n, err, all)
		}
	}
}

// batchCounter records how many cases each Index call and how many
// contacts each AddContacts call carried.
type batchCounter struct {
	*bleve.Engine
	mu               sync.Mutex
	indexed, appends []int
}

func (a *batchCounter) Index(ctx context.Context, docs []search.CaseDoc) error {
	a.mu.Lock()
	a.indexed = append(a.indexed, len(docs))
	a.mu.Unlock()
	return a.Engine.Index(ctx, docs)
}

func (a *batchCounter) AddContacts(ctx context.Context, docs []search.CaseDoc) error {
	n := 0
	for _, d := range docs {
		n += len(d.Contacts)
	}
	a.mu.Lock()
	a.appends = append(a.appends, n)
	a.mu.Unlock()
	return a.Engine.AddContacts(ctx, docs)
}

// calls returns the calls so far and forgets them.
func (a *batchCounter) calls() (indexed, appends []int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	indexed, appends = a.indexed, a.appends
	a.indexed, a.appends = nil, nil
	return indexed, appends
}

// A batch stops loading cases and contacts once their text passes
// MaxBatchText (a batch of 2000 contacts at the body limit would hold 512
// MiB), leaves the rest of what it read to the next batch, and that batch
// runs at once: nothing kicks the indexer again here and its poll is an
// hour away.
func TestIndexerCutsABatchAtItsTextBudget(t *testing.T) {
	cases := []struct {
		name   string
		budget int
		most   int // most cases one Index call, and contacts one AddContacts call, may carry
	}{
		{name: "text past the budget", budget: 100 << 10, most: 250},
		{name: "text within the budget", budget: 32 << 20, most: 600},
	}
	filler := strings.Repeat("lorem ", 170) // ~1 KiB a contact
	check := func(t *testing.T, what string, calls []int, want, most int) {
		t.Helper()
		sum := 0
		for _, n := range calls {
			sum += n
			if n > most {
				t.Errorf("%s: a call carried %d, want at most %d (calls %v)", what, n, most, calls)
			}
		}
		if sum != want {
			t.Errorf("%s: %d carried in all (calls %v), want each of the %d once", what, sum, calls, want)
		}
		if most >= want && len(calls) != 1 {
			t.Errorf("%s: %d calls %v, want all %d in one batch", what, len(calls), calls, want)
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := newMemSource()
			for i := range 300 {
				c := mkCase(i, "walrus")
				c.Contacts[0].Body = filler + "walrus"
				src.put(c)
			}
			eng := &batchCounter{Engine: openBleve(t, t.TempDir())}
			ix := startIndexer(t, src, eng, search.Options{BatchSize: 1000, MaxBatchText: tc.budget, PollInterval: time.Hour, Settle: -1})
			testkit.Eventually(t, waitFor, "whole cases indexed", func() bool { return src.pending() == 0 })
			indexed, _ := eng.calls()
			check(t, "whole cases", indexed, 300, tc.most)

			at := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
			for i := range 600 {
				src.addContact(fmt.Sprintf("c%04d", i%20), search.ContactDoc{ID: fmt.Sprintf("n%04d", i), Channel: "chat",
					Body: filler + "sturgeon", OccurredAt: at.Add(time.Duration(i) * time.Second)})
			}
			ix.Kick()
			testkit.Eventually(t, waitFor, "every contact indexed", func() bool { return src.pending() == 0 })
			_, appends := eng.calls()
			check(t, "added contacts", appends, 600, tc.most)

			// the same answers as an index built from whole cases
			answersLikeWholeCases(t, ix, src, 400, search.Query{Words: []string{"sturgeon"}, Sort: search.SortNewest},
				search.Query{Filter: search.Filter{Channels: []string{"chat"}}}, search.Query{Words: []string{"walrus"}})
		})
	}
}

// answersLikeWholeCases checks that ix answers qs (up to limit hits, with
// facets) as an index built in one go from src's cases does, hit for hit
// (case, contact, snippet and score), and returns that reference index.
func answersLikeWholeCases(t *testing.T, ix *search.Indexer, src *memSource, limit int, qs ...search.Query) *bleve.Engine {
	t.Helper()
	ref := openBleve(t, t.TempDir())
	t.Cleanup(func() { _ = ref.Close() })
	src.mu.Lock()
	all := slices.Collect(maps.Values(src.cases))
	src.mu.Unlock()
	if err := ref.Index(t.Context(), all); err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		q.Limit, q.Facets = limit, true
		got, err := ix.Search(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.Search(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if got.Total != want.Total || fmt.Sprint(got.Hits) != fmt.Sprint(want.Hits) || fmt.Sprint(got.Facets) != fmt.Sprint(want.Facets) {
			t.Errorf("query %+v:\n got  %d %v %v\n want %d %v %v", q, got.Total, got.Hits, got.Facets, want.Total, want.Hits, want.Facets)
		}
	}
	return ref
}

// An engine that cannot append gets whole cases, as before.
func TestIndexerLoadsWholeCasesForOtherEngines(t *testing.T) {
	src := newMemSource()
	src.put(mkCase(1, "walrus"))
	eng := &flakyEngine{Engine: openBleve(t, t.TempDir())} // hides AddContacts
	ix := startIndexer(t, src, eng, search.Options{PollInterval: time.Hour})
	testkit.Eventually(t, waitFor, "initial indexing", func() bool { return src.pending() == 0 })
	src.addContact("c0001", search.ContactDoc{ID: "x", Channel: "chat", Body: "octopus"})
	src.mu.Lock()
	src.failLoad = 1 // and a failed load is retried
	src.mu.Unlock()
	ix.Kick()
	testkit.Eventually(t, waitFor, "contact indexed", func() bool { return src.pending() == 0 })
	if n := total(t, ix, search.Query{Words: []string{"octopus"}}); n != 1 {
		t.Fatalf("octopus: %d cases", n)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.contactLoads != 0 || src.loads < 3 {
		t.Fatalf("%d whole-case loads, %d contact loads: want whole cases only (1 + a failed one + its retry)", src.loads, src.contactLoads)
	}
}

func hitCases(r search.Result) []string {
	var ids []string
	for _, h := range r.Hits {
		ids = append(ids, h.CaseID)
	}
	return ids
}

func TestIndexerWritesNeverWaitForEngine(t *testing.T) {
	src := newMemSource()
	eng := &flakyEngine{Engine: openBleve(t, t.TempDir())}
	eng.fail.Store(1 << 40) // dead for the whole test
	ix := startIndexer(t, src, eng, search.Options{PollInterval: time.Millisecond, MaxBackoff: time.Millisecond})
	for i := range 200 {
		src.put(mkCase(i, "walrus"))
		ix.Kick() // must not block however dead the engine is
	}
	testkit.Eventually(t, waitFor, "attempts", func() bool { return eng.writes.Load() > 3 })
	if p := src.pending(); p != 200 {
		t.Fatalf("%d pending, want 200 (nothing confirmed)", p)
	}
}

func TestReindexSwitchesUnderTraffic(t *testing.T) {
	dir := t.TempDir()
	src := newMemSource()
	for i := range 600 {
		src.put(mkCase(i, "walrus"))
	}
	ix := startIndexer(t, src, openBleve(t, dir), search.Options{BatchSize: 100, PollInterval: 5 * time.Millisecond})
	testkit.Eventually(t, waitFor, "initial indexing", func() bool { return src.pending() == 0 })

	// queries and writes go on during the rebuild
	ctx, stop := context.WithCancel(t.Context())
	var searchWG, writeWG sync.WaitGroup
	var searchErr atomic.Value
	var searches atomic.Int64
	searchWG.Add(1)
	writeWG.Add(1)
	go func() {
		defer searchWG.Done()
		for ctx.Err() == nil {
			res, err := ix.Search(context.Background(), search.Query{Words: []string{"walrus"}})
			if err != nil {
				searchErr.Store(err)
				return
			}
			if res.Total < 590 {
				searchErr.Store(fmt.Errorf("only %d walrus cases during rebuild", res.Total))
				return
			}
			searches.Add(1)
		}
	}()
	go func() {
		defer writeWG.Done()
		for i := range 100 {
			src.put(mkCase(1000+i, "walrus octopus"))
			if i%10 == 0 {
				src.remove(fmt.Sprintf("c%04d", i))
			}
			src.put(mkCase(200+i, "walrus squid")) // a case changed mid-rebuild
			src.addContact(fmt.Sprintf("c%04d", 300+i), search.ContactDoc{ID: fmt.Sprint("new", i), Channel: "chat", Body: "kraken"})
			ix.Kick()
			time.Sleep(time.Millisecond)
		}
	}()
	err := ix.Reindex(t.Context(), func(ctx context.Context) (search.Engine, error) { return bleve.Build(ctx, dir) })
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Reindex(t.Context(), func(ctx context.Context) (search.Engine, error) { return nil, errors.New("unused") }); err == nil {
		t.Fatal("a failing build was accepted")
	}
	writeWG.Wait()
	stop()
	searchWG.Wait()
	if err, _ := searchErr.Load().(error); err != nil {
		// A recovered panic carries its stack: print it, so a failure
		// seen once under load (a nil dereference in a query during the
		// switch, 2026-12-02) says where.
		if pe := (*bg.PanicError)(nil); errors.As(err, &pe) {
			t.Log(pe.Stack)
		}
		t.Fatal(err)
	}
	if searches.Load() == 0 {
		t.Fatal("no query ran during the rebuild")
	}
	if got := ix.Engine().IndexName(); got != "cases_v2" {
		t.Fatalf("live index %s after rebuild", got)
	}
	testkit.Eventually(t, waitFor, "outbox drained", func() bool { return src.pending() == 0 })

	// the new index holds exactly the store's state
	src.mu.Lock()
	want := map[string]int{}
	for _, c := range src.cases {
		for _, w := range []string{"walrus", "octopus", "squid"} {
			if slices.Contains(tokensOf(c.Subject), w) {
				want[w]++
			}
		}
		if slices.ContainsFunc(c.Contacts, func(ct search.ContactDoc) bool { return ct.Body == "kraken" }) {
			want["kraken"]++
		}
	}
	nCases := len(src.cases)
	src.mu.Unlock()
	for w, n := range want {
		if got := total(t, ix, search.Query{Words: []string{w}}); got != int64(n) {
			t.Errorf("%s: %d cases, want %d", w, got, n)
		}
	}
	if n, err := ix.Engine().Count(t.Context()); err != nil || n != int64(nCases) {
		t.Fatalf("Count %d (%v), want %d", n, err, nCases)
	}
	// and it is what the next start serves; the old one is gone
	cur, err := os.ReadFile(filepath.Join(dir, "CURRENT"))
	if err != nil || strings.TrimSpace(string(cur)) != "cases_v2" {
		t.Fatalf("CURRENT %q (%v)", cur, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cases_v1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old index still on disk: %v", err)
	}
}

func TestReindexFailureKeepsOldIndex(t *testing.T) {
	dir := t.TempDir()
	src := newMemSource()
	for i := range 30 {
		src.put(mkCase(i, "walrus"))
	}
	ix := startIndexer(t, src, openBleve(t, dir), search.Options{BatchSize: 10, PollInterval: 5 * time.Millisecond, MaxBackoff: time.Millisecond})
	testkit.Eventually(t, waitFor, "initial indexing", func() bool { return src.pending() == 0 })
	var built *flakyEngine
	err := ix.Reindex(t.Context(), func(ctx context.Context) (search.Engine, error) {
		e, err := bleve.Build(ctx, dir)
		if err != nil {
			return nil, err
		}
		built = &flakyEngine{Engine: e}
		built.fail.Store(1 << 40)
		return built, nil
	})
	if err == nil {
		t.Fatal("rebuild into a dead engine succeeded")
	}
	if got := ix.Engine().IndexName(); got != "cases_v1" {
		t.Fatalf("live index %s", got)
	}
	if n := total(t, ix, search.Query{Words: []string{"walrus"}}); n != 30 {
		t.Fatalf("old index answers %d", n)
	}
}

func tokensOf(s string) []string {
	var out []string
	word := []rune{}
	for _, r := range s + " " {
		if r == ' ' {
			if len(word) > 0 {
				out = append(out, string(word))
			}
			word = word[:0]
			continue
		}
		word = append(word, r)
	}
	return out
}

// StartReindex refuses a second rebuild while one runs (the API's 409) and
// accepts one again after it finished.
func TestStartReindexOneAtATime(t *testing.T) {
	src := newMemSource()
	src.put(mkCase(1, "refund"))
	dir := t.TempDir()
	ix := search.NewIndexer(src, openBleve(t, dir), nil, search.Options{})
	release := make(chan struct{})
	done := make(chan error, 1)
	build := func(ctx context.Context) (search.Engine, error) {
		<-release
		return bleve.Build(ctx, dir)
	}
	if err := ix.StartReindex(context.Background(), build, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := ix.StartReindex(context.Background(), build, nil); !errors.Is(err, search.ErrReindexRunning) {
		t.Fatalf("second StartReindex = %v, want ErrReindexRunning", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if got := ix.Engine().IndexName(); got != "cases_v2" {
		t.Fatalf("live index %s, want cases_v2", got)
	}
	again := make(chan error, 1)
	if err := ix.StartReindex(context.Background(), func(ctx context.Context) (search.Engine, error) { return bleve.Build(ctx, dir) }, func(err error) { again <- err }); err != nil {
		t.Fatalf("StartReindex after the first finished: %v", err)
	}
	if err := <-again; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
}

// Under a steady stream of writes the settle window stretches (issue 19
// §3: bigger Bleve batches under load); whatever the batching, everything
// written ends up indexed and nothing deleted comes back. Writers add
// contacts to cases while others delete cases and drop contacts (a case
// rewritten without one, as a redaction or erasure does), all kicking, with
// a window that can stretch far; the index must then answer like one
// built from the final state.
func TestIndexerBurstIndexesEverythingAndNothingDeletedReturns(t *testing.T) {
	src := newMemSource()
	for i := range 40 {
		src.put(mkCase(i, "walrus"))
	}
	eng := openBleve(t, t.TempDir())
	ix := startIndexer(t, src, eng, search.Options{BatchSize: 64, PollInterval: time.Hour, Settle: 4 * time.Millisecond, MaxSettle: 300 * time.Millisecond})
	ix.Kick()
	testkit.Eventually(t, waitFor, "initial indexing", func() bool { return src.pending() == 0 })

	at := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 150 {
				src.addContact(fmt.Sprintf("c%04d", (i*7+w)%40), search.ContactDoc{ID: fmt.Sprintf("w%d-%03d", w, i), Channel: "chat", Body: "lobster", OccurredAt: at.Add(time.Duration(i) * time.Second)})
				ix.Kick()
			}
		}()
	}
	wg.Add(1)
	go func() { // deletions and dropped contacts interleaved with the adds
		defer wg.Done()
		for i := range 10 {
			src.remove(fmt.Sprintf("c%04d", 30+i))
			ix.Kick()
			id := fmt.Sprintf("c%04d", i)
			src.mu.Lock()
			c := src.cases[id]
			c.Contacts = slices.DeleteFunc(slices.Clone(c.Contacts), func(ct search.ContactDoc) bool { return ct.ID == fmt.Sprintf("k%04d", i) })
			src.mu.Unlock()
			src.put(c)
			ix.Kick()
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	testkit.Eventually(t, waitFor, "burst indexed", func() bool { return src.pending() == 0 })

	answersLikeWholeCases(t, ix, src, 100, search.Query{Words: []string{"walrus"}}, search.Query{Words: []string{"lobster"}},
		search.Query{Filter: search.Filter{Channels: []string{"chat"}}}, search.Query{Filter: search.Filter{Channels: []string{"email"}}},
		search.Query{Sort: search.SortNewest})
	if n, err := eng.Count(t.Context()); err != nil || n != 30 {
		t.Errorf("Count = %d %v, want the 30 cases left", n, err)
	}
	// the dropped contacts were the only e-mail ones of cases 0-9
	res, err := ix.Search(t.Context(), search.Query{Filter: search.Filter{Channels: []string{"email"}}, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range hitCases(res) {
		if id < "c0010" || id >= "c0030" {
			t.Errorf("%s matches the e-mail channel: a dropped or deleted contact is back", id)
		}
	}
}

// The stretched window ends as soon as the writes stop: a few writes after
// a busy batch are indexed at once, not after MaxSettle (an hour here).
func TestIndexerSettleEndsWhenWritesStop(t *testing.T) {
	src := newMemSource()
	src.put(mkCase(1, "walrus"))
	ix := startIndexer(t, src, openBleve(t, t.TempDir()), search.Options{BatchSize: 1000, PollInterval: time.Hour, Settle: 5 * time.Millisecond, MaxSettle: time.Hour})
	ix.Kick()
	testkit.Eventually(t, waitFor, "first batch", func() bool { return src.pending() == 0 })
	for i := range 5 {
		src.addContact("c0001", search.ContactDoc{ID: fmt.Sprintf("n%d", i), Channel: "chat", Body: "octopus"})
		ix.Kick()
	}
	testkit.Eventually(t, waitFor, "writes after a busy batch indexed", func() bool { return src.pending() == 0 })
	if n := total(t, ix, search.Query{Words: []string{"octopus"}}); n != 1 {
		t.Fatalf("octopus: %d cases", n)
	}
}
