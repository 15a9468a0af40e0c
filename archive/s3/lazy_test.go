package s3_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/s3"
)

// A lazy store behaves as a store once its endpoint answers.
func TestLazyConformance(t *testing.T) {
	srv := blobtest.EnvS3(t)
	blobtest.Suite{Store: s3.NewLazy(config(srv), "backup target")}.Run(t)
}

// An unreachable endpoint fails each call as unavailable, named, and is
// tried again on the next call rather than remembered.
func TestLazyUnreachableFailsEveryCall(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	l := s3.NewLazy(s3.Config{Endpoint: addr, Bucket: "b", Region: "us-east-1", MaxRetries: 1, Timeout: 2 * time.Second}, "backup target x")
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		err := l.Ping(ctx)
		if !errors.Is(err, archive.ErrUnavailable) || !strings.HasPrefix(err.Error(), "backup target x: ") {
			t.Fatalf("call %d: %v, want a named archive.ErrUnavailable", i, err)
		}
	}
	if _, err := l.Stat(ctx, "k"); !errors.Is(err, archive.ErrUnavailable) {
		t.Fatalf("stat: %v", err)
	}
}
