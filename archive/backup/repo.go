package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/casevault/casevault/archive"
)

// Format names the repository layout (config.json; docs/BACKUP-FORMAT.md).
// The layout is unchanged since the first version: table chunks are
// objects under data/ like the attachment copies.
const Format = "casevault-backup/1"

// Manifest versions: ManifestFormat is written (tables as content-addressed
// chunks, attachment blobs copied verbatim: BlobStored); formatV2 (the same
// tables, blobs as age files) and formatV1 (one file per table) manifests
// are still read. The table entries of formats 2 and 3 are the same.
const (
	ManifestFormat = "casevault-backup/3"
	formatV2       = "casevault-backup/2"
	formatV1       = "casevault-backup/1"
)

// Repository layout. Every key is relative to the repository prefix.
const (
	configKey    = "config.json"
	snapshotsDir = "snapshots/"
	dataDir      = "data/"
	tmpDir       = "tmp/"
	manifestName = "manifest.json"
	startedName  = "started.json"
)

// Errors callers match with errors.Is (the CLI maps them to exit codes).
var (
	ErrNoRepository = errors.New("no backup repository at the target")
	ErrNotFound     = errors.New("backup not found")
	ErrLocked       = errors.New("another backup run holds the lock")
	ErrNoKey        = errors.New("backup identity (private key) needed")
	ErrWrongKey     = errors.New("backup identity does not decrypt this backup")
	ErrTargetInUse  = errors.New("restore target is not empty")
	ErrDamaged      = errors.New("backup is damaged")
	ErrHeld         = errors.New("held by a legal hold")
	ErrDeleted      = errors.New("deleted since the backup")
)

// Renamer is the optional blob store capability objects need to be named by
// their digest after they were written (local and S3 stores have it).
type Renamer interface {
	Rename(ctx context.Context, from, to string) error
}

// store is what a repository needs from its blob store.
type store interface {
	archive.Blobs
	Renamer
}

// Repo is a backup repository on a blob store: a local directory or an S3
// bucket, possibly a different one from the attachments'.
type Repo struct {
	st store
	// signer signs the manifests this repository writes and authenticates
	// every manifest it reads (sign.go).
	signer        *SigningKey
	allowUnsigned bool
	// bulk receives table files and objects: st itself, or a view of it
	// that defers durability to one sync before the manifest is written.
	bulk   store
	sync   func(ctx context.Context) error
	prefix string
}

// BulkSyncer is the optional blob-store capability of deferring
// durability: writes through Unsynced skip fsync, SyncAll makes them all
// durable at once (archive/local has it; S3 writes are durable anyway).
type BulkSyncer interface {
	Unsynced() archive.Blobs
	SyncAll(ctx context.Context) error
}

// bulkView returns b's unsynced view and the sync that seals it, or b
// itself and nil.
func bulkView(b archive.Blobs) (archive.Blobs, func(ctx context.Context) error) {
	if bs, ok := b.(BulkSyncer); ok {
		return bs.Unsynced(), bs.SyncAll
	}
	return b, nil
}

// RepoOptions are a repository's keys and trust settings.
type RepoOptions struct {
	// Signer signs new manifests and authenticates every manifest read
	// (DeriveSigningKey of the master key). Without it nothing is listed,
	// verified or restored (ErrNoSigningKey).
	Signer *SigningKey
	// AllowUnsigned accepts manifests that have no signature at all
	// (backups written before casevault signed them) for listing,
	// verifying and restoring. A signature that does not verify is never
	// accepted. Backup runs never reuse objects of unsigned backups.
	AllowUnsigned bool
}

