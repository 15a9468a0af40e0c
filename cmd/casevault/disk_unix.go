//go:build unix

package main

import (
	"os"
	"syscall"
)

// sameDisk reports whether two existing paths are on one filesystem (one
// device): a backup there is lost with the data it backs up.
func sameDisk(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	if errA != nil || errB != nil {
		return false
	}
	da, okA := sa.Sys().(*syscall.Stat_t)
	db, okB := sb.Sys().(*syscall.Stat_t)
	return okA && okB && da.Dev == db.Dev
}
