package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/s3"
)

// shortTimeoutStore is a store on a private versitygw (which the test may
// pause) with a 1 s call timeout.
func shortTimeoutStore(t *testing.T) (*blobtest.S3Server, s3.Config, *s3.Store) {
	t.Helper()
	srv := blobtest.StartVersityGW(t)
	cfg := config(srv)
	cfg.Timeout = time.Second
	store, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv, cfg, store
}

// TestHungServerTimesOut: a server that accepts connections but answers
// nothing (SIGSTOP) makes every call fail with ErrUnavailable within the
// configured timeout, instead of the minutes minio-go's transport waits.
func TestHungServerTimesOut(t *testing.T) {
	srv, cfg, store := shortTimeoutStore(t)
	ctx := context.Background()
	if err := store.Put(ctx, "h/present", strings.NewReader("hello"), -1); err != nil {
		t.Fatal(err)
	}
	checks := everyCall(ctx, store, "h/", blobtest.RandBytes(3<<20), func() error { _, err := s3.New(ctx, cfg); return err })
	srv.Pause(t)
	for name, fn := range checks {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			err := fn()
			took := time.Since(start)
			if !errors.Is(err, archive.ErrUnavailable) {
				t.Fatalf("%s against a hung server: %v, want ErrUnavailable", name, err)
			}
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s: our own timeout must not look like the caller's cancellation: %v", name, err)
			}
			// One timeout, plus scheduling slack on a loaded machine.
			if took > 5*time.Second {
				t.Fatalf("%s took %s with a 1s timeout", name, took)
			}
		})
	}
	srv.Resume(t)
	if err := store.Ping(ctx); err != nil {
		t.Fatalf("after resuming: %v", err)
	}
}

// TestDownloadStallTimesOut: a server that stops in the middle of a
// download fails the next Read within the timeout; a consumer that is
// slow between reads (longer than the timeout) is not cut off.
func TestDownloadStallTimesOut(t *testing.T) {
	srv, _, store := shortTimeoutStore(t)
	ctx := context.Background()
	data := blobtest.RandBytes(64 << 20) // more than loopback socket buffers hold (tcp_rmem max can be 32 MiB)
	if err := store.Put(ctx, "d/big", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}

	slow, err := store.Get(ctx, "d/big")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	if _, err := io.ReadFull(slow, buf); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // a slow client, not a slow server
	got, err := io.ReadAll(slow)
	slow.Close()
	if err != nil || !bytes.Equal(append(buf, got...), data) {
		t.Fatalf("slow consumer: %d bytes, %v", len(got), err)
	}

	rc, err := store.Get(ctx, "d/big")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	srv.Pause(t)
	start := time.Now()
	_, err = io.Copy(io.Discard, rc)
	if !errors.Is(err, archive.ErrUnavailable) {
		t.Fatalf("read from a hung server: %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("stalled read failed after %s with a 1s timeout", took)
	}
}
