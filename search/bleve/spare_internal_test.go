package bleve

import "testing"

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
