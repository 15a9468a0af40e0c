package api

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
)

// errBodyIncomplete: the request body did not arrive whole (fewer bytes
// than Content-Length, a chunked body without its terminating 0 chunk, a
// broken chunk, or a connection that failed mid-body). Nothing read from
// such a body may be stored.
var errBodyIncomplete = errors.New("request body incomplete")

// errClientGone: the client closed its connection before the request was
// committed; committing would acknowledge a write nobody will hear of.
var errClientGone = errors.New("client closed the connection")

// completeBody checks what fasthttp's streaming body reader cannot: its
// stream answers a plain io.EOF when the connection closes short of the
// declared Content-Length (it passes bufio's EOF through), and also when a
// chunked body's connection closes at a chunk boundary (readHexInt returns
// the connection's io.EOF, indistinguishable from the EOF after a real
// 0-chunk). Both are caught here: a Content-Length body must deliver
// exactly that many bytes, and a chunked body must end without the
// connection having hit EOF (see watchedConn).
type completeBody struct {
	r        io.Reader
	declared int // Content-Length, or -1 for chunked
	conn     *watchedConn
	n        int64
}

func newCompleteBody(c *fiber.Ctx, r io.Reader) io.Reader {
	cb := &completeBody{r: r, declared: c.Request().Header.ContentLength()}
	cb.conn, _ = c.Context().Conn().(*watchedConn)
	return cb
}

func (b *completeBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		if b.declared >= 0 && b.n != int64(b.declared) {
			return n, fmt.Errorf("%w: %d of %d declared bytes", errBodyIncomplete, b.n, b.declared)
		}
		if b.declared < 0 && b.conn != nil && b.conn.sawEOF() {
			return n, fmt.Errorf("%w: chunked body ended without its terminating chunk", errBodyIncomplete)
		}
		return n, io.EOF
	default:
		// A broken chunk, io.ErrUnexpectedEOF mid-chunk, a read timeout or
		// a reset: the client's body is unusable, whatever the cause.
		return n, fmt.Errorf("%w: %w", errBodyIncomplete, err)
	}
}

// watchingListener wraps accepted connections in watchedConn.
type watchingListener struct{ net.Listener }

func (l watchingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &watchedConn{Conn: c}, nil
}

// watchedConn remembers that the peer ended the stream (EOF or a reset), so
// that a handler can tell a chunked body cut at a chunk boundary from one
// that really ended, and can ask before committing whether the client is
// still there (peerGone). fasthttp reads a connection only from the
// goroutine serving it, and a handler runs on that goroutine, so the probe
// never races with fasthttp's own reads.
type watchedConn struct {
	net.Conn
	eof atomic.Bool

	mu       sync.Mutex
	pending  []byte    // bytes the probe read ahead (a pipelined request)
	deadline time.Time // the read deadline fasthttp last set
}

func (w *watchedConn) Read(p []byte) (int, error) {
	w.mu.Lock()
	if len(w.pending) > 0 {
		n := copy(p, w.pending)
		w.pending = w.pending[n:]
		w.mu.Unlock()
		return n, nil
	}
	w.mu.Unlock()
	n, err := w.Conn.Read(p)
	if err != nil && isPeerClosed(err) {
		w.eof.Store(true)
	}
	return n, err
}

func (w *watchedConn) SetReadDeadline(t time.Time) error {
	w.mu.Lock()
	w.deadline = t
	w.mu.Unlock()
	return w.Conn.SetReadDeadline(t)
}

func (w *watchedConn) SetDeadline(t time.Time) error {
	w.mu.Lock()
	w.deadline = t
	w.mu.Unlock()
	return w.Conn.SetDeadline(t)
}

func (w *watchedConn) sawEOF() bool { return w.eof.Load() }

// peerGone reports whether the client has closed or reset the connection.
// It reads at most one byte, waiting at most a millisecond; a byte that
// arrives (the next pipelined request) is kept for fasthttp's next read.
func (w *watchedConn) peerGone() bool {
	if w.eof.Load() {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) > 0 {
		return false
	}
	if err := w.Conn.SetReadDeadline(time.Now().Add(time.Millisecond)); err != nil {
		return true
	}
	var one [1]byte
	n, err := w.Conn.Read(one[:])
	_ = w.Conn.SetReadDeadline(w.deadline)
	if n > 0 {
		w.pending = append(w.pending, one[0])
		return false
	}
	if err != nil && isPeerClosed(err) {
		w.eof.Store(true)
		return true
	}
	return false
}

// isPeerClosed: EOF or a connection-level failure, not a deadline.
func isPeerClosed(err error) bool {
	if errors.Is(err, io.EOF) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true
}
