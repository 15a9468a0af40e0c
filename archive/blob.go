// Package archive stores attachment bytes: a blob store interface with local
// disk and S3 backends, per-customer envelope encryption (DARE via
// github.com/minio/sio under keys wrapped by a master key), the attachment
// service that streams uploads into it, and the reconciler that keeps blobs
// and metadata rows in step.
package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
)

// Sentinel errors shared by every backend. Callers match with errors.Is.
var (
	// ErrNotFound: no blob under that key.
	ErrNotFound = errors.New("blob not found")
	// ErrUnavailable: the store cannot be reached or refused the request;
	// the API answers 503 with Retry-After.
	ErrUnavailable = errors.New("blob store unavailable")
	// ErrInvalidKey: a key that could escape the store's namespace or that
	// no backend can represent.
	ErrInvalidKey = errors.New("invalid blob key")
	// ErrInvalidRange: an offset or length outside the object.
	ErrInvalidRange = errors.New("invalid range")
	// ErrSizeMismatch: Put was told a size the reader did not deliver.
	ErrSizeMismatch = errors.New("size does not match the declared length")
	// ErrNotGone: Purge removed what it could, but a version of the blob
	// is still stored (refused by the server, or written meanwhile).
	ErrNotGone = errors.New("blob versions remain after purge")
)

// BlobInfo describes one stored blob.
type BlobInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Blobs is a flat key → bytes store. Keys are "/"-separated paths of
// non-empty elements (see SplitKey). Every method takes a context; a
// backend error that is not the caller's fault wraps ErrUnavailable.
type Blobs interface {
	// Put stores r under key, replacing any previous blob atomically: a
	// reader never sees a partial blob. size is the exact length or -1 when
	// unknown. An error returned by r is passed through unwrapped (it is the
	// client's problem, not the store's) and nothing is left behind.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get streams the whole blob.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange streams n bytes from off; n < 0 means to the end. A range
	// running past the end is cut short at the end.
	GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
	Stat(ctx context.Context, key string) (BlobInfo, error)
	// Delete removes the blob; deleting a missing key is not an error. On a
	// versioned bucket the data stays readable by version id: what is
	// disposed of goes through Purge.
	Delete(ctx context.Context, key string) error
	// Purge removes every stored version of the blob (on a versioned S3
	// bucket each data version and delete marker; elsewhere the blob) and
	// then checks that nothing is left under key: nil means verified gone.
	// A missing key is not an error; a version still there afterwards (the
	// server refused it: a legal hold, a retention date) is ErrNotGone.
	Purge(ctx context.Context, key string) error
	// List calls fn for every blob whose key starts with prefix, in no
	// particular order; an error from fn stops the walk and is returned.
	List(ctx context.Context, prefix string, fn func(BlobInfo) error) error
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
}

// MaxKeyLen bounds keys so that every backend can store them (S3 allows
// 1024 bytes; one path element on most filesystems 255).
const MaxKeyLen = 1024

// SplitKey validates key and returns its elements. Keys are checked
// element by element instead of cleaned: "a/../b" is refused rather than
// turned into "b", so two different keys can never name the same blob and
// none can climb out of a backend's root.
func SplitKey(key string) ([]string, error) {
	if key == "" || len(key) > MaxKeyLen {
		return nil, fmt.Errorf("%w: length %d", ErrInvalidKey, len(key))
	}
	parts := strings.Split(key, "/")
	for _, p := range parts {
		if err := checkElement(p); err != nil {
			return nil, fmt.Errorf("%w: %q: %s", ErrInvalidKey, key, err)
		}
	}
	return parts, nil
}

func checkElement(p string) error {
	switch {
	case p == "":
		return errors.New("empty element")
	case p == "." || p == "..":
		return errors.New("dot element")
	case len(p) > 255:
		return errors.New("element longer than 255 bytes")
	case strings.HasPrefix(p, ".tmp-"):
		// Reserved for the local backend's temporary files.
		return errors.New("reserved element prefix")
	}
	for _, r := range p {
		if r == '\\' || r == unicode.ReplacementChar || unicode.IsControl(r) {
			return fmt.Errorf("forbidden character %q", r)
		}
	}
	return nil
}

// ValidatePrefix checks a List prefix: empty, or a key prefix whose
// complete elements are valid (the last element may be partial).
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if len(prefix) > MaxKeyLen {
		return fmt.Errorf("%w: prefix too long", ErrInvalidKey)
	}
	parts := strings.Split(prefix, "/")
	for _, p := range parts[:len(parts)-1] {
		if err := checkElement(p); err != nil {
			return fmt.Errorf("%w: prefix %q: %s", ErrInvalidKey, prefix, err)
		}
	}
	// The last element may be partial ("att/c1/01" matches "att/c1/0123"),
	// so only its characters are checked.
	for _, r := range parts[len(parts)-1] {
		if r == '\\' || r == unicode.ReplacementChar || unicode.IsControl(r) {
			return fmt.Errorf("%w: prefix %q: forbidden character %q", ErrInvalidKey, prefix, r)
		}
	}
	return nil
}
