// Package s3 stores blobs in an S3-compatible bucket through minio-go, with
// path-style addressing so that any server (versitygw, Ceph, Garage, AWS)
// works without DNS tricks.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/casevault/casevault/archive"
)

// Config names the bucket and how to reach it (CASEVAULT_S3_*).
type Config struct {
	// Endpoint is host:port, or a URL whose scheme (http/https) sets TLS.
	Endpoint  string
	Bucket    string
	AccessKey string
	SecretKey string
	Region    string
	TLS       bool
	// ObjectLock creates a missing bucket with object lock (and therefore
	// versioning) enabled, which legal holds need. It cannot be turned on
	// for an existing bucket here.
	ObjectLock bool
	// PartSize is the multipart part size for uploads of unknown length;
	// one part is buffered per upload in flight (default 16 MiB).
	PartSize uint64
	// MaxRetries bounds minio-go's retries of a failed request (default
	// 3), so an outage is reported in seconds rather than a minute.
	MaxRetries int
	// UploadThreads is how many parts of one upload of unknown length are
	// in flight at once (default 1). Memory per upload is
	// UploadThreads × PartSize.
	UploadThreads int
	// SignPayload makes minio-go sign every payload chunk with SHA-256
	// (SigV4 streaming signatures on plain HTTP). By default uploads send
	// UNSIGNED-PAYLOAD with a CRC32C trailer the server verifies instead:
	// our blobs are authenticated ciphertext, so a payload signature adds
	// CPU on both ends but no protection (a modified blob fails on read),
	// and over TLS minio-go skips payload hashing anyway.
	SignPayload bool
	// Timeout bounds every call to the server (default DefaultTimeout):
	// a request that gets no answer, or a transfer that makes no progress,
	// for this long fails with archive.ErrUnavailable. Time spent waiting
	// on the caller (reading an upload's source, a download's consumer
	// not reading) does not count, so large transfers over slow clients
	// are not cut.
	Timeout time.Duration
}

// DefaultTimeout is Config.Timeout's default.
const DefaultTimeout = 30 * time.Second

const (
	defaultPartSize = 16 << 20
	// smallObject: uploads of unknown length that end within this many
	// bytes go out as one PUT with a known length instead of a multipart
	// upload (most attachments are small).
	smallObject = 1 << 20
)

// Store is a bucket of blobs.
type Store struct {
	client   *minio.Client
	bucket   string
	partSize uint64
	threads  uint
	unsigned bool
	timeout  time.Duration
	bufs     sync.Pool
}

var _ archive.Blobs = (*Store)(nil)

// New connects and creates the bucket when it is missing. An unreachable
// server gives an error wrapping archive.ErrUnavailable.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("s3: endpoint and bucket are required")
	}

	endpoint, secure := cfg.Endpoint, cfg.TLS
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil {
			return nil, fmt.Errorf("s3: endpoint: %w", err)
		}
		switch u.Scheme {
		case "http":
			secure = false
		case "https":
			secure = true
		default:
			return nil, fmt.Errorf("s3: endpoint scheme %q: want http or https", u.Scheme)
		}
		if u.Path != "" && u.Path != "/" {
			return nil, fmt.Errorf("s3: endpoint %q must not have a path", endpoint)
		}
		endpoint = u.Host
	}

	retries := cfg.MaxRetries
	if retries <= 0 {
		retries = 3
	}

	client, err := minio.New(endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       secure,
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   retries,
		// Trailing checksums need unsigned streaming payloads.
		TrailingHeaders: !cfg.SignPayload,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}

	part := cfg.PartSize
	if part == 0 {
		part = defaultPartSize
	}

	threads := cfg.UploadThreads
	if threads <= 0 {
		threads = 1
	}

	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}

	s := &Store{client: client, bucket: cfg.Bucket, partSize: part, threads: uint(threads), unsigned: !cfg.SignPayload, timeout: timeout}
	s.bufs.New = func() any { b := make([]byte, smallObject); return &b }
	cctx, cancel := s.bound(ctx)
	defer cancel()
	exists, err := client.BucketExists(cctx, cfg.Bucket)
	if err != nil {
		return nil, s.mapErr(ctx, "bucket exists", cfg.Bucket, err)
	}

	if !exists {
		err := client.MakeBucket(cctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region, ObjectLocking: cfg.ObjectLock})
		if err != nil {
			code := minio.ToErrorResponse(err).Code
			// Another replica may have won the race.
			if code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
				return nil, s.mapErr(ctx, "make bucket", cfg.Bucket, err)
			}
		}
	}

	if cfg.ObjectLock {
		// Asked for object lock on a bucket that existed without it, the
		// store would run with legal holds that set no flag: refuse.
		on, err := s.ObjectLockEnabled(ctx)
		if err != nil {
			return nil, err
		}
		if !on {
			return nil, fmt.Errorf("s3: bucket %q: %w", cfg.Bucket, ErrNoObjectLock)
		}
	}

	return s, nil
}

