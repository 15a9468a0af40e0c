package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"sync"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"
)

// A table dump is cut into chunks at rows chosen by their key, not by
// position: a row ends a chunk when the hash of its key is 0 modulo
// chunkRows. An insert or a delete therefore changes only the chunk it
// falls in (ids are UUIDv7, so new rows land in the last chunks), and an
// unchanged chunk has the same bytes, hence the same digest, as in the
// previous backup, whose object is reused instead of being compressed,
// encrypted and written again.
const (
	chunkRows = 2048
	// chunkMaxBytes bounds one chunk (and so what a run holds in memory
	// per chunk in flight) whatever the rows look like.
	chunkMaxBytes = 4 << 20
)

// ChunkEntry is one chunk of a table dump: an age-encrypted zstd stream of
// consecutive NDJSON rows, stored as a content-addressed object
// (data/<2 hex>/<64 hex>, the SHA-256 of the stored bytes) and shared by
// every backup whose dump has a chunk with the same plain digest.
type ChunkEntry struct {
	Object      string `json:"object"`
	Rows        int64  `json:"rows"`
	Size        int64  `json:"size"`
	PlainSize   int64  `json:"plain_size"`
	PlainSHA256 string `json:"plain_sha256"`
}

// chunkStore writes the chunks of one run: the dumping goroutine cuts and
// hashes, workers compress, encrypt and store the chunks no earlier
// backup already holds.
type chunkStore struct {
	repo       *Repo
	recipients []age.Recipient
	// prev maps a plain digest to a stored chunk of an earlier backup.
	prev map[string]ChunkEntry
	g    *errgroup.Group
	gctx context.Context
	// free bounds the chunk buffers in flight (memory stays bounded
	// whatever the table size).
	free chan *bytes.Buffer
	encs sync.Pool
	outs sync.Pool

	mu                 sync.Mutex
	written, reused    int64
	bytesNew, bytesOld int64
	tablesReused       int64
}

func newChunkStore(ctx context.Context, repo *Repo, recipients []age.Recipient, prev map[string]ChunkEntry, workers int) *chunkStore {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	cs := &chunkStore{repo: repo, recipients: recipients, prev: prev, g: g, gctx: gctx, free: make(chan *bytes.Buffer, workers+2)}
	for range workers + 2 {
		cs.free <- new(bytes.Buffer)
	}
	return cs
}

// pendingTable is a table dump whose chunks may still be being written.
type pendingTable struct {
	entry  TableEntry
	chunks []*ChunkEntry
}

// finish fills the entry once every chunk is stored.
func (p *pendingTable) finish() TableEntry {
	e := p.entry
	e.Chunks = make([]ChunkEntry, len(p.chunks))
	for i, c := range p.chunks {
		e.Chunks[i] = *c
		e.Size += c.Size
	}
	return e
}

// relist lists an earlier backup's entry of an unchanged table again
// (same fingerprint): every chunk reused, nothing read or written.
func (cs *chunkStore) relist(old TableEntry) *pendingTable {
	p := &pendingTable{entry: old}
	p.entry.Chunks, p.entry.Size = nil, 0
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, c := range old.Chunks {
		p.chunks = append(p.chunks, &c)
		cs.reused++
		cs.bytesOld += c.Size
	}
	cs.tablesReused++
	return p
}

