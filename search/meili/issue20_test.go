package meili

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/casevault/casevault/search"
)

// Tests for the Meilisearch points of issue 20 (§5–12), against the fake.

func TestVersionFloor(t *testing.T) {
	tests := []struct {
		version string
		wantErr bool
	}{
		{"1.13.0", true}, // the image docker-compose pinned: rejects typoTolerance.disableOnNumbers
		{"1.52.9", true},
		{"1.53.0", false},
		{"1.54.2", false},
		{"2.0.0", false},
		{"1.53.0-rc.1", true},
		{"nonsense", true},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			f := newFake(t)
			f.Version = tt.version
			_, err := Open(context.Background(), Config{URL: f.Srv.URL, APIKey: testAPIKey, TaskPollInterval: time.Millisecond})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Open on %s: %v, want error %v", tt.version, err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "1.53.0") || !strings.Contains(err.Error(), tt.version) {
					t.Errorf("message %q names neither the floor nor the server's version", err)
				}
				if n := len(f.Requests(http.MethodPatch, "/indexes/cases_v1/settings")) + len(f.Requests(http.MethodPost, "/indexes")); n != 0 {
					t.Errorf("%d writes sent to a server below the floor", n)
				}
			}
		})
	}
}

// gate sequences the document writes of several engines: a request of a
// kind in the schedule waits for its turn; everything else passes.
type gate struct {
	mu    sync.Mutex
	cond  *sync.Cond
	steps []string // "A add", "B check", ...
	pos   int
}

func newGate(steps ...string) *gate {
	g := &gate{steps: steps}
	g.cond = sync.NewCond(&g.mu)
	return g
}

type gatedTransport struct {
	g    *gate
	name string
	next http.RoundTripper
}

func (tr gatedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	kind := ""
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/documents"):
		kind = "add"
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/multi-search"):
		// a write's clean-up reads the index once, after its addition;
		// what it then deletes by id follows from that reading
		kind = "check"
	}
	if kind == "" {
		return tr.next.RoundTrip(r)
	}
	step := tr.name + " " + kind
	tr.g.mu.Lock()
	for tr.g.pos < len(tr.g.steps) && tr.g.steps[tr.g.pos] != step {
		tr.g.cond.Wait()
	}
	sequenced := tr.g.pos < len(tr.g.steps)
	tr.g.mu.Unlock()
	resp, err := tr.next.RoundTrip(r)
	if sequenced {
		tr.g.mu.Lock()
		tr.g.pos++
		tr.g.cond.Broadcast()
		tr.g.mu.Unlock()
	}
	return resp, err
}

