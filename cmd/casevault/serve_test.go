package main

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// serve returns only after the background work it started has: the drill
// removes its scratch copy as soon as serve returns, and a rebuild still
// writing there put the directory back (TestBackupDrillCLI failed once
// with "scratch directory left behind"). The work here outlives the
// shutdown on purpose, and writes into the data directory when it ends.
func TestServeReturnsAfterItsBackgroundWork(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	cfg, err := scratchConfig(dir, master, "NORMAL")
	if err != nil {
		t.Fatal(err)
	}
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
