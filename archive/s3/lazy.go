package s3

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/casevault/casevault/archive"
)

// Lazy is a Store opened on first use. An S3 backup target must neither
// stop a server from starting when its endpoint is down nor hide that later:
// every call retries the connection until one succeeds, and fails meanwhile
// with the error of New (archive.ErrUnavailable when unreachable).
type Lazy struct {
	cfg  Config
	name string

	mu sync.Mutex
	st *Store
}

// NewLazy returns a Store for cfg that connects on first use; name prefixes
// connection errors (say "backup target s3 host/bucket").
func NewLazy(cfg Config, name string) *Lazy { return &Lazy{cfg: cfg, name: name} }

func (l *Lazy) store(ctx context.Context) (*Store, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st != nil {
		return l.st, nil
	}
	st, err := New(ctx, l.cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.name, err)
	}
	l.st = st
	return st, nil
}

// Put implements archive.Blobs.
func (l *Lazy) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	st, err := l.store(ctx)
	if err != nil {
		return err
	}
	return st.Put(ctx, key, r, size)
}

// Get implements archive.Blobs.
func (l *Lazy) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	st, err := l.store(ctx)
	if err != nil {
		return nil, err
	}
	return st.Get(ctx, key)
}

// GetRange implements archive.Blobs.
func (l *Lazy) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	st, err := l.store(ctx)
	if err != nil {
		return nil, err
	}
	return st.GetRange(ctx, key, off, n)
}

// Stat implements archive.Blobs.
func (l *Lazy) Stat(ctx context.Context, key string) (archive.BlobInfo, error) {
	st, err := l.store(ctx)
	if err != nil {
		return archive.BlobInfo{}, err
	}
	return st.Stat(ctx, key)
}

// Delete implements archive.Blobs.
func (l *Lazy) Delete(ctx context.Context, key string) error {
	st, err := l.store(ctx)
	if err != nil {
		return err
	}
	return st.Delete(ctx, key)
}

// Purge implements archive.Blobs.
func (l *Lazy) Purge(ctx context.Context, key string) error {
	st, err := l.store(ctx)
	if err != nil {
		return err
	}
	return st.Purge(ctx, key)
}

// ListVersions implements the reconciler's walk of stored versions.
func (l *Lazy) ListVersions(ctx context.Context, prefix string, fn func(archive.VersionInfo) error) error {
	st, err := l.store(ctx)
	if err != nil {
		return err
	}
	return st.ListVersions(ctx, prefix, fn)
}

// List implements archive.Blobs.
func (l *Lazy) List(ctx context.Context, prefix string, fn func(archive.BlobInfo) error) error {
	st, err := l.store(ctx)
	if err != nil {
		return err
	}
	return st.List(ctx, prefix, fn)
}

// Ping implements archive.Blobs.
func (l *Lazy) Ping(ctx context.Context) error {
	st, err := l.store(ctx)
	if err != nil {
		return err
	}
	return st.Ping(ctx)
}

// Rename implements the optional server-side rename backups use.
func (l *Lazy) Rename(ctx context.Context, from, to string) error {
	st, err := l.store(ctx)
	if err != nil {
		return err
	}
	return st.Rename(ctx, from, to)
}
