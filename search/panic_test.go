package search_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/casevault/casevault/bg"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/search/bleve"
	"github.com/casevault/casevault/testkit"
)

// panicEngine panics, the way zap did on a full disk, in its next N calls
// of Index or Search.
type panicEngine struct {
	search.Engine
	index, query atomic.Int64
	src          *memSource
}

func zapPanic() {
	var m map[uint16]int
	//lint:ignore SA5000 reproduces zap's panic on a full disk on purpose
	m[2] = 1 // assignment to entry in nil map
}

func (p *panicEngine) Index(ctx context.Context, docs []search.CaseDoc) error {
	if p.index.Add(-1) >= 0 {
		zapPanic()
	}
	return p.Engine.Index(ctx, docs)
}

func (p *panicEngine) Search(ctx context.Context, q search.Query) (search.Result, error) {
	if p.query.Add(-1) >= 0 {
		zapPanic()
	}
	return p.Engine.Search(ctx, q)
}

func panics(t *testing.T, reg *prometheus.Registry, job string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "casevault_background_panics_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "job" && l.GetValue() == job {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func failedJobs(g *bg.Guard) string {
	var jobs []string
	for _, pe := range g.Failed() {
		jobs = append(jobs, pe.Job)
	}
	return strings.Join(jobs, ",")
}

// A panic in each of the indexer's paths (an outbox batch, a query, a
// rebuild, a rebuild's batch) is recovered and reported through the Guard
// (log, metric, readiness state); the indexer goes on, reopens the engine
// that panicked, and ends up with everything indexed.
func TestIndexerRecoversPanics(t *testing.T) {
	for _, tc := range []struct {
		name string
		job  string
		run  func(t *testing.T, ix *search.Indexer, eng *panicEngine, dir string)
	}{
		{"batch", "indexer", func(t *testing.T, ix *search.Indexer, eng *panicEngine, dir string) {
			eng.index.Store(2)
			// a batch after this point panics: make sure there is one
			eng.src.put(mkCase(5, "walrus"))
			ix.Kick()
		}},
		{"query", "search.query", func(t *testing.T, ix *search.Indexer, eng *panicEngine, dir string) {
			eng.query.Store(1)
			_, err := ix.Search(t.Context(), search.Query{Words: []string{"walrus"}})
			if !errors.Is(err, search.ErrUnavailable) || !errors.Is(err, bg.ErrPanic) {
				t.Fatalf("search that panicked: %v, want ErrUnavailable and ErrPanic", err)
			}
		}},
		{"reindex", "search.reindex", func(t *testing.T, ix *search.Indexer, eng *panicEngine, dir string) {
			done := make(chan error, 1)
			if err := ix.StartReindex(t.Context(), func(context.Context) (search.Engine, error) { zapPanic(); return nil, nil }, func(err error) { done <- err }); err != nil {
				t.Fatal(err)
			}
			if err := <-done; !errors.Is(err, bg.ErrPanic) {
				t.Fatalf("rebuild that panicked: %v", err)
			}
		}},
		{"reindex batch", "search.reindex", func(t *testing.T, ix *search.Indexer, eng *panicEngine, dir string) {
			err := ix.Reindex(t.Context(), func(ctx context.Context) (search.Engine, error) {
				e, err := bleve.Build(ctx, dir)
				pe := &panicEngine{Engine: e}
				pe.index.Store(100)
				return pe, err
			})
			if !errors.Is(err, bg.ErrPanic) {
				t.Fatalf("rebuild whose batch panicked: %v", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			guard := bg.New(slog.New(slog.NewTextHandler(t.Output(), nil)), reg)
			dir := t.TempDir()
			src := newMemSource()
			for i := range 5 {
				src.put(mkCase(i, "walrus"))
			}
			eng := &panicEngine{Engine: openBleve(t, dir), src: src}
			var reopened atomic.Int64
			ix := startIndexer(t, src, eng, search.Options{BatchSize: 2, PollInterval: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Guard: guard,
				Reopen: func(ctx context.Context) (search.Engine, error) {
					reopened.Add(1)
					return bleve.Reopen(ctx, dir)
				}})
			testkit.Eventually(t, waitFor, "first batches", func() bool { return src.pending() < 5 })
			tc.run(t, ix, eng, dir)
			testkit.Eventually(t, waitFor, "the panic reported", func() bool { return panics(t, reg, tc.job) >= 1 })
			for i := 5; i < 10; i++ {
				src.put(mkCase(i, "walrus"))
			}
			ix.Kick()
			testkit.Eventually(t, waitFor, "outbox drained after the panic", func() bool { return src.pending() == 0 })
			testkit.Eventually(t, waitFor, "healthy again", func() bool {
				st, err := ix.Status(t.Context())
				return err == nil && st.Healthy && st.Error == ""
			})
			if n := total(t, ix, search.Query{Words: []string{"walrus"}}); n != 10 {
				t.Fatalf("%d cases indexed after the panic, want 10", n)
			}
			if tc.job != "search.reindex" && reopened.Load() == 0 {
				t.Errorf("the engine that panicked was never reopened")
			}
			// a later clean run of the same job clears its readiness state
			if tc.job == "indexer" && strings.Contains(failedJobs(guard), "indexer") {
				t.Errorf("indexer still reported failed after clean batches: %s", failedJobs(guard))
			}
		})
	}
}

// An engine that cannot be opened at start-up (a full disk) is a stand-in
// answering ErrUnavailable: search is degraded with the reason, writes go
// on into the outbox, and the indexer opens the engine once it can and
// indexes everything.
func TestIndexerStartsWithUnavailableEngine(t *testing.T) {
	dir := t.TempDir()
	src := newMemSource()
	for i := range 3 {
		src.put(mkCase(i, "narwhal"))
	}
	var allow atomic.Bool
	ix := startIndexer(t, src, search.Unavailable("bleve", syscall.ENOSPC), search.Options{PollInterval: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Reopen: func(ctx context.Context) (search.Engine, error) {
			if !allow.Load() {
				return nil, syscall.ENOSPC
			}
			return bleve.Open(ctx, dir)
		}})
	testkit.Eventually(t, waitFor, "a failed reopen", func() bool {
		st, err := ix.Status(t.Context())
		return err == nil && !st.Healthy && strings.Contains(st.Error, "no space left on device")
	})
	if _, err := ix.Search(t.Context(), search.Query{Words: []string{"narwhal"}}); !errors.Is(err, search.ErrUnavailable) {
		t.Fatalf("search on the stand-in: %v, want ErrUnavailable", err)
	}
	if p := src.pending(); p != 3 {
		t.Fatalf("%d pending, want 3 kept for the real engine", p)
	}
	allow.Store(true)
	testkit.Eventually(t, waitFor, "drained", func() bool { return src.pending() == 0 })
	if n := total(t, ix, search.Query{Words: []string{"narwhal"}}); n != 3 {
		t.Fatalf("%d cases indexed, want 3", n)
	}
}
