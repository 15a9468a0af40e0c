package archive

import (
	"context"
	"fmt"
	"io"
)

// SourceReader wraps the caller's reader in Put so a backend can tell the
// client's read errors (passed through as they are: too large, digest
// mismatch, client gone) from its own failures (wrapped in ErrUnavailable).
type SourceReader struct {
	R   io.Reader
	Err error // first non-EOF error R returned
}

func (s *SourceReader) Read(p []byte) (int, error) {
	n, err := s.R.Read(p)
	if err != nil && err != io.EOF && s.Err == nil {
		s.Err = err
	}
	return n, err
}

// ContextReader fails reads once ctx is done, so a copy loop over a local
// file or pipe stops when the request is cancelled.
type ContextReader struct {
	Ctx context.Context
	R   io.Reader
}

func (c ContextReader) Read(p []byte) (int, error) {
	if err := c.Ctx.Err(); err != nil {
		return 0, err
	}
	return c.R.Read(p)
}

// ReadCloser joins a reader with the closer of the resource behind it.
type ReadCloser struct {
	io.Reader
	io.Closer
}

// ExactReader delivers exactly size bytes of r and fails with
// ErrSizeMismatch when r is shorter or longer, so a backend that reads only
// the declared length (an S3 PUT) still notices a lying caller before the
// upload completes.
func ExactReader(r io.Reader, size int64) io.Reader { return &exactReader{r: r, left: size} }

type exactReader struct {
	r    io.Reader
	left int64
	done bool
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.done {
		return 0, io.EOF
	}
	if e.left == 0 {
		return 0, e.checkEnd()
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case err == io.EOF && e.left > 0:
		return n, fmt.Errorf("%w: %d bytes short", ErrSizeMismatch, e.left)
	case err != nil && err != io.EOF:
		return n, err
	case e.left == 0:
		// Find out now whether more follows, while the caller can still
		// abandon the upload.
		if err := e.checkEnd(); err != io.EOF {
			return n, err
		}
		return n, nil
	}
	return n, nil
}

func (e *exactReader) checkEnd() error {
	var one [1]byte
	for {
		n, err := e.r.Read(one[:])
		if n > 0 {
			return fmt.Errorf("%w: more bytes than declared", ErrSizeMismatch)
		}
		if err == io.EOF {
			e.done = true
			return io.EOF
		}
		if err != nil {
			return err
		}
	}
}
