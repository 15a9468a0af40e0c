package export

import (
	"io"
	"sync"
)

// chunkPipe is an in-memory pipe with a few large chunks of buffering.
// io.Pipe hands each write over synchronously, so the ZIP writer and the
// encrypting reader would take turns on one core; with buffering the two
// run at once, each on a core.
type chunkPipe struct {
	full chan []byte // filled chunks, in order
	free chan []byte // emptied chunks, for the writer to fill again

	// writer side
	cur []byte

	// reader side
	rd []byte // the unread rest of the chunk being read
	rc []byte // that chunk, to give back

	mu     sync.Mutex
	rerr   error // the reader's error, once closed
	werr   error // what the writer closed with (io.EOF: done)
	closed chan struct{}
	once   sync.Once
}

func newChunkPipe(chunks, size int) *chunkPipe {
	p := &chunkPipe{full: make(chan []byte, chunks), free: make(chan []byte, chunks), closed: make(chan struct{})}
	for range chunks {
		p.free <- make([]byte, 0, size)
	}
	return p
}

// Write copies b into chunks, handing each over to the reader once full.
func (p *chunkPipe) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		if p.cur == nil {
			select {
			case c := <-p.free:
				p.cur = c[:0]
			case <-p.closed:
				return n, p.readErr()
			}
		}
		k := copy(p.cur[len(p.cur):cap(p.cur)], b)
		p.cur = p.cur[:len(p.cur)+k]
		n += k
		b = b[k:]
		if len(p.cur) == cap(p.cur) {
			if err := p.send(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (p *chunkPipe) send() error {
	select {
	case p.full <- p.cur:
		p.cur = nil
		return nil
	case <-p.closed:
		return p.readErr()
	}
}

// CloseWrite ends the stream: the reader gets what was written, then err
// (io.EOF when err is nil).
func (p *chunkPipe) CloseWrite(err error) {
	if len(p.cur) > 0 {
		if serr := p.send(); err == nil {
			err = serr
		}
	}
	if err == nil {
		err = io.EOF
	}
	p.mu.Lock()
	if p.werr == nil {
		p.werr = err
	}
	p.mu.Unlock()
	close(p.full)
}

// Read returns the chunks in order, then the writer's error.
func (p *chunkPipe) Read(b []byte) (int, error) {
	for len(p.rd) == 0 {
		if p.rc != nil {
			p.free <- p.rc
			p.rc = nil
		}
		c, ok := <-p.full
		if !ok {
			p.mu.Lock()
			defer p.mu.Unlock()
			return 0, p.werr
		}
		p.rd, p.rc = c, c
	}
	n := copy(b, p.rd)
	p.rd = p.rd[n:]
	return n, nil
}

// CloseRead stops the writer: its writes fail with err.
func (p *chunkPipe) CloseRead(err error) {
	if err == nil {
		err = io.ErrClosedPipe
	}
	p.once.Do(func() {
		p.mu.Lock()
		p.rerr = err
		p.mu.Unlock()
		close(p.closed)
	})
}

func (p *chunkPipe) readErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rerr
}
