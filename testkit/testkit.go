// Package testkit holds the helpers every package's tests share that are
// not about a database (those are in sqldb/sqldbtest): waiting for a
// condition, and a clock a test moves by hand instead of sleeping.
package testkit

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// Eventually polls cond every 10 ms until it holds, and fails the test with
// what it was waiting for after timeout. It is for work another goroutine or
// process finishes on its own time, never for letting time pass: use a
// Clock for that.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v still waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Clock is a time source tests move by hand; pass its Now where a
// component takes a func() time.Time.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Median is the middle value of xs (the mean of the two middle ones for an
// even count; 0 for none): benchmarks that alternate a measurement with its
// reference report the median ratio of the rounds.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