// ErrNoObjectLock is New's error when Config.ObjectLock asks for object
// lock and the bucket exists without it: S3 servers enable object lock at
// bucket creation (some, like AWS, also on a versioned bucket through its
// object-lock configuration), never through this store.
var ErrNoObjectLock = errors.New("the bucket exists without object lock, which --s3-object-lock=true requires " +
	"(object lock is enabled when a bucket is created): use a new bucket, enable object lock on this one with the S3 server's own tools, " +
	"or set --s3-object-lock=false (legal holds are then enforced by casevault alone, without S3 legal-hold flags)")

// Client exposes the minio-go client (benchmarks compare against it).
func (s *Store) Client() *minio.Client { return s.client }

// Bucket is the bucket name.
func (s *Store) Bucket() string { return s.bucket }

// errStalled is the cause a call is cancelled with when the server gave
// no answer within the timeout.
var errStalled = errors.New("no answer from the S3 server within the timeout")

// bound limits one request/response call to the timeout. The caller's ctx
// stays the one mapErr looks at, so that our own timeout is reported as
// the store's fault (ErrUnavailable), the caller's cancellation as such.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, s.timeout, errStalled)
}

// watchdog cancels a streaming call (upload, download, listing) once it
// has made no progress for the timeout. It is armed only while the call
// waits on the server: paused while the caller produces or consumes data.
type watchdog struct {
	t *time.Timer
	d time.Duration
}

func (s *Store) watch(ctx context.Context) (context.Context, *watchdog, context.CancelFunc) {
	cctx, cancel := context.WithCancelCause(ctx)
	w := &watchdog{d: s.timeout}
	w.t = time.AfterFunc(s.timeout, func() { cancel(errStalled) })
	return cctx, w, func() { w.t.Stop(); cancel(context.Canceled) }
}

func (w *watchdog) arm()   { w.t.Reset(w.d) }
func (w *watchdog) pause() { w.t.Stop() }

// guardedSource pauses the watchdog while the caller's reader is read (a
// slow client is not the server's fault) and re-arms it afterwards: from
// then on the server must take the bytes within the timeout.
type guardedSource struct {
	r io.Reader
	w *watchdog
}

func (g guardedSource) Read(p []byte) (int, error) {
	g.w.pause()
	n, err := g.r.Read(p)
	g.w.arm()
	return n, err
}

// mapErr turns a minio-go error into the archive sentinels: a missing key is
// ErrNotFound, a cancelled request stays a context error, a call that hit
// the timeout is ErrUnavailable, and everything else (connection refused,
// 5xx, access denied, missing bucket) is the store's fault: ErrUnavailable.
// ctx is the caller's context, not the bounded one the call ran under.
func (s *Store) mapErr(ctx context.Context, op, key string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("s3: %s %q: %w (%v)", op, key, cerr, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// Our bound fired, not the caller's context: the server is hung.
		return fmt.Errorf("s3: %s %q: %w: no answer within %s", op, key, archive.ErrUnavailable, s.timeout)
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey" || (resp.StatusCode == 404 && resp.Code != "NoSuchBucket"):
		return fmt.Errorf("s3: %s %q: %w", op, key, archive.ErrNotFound)
	case resp.Code == "InvalidRange" || resp.StatusCode == 416:
		return fmt.Errorf("s3: %s %q: %w", op, key, archive.ErrInvalidRange)
	case errors.Is(err, archive.ErrSizeMismatch):
		return fmt.Errorf("s3: %s %q: %w", op, key, err)
	}
	return fmt.Errorf("s3: %s %q: %w: %w", op, key, archive.ErrUnavailable, err)
}