func openGated(t *testing.T, f *fakeMeili, g *gate, name string) *Engine {
	t.Helper()
	client := &http.Client{Transport: gatedTransport{g: g, name: name, next: f.Srv.Client().Transport}}
	e, err := Open(context.Background(), Config{
		URL: f.Srv.URL, APIKey: testAPIKey, HTTPClient: client,
		TaskTimeout: 10 * time.Second, TaskPollInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatalf("Open %s: %v", name, err)
	}
	return e
}

// TestTwoWritersNeverLoseACase indexes one case from two processes: A
// with the state at feed position 10 (contacts c1, c2), B with the newer
// state at position 12 (c1 and c3). Whatever order their writes reach
// Meilisearch in, the case must stay searchable, and once both finished
// only the newer state may be found.
func TestTwoWritersNeverLoseACase(t *testing.T) {
	ctx := context.Background()
	older := fixtureA()
	older.Rev = 10
	newer := fixtureA()
	newer.Rev = 12
	newer.Contacts = []search.ContactDoc{older.Contacts[0], {ID: "0190f5e2-a003-7000-8000-0000000000a3", Channel: "chat",
		Body: "walrus reply", OccurredAt: t0.Add(time.Hour), Purposes: []string{"customer_service"}}}

	schedules := [][]string{
		{"B add", "A add", "B check", "A check"}, // A's older write lands on B's
		{"A add", "B add", "B check", "A check"},
		{"B add", "B check", "A add", "A check"}, // A's older write comes last
		{"A add", "A check", "B add", "B check"},
		{"B add", "A add", "A check", "B check"},
		{"A add", "B add", "A check", "B check"},
	}
	for _, sched := range schedules {
		t.Run(strings.Join(sched, ", "), func(t *testing.T) {
			f := newFake(t)
			g := newGate(sched...)
			a, b := openGated(t, f, g, "A"), openGated(t, f, g, "B")
			if _, ok := any(a).(interface{ IndexName() string }); !ok {
				t.Fatal("not an engine")
			}
			var wg sync.WaitGroup
			errs := make([]error, 2)
			wg.Add(2)
			go func() { defer wg.Done(); errs[0] = a.Index(ctx, []search.CaseDoc{older}) }()
			go func() { defer wg.Done(); errs[1] = b.Index(ctx, []search.CaseDoc{newer}) }()
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			res, err := a.Search(ctx, search.Query{Filter: search.Filter{CaseIDs: []string{caseA}}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Total != 1 {
				t.Fatalf("case lost: %d hits (documents %v)", res.Total, docIDs(f.Index("cases_v1")))
			}
			for _, w := range []struct {
				word string
				want int64
			}{{"walrus", 1}, {"chargeback", 0}, {"refund", 1}} {
				res, err := a.Search(ctx, search.Query{Words: []string{w.word}})
				if err != nil {
					t.Fatal(err)
				}
				if res.Total != w.want {
					t.Errorf("%q: %d hits, want %d (documents %v)", w.word, res.Total, w.want, docIDs(f.Index("cases_v1")))
				}
			}
		})
	}
}

func failDocs(f *fakeMeili, bad func(doc map[string]any) bool) {
	f.FailTask = nil
	f.BadDoc = bad
}

// TestTaskTimeoutDoesNotPileUp: a stalled server makes Index time out; the
// indexer's retry must not enqueue the same documents again while the
// first task is still waiting.
func TestTaskTimeoutDoesNotPileUp(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	e, err := Open(ctx, Config{URL: f.Srv.URL, APIKey: testAPIKey, TaskTimeout: 50 * time.Millisecond, TaskPollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f.Mu.Lock()
	f.HoldTasks = true
	f.Mu.Unlock()
	for range 3 {
		if err := e.Index(ctx, []search.CaseDoc{fixtureA()}); err == nil {
			t.Fatal("Index succeeded on a stalled server")
		}
	}
	if n := len(f.Requests(http.MethodPost, "/indexes/cases_v1/documents")); n != 1 {
		t.Errorf("%d document additions enqueued by 3 attempts, want 1", n)
	}
	f.Mu.Lock()
	f.HoldTasks = false
	f.Mu.Unlock()
	if err := e.Index(ctx, []search.CaseDoc{fixtureA()}); err != nil {
		t.Fatalf("Index after the server recovered: %v", err)
	}
}

func TestSettingsComparedNotPatched(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	e := openFake(t, f, 1)
	if err := e.Index(ctx, []search.CaseDoc{fixtureA()}); err != nil {
		t.Fatal(err)
	}
	patches := len(f.Requests(http.MethodPatch, "/indexes/cases_v1/settings"))
	openFake(t, f, 1)
	if n := len(f.Requests(http.MethodPatch, "/indexes/cases_v1/settings")); n != patches {
		t.Errorf("settings patched again on a start with unchanged settings (%d → %d)", patches, n)
	}

	// someone changed the live index's settings: refuse, naming the fix
	f.Mu.Lock()
	f.Indexes["cases_v1"].Settings["searchableAttributes"] = json.RawMessage(`["body"]`)
	f.Mu.Unlock()
	_, err := Open(ctx, Config{URL: f.Srv.URL, APIKey: testAPIKey, TaskPollInterval: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "index version") {
		t.Fatalf("Open with changed settings: %v, want a refusal naming the index version", err)
	}
	if n := len(f.Requests(http.MethodPatch, "/indexes/cases_v1/settings")); n != patches {
		t.Error("live index's settings patched in place")
	}
}

func TestFacetsInOneRequest(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	e := openFake(t, f, 1)
	if err := e.Index(ctx, []search.CaseDoc{fixtureA(), fixtureB()}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []search.Query{{Facets: true}, {Facets: true, Offset: 839, Limit: 2}, {Words: []string{"refund"}, Offset: 839, Limit: 2}} {
		before := len(f.Requests(http.MethodPost, "/indexes/cases_v1/search")) + len(f.Requests(http.MethodPost, "/multi-search"))
		if _, err := e.Search(ctx, q); err != nil {
			t.Fatal(err)
		}
		after := len(f.Requests(http.MethodPost, "/indexes/cases_v1/search")) + len(f.Requests(http.MethodPost, "/multi-search"))
		if after-before != 1 {
			t.Errorf("%+v: %d requests, want 1", q, after-before)
		}
	}
}

func TestTermLimit(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	e := openFake(t, f, 1)
	if err := e.Index(ctx, []search.CaseDoc{fixtureA()}); err != nil {
		t.Fatal(err)
	}
	// Meilisearch reads ten words of q: an eleventh that matches nothing
	// must not be dropped silently.
	words := []string{"please", "refund", "me", "i", "typed", "x", "and", "script", "alert", "card", "zeppelin"}
	res, err := e.Search(ctx, search.Query{Words: words})
	if err == nil && res.Total != 0 {
		t.Fatalf("the eleventh word was ignored: %d hits", res.Total)
	}
	var qe *search.QueryError
	if !errors.As(err, &qe) {
		t.Errorf("error %v: want a *search.QueryError the user can fix", err)
	}
}
