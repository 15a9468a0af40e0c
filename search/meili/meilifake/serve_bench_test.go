package meilifake

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// BenchmarkServe measures nothing itself: it serves the fake until the
// process is told to stop, for scripts/bench.sh's replicas sharing one
// index (issue 19: no Meilisearch can run on these machines, and the fake
// keeps checking every request against Meilisearch's OpenAPI description
// while the figures are taken). It writes the fake's URL to the file
// CASEVAULT_MEILIFAKE_URL_FILE names; without it there is nothing to serve.
// When stopped it logs the write tasks it was sent, by kind (taskSummary).
func BenchmarkServe(b *testing.B) {
	out := os.Getenv("CASEVAULT_MEILIFAKE_URL_FILE")
	if out == "" {
		b.Skip("CASEVAULT_MEILIFAKE_URL_FILE is not set: scripts/bench.sh runs this")
	}
	f := New(b)
	// The request log would keep every document sent during the run.
	f.noLog = true

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := os.WriteFile(out, []byte(f.URL()), 0o600); err != nil {
		b.Fatal(err)
	}
	<-ctx.Done()
	b.Log(f.taskSummary())
}