// dump reads t from src into chunks; each sees every row (its values when
// src has them).
func (cs *chunkStore) dump(ctx context.Context, src rowSource, t table, each func(vals []any) error) (*pendingTable, error) {
	p := &pendingTable{entry: TableEntry{Name: t.Name}}
	whole := sha256.New()
	byLine := strings.Contains(t.Order, ",")
	var buf *bytes.Buffer
	var rows int64

	// The table's and each chunk's digests are computed by a second
	// goroutine, in chunk order, while this one reads on: the read is one
	// connection and one thread, and hashing every byte twice on it was a
	// fifth of a changed table's dump (issue 17 §4).
	type job struct {
		buf *bytes.Buffer
		c   *ChunkEntry
	}
	jobs := make(chan job, cap(cs.free))
	hashed := make(chan error, 1)
	go func() {
		var herr error
		for j := range jobs {
			whole.Write(j.buf.Bytes())
			if herr != nil {
				cs.free <- j.buf
				continue
			}
			herr = cs.put(j.buf, j.c)
		}
		hashed <- herr
	}()
	cut := func() error {
		if rows == 0 {
			return nil
		}
		c := &ChunkEntry{Rows: rows}
		p.chunks = append(p.chunks, c)
		jobs <- job{buf: buf, c: c}
		buf, rows = nil, 0
		return nil
	}

	n, err := src(ctx, func(line []byte, key any, vals []any) error {
		if buf == nil {
			select {
			case buf = <-cs.free:
			case <-cs.gctx.Done():
				return context.Cause(cs.gctx)
			}
			buf.Reset()
		}
		buf.Write(line)
		rows++
		if each != nil {
			if err := each(vals); err != nil {
				return err
			}
		}
		if endsChunk(line, key, byLine) || buf.Len() >= chunkMaxBytes {
			return cut()
		}
		return nil
	})
	if err == nil {
		err = cut()
	}
	if buf != nil {
		cs.free <- buf
	}
	close(jobs)
	if herr := <-hashed; err == nil {
		err = herr
	}
	if err != nil {
		return nil, err
	}

	p.entry.Rows = n
	for _, c := range p.chunks {
		p.entry.PlainSize += c.PlainSize
	}
	p.entry.PlainSHA256 = hex.EncodeToString(whole.Sum(nil))
	return p, nil
}

// endsChunk says whether the row ends a chunk: by the hash of its key (the
// first column; the whole line for tables ordered by several columns).
func endsChunk(line []byte, key any, byLine bool) bool {
	var h uint64 = 14695981039346656037 // FNV-1a: stable across processes and versions
	const prime = 1099511628211
	var b []byte
	if !byLine {
		switch k := key.(type) {
		case string:
			for i := 0; i < len(k); i++ {
				h = (h ^ uint64(k[i])) * prime
			}
			return mix(h)%chunkRows == 0
		case []byte:
			b = k
		case int64:
			var d [20]byte
			b = strconv.AppendInt(d[:0], k, 10)
		}
	}
	if b == nil {
		b = line
	}
	for _, c := range b {
		h = (h ^ uint64(c)) * prime
	}
	return mix(h)%chunkRows == 0
}

// mix spreads FNV's weak low bits (short, similar keys such as sequence
// numbers) over the whole word.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	return h ^ h>>33
}

// put hashes one chunk into c and, unless an earlier backup stored the
// same bytes, has a worker store it. buf goes back to the free list.
func (cs *chunkStore) put(buf *bytes.Buffer, c *ChunkEntry) error {
	sum := sha256.Sum256(buf.Bytes())
	c.PlainSize, c.PlainSHA256 = int64(buf.Len()), hex.EncodeToString(sum[:])
	if old, ok := cs.prev[c.PlainSHA256]; ok {
		c.Object, c.Size = old.Object, old.Size
		cs.free <- buf
		cs.mu.Lock()
		cs.reused++
		cs.bytesOld += old.Size
		cs.mu.Unlock()
		return nil
	}

	if err := cs.gctx.Err(); err != nil {
		cs.free <- buf
		return context.Cause(cs.gctx)
	}

	cs.g.Go(func() error {
		defer func() { cs.free <- buf }()
		obj, size, err := cs.store(cs.gctx, buf.Bytes())
		if err != nil {
			return err
		}
		c.Object, c.Size = obj, size
		cs.mu.Lock()
		cs.written++
		cs.bytesNew += size
		cs.mu.Unlock()
		return nil
	})
	return nil
}

