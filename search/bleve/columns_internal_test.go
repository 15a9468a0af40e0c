package bleve

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2/index/scorch"
	index "github.com/blevesearch/bleve_index_api"

	"github.com/casevault/casevault/search"
)

// TestCachedColumnsForget: forgetting a segment's entry (another
// snapshot's reader no longer has it) never stops the entry from being
// built for a reader that still has it, and whatever it decodes then
// leaves the budget. Forgetting it before its build once left a query
// with nil columns, which crashed the search (seen in CI: the background
// warm-up and a search on two snapshots).
func TestCachedColumnsForget(t *testing.T) {
	built := func(size int64) func() (*segColumns, error) {
		return func() (*segColumns, error) {
			sc := &segColumns{}
			sc.decoded.size = size
			return sc, nil
		}
	}
	tests := []struct {
		name        string
		forgetFirst bool
		wantFreed   int64
	}{
		{name: "forgotten before its build", forgetFirst: true, wantFreed: 0},
		{name: "forgotten after its build", forgetFirst: false, wantFreed: 42},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e cachedColumns
			var freed int64
			if tc.forgetFirst {
				freed = e.forget()
			}

			cols, err := e.get(built(42))
			if err != nil || cols == nil {
				t.Fatalf("get after forget: %v, %v; want the built columns", cols, err)
			}

			if !tc.forgetFirst {
				freed = e.forget()
			}
			if freed != tc.wantFreed {
				t.Fatalf("forget freed %d bytes, want %d", freed, tc.wantFreed)
			}
			cols.decoded.mu.Lock()
			gone := cols.decoded.gone
			cols.decoded.mu.Unlock()
			if !gone {
				t.Fatal("the columns of a forgotten segment still keep what they decode")
			}
		})
	}

	t.Run("forgotten during its build", func(t *testing.T) {
		var e cachedColumns
		started, release := make(chan struct{}), make(chan struct{})
		got := make(chan *segColumns, 1)
		go func() {
			cols, _ := e.get(func() (*segColumns, error) {
				close(started)
				<-release
				return &segColumns{}, nil
			})
			got <- cols
		}()
		<-started

		// forget does not wait for another query's build (the deadline
		// only turns a hang into a failure)
		freed := make(chan int64, 1)
		go func() { freed <- e.forget() }()
		select {
		case n := <-freed:
			if n != 0 {
				t.Fatalf("forget freed %d bytes of columns not built yet", n)
			}
		case <-time.After(10 * time.Second):
			close(release)
			t.Fatal("forget waited for another query's build")
		}

		close(release)
		cols := <-got
		if cols == nil {
			t.Fatal("the build's caller got nil columns")
		}
		cols.decoded.mu.Lock()
		gone := cols.decoded.gone
		cols.decoded.mu.Unlock()
		if !gone {
			t.Fatal("columns built after their segment was forgotten still keep what they decode")
		}
	})
}

// TestColumnsOfTwoSnapshotsAtOnce: a query on an older snapshot (the
// background warm-up, or a search that began before a write) forgets the
// segments only a newer one has, possibly between a newer query claiming
// their entries and building them; that query still gets the columns of
// every segment of its snapshot.
func TestColumnsOfTwoSnapshotsAtOnce(t *testing.T) {
	ctx := context.Background()
	e := openInternal(t)

	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	add := func(n int) {
		t.Helper()
		doc := search.CaseDoc{CaseID: fmt.Sprintf("case-%d", n), Number: int64(n), Subject: "s", Status: "open", Priority: "normal",
			Channel: "email", CreatedAt: at, UpdatedAt: at, Contacts: []search.ContactDoc{{ID: fmt.Sprintf("c%d", n), Channel: "email",
				Direction: "inbound", Author: "x", Body: "refund", OccurredAt: at, Purposes: []string{"customer_service"}}}}
		if err := e.Index(ctx, []search.CaseDoc{doc}); err != nil {
			t.Fatal(err)
		}
	}
	add(1)
	older, _ := snapshotOf(t, e)
	add(2)
	newer, newerSnap := snapshotOf(t, e)

	// Nothing built yet: the cache starts empty.
	emptyColumns(e)

	// The newer query claims its entries, the older one's query then
	// forgets the segments it lacks, and the newer one builds.
	sv, entries := e.cols.claim(newerSnap)
	svOld, err := e.cols.forReader(ctx, older)
	if err != nil {
		t.Fatal(err)
	}
	if len(svOld.segIDs) >= len(sv.segIDs) {
		t.Fatalf("older snapshot has segments %v, newer %v: nothing for the older to forget", svOld.segIDs, sv.segIDs)
	}
	sv, err = e.cols.build(ctx, newer, sv, entries)
	if err != nil {
		t.Fatal(err)
	}
	for i, sc := range sv.cols {
		if sc == nil {
			t.Fatalf("segment %d (of %v) has no columns", sv.segIDs[i], sv.segIDs)
		}
	}

	// Both at once, many times, for the race detector (the interleaving
	// above is the one that failed; here it is left to the scheduler):
	// neither query ever gets a segment without columns.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for name, r := range map[string]index.IndexReader{"older": older, "newer": newer} {
		wg.Go(func() {
			for i := range 200 {
				sv, err := e.cols.forReader(ctx, r)
				if err != nil {
					errs <- err
					return
				}
				for s, sc := range sv.cols {
					if sc == nil {
						errs <- fmt.Errorf("%s snapshot, round %d: segment %d has no columns", name, i, s)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestSharedBuildOutlivesItsCancellation: concurrent queries share one
// build of a segment's columns, run under the context of the query that
// started it. When that query is cancelled, the others, whose contexts
// are live, still get their columns instead of its cancellation.
func TestSharedBuildOutlivesItsCancellation(t *testing.T) {
	ctx := context.Background()
	e := openInternal(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	doc := search.CaseDoc{CaseID: "case-1", Number: 1, Subject: "s", Status: "open", CreatedAt: at, UpdatedAt: at}
	if err := e.Index(ctx, []search.CaseDoc{doc}); err != nil {
		t.Fatal(err)
	}
	emptyColumns(e)
	r, snap := snapshotOf(t, e)

	// Both queries claim the same entries; the cancelled one builds first.
	svGone, gone := e.cols.claim(snap)
	svLive, live := e.cols.claim(snap)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.cols.build(cancelled, r, svGone, gone); !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled query's build: %v, want its cancellation", err)
	}

	sv, err := e.cols.build(ctx, r, svLive, live)
	if err != nil {
		t.Fatalf("a live query got another's cancellation: %v", err)
	}
	for i, sc := range sv.cols {
		if sc == nil {
			t.Fatalf("segment %d has no columns", sv.segIDs[i])
		}
	}
}

// emptyColumns waits for the warm-up after the last write and empties the
// columns cache, so that a test decides what is built when.
func emptyColumns(e *Engine) {
	for e.warming.Load() {
		time.Sleep(time.Millisecond)
	}
	e.cols.mu.Lock()
	e.cols.segs = nil
	e.cols.mu.Unlock()
}

// snapshotOf holds a reader of e's current snapshot for the test.
func snapshotOf(t *testing.T, e *Engine) (index.IndexReader, *scorch.IndexSnapshot) {
	t.Helper()
	r, err := e.reader()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, r.(*scorch.IndexSnapshot)
}
