package api

import (
	"context"
	"testing"
	"time"
)

type ctxKey struct{}

func TestDetachedRunsOutliveTheRequestNotTheServer(t *testing.T) {
	r := newRuns()
	req, endRequest := context.WithCancel(context.WithValue(t.Context(), ctxKey{}, "request-id"))
	run, cancel := r.detach(req)
	defer cancel()

	endRequest()
	if run.Value(ctxKey{}) != "request-id" {
		t.Fatal("the run lost the request's values")
	}
	// WithoutCancel cuts the request's cancellation synchronously: there
	// is nothing to wait for.
	if run.Err() != nil {
		t.Fatal("the end of the request cancelled the run")
	}

	r.stop()
	r.stop() // Shutdown may be called twice
	select {
	case <-run.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("stopping the server did not cancel the run")
	}

	late, cancelLate := r.detach(t.Context())
	defer cancelLate()
	select {
	case <-late.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a run started after stop was not cancelled")
	}
}