// store compresses and encrypts plain in memory (a chunk is small) and
// writes it straight to its content address: no temporary name, no rename.
func (cs *chunkStore) store(ctx context.Context, plain []byte) (string, int64, error) {
	// The output buffers are reused: a fresh one per chunk was a tenth of
	// a full backup's CPU in clearing and growing memory.
	out, _ := cs.outs.Get().(*bytes.Buffer)
	if out == nil {
		out = new(bytes.Buffer)
	}
	defer cs.outs.Put(out)
	out.Reset()
	out.Grow(len(plain)/3 + 1024)
	aw, err := age.Encrypt(out, cs.recipients...)
	if err != nil {
		return "", 0, err
	}
	zw, _ := cs.encs.Get().(*zstd.Encoder)
	if zw == nil {
		if zw, err = zstd.NewWriter(aw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1)); err != nil {
			return "", 0, err
		}
	} else {
		zw.Reset(aw)
	}
	defer cs.encs.Put(zw)
	if _, err := zw.Write(plain); err != nil {
		return "", 0, err
	}
	if err := zw.Close(); err != nil {
		return "", 0, err
	}
	if err := aw.Close(); err != nil {
		return "", 0, err
	}
	sum := sha256.Sum256(out.Bytes())
	obj := objectKey(hex.EncodeToString(sum[:]))
	size := int64(out.Len())
	if err := cs.repo.bulk.Put(ctx, cs.repo.key(obj), bytes.NewReader(out.Bytes()), size); err != nil {
		return "", 0, fmt.Errorf("store chunk %s: %w", obj, err)
	}
	return obj, size, nil
}

// wait returns once every chunk is stored, with the first error.
func (cs *chunkStore) wait() error { return cs.g.Wait() }

// openTable returns a table's plain NDJSON from either format: the one
// file of a casevault-backup/1 table, or the chunks of a chunked one read
// in order, each checked against its plain digest as it ends (the whole
// table's digest is the caller's to check, as before). This is the one
// reader of table content in a backup.
func (r *Repo) openTable(ctx context.Context, te TableEntry, id age.Identity) (io.ReadCloser, error) {
	if te.File != "" {
		return r.openFile(ctx, te.File, id, true)
	}
	if id == nil {
		return nil, ErrNoKey
	}
	return &chunkReader{ctx: ctx, r: r, te: te, id: id}, nil
}

// chunkReader streams a chunked table: one chunk open at a time, through
// one zstd decoder reset for each chunk (a new decoder per chunk allocated
// and cleared its history buffers every time: 9% of a table restore's CPU
// time in its profile).
type chunkReader struct {
	ctx  context.Context
	r    *Repo
	te   TableEntry
	id   age.Identity
	next int
	raw  io.ReadCloser // the open chunk's decrypted bytes; nil between chunks
	zr   *zstd.Decoder
	h    hash.Hash
	n    int64
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for {
		if c.raw == nil {
			if c.next == len(c.te.Chunks) {
				return 0, io.EOF
			}
			obj := c.te.Chunks[c.next].Object
			raw, err := c.r.openFile(c.ctx, obj, c.id, false)
			if err != nil {
				return 0, err
			}
			if c.zr == nil {
				c.zr, err = zstd.NewReader(raw, zstd.WithDecoderConcurrency(1))
			} else {
				err = c.zr.Reset(raw)
			}
			if err != nil {
				raw.Close()
				return 0, fmt.Errorf("%w: %s: %w", ErrDamaged, obj, err)
			}
			c.raw, c.h, c.n = raw, sha256.New(), 0
		}
		n, err := c.zr.Read(p)
		c.h.Write(p[:n])
		c.n += int64(n)
		if err == io.EOF {
			ch := c.te.Chunks[c.next]
			c.raw.Close()
			c.raw = nil
			c.next++
			if got := hex.EncodeToString(c.h.Sum(nil)); got != ch.PlainSHA256 || c.n != ch.PlainSize {
				return n, fmt.Errorf("%w: table %s chunk %s: %d bytes, digest %s; the manifest says %d, %s", ErrDamaged, c.te.Name, ch.Object, c.n, got, ch.PlainSize, ch.PlainSHA256)
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if err != nil {
			return n, fmt.Errorf("%w: table %s chunk %s: %w", ErrDamaged, c.te.Name, c.te.Chunks[c.next].Object, err)
		}
		return n, nil
	}
}

func (c *chunkReader) Close() error {
	if c.zr != nil {
		c.zr.Close()
	}
	if c.raw != nil {
		return c.raw.Close()
	}
	return nil
}
