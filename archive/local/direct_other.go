//go:build !linux

package local

import (
	"io"
	"os"
)

// writeDirect: O_DIRECT is Linux's; elsewhere every write goes through
// the page cache.
func writeDirect(*os.File, []byte) (bool, error) { return false, nil }

// newBulkReader: without O_DIRECT a bulk read is a plain one.
func newBulkReader(f *os.File) io.ReadCloser { return f }