// OpenRepo wraps a blob store; prefix ("" or "a/b/") scopes the repository
// inside it. The store must support Rename.
func OpenRepo(b archive.Blobs, prefix string, opts RepoOptions) (*Repo, error) {
	st, ok := b.(store)
	if !ok {
		return nil, fmt.Errorf("backup target %T cannot rename objects", b)
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	r := &Repo{st: st, bulk: st, prefix: prefix, signer: opts.Signer, allowUnsigned: opts.AllowUnsigned}
	if v, sync := bulkView(b); sync != nil {
		if vs, ok := v.(store); ok {
			r.bulk, r.sync = vs, sync
		}
	}
	return r, nil
}

func (r *Repo) key(k string) string { return r.prefix + k }

type repoConfig struct {
	Format    string    `json:"format"`
	CreatedAt time.Time `json:"created_at"`
}

// ensure creates the repository marker on first use.
func (r *Repo) ensure(ctx context.Context) error {
	if err := r.check(ctx); err == nil || !errors.Is(err, ErrNoRepository) {
		return err
	}
	b, _ := json.Marshal(repoConfig{Format: Format, CreatedAt: time.Now().UTC()})
	if err := r.st.Put(ctx, r.key(configKey), bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("create repository: %w", err)
	}
	return nil
}

// check reports ErrNoRepository when the marker is missing.
func (r *Repo) check(ctx context.Context) error {
	rc, err := r.st.Get(ctx, r.key(configKey))
	if errors.Is(err, archive.ErrNotFound) {
		return ErrNoRepository
	}
	if err != nil {
		return fmt.Errorf("open repository: %w", err)
	}
	defer rc.Close()
	var c repoConfig
	if err := json.NewDecoder(io.LimitReader(rc, 1<<16)).Decode(&c); err != nil {
		return fmt.Errorf("%w: repository config: %w", ErrDamaged, err)
	}
	if c.Format != Format {
		return fmt.Errorf("repository format %q is not %q", c.Format, Format)
	}
	return nil
}

// Damaged names a backup whose manifest cannot be read or authenticated.
type Damaged struct {
	ID    string `json:"id"`
	Error string `json:"error"`
	// Unsigned: the manifest has no signature (an older backup, or one
	// whose signature was removed).
	Unsigned bool `json:"unsigned,omitempty"`
}

// List returns the complete backups, oldest first, and separately those
// whose manifest is damaged, so one bad backup does not hide the others. A
// snapshot without a manifest (interrupted, or being written) is not a
// backup and appears in neither.
func (r *Repo) List(ctx context.Context) ([]Manifest, []Damaged, error) {
	return r.list(ctx, r.allowUnsigned)
}

func (r *Repo) list(ctx context.Context, allowUnsigned bool) ([]Manifest, []Damaged, error) {
	if err := r.check(ctx); err != nil {
		return nil, nil, err
	}
	var ids []string
	err := r.st.List(ctx, r.key(snapshotsDir), func(bi archive.BlobInfo) error {
		rest := strings.TrimPrefix(bi.Key, r.key(snapshotsDir))
		if id, name, ok := strings.Cut(rest, "/"); ok && name == manifestName {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list backups: %w", err)
	}
	sort.Strings(ids)
	out := make([]Manifest, 0, len(ids))
	var bad []Damaged
	for _, id := range ids {
		m, err := r.manifest(ctx, id, allowUnsigned)
		switch {
		case errors.Is(err, ErrDamaged) || errors.Is(err, ErrNotFound):
			bad = append(bad, Damaged{ID: id, Error: err.Error(), Unsigned: errors.Is(err, ErrUnsigned)})
		case err != nil:
			return nil, nil, err
		default:
			out = append(out, m)
		}
	}

	// An id names its second only: two backups in one second must still
	// come in the order they were taken ("latest", replay, keep-last).
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].SnapshotAt.Equal(out[j].SnapshotAt) {
			return out[i].SnapshotAt.Before(out[j].SnapshotAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, bad, nil
}

// Manifests returns the complete backups, oldest first, and fails when any
// manifest is damaged: forget and tombstone replay must see every backup.
func (r *Repo) Manifests(ctx context.Context) ([]Manifest, error) {
	ms, bad, err := r.List(ctx)
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w: manifest of backup %s: %s", ErrDamaged, bad[0].ID, bad[0].Error)
	}
	return ms, nil
}

// maxManifest bounds what a manifest read holds in memory (a manifest
// lists about 200 bytes per attachment blob).
const maxManifest = 1 << 30

// Manifest reads one backup's manifest and authenticates it: a manifest
// whose signature is missing or does not verify is ErrDamaged (wrapping
// ErrUnsigned or ErrBadSignature), so nothing restores from it.
func (r *Repo) Manifest(ctx context.Context, id string) (Manifest, error) {
	return r.manifest(ctx, id, r.allowUnsigned)
}

func (r *Repo) manifest(ctx context.Context, id string, allowUnsigned bool) (Manifest, error) {
	if !validID(id) {
		return Manifest{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}

	b, err := r.readAll(ctx, snapshotsDir+id+"/"+manifestName, maxManifest)
	if errors.Is(err, archive.ErrNotFound) {
		if cerr := r.check(ctx); cerr != nil {
			return Manifest{}, cerr
		}
		return Manifest{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}

	if err != nil {
		return Manifest{}, fmt.Errorf("read manifest %s: %w", id, err)
	}

	if r.signer == nil {
		return Manifest{}, ErrNoSigningKey
	}

	// Authenticated before anything in it is believed.
	unsigned := false
	sig, err := r.readAll(ctx, snapshotsDir+id+"/"+signatureName, 1<<12)
	switch {
	case errors.Is(err, archive.ErrNotFound) && allowUnsigned:
		unsigned = true
	case errors.Is(err, archive.ErrNotFound):
		return Manifest{}, fmt.Errorf("%w: backup %s: %w (%s is missing: written before casevault signed backups, or the signature was removed); "+
			"accept backups you know predate signing with --allow-unsigned", ErrDamaged, id, ErrUnsigned, signatureName)
	case err != nil:
		return Manifest{}, fmt.Errorf("read manifest signature %s: %w", id, err)
	default:
		if err := r.signer.verify(b, sig); err != nil {
			return Manifest{}, fmt.Errorf("%w: backup %s: %w", ErrDamaged, id, err)
		}
	}

	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("%w: manifest %s: %w", ErrDamaged, id, err)
	}

	if m.Format != ManifestFormat && m.Format != formatV2 && m.Format != formatV1 || m.ID != id {
		return Manifest{}, fmt.Errorf("%w: manifest %s: format %q id %q", ErrDamaged, id, m.Format, m.ID)
	}

	if err := m.validate(); err != nil {
		return Manifest{}, fmt.Errorf("%w: manifest %s: %w", ErrDamaged, id, err)
	}

	m.Unsigned = unsigned
	return m, nil
}

// idTime is the time part of a backup id (to the second).
const idTime = "20060102T150405Z"

// newID names a backup so that names sort by time.
func newID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format(idTime) + "-" + hex.EncodeToString(b[:])
}

func validID(id string) bool {
	if len(id) != len("20060102T150405Z-000000") {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == 'T' || c == 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// countingHash tallies what passes through it.
type countingHash struct {
	w io.Writer
	h hash.Hash
	n int64
}

func newCountingHash(w io.Writer) *countingHash { return &countingHash{w: w, h: sha256.New()} }

func (c *countingHash) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

func (c *countingHash) sum() string { return hex.EncodeToString(c.h.Sum(nil)) }

// writeFile streams fill's output, zstd-compressed when compress is set and
// always age-encrypted, to key. It returns the stored size and SHA-256 of
// the stored bytes and of the plain bytes fill wrote.
func (r *Repo) writeFile(ctx context.Context, key string, recipients []age.Recipient, compress bool, fill func(w io.Writer) error) (stored, plain fileSum, err error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	var sc, pc *countingHash
	go func() {
		sc = newCountingHash(pw)
		err := func() error {
			aw, err := age.Encrypt(sc, recipients...)
			if err != nil {
				return err
			}
			var zw *zstd.Encoder
			var w io.Writer = aw
			if compress {
				if zw, err = zstd.NewWriter(aw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1)); err != nil {
					return err
				}
				w = zw
			}
			pc = newCountingHash(w)
			if err := fill(pc); err != nil {
				return err
			}
			if zw != nil {
				if err := zw.Close(); err != nil {
					return err
				}
			}
			return aw.Close()
		}()
		pw.CloseWithError(err)
		done <- err
	}()
	perr := r.bulk.Put(ctx, r.key(key), pr, -1)

	// The upload's error is the cause (a cancelled context, the store, or
	// fill's own error passed through by Put); the writer side only sees
	// the pipe closing because of it.
	if perr != nil {
		pr.CloseWithError(perr)
	} else {
		pr.Close()
	}

	ferr := <-done
	if perr != nil {
		return fileSum{}, fileSum{}, fmt.Errorf("write %s: %w", key, perr)
	}

	if ferr != nil {
		return fileSum{}, fileSum{}, ferr
	}

	return fileSum{Size: sc.n, SHA256: sc.sum()}, fileSum{Size: pc.n, SHA256: pc.sum()}, nil
}

type fileSum struct {
	Size   int64
	SHA256 string
}

// openFile returns the decrypted (and decompressed) content of key. It
// checks nothing by itself: age authenticates every chunk, and callers
// compare the plain digest with the manifest.
func (r *Repo) openFile(ctx context.Context, key string, id age.Identity, compressed bool) (io.ReadCloser, error) {
	if id == nil {
		return nil, ErrNoKey
	}
	rc, err := r.st.Get(ctx, r.key(key))
	if err != nil {
		if errors.Is(err, archive.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s is missing", ErrDamaged, key)
		}
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	ar, err := age.Decrypt(rc, id)
	if err != nil {
		rc.Close()
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, fmt.Errorf("%w: %s", ErrWrongKey, key)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrDamaged, key, err)
	}
	if !compressed {
		return readCloser{Reader: ar, close: rc.Close}, nil
	}
	zr, err := zstd.NewReader(ar, zstd.WithDecoderConcurrency(1))
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("%w: %s: %w", ErrDamaged, key, err)
	}
	return readCloser{Reader: zr, close: func() error { zr.Close(); return rc.Close() }}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// seal makes every bulk write durable (before the manifest that names them).
func (r *Repo) seal(ctx context.Context) error {
	if r.sync == nil {
		return nil
	}
	if err := r.sync(ctx); err != nil {
		return fmt.Errorf("sync backup files: %w", err)
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func sortBlobs(bs []BlobEntry) {
	sort.Slice(bs, func(i, j int) bool { return bs[i].Key < bs[j].Key })
}
