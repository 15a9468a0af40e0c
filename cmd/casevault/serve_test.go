package main

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serve returns only after the background work it started has: the drill
// removes its scratch copy as soon as serve returns, and a rebuild still
// writing there put the directory back (TestBackupDrillCLI failed once
// with "scratch directory left behind"). The work here outlives the
// shutdown on purpose, and writes into the data directory when it ends.
func TestServeReturnsAfterItsBackgroundWork(t *testing.T) {
	cfg, dir := testServeConfig(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	late := filepath.Join(dir, "late-write")
	err = serve(ctx, cfg, slog.New(slog.DiscardHandler), io.Discard, serveHooks{ln: ln, noCron: true, ready: func(a *app) {
		a.guard.Go("test.late", func() {
			time.Sleep(300 * time.Millisecond)
			_ = os.WriteFile(late, nil, 0o600)
		})
		cancel()
	}})
	if err != nil {
		t.Fatalf("serve: %v", err)
	}

	if _, err := os.Stat(late); err != nil {
		t.Fatalf("serve returned before its background work ended: %v", err)
	}
}

// serve takes its port before it builds anything. A port in use fails at
// once, leaving the data directory untouched; --listen :0 serves on a port
// the kernel chose and logs that port. Before, serve bound only after its
// migrations, so the e2e helpers had to pick a port, close it and hand it
// over: another package's test server took it in between once, and the
// helper took that server's answer for casevault's.
func TestServeTakesItsPortFirst(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	tests := []struct {
		name   string
		listen string
		inUse  bool
	}{
		{"port in use", taken.Addr().String(), true},
		{"port chosen by the kernel", "127.0.0.1:0", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, dir := testServeConfig(t)
			cfg.Listen = tc.listen
			logged := &syncBuffer{}
			log := slog.New(slog.NewJSONHandler(logged, nil))

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var served string
			err := serve(ctx, cfg, log, io.Discard, serveHooks{noCron: true, ready: func(*app) {
				served = loggedValue(logged.String(), "casevault listening", "addr")
				res, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + served + "/healthz")
				if err != nil {
					t.Errorf("nothing answers on the logged address %s: %v", served, err)
				} else {
					res.Body.Close()
				}
				cancel()
			}})

			if tc.inUse {
				if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), tc.listen) {
					t.Fatalf("serve on a port in use: %v, want address in use naming %s", err, tc.listen)
				}
				if entries, _ := os.ReadDir(dir); len(entries) > 0 {
					t.Fatalf("serve on a port in use wrote %d entries to the data directory first", len(entries))
				}
				return
			}
			if err != nil {
				t.Fatalf("serve: %v", err)
			}
			if _, port, _ := net.SplitHostPort(served); port == "" || port == "0" {
				t.Fatalf("serve logged %q, not the port it serves on", served)
			}
		})
	}
}

// testServeConfig is a SQLite configuration on a new data directory under
// a fresh master key, without scheduled backups; dir is that directory.
func testServeConfig(t *testing.T) (cfg *config, dir string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "data")
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	cfg, err := scratchConfig(dir, master, testParentConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, dir
}

// testParentConfig is the resolved defaults with SQLite's NORMAL sync: the
// configuration a drill's scratch instance inherits from.
func testParentConfig(t *testing.T) *config {
	t.Helper()
	parent := newConfig()
	parent.SQLiteSync = "NORMAL"
	if err := parent.resolve(); err != nil {
		t.Fatal(err)
	}
	return parent
}

// A scheduled drill runs its scratch instance inside serve, after serve
// doubled GOMAXPROCS: the scratch instance keeps the cores serve read
// before that, or its index would build twice as many parts at once.
func TestScratchConfigKeepsTheParentsCores(t *testing.T) {
	parent := testParentConfig(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2 * parent.Runtime.Cores)) // what serve's apply does

	scratch, err := scratchConfig(t.TempDir(), make([]byte, 32), parent)
	if err != nil {
		t.Fatal(err)
	}

	if scratch.Runtime != parent.Runtime {
		t.Errorf("scratch runtime %+v, want the parent's %+v", scratch.Runtime, parent.Runtime)
	}
	if scratch.SQLiteSync != "NORMAL" {
		t.Errorf("scratch SQLite sync %q, want the parent's NORMAL", scratch.SQLiteSync)
	}
}
