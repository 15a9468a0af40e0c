package bg_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/casevault/casevault/bg"
	"github.com/casevault/casevault/testkit"
)

// Every way background work is started through a Guard recovers a panic,
// logs it at ERROR with its stack, counts it by job, and reports the job
// failed until its next clean run; a nil Guard still recovers.
func TestGuardRecoversEveryPath(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		run  func(g *bg.Guard, job string, fn func()) error
	}{
		{"Run", func(g *bg.Guard, job string, fn func()) error {
			return g.Run(job, func() error { fn(); return nil })
		}},
		{"Recover", func(g *bg.Guard, job string, fn func()) (err error) {
			defer g.Recover(job, &err)
			fn()
			return nil
		}},
		{"Go", func(g *bg.Guard, job string, fn func()) error {
			var wg sync.WaitGroup
			wg.Add(1)
			g.Go(job, func() { defer wg.Done(); fn() })
			wg.Wait()
			return nil
		}},
		{"Func", func(g *bg.Guard, job string, fn func()) error {
			g.Func(job, fn)()
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			var mu sync.Mutex
			reg := prometheus.NewRegistry()
			g := bg.New(slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, nil)), reg)
			err := tc.run(g, "cron.backup", func() { panic(boom) })
			if tc.name == "Run" || tc.name == "Recover" {
				var pe *bg.PanicError
				if !errors.Is(err, bg.ErrPanic) || !errors.Is(err, boom) || !errors.As(err, &pe) || pe.Job != "cron.backup" || pe.Stack == "" {
					t.Fatalf("error %v (%#v), want a PanicError for cron.backup wrapping boom", err, pe)
				}
			}
			// Go reports after fn returned: give it a moment
			testkit.Eventually(t, 5*time.Second, "the panic counted", func() bool { return panicCount(t, reg) == 1 })
			if n := panicCount(t, reg); n != 1 {
				t.Fatalf("casevault_background_panics_total = %v, want 1", n)
			}
			mu.Lock()
			l := logs.String()
			mu.Unlock()
			if !strings.Contains(l, `"level":"ERROR"`) || !strings.Contains(l, `"job":"cron.backup"`) || !strings.Contains(l, "boom") || !strings.Contains(l, "goroutine") {
				t.Fatalf("log lacks an ERROR with job, value and stack: %s", l)
			}
			if f := g.Failed(); len(f) != 1 || f[0].Job != "cron.backup" {
				t.Fatalf("Failed() = %v", f)
			}
			if err := tc.run(g, "cron.backup", func() {}); err != nil {
				t.Fatal(err)
			}
			testkit.Eventually(t, 5*time.Second, "readiness cleared by a clean run", func() bool { return len(g.Failed()) == 0 })
			if f := g.Failed(); len(f) != 0 {
				t.Fatalf("Failed() after a clean run = %v", f)
			}
		})
	}
	var nilGuard *bg.Guard
	if err := nilGuard.Run("x", func() error { panic("nil guard") }); !errors.Is(err, bg.ErrPanic) {
		t.Fatalf("nil guard: %v", err)
	}
}

func panicCount(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "casevault_background_panics_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Wait returns only after every goroutine Go started has returned (a
// panicking one included), and gives up with the context's error while
// one still runs.
func TestGuardWaitsForItsGoroutines(t *testing.T) {
	g := bg.New(nil, nil)
	release := make(chan struct{})
	var finished atomic.Int32
	g.Go("slow", func() { <-release; finished.Add(1) })
	g.Go("panics", func() { <-release; finished.Add(1); panic("boom") })

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := g.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with work running: %v, want the deadline", err)
	}

	close(release)
	if err := g.Wait(context.Background()); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if n := finished.Load(); n != 2 {
		t.Fatalf("Wait returned with %d of 2 goroutines finished", n)
	}
	if err := (*bg.Guard)(nil).Wait(context.Background()); err != nil {
		t.Fatalf("nil Guard: %v", err)
	}
}
