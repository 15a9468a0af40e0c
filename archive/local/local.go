// Package local stores blobs as files under a root directory (the default
// backend, under the data dir). Writes go to a temporary file in the target
// directory, are fsynced and renamed into place, so a reader never sees a
// partial blob and a crash leaves at most a temporary file.
package local

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/casevault/casevault/archive"
)

// tmpPrefix marks temporary files; archive.SplitKey refuses keys with an
// element starting with it, so List can skip them safely.
const tmpPrefix = ".tmp-"

// Store is a directory of blobs.
type Store struct {
	root string
	// nosync skips the per-write fsyncs; whoever uses such a view calls
	// SyncAll before relying on what it wrote (see Unsynced).
	nosync bool
	// unsynced are the files such a view wrote, shared with the store
	// whose SyncAll makes them durable.
	unsynced *fileSet
}

var _ archive.Blobs = (*Store)(nil)

// New opens (creating if needed, mode 0700) the blob directory root.
func New(root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("local blobs: empty root")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("local blobs: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("local blobs: %w: %w", archive.ErrUnavailable, err)
	}
	// a pre-created root keeps its mode under MkdirAll
	if err := os.Chmod(abs, 0o700); err != nil {
		return nil, fmt.Errorf("local blobs: %w: %w", archive.ErrUnavailable, err)
	}
	return &Store{root: abs, unsynced: &fileSet{files: map[string]struct{}{}}}, nil
}

// Unsynced returns a view of the same directory for bulk work: its Put and
// Rename skip fsync (bulk writers, backups and restores, write thousands
// of files and then make them durable with one SyncAll, instead of three
// fsyncs per file), and its Get reads around the page cache where it can
// (bulkReader: a restore reads each file once).
func (s *Store) Unsynced() archive.Blobs {
	return &Store{root: s.root, nosync: true, unsynced: s.unsynced}
}

// syncBatch bounds the files a view remembers: past it, the next write
// syncs the batch (memory stays bounded whatever the restore's size).
const syncBatch = 8192

// fileSet is the set of files written without fsync.
type fileSet struct {
	mu    sync.Mutex
	files map[string]struct{}
}

func (fs *fileSet) add(p string) int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.files[p] = struct{}{}
	return len(fs.files)
}

func (fs *fileSet) move(from, to string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if _, ok := fs.files[from]; ok {
		delete(fs.files, from)
		fs.files[to] = struct{}{}
	}
}

func (fs *fileSet) take() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make([]string, 0, len(fs.files))
	for p := range fs.files {
		out = append(out, p)
	}
	clear(fs.files)
	return out
}

// SyncAll makes everything the unsynced view wrote durable: each file,
// then each directory on the way from it to the root (new names and new
// directories), with several fsyncs in flight so the filesystem can
// commit them together. Only these files: syncfs(2), used before, also
// waited for every other writer's dirty data on a shared disk (seconds
// for a backup that wrote a few chunks).
func (s *Store) SyncAll(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	files := s.unsynced.take()
	dirs := map[string]struct{}{}
	for _, f := range files {
		for d := filepath.Dir(f); len(d) >= len(s.root); d = filepath.Dir(d) {
			if _, ok := dirs[d]; ok {
				break
			}
			dirs[d] = struct{}{}
		}
	}

	if err := syncPaths(ctx, files); err != nil {
		return err
	}

	list := make([]string, 0, len(dirs))
	for d := range dirs {
		list = append(list, d)
	}
	return syncPaths(ctx, list)
}

// syncPaths fsyncs paths, 16 at a time; one deleted meanwhile is skipped.
func syncPaths(ctx context.Context, paths []string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, p := range paths {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			f, err := os.Open(p)
			if notFound(err) {
				return nil
			}
			if err != nil {
				return ioErr("sync", "", err)
			}
			defer f.Close()
			if err := f.Sync(); err != nil {
				return ioErr("sync", "", err)
			}
			return nil
		})
	}
	return g.Wait()
}

// Root is the directory the blobs live under.
func (s *Store) Root() string { return s.root }

func (s *Store) path(key string) (string, error) {
	parts, err := archive.SplitKey(key)
	if err != nil {
		return "", err
	}
	p := filepath.Join(append([]string{s.root}, parts...)...)
	// Belt and braces: SplitKey already refused every element that could
	// climb, but the check is cheap.
	if rel, err := filepath.Rel(s.root, p); err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("%w: %q", archive.ErrInvalidKey, key)
	}
	return p, nil
}

func ioErr(op, key string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("local blobs: %s %q: %w", op, key, err)
	}
	return fmt.Errorf("local blobs: %s %q: %w: %w", op, key, archive.ErrUnavailable, err)
}

func notFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Put writes r to a temporary file next to the target, fsyncs it and
// renames it over the target, then fsyncs the directory.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}

	if err := ctx.Err(); err != nil {
		return err
	}

	dir := filepath.Dir(p)
	var f *os.File

	// A concurrent Delete may remove the freshly created (empty) directory
	// between MkdirAll and CreateTemp; try again a few times.
	for attempt := 0; ; attempt++ {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return ioErr("put", key, err)
		}
		f, err = os.CreateTemp(dir, tmpPrefix+"*")
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			return ioErr("put", key, err)
		}
	}

	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	var n int64
	if br, ok := r.(*bytes.Reader); ok {
		// Already in memory (a backup's blob copy): one write from the
		// caller's bytes, no 256 KiB buffer allocated and copied through,
		// bypassing the page cache where it can (writeDirect).
		n, err = br.WriteTo(directFile{f})
		if err != nil {
			return ioErr("put", key, err)
		}
	} else if n, err = copyBuffered(ctx, f, key, r); err != nil {
		return err
	}

	if size >= 0 && n != size {
		return fmt.Errorf("local blobs: put %q: %w: got %d bytes, declared %d", key, archive.ErrSizeMismatch, n, size)
	}

	if !s.nosync {
		if err := f.Sync(); err != nil {
			return ioErr("put", key, err)
		}
	}

	if err := f.Close(); err != nil {
		return ioErr("put", key, err)
	}

	if err := os.Rename(tmp, p); err != nil {
		return ioErr("put", key, err)
	}

	done = true
	if s.nosync {
		if s.unsynced.add(p) >= syncBatch {
			return s.SyncAll(ctx)
		}
		return nil
	}

	if err := syncDir(dir); err != nil {
		return ioErr("put", key, err)
	}

	return nil
}

// directFile writes what a bytes.Reader hands it (its whole remaining
// slice, in one call) with writeDirect, else through the page cache.
type directFile struct{ f *os.File }

func (d directFile) Write(b []byte) (int, error) {
	ok, err := writeDirect(d.f, b)
	if err != nil {
		return 0, err
	}
	if ok {
		return len(b), nil
	}
	return d.f.Write(b)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *Store) open(key string) (*os.File, os.FileInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if notFound(err) {
			return nil, nil, fmt.Errorf("local blobs: %q: %w", key, archive.ErrNotFound)
		}
		return nil, nil, ioErr("get", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, ioErr("get", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("local blobs: %q: %w", key, archive.ErrNotFound)
	}
	return f, fi, nil
}

// Get opens the blob for reading.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, _, err := s.open(key)
	if err != nil {
		return nil, err
	}
	if s.nosync {
		// The bulk view's readers (restores) read a file once, whole.
		return newBulkReader(f), nil
	}
	return f, nil
}

// GetRange reads n bytes from off (n < 0: to the end).
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("local blobs: %q: %w: offset %d", key, archive.ErrInvalidRange, off)
	}
	f, fi, err := s.open(key)
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if off > size {
		f.Close()
		return nil, fmt.Errorf("local blobs: %q: %w: offset %d beyond size %d", key, archive.ErrInvalidRange, off, size)
	}
	if n < 0 || off+n > size {
		n = size - off
	}
	return archive.ReadCloser{Reader: io.NewSectionReader(f, off, n), Closer: f}, nil
}

// Stat reports the blob's size and modification time.
func (s *Store) Stat(ctx context.Context, key string) (archive.BlobInfo, error) {
	if err := ctx.Err(); err != nil {
		return archive.BlobInfo{}, err
	}
	p, err := s.path(key)
	if err != nil {
		return archive.BlobInfo{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if notFound(err) {
			return archive.BlobInfo{}, fmt.Errorf("local blobs: %q: %w", key, archive.ErrNotFound)
		}
		return archive.BlobInfo{}, ioErr("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return archive.BlobInfo{}, fmt.Errorf("local blobs: %q: %w", key, archive.ErrNotFound)
	}
	return archive.BlobInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime().UTC()}, nil
}

// Purge implements archive.Blobs: the disk keeps one version, so it is
// Delete followed by the check that the file is gone.
func (s *Store) Purge(ctx context.Context, key string) error {
	if err := s.Delete(ctx, key); err != nil {
		return err
	}
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
		return fmt.Errorf("local: purge %q: %w", key, archive.ErrNotGone)
	} else if err != nil && !notFound(err) {
		return ioErr("purge", key, err)
	}
	return nil
}

