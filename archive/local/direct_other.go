//go:build !linux

package local

import "os"

// directMin: see direct_linux.go; elsewhere every write is buffered.
const directMin = 256 << 10

// directWriter is an ordinary write where O_DIRECT is not wired.
type directWriter struct {
	f  *os.File
	p  string
	fs *fileSet
}

func (w *directWriter) Write(p []byte) (int, error) { return w.f.Write(p) }
