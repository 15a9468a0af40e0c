package bleve

import (
	"runtime"
	"testing"
)

// TestSpareCores: a search splits only while a spare core is free, and
// asking never waits.
func TestSpareCores(t *testing.T) {
	s := make(spareCores, 2)
	for i := range 2 {
		if !s.take() {
			t.Fatalf("free spare core %d refused", i+1)
		}
	}
	if s.take() {
		t.Fatal("a third spare core out of two")
	}
	s.give()
	if !s.take() {
		t.Fatal("a given-back spare core was refused")
	}
}

// TestSpareCoresFollowCores: an engine given n cores lets n − 1 searches
// split at once (at least one), whatever GOMAXPROCS is: serve runs twice
// as many Ps as cores, and a split only pays on a core left idle.
func TestSpareCoresFollowCores(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8))
	for _, tt := range []struct {
		name string
		opts []Option
		want int
	}{
		{"one core", []Option{WithCores(1)}, 1},
		{"two cores", []Option{WithCores(2)}, 1},
		{"four cores", []Option{WithCores(4)}, 3},
		{"default", nil, 7}, // GOMAXPROCS − 1
	} {
		e, err := Open(t.Context(), t.TempDir(), tt.opts...)
		if err != nil {
			t.Fatal(err)
		}
		if got := cap(e.spare); got != tt.want {
			t.Errorf("%s: %d spare cores, want %d", tt.name, got, tt.want)
		}
		e.Close()
	}
}
