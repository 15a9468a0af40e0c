package meili

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/search"
)

// failDocs makes a document addition fail (as Meilisearch fails a task
// whose payload holds an invalid document) when any of its documents
// satisfies bad.
func TestPoisonCasesAreSetAside(t *testing.T) {
	ctx := context.Background()
	mkCase := func(i int, body string) search.CaseDoc {
		return search.CaseDoc{
			CaseID: fmt.Sprintf("case-%02d", i), Number: int64(i), Subject: "poison test", Status: "open", CreatedAt: t0, UpdatedAt: t0, Rev: int64(i),
			Contacts: []search.ContactDoc{{ID: fmt.Sprintf("ct-%02d", i), Channel: "email", Body: body, OccurredAt: t0}},
		}
	}
	tests := []struct {
		name    string
		setup   func(f *fakeMeili)
		bodies  map[int]string // case number -> body; others "fine"
		wantBad []string
	}{
		{
			name:    "one case over the payload limit",
			setup:   func(f *fakeMeili) { f.MaxPayload = 64 << 10 },
			bodies:  map[int]string{7: strings.Repeat("huge ", 20_000)},
			wantBad: []string{"case-07"},
		},
		{
			name: "two cases the server fails for good",
			setup: func(f *fakeMeili) {
				failDocs(f, func(d map[string]any) bool { s, _ := d["body"].(string); return strings.Contains(s, "poison") })
			},
			bodies:  map[int]string{3: "poison pill", 11: "more poison"},
			wantBad: []string{"case-03", "case-11"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			e := openFake(t, f, 1)
			tt.setup(f)
			var docs []search.CaseDoc
			for i := 1; i <= 16; i++ {
				body := "fine walrus"
				if b, ok := tt.bodies[i]; ok {
					body = b
				}
				docs = append(docs, mkCase(i, body))
			}
			err := e.Index(ctx, docs)
			var pe *search.PoisonError
			if !errors.As(err, &pe) {
				t.Fatalf("Index: %v, want a *search.PoisonError", err)
			}
			if fmt.Sprint(pe.CaseIDs) != fmt.Sprint(tt.wantBad) {
				t.Errorf("set aside %v, want %v", pe.CaseIDs, tt.wantBad)
			}
			res, err := e.Search(ctx, search.Query{Words: []string{"walrus"}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Total != int64(16-len(tt.wantBad)) {
				t.Errorf("%d good cases indexed, want %d", res.Total, 16-len(tt.wantBad))
			}
			if got := e.SetAside(); got != int64(len(tt.wantBad)) {
				t.Errorf("set-aside metric %d, want %d", got, len(tt.wantBad))
			}
		})
	}
}

func TestChunksByBytes(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	e, err := Open(ctx, Config{URL: f.Srv.URL, APIKey: testAPIKey, TaskPollInterval: time.Millisecond, MaxBatchBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var docs []search.CaseDoc
	for i := range 40 {
		docs = append(docs, search.CaseDoc{CaseID: fmt.Sprintf("c%02d", i), Subject: "chunk", Status: "open", CreatedAt: t0, UpdatedAt: t0, Rev: 1,
			Contacts: []search.ContactDoc{{ID: fmt.Sprintf("k%02d", i), Body: strings.Repeat("text ", 200), OccurredAt: t0}}})
	}
	if err := e.Index(ctx, docs); err != nil {
		t.Fatal(err)
	}
	adds := f.Requests(http.MethodPost, "/indexes/cases_v1/documents")
	if len(adds) < 4 {
		t.Errorf("%d requests for ~40 KB of documents under an 8 KB limit", len(adds))
	}
	for _, r := range adds {
		if len(r.Body) > 8<<10 {
			t.Errorf("request of %d bytes over the 8 KB limit", len(r.Body))
		}
	}
	if n := len(f.Index("cases_v1").Docs); n != 40 {
		t.Errorf("%d documents, want 40", n)
	}
}

func TestRequestTimeout(t *testing.T) {
	f := newFake(t)
	e := openFake(t, f, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	f.Srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // a server that accepted the connection and hangs
		case <-release:
		case <-r.Context().Done():
		}
	})
	e.reqTimeout = 50 * time.Millisecond
	done := make(chan error, 1)
	go func() { _, err := e.Search(context.Background(), search.Query{Words: []string{"refund"}}); done <- err }()
	select {
	case err := <-done:
		if me := asError(t, err); !me.Temporary() {
			t.Errorf("error %+v: want temporary", me)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Search still hangs on a stalled server after 10s")
	}
}

func TestDeletedIndexIsRecreatedWithSettings(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	e := openFake(t, f, 1)
	f.Mu.Lock()
	delete(f.Indexes, "cases_v1")
	f.Mu.Unlock()
	err := e.Index(ctx, []search.CaseDoc{fixtureA()})
	if !errors.Is(err, search.ErrBroken) {
		t.Errorf("Index into a deleted index: %v, want search.ErrBroken (reopen)", err)
	}
	if ix := f.Index("cases_v1"); ix != nil && len(ix.Settings) == 0 {
		t.Fatalf("index recreated without settings (documents %v)", docIDs(ix))
	}
	// the indexer reopens: Open recreates the index with its settings and
	// reports it new, so it gets rebuilt
	e2 := openFake(t, f, 1)
	if !e2.Created() {
		t.Error("reopened engine does not report its index as created")
	}
	if ix := f.Index("cases_v1"); ix == nil || len(ix.Settings) == 0 {
		t.Fatal("index not recreated with settings")
	}
}

func TestEmptyIndexIsReportedForRebuild(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	if e := openFake(t, f, 1); !e.Created() {
		t.Error("a new index is not reported as created")
	}
	// another process (or a restart) opening the same, still empty index
	if e := openFake(t, f, 1); !e.Created() {
		t.Error("an empty existing index is trusted")
	}
	e := openFake(t, f, 1)
	if err := e.Index(ctx, []search.CaseDoc{fixtureA()}); err != nil {
		t.Fatal(err)
	}
	if e := openFake(t, f, 1); e.Created() {
		t.Error("an index with documents is reported as new")
	}
	if e.Outdated() {
		t.Error("current settings reported outdated")
	}
}

func TestCountReadsStats(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	e := openFake(t, f, 1)
	if err := e.Index(ctx, []search.CaseDoc{fixtureA(), fixtureB()}); err != nil {
		t.Fatal(err)
	}
	searches := len(f.Requests(http.MethodPost, "/indexes/cases_v1/search"))
	n, err := e.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 { // documents: two contacts of A, the case-only document of B
		t.Errorf("Count %d, want 3 documents", n)
	}
	if len(f.Requests(http.MethodPost, "/indexes/cases_v1/search")) != searches {
		t.Error("Count searched the index")
	}
	if len(f.Requests(http.MethodGet, "/indexes/cases_v1/stats")) == 0 {
		t.Error("Count did not read the index stats")
	}
}

// TestRebuildSwapsANewIndex: a rebuild fills a new index while the live one
// answers, swaps them in one task and deletes the replaced content; a
// restore fills an index of its own and never touches the live one.
func TestRebuildSwapsANewIndex(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	live := openFake(t, f, 1)
	if err := live.Index(ctx, []search.CaseDoc{fixtureB()}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{URL: f.Srv.URL, APIKey: testAPIKey, TaskPollInterval: time.Millisecond}

	b, err := Build(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if b.IndexName() == "cases_v1" || !b.Created() {
		t.Fatalf("build index %q created %v", b.IndexName(), b.Created())
	}
	if ix := f.Index(b.IndexName()); ix == nil || len(ix.Settings) == 0 {
		t.Fatal("build index not created with settings")
	}
	if err := b.Index(ctx, []search.CaseDoc{fixtureA()}); err != nil {
		t.Fatal(err)
	}
	if res, err := live.Search(ctx, search.Query{}); err != nil || res.Total != 1 || res.Hits[0].CaseID != caseB {
		t.Fatalf("live index during the rebuild: %+v %v", res, err)
	}
	tmp := b.IndexName()
	if err := b.Activate(ctx); err != nil {
		t.Fatal(err)
	}
	if b.IndexName() != "cases_v1" {
		t.Errorf("activated engine answers from %q", b.IndexName())
	}
	if f.Index(tmp) != nil {
		t.Errorf("replaced content left in %s", tmp)
	}
	if len(f.Requests(http.MethodPost, "/swap-indexes")) != 1 {
		t.Error("no swap-indexes")
	}
	for _, e := range []*Engine{live, b} { // the old engine reads the new content too
		res, err := e.Search(ctx, search.Query{})
		if err != nil || res.Total != 1 || res.Hits[0].CaseID != caseA {
			t.Fatalf("after the swap: %+v %v", res, err)
		}
	}
	// retiring the old engine must not delete the live index
	if err := live.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if f.Index("cases_v1") == nil {
		t.Fatal("dropping the replaced engine deleted the live index")
	}

	// a failed rebuild drops its own index only
	b2, err := Build(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if f.Index(b2.IndexName()) != nil || f.Index("cases_v1") == nil {
		t.Fatal("a failed rebuild's drop removed the wrong index")
	}

	// a restore never writes into the live index
	r, err := Restore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Index(ctx, []search.CaseDoc{fixtureB()}); err != nil {
		t.Fatal(err)
	}
	if err := r.Activate(ctx); err != nil {
		t.Fatal(err)
	}
	if r.IndexName() == "cases_v1" || !strings.HasPrefix(r.IndexName(), "cases_v1_restore_") {
		t.Errorf("restore index %q", r.IndexName())
	}
	if res, err := live.Search(ctx, search.Query{}); err != nil || res.Total != 1 || res.Hits[0].CaseID != caseA {
		t.Fatalf("the restore changed the live index: %+v %v", res, err)
	}
}