// Put uploads r. Unknown lengths that fit in 1 MiB become a single PUT;
// longer ones a multipart upload with one PartSize buffer, so memory does
// not grow with the blob. minio-go aborts the multipart upload on error.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if _, err := archive.SplitKey(key); err != nil {
		return err
	}

	src := &archive.SourceReader{R: r}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: s.partSize, DisableContentSha256: s.unsigned}
	var err error
	if size >= 0 {
		pctx, w, cancel := s.watch(ctx)
		defer cancel()
		_, err = s.client.PutObject(pctx, s.bucket, key, guardedSource{archive.ExactReader(src, size), w}, size, opts)
	} else {
		bp := s.bufs.Get().(*[]byte)
		defer s.bufs.Put(bp)
		buf := *bp
		// Reading the caller's source is not bounded: the watchdog starts
		// with the first request.
		n, rerr := io.ReadFull(src, buf)
		pctx, w, cancel := s.watch(ctx)
		defer cancel()
		switch rerr {
		case io.EOF, io.ErrUnexpectedEOF:
			_, err = s.client.PutObject(pctx, s.bucket, key, guardedSource{bytes.NewReader(buf[:n]), w}, int64(n), opts)
		case nil:
			if s.threads > 1 {
				opts.ConcurrentStreamParts, opts.NumThreads = true, s.threads
			}
			_, err = s.client.PutObject(pctx, s.bucket, key, guardedSource{io.MultiReader(bytes.NewReader(buf[:n]), src), w}, -1, opts)
		default:
			return rerr
		}
	}

	if err != nil {
		if src.Err != nil || errors.Is(err, archive.ErrSizeMismatch) {
			// The body failed, not the server. Make sure no object was
			// committed from what was read (best effort: the key is
			// normally fresh and nothing else wrote it).
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			s.removeLeftover(dctx, key)
			cancel()
		}
		if src.Err != nil {
			return src.Err
		}
		return s.mapErr(ctx, "put", key, err)
	}

	return nil
}

// removeLeftover deletes what a failed upload may have committed under key.
// The server can still be finishing the aborted request when the client
// has already given up (seen under load on versitygw: the object appeared
// after the first delete), so the delete is repeated until a Stat confirms
// the key is gone, for a few seconds at most.
func (s *Store) removeLeftover(ctx context.Context, key string) {
	for attempt := 1; attempt <= 6; attempt++ {
		_ = s.Delete(ctx, key)
		if _, err := s.Stat(ctx, key); errors.Is(err, archive.ErrNotFound) {
			return
		}
		t := time.NewTimer(time.Duration(attempt) * 100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Get streams the whole blob. The request is sent here, not at the first
// Read, so a missing key or a dead server is reported by Get itself.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.get(ctx, key, minio.GetObjectOptions{})
}

func (s *Store) get(ctx context.Context, key string, opts minio.GetObjectOptions) (io.ReadCloser, error) {
	if _, err := archive.SplitKey(key); err != nil {
		return nil, err
	}
	gctx, w, cancel := s.watch(ctx)
	obj, err := s.client.GetObject(gctx, s.bucket, key, opts)
	if err != nil {
		cancel()
		return nil, s.mapErr(ctx, "get", key, err)
	}
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		cancel()
		return nil, s.mapErr(ctx, "get", key, err)
	}
	w.pause()
	return &objReader{s: s, ctx: ctx, key: key, obj: obj, w: w, cancel: cancel}, nil
}

// objReader maps errors in the middle of a download (server gone, or
// silent for the timeout) to ErrUnavailable. The watchdog runs only
// inside Read: a consumer that reads slowly is not a hung server.
type objReader struct {
	s      *Store
	ctx    context.Context
	key    string
	obj    *minio.Object
	w      *watchdog
	cancel context.CancelFunc
}

func (o *objReader) Read(p []byte) (int, error) {
	o.w.arm()
	n, err := o.obj.Read(p)
	o.w.pause()
	if err != nil && err != io.EOF {
		err = o.s.mapErr(o.ctx, "read", o.key, err)
	}
	return n, err
}

func (o *objReader) Close() error {
	err := o.obj.Close()
	o.cancel()
	return err
}

// GetRange streams n bytes from off (n < 0: to the end) with an HTTP range
// request.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if off < 0 {
		return nil, fmt.Errorf("s3: get %q: %w: offset %d", key, archive.ErrInvalidRange, off)
	}
	if n == 0 {
		return s.emptyAt(ctx, key, off)
	}
	var opts minio.GetObjectOptions
	switch {
	case n < 0 && off == 0:
	case n < 0:
		if err := opts.SetRange(off, 0); err != nil {
			return nil, fmt.Errorf("s3: %w: %w", archive.ErrInvalidRange, err)
		}
	default:
		if err := opts.SetRange(off, off+n-1); err != nil {
			return nil, fmt.Errorf("s3: %w: %w", archive.ErrInvalidRange, err)
		}
	}
	rc, err := s.get(ctx, key, opts)
	if errors.Is(err, archive.ErrInvalidRange) {
		// S3 answers 416 for a range starting exactly at the end; the
		// Blobs contract gives an empty reader there, like a file would.
		return s.emptyAt(ctx, key, off)
	}
	return rc, err
}

