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
// ErrSizeMismatch when r is shorter or longer. The bytes that complete the
// declared length are withheld until r is known to end there, so a backend
// that reads only the declared length (an S3 PUT) never receives a complete
// body from a lying caller.
func ExactReader(r io.Reader, size int64) io.Reader { return &exactReader{r: r, left: size} }

type exactReader struct {
	r    io.Reader
	left int64
	err  error
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		e.err = e.checkEnd()
		return 0, e.err
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case err == io.EOF && e.left > 0:
		e.err = fmt.Errorf("%w: %d bytes short", ErrSizeMismatch, e.left)
		return 0, e.err
	case err != nil && err != io.EOF:
		e.err = err
		return 0, err
	case e.left == 0:
		if end := e.checkEnd(); end != io.EOF {
			e.err = end
			return 0, end
		}
		e.err = io.EOF
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
		if err != nil {
			return err // io.EOF: the body ends where declared
		}
	}
}
