package search_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/testkit"
)

// An index whose cursor was pruned past (it was away, or is new after
// pruning) is not trusted until a rebuild replaces it: status and Position
// say so, and the rebuild it starts brings it to the head.
func TestIndexerRebuildsWhenPrunedPast(t *testing.T) {
	src := newMemSource()
	for i := range 30 {
		src.put(mkCase(i, "walrus"))
	}

	// another consumer read everything and the feed was pruned
	now := time.Now()
	if _, _, err := src.ClaimConsumer(t.Context(), search.Claim{ID: "other", Owner: "other", TTL: time.Hour, Now: now}); err != nil {
		t.Fatal(err)
	}
	if err := src.AdvanceConsumer(t.Context(), "other", "other", 30, now); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := src.PruneFeed(t.Context(), now, now.Add(-time.Hour)); n != 30 {
		t.Fatalf("pruned %d, want 30", n)
	}

	dir := t.TempDir()
	rebuilds := 0
	ix := startIndexer(t, src, openBleve(t, dir+"/live"), search.Options{PollInterval: 10 * time.Millisecond, Consumer: "late",
		Rebuild: func(ctx context.Context) (search.Engine, error) {
			rebuilds++
			return openBleve(t, fmt.Sprint(dir, "/rebuild", rebuilds)), nil
		}})
	testkit.Eventually(t, waitFor, "the late consumer rebuilt and at the head", func() bool {
		p, err := ix.Position(t.Context())
		return err == nil && p == 30
	})
	if n := total(t, ix, search.Query{Words: []string{"walrus"}}); n != 30 {
		t.Fatalf("after the rebuild: %d walrus cases, want 30", n)
	}
	st, err := ix.Status(t.Context())
	if err != nil || st.MustRebuild || !st.Healthy || st.Pending != 0 || len(st.Consumers) != 2 {
		t.Fatalf("status %+v %v", st, err)
	}

	// new changes flow as usual
	src.put(mkCase(100, "walrus"))
	ix.Kick()
	testkit.Eventually(t, waitFor, "a change after the rebuild", func() bool { return total(t, ix, search.Query{Words: []string{"walrus"}}) == 31 })
}

// Two replicas over one shared index: only the lease holder writes it and
// moves the one cursor; the other takes over when the holder goes.
func TestSharedIndexHasOneWriter(t *testing.T) {
	src := newMemSource()
	eng := openBleve(t, t.TempDir())
	counting := &flakyEngine{Engine: keepOpen{eng}}
	opts := search.Options{PollInterval: 10 * time.Millisecond, Consumer: "meilisearch:cases", Shared: true, LeaseTTL: 5 * time.Second}
	first := search.NewIndexer(src, counting, nil, opts)
	ctx1, stop1 := context.WithCancel(context.Background())
	done1 := make(chan error, 1)
	go func() { done1 <- first.Run(ctx1) }()
	testkit.Eventually(t, waitFor, "the first replica holds the lease", func() bool {
		st, err := first.Status(t.Context())
		return err == nil && st.Writer
	})

	reader := &flakyEngine{Engine: eng}
	second := startIndexer(t, src, reader, opts)
	for i := range 20 {
		src.put(mkCase(i, "walrus"))
	}
	testkit.Eventually(t, waitFor, "indexed once", func() bool { return src.pending() == 0 })
	if st, _ := second.Status(t.Context()); st.Writer || st.Position != 20 || len(st.Consumers) != 1 {
		t.Fatalf("second replica status %+v, want a reader of the one consumer at 20", st)
	}
	if n := reader.writes.Load(); n != 0 {
		t.Fatalf("the replica without the lease wrote %d times", n)
	}

	// the writer stops, releasing its lease; the other takes over at once
	// (well before the TTL)
	stop1()
	<-done1
	_ = first.Close()
	src.put(mkCase(50, "walrus"))
	testkit.Eventually(t, waitFor, "the second replica writes after the first left", func() bool {
		st, err := second.Status(t.Context())
		return err == nil && st.Writer && st.Position == 21
	})
}

// keepOpen is an engine another indexer goes on using: closing it is a no-op.
type keepOpen struct{ search.Engine }

func (keepOpen) Close() error { return nil }