func (s *Store) emptyAt(ctx context.Context, key string, off int64) (io.ReadCloser, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	if off > info.Size {
		return nil, fmt.Errorf("s3: get %q: %w: offset %d beyond size %d", key, archive.ErrInvalidRange, off, info.Size)
	}
	return io.NopCloser(bytes.NewReader(nil)), nil
}

// Stat reads the object's size and modification time.
func (s *Store) Stat(ctx context.Context, key string) (archive.BlobInfo, error) {
	if _, err := archive.SplitKey(key); err != nil {
		return archive.BlobInfo{}, err
	}
	cctx, cancel := s.bound(ctx)
	defer cancel()
	info, err := s.client.StatObject(cctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return archive.BlobInfo{}, s.mapErr(ctx, "stat", key, err)
	}
	return archive.BlobInfo{Key: key, Size: info.Size, ModTime: info.LastModified.UTC()}, nil
}

// Delete removes the object. On a versioned (object-lock) bucket this adds
// a delete marker; older versions stay readable by version id (Purge
// removes them all).
func (s *Store) Delete(ctx context.Context, key string) error {
	if _, err := archive.SplitKey(key); err != nil {
		return err
	}
	cctx, cancel := s.bound(ctx)
	defer cancel()
	err := s.client.RemoveObject(cctx, s.bucket, key, minio.RemoveObjectOptions{})
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil
		}
		return s.mapErr(ctx, "delete", key, err)
	}
	return nil
}

// Purge implements archive.Blobs: it removes every version of key and
// every delete marker, by version id, then lists the versions again; only
// an empty listing is "gone". A plain Delete on a versioned (object-lock)
// bucket only adds a delete marker and the data stays readable by version
// id, so disposal must come here. A version the server refuses to remove
// (a legal hold, a retention date) gives archive.ErrNotGone.
func (s *Store) Purge(ctx context.Context, key string) error {
	if _, err := archive.SplitKey(key); err != nil {
		return err
	}

	// A version written while we delete (an upload's late commit, see
	// removeLeftover) shows up in the next listing: a few rounds.
	for round := 0; round < 3; round++ {
		vs, err := s.versionsOf(ctx, key)
		if err != nil {
			return err
		}
		if len(vs) == 0 {
			return nil
		}
		for _, v := range vs {
			if err := s.removeVersion(ctx, key, v.VersionID); err != nil {
				return err
			}
		}
	}

	vs, err := s.versionsOf(ctx, key)
	if err != nil {
		return err
	}
	if len(vs) > 0 {
		return fmt.Errorf("s3: purge %q: %w: %d versions left", key, archive.ErrNotGone, len(vs))
	}
	return nil
}

