//go:build unix

package testkit

import (
	"syscall"
	"testing"
	"time"
)

// ProcessCPU is the user and system CPU time this process has used so far
// (getrusage): benchmarks report it beside wall time, as it is far steadier
// on a shared machine and includes every goroutine and the collector.
func ProcessCPU(tb testing.TB) time.Duration {
	user, sys := Rusage(tb, syscall.RUSAGE_SELF)
	return user + sys
}

// ChildrenCPU is the user and system CPU time of this process's finished
// child processes (a reference command such as tar | zstd).
func ChildrenCPU(tb testing.TB) time.Duration {
	user, sys := Rusage(tb, syscall.RUSAGE_CHILDREN)
	return user + sys
}

// Rusage is who's (syscall.RUSAGE_SELF or RUSAGE_CHILDREN) user and system
// CPU time apart: on a VM, system time carries the page faults that either
// side of a comparison may or may not pay in a given run.
func Rusage(tb testing.TB, who int) (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}