// Delete removes the blob and then any directories it leaves empty.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.path(key)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		if notFound(err) {
			return nil
		}
		return ioErr("delete", key, err)
	}
	if fi.IsDir() {
		return nil // a key prefix, not a blob
	}
	if err := os.Remove(p); err != nil && !notFound(err) {
		return ioErr("delete", key, err)
	}
	// Prune empty parents so the tree does not fill with dead
	// directories; a failure (not empty, raced with a Put) is harmless.
	for dir := filepath.Dir(p); dir != s.root && strings.HasPrefix(dir, s.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

// List walks the directories under the prefix.
func (s *Store) List(ctx context.Context, prefix string, fn func(archive.BlobInfo) error) error {
	if err := archive.ValidatePrefix(prefix); err != nil {
		return err
	}

	// Start at the deepest directory the prefix names in full.
	start := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(append([]string{s.root}, strings.Split(prefix[:i], "/")...)...)
	}

	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if notFound(err) {
				return nil // vanished while walking, or the prefix names nothing
			}
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, rerr := filepath.Rel(s.root, p)
		if rerr != nil || rel == "." {
			return nil
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			// Skip subtrees that cannot hold a matching key.
			if !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, ierr := d.Info()
		if ierr != nil {
			if notFound(ierr) {
				return nil
			}
			return ierr
		}
		return fn(archive.BlobInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime().UTC()})
	})
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return ioErr("list", prefix, err)
		}
		return err
	}

	return nil
}

// Ping checks that the root is still a readable directory.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := os.Stat(s.root)
	if err != nil {
		return ioErr("ping", s.root, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("local blobs: %s: %w: not a directory", s.root, archive.ErrUnavailable)
	}
	return nil
}

// StaleUploads finds temporary files under prefix older than olderThan,
// left by a crash in the middle of a Put, and removes them unless dryRun.
// It returns their paths relative to the root. The reconciler calls it.
func (s *Store) StaleUploads(ctx context.Context, prefix string, olderThan time.Duration, dryRun bool) ([]string, error) {
	if err := archive.ValidatePrefix(prefix); err != nil {
		return nil, err
	}

	start := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(append([]string{s.root}, strings.Split(prefix[:i], "/")...)...)
	}

	cutoff := time.Now().Add(-olderThan)
	var found []string
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if notFound(err) {
				return nil
			}
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, rerr := filepath.Rel(s.root, p)
		if rerr != nil || !strings.HasPrefix(filepath.ToSlash(filepath.Dir(rel))+"/", prefix[:strings.LastIndex(prefix, "/")+1]) {
			return nil
		}
		fi, ierr := d.Info()
		if ierr != nil || fi.ModTime().After(cutoff) {
			return nil
		}
		if !dryRun {
			if err := os.Remove(p); err != nil && !notFound(err) {
				return err
			}
		}
		found = append(found, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return found, ioErr("stale uploads", prefix, err)
		}
		return found, err
	}

	return found, nil
}

// Rename moves the blob at from to to, replacing any blob there, atomically
// (backups write an object under a temporary name and rename it once its
// content address is known).
func (s *Store) Rename(ctx context.Context, from, to string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	src, err := s.path(from)
	if err != nil {
		return err
	}
	dst, err := s.path(to)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return ioErr("rename", to, err)
	}
	if err := os.Rename(src, dst); err != nil {
		if notFound(err) {
			return fmt.Errorf("local blobs: rename %q: %w", from, archive.ErrNotFound)
		}
		return ioErr("rename", to, err)
	}
	if s.nosync {
		s.unsynced.move(src, dst)
	} else if err := syncDir(filepath.Dir(dst)); err != nil {
		return ioErr("rename", to, err)
	}
	return s.Delete(ctx, from) // prunes the emptied temporary directory
}

// copyBuffered copies r to f in 256 KiB writes; a read error of r comes
// back as it is (the caller's), any other as the store's.
func copyBuffered(ctx context.Context, f *os.File, key string, r io.Reader) (int64, error) {
	src := &archive.SourceReader{R: r}
	// Written in 256 KiB pieces, not in whatever the source reads (a pipe
	// or a decrypting reader hands over 32–64 KiB): a quarter or less of
	// the write calls for a large blob.
	// (bufio.Writer's own ReadFrom would hand an empty buffer's copy back
	// to the file's, hence the plain Writer.)
	bw := bufio.NewWriterSize(f, 256<<10)
	n, err := io.Copy(struct{ io.Writer }{bw}, archive.ContextReader{Ctx: ctx, R: src})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		if src.Err != nil {
			return n, src.Err
		}
		return n, ioErr("put", key, err)
	}

	return n, nil
}