// removeVersion deletes one version of key (vid "": the unversioned object).
func (s *Store) removeVersion(ctx context.Context, key, vid string) error {
	cctx, cancel := s.bound(ctx)
	defer cancel()
	err := s.client.RemoveObject(cctx, s.bucket, key, minio.RemoveObjectOptions{VersionID: vid})
	if err == nil {
		return nil
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey" || resp.Code == "NoSuchVersion":
		return nil
	case ctx.Err() == nil && (resp.StatusCode == 403 || resp.Code == "AccessDenied" || resp.Code == "ObjectLocked" || resp.Code == "InvalidRequest"):
		// Object lock protects this version: it is not gone, and no retry
		// of ours changes that.
		return fmt.Errorf("s3: purge %q version %s: %w: %v", key, vid, archive.ErrNotGone, err)
	}
	return s.mapErr(ctx, "purge", key, err)
}

// versionsOf lists the stored versions and delete markers of exactly key.
func (s *Store) versionsOf(ctx context.Context, key string) ([]archive.VersionInfo, error) {
	var out []archive.VersionInfo
	err := s.ListVersions(ctx, key, func(v archive.VersionInfo) error {
		if v.Key == key {
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

// ListVersions calls fn for every stored version and delete marker under
// prefix (on a bucket without versioning: every object, version "null" or
// ""). The reconciler walks it for data left behind under keys that no
// longer have a current version.
func (s *Store) ListVersions(ctx context.Context, prefix string, fn func(archive.VersionInfo) error) error {
	if err := archive.ValidatePrefix(prefix); err != nil {
		return err
	}
	lctx, w, cancel := s.watch(ctx)
	defer cancel()
	for obj := range s.client.ListObjects(lctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}) {
		w.pause()
		if obj.Err != nil {
			return s.mapErr(ctx, "list versions", prefix, obj.Err)
		}
		if strings.HasSuffix(obj.Key, "/") {
			continue
		}
		v := archive.VersionInfo{Key: obj.Key, VersionID: obj.VersionID, Latest: obj.IsLatest, DeleteMarker: obj.IsDeleteMarker, ModTime: obj.LastModified.UTC()}
		if err := fn(v); err != nil {
			return err
		}
		w.arm()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if context.Cause(lctx) == errStalled {
		return fmt.Errorf("s3: list versions %q: %w: no answer within %s", prefix, archive.ErrUnavailable, s.timeout)
	}
	return nil
}

// List walks the keys under prefix (S3 returns them in key order).
func (s *Store) List(ctx context.Context, prefix string, fn func(archive.BlobInfo) error) error {
	if err := archive.ValidatePrefix(prefix); err != nil {
		return err
	}
	// The watchdog stops minio-go's listing goroutine when fn fails, and
	// bounds each wait for the server's next page (not fn's work).
	lctx, w, cancel := s.watch(ctx)
	defer cancel()
	for obj := range s.client.ListObjects(lctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		w.pause()
		if obj.Err != nil {
			return s.mapErr(ctx, "list", prefix, obj.Err)
		}
		if strings.HasSuffix(obj.Key, "/") {
			continue // directory placeholder some servers report
		}
		if err := fn(archive.BlobInfo{Key: obj.Key, Size: obj.Size, ModTime: obj.LastModified.UTC()}); err != nil {
			return err
		}
		w.arm()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if context.Cause(lctx) == errStalled {
		// minio-go ends the listing silently when its context is cancelled.
		return fmt.Errorf("s3: list %q: %w: no answer within %s", prefix, archive.ErrUnavailable, s.timeout)
	}
	return nil
}

// Ping checks that the bucket is there and answers.
func (s *Store) Ping(ctx context.Context) error {
	cctx, cancel := s.bound(ctx)
	defer cancel()
	ok, err := s.client.BucketExists(cctx, s.bucket)
	if err != nil {
		return s.mapErr(ctx, "ping", s.bucket, err)
	}
	if !ok {
		return fmt.Errorf("s3: bucket %q: %w: bucket missing", s.bucket, archive.ErrUnavailable)
	}
	return nil
}

// ObjectLockEnabled reports whether the bucket has object lock, which
// legal holds require.
func (s *Store) ObjectLockEnabled(ctx context.Context) (bool, error) {
	cctx, cancel := s.bound(ctx)
	defer cancel()
	status, _, _, _, err := s.client.GetObjectLockConfig(cctx, s.bucket)
	if err != nil {
		resp := minio.ToErrorResponse(err)
		if resp.Code == "ObjectLockConfigurationNotFoundError" || resp.StatusCode == 404 {
			return false, nil
		}
		return false, s.mapErr(ctx, "object lock config", s.bucket, err)
	}
	return status == "Enabled", nil
}

// SetLegalHold places or lifts an S3 legal hold on the current version of
// key; while it is on, the server refuses to delete that version.
func (s *Store) SetLegalHold(ctx context.Context, key string, on bool) error {
	if _, err := archive.SplitKey(key); err != nil {
		return err
	}
	status := minio.LegalHoldDisabled
	if on {
		status = minio.LegalHoldEnabled
	}
	cctx, cancel := s.bound(ctx)
	defer cancel()
	err := s.client.PutObjectLegalHold(cctx, s.bucket, key, minio.PutObjectLegalHoldOptions{Status: &status})
	return s.mapErr(ctx, "legal hold", key, err)
}

// LegalHold reports whether key's current version is under a legal hold.
func (s *Store) LegalHold(ctx context.Context, key string) (bool, error) {
	if _, err := archive.SplitKey(key); err != nil {
		return false, err
	}
	cctx, cancel := s.bound(ctx)
	defer cancel()
	st, err := s.client.GetObjectLegalHold(cctx, s.bucket, key, minio.GetObjectLegalHoldOptions{})
	if err != nil {
		resp := minio.ToErrorResponse(err)
		if resp.Code == "NoSuchObjectLockConfiguration" {
			return false, nil
		}
		return false, s.mapErr(ctx, "legal hold", key, err)
	}
	return st != nil && *st == minio.LegalHoldEnabled, nil
}

// SetVersionLegalHold places or lifts the S3 legal hold on one version
// of key and returns that version's id. version "" means the current
// version, looked up first: a flag is per version, and naming it keeps a
// later clear on the data version even when a delete marker has been put
// on top. A missing key or version is archive.ErrNotFound.
func (s *Store) SetVersionLegalHold(ctx context.Context, key, version string, on bool) (string, error) {
	if _, err := archive.SplitKey(key); err != nil {
		return "", err
	}
	if version == "" {
		cctx, cancel := s.bound(ctx)
		info, err := s.client.StatObject(cctx, s.bucket, key, minio.StatObjectOptions{})
		cancel()
		if err != nil {
			return "", s.mapErr(ctx, "legal hold", key, err)
		}
		version = info.VersionID
	}

	status := minio.LegalHoldDisabled
	if on {
		status = minio.LegalHoldEnabled
	}
	opts := minio.PutObjectLegalHoldOptions{Status: &status}
	if version != "null" {
		opts.VersionID = version
	}
	cctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.client.PutObjectLegalHold(cctx, s.bucket, key, opts); err != nil {
		return "", s.mapVersionErr(ctx, key, err)
	}
	return version, nil
}

// VersionLegalHold reports whether one version of key ("" : the current
// one) is under a legal hold.
func (s *Store) VersionLegalHold(ctx context.Context, key, version string) (bool, error) {
	if _, err := archive.SplitKey(key); err != nil {
		return false, err
	}
	var opts minio.GetObjectLegalHoldOptions
	if version != "null" {
		opts.VersionID = version
	}
	cctx, cancel := s.bound(ctx)
	defer cancel()
	st, err := s.client.GetObjectLegalHold(cctx, s.bucket, key, opts)
	if err != nil {
		resp := minio.ToErrorResponse(err)
		if resp.Code == "NoSuchObjectLockConfiguration" {
			return false, nil
		}
		return false, s.mapVersionErr(ctx, key, err)
	}
	return st != nil && *st == minio.LegalHoldEnabled, nil
}

// mapVersionErr is mapErr that also reads a version the server does not
// know (NoSuchVersion) as ErrNotFound.
func (s *Store) mapVersionErr(ctx context.Context, key string, err error) error {
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchVersion":
		if ctx.Err() == nil {
			return fmt.Errorf("s3: legal hold %q: %w: %w", key, archive.ErrNotFound, err)
		}
	}
	return s.mapErr(ctx, "legal hold", key, err)
}

// StaleUploads lists multipart uploads under prefix started more than
// olderThan ago (left behind when the server or the network failed before
// minio-go could abort them) and aborts them unless dryRun. It returns the
// object keys concerned. The reconciler calls it.
func (s *Store) StaleUploads(ctx context.Context, prefix string, olderThan time.Duration, dryRun bool) ([]string, error) {
	if err := archive.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	cutoff := time.Now().Add(-olderThan)
	lctx, w, cancel := s.watch(ctx)
	defer cancel()
	seen := map[string]bool{}
	var keys []string
	for u := range s.client.ListIncompleteUploads(lctx, s.bucket, prefix, true) {
		w.arm()
		if u.Err != nil {
			return keys, s.mapErr(ctx, "list uploads", prefix, u.Err)
		}
		if u.Initiated.After(cutoff) || seen[u.Key] {
			continue
		}
		seen[u.Key] = true
		if !dryRun {
			actx, acancel := s.bound(ctx)
			err := s.client.RemoveIncompleteUpload(actx, s.bucket, u.Key)
			acancel()
			if err != nil {
				return keys, s.mapErr(ctx, "abort upload", u.Key, err)
			}
		}
		keys = append(keys, u.Key)
	}
	return keys, nil
}

// ConfigFromEnv reads CASEVAULT_S3_ENDPOINT, _BUCKET, _ACCESS_KEY,
// _SECRET_KEY, _REGION, _TLS (true/false/1/0) and _OBJECT_LOCK through
// getenv (os.Getenv in main). ok is false when no endpoint is set, meaning
// "use the local backend".
func ConfigFromEnv(getenv func(string) string) (cfg Config, ok bool, err error) {
	cfg = Config{
		Endpoint:  getenv("CASEVAULT_S3_ENDPOINT"),
		Bucket:    getenv("CASEVAULT_S3_BUCKET"),
		AccessKey: getenv("CASEVAULT_S3_ACCESS_KEY"),
		SecretKey: getenv("CASEVAULT_S3_SECRET_KEY"),
		Region:    getenv("CASEVAULT_S3_REGION"),
	}
	if cfg.Endpoint == "" {
		return Config{}, false, nil
	}
	if cfg.Bucket == "" {
		return Config{}, true, errors.New("CASEVAULT_S3_BUCKET is required with CASEVAULT_S3_ENDPOINT")
	}
	for name, dst := range map[string]*bool{"CASEVAULT_S3_TLS": &cfg.TLS, "CASEVAULT_S3_OBJECT_LOCK": &cfg.ObjectLock} {
		v := strings.ToLower(strings.TrimSpace(getenv(name)))
		switch v {
		case "", "0", "false", "no", "off":
		case "1", "true", "yes", "on":
			*dst = true
		default:
			return Config{}, true, fmt.Errorf("%s=%q: want true or false", name, v)
		}
	}
	return cfg, true, nil
}

// Rename copies from to to on the server and removes from: S3 has no
// rename, and a server-side copy moves no bytes through this process.
func (s *Store) Rename(ctx context.Context, from, to string) error {
	if _, err := archive.SplitKey(from); err != nil {
		return err
	}
	if _, err := archive.SplitKey(to); err != nil {
		return err
	}
	cctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.client.CopyObject(cctx, minio.CopyDestOptions{Bucket: s.bucket, Object: to}, minio.CopySrcOptions{Bucket: s.bucket, Object: from})
	if err != nil {
		return s.mapErr(ctx, "rename", from, err)
	}
	return s.Delete(ctx, from)
}
