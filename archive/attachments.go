package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

var (
	// ErrTooLarge: the body crossed the size limit (the API answers 413).
	// Reported as soon as the limit is crossed, without reading further.
	ErrTooLarge = errors.New("attachment too large")
	// ErrDigestMismatch: the body's SHA-256 differs from the one the client
	// sent (the API answers 422). Nothing was stored.
	ErrDigestMismatch = errors.New("attachment digest mismatch")
)

// DefaultMaxSize is the default attachment size limit (100 MiB).
const DefaultMaxSize = 100 << 20

// BlobPrefix is where attachment blobs live: att/<customer id>/<attachment id>.
const BlobPrefix = "att/"

// AttachmentOptions configures the service.
type AttachmentOptions struct {
	// MaxSize limits one attachment in bytes (default DefaultMaxSize).
	MaxSize int64
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Attachments stores attachment bytes encrypted in a Blobs store and their
// metadata in the attachments table: the blob is written first, the row
// commits only after it, and any failure removes the blob again.
type Attachments struct {
	db      *sqldb.DB
	blobs   Blobs
	keys    *Keyring
	maxSize int64
	now     func() time.Time
}

// NewAttachments builds the service.
func NewAttachments(db *sqldb.DB, blobs Blobs, keys *Keyring, opts AttachmentOptions) *Attachments {
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Attachments{db: db, blobs: blobs, keys: keys, maxSize: opts.MaxSize, now: opts.Now}
}

// MaxSize is the configured limit (the API can refuse a larger
// Content-Length before reading anything).
func (a *Attachments) MaxSize() int64 { return a.maxSize }

// AttachmentInput is one upload.
type AttachmentInput struct {
	ContactID string
	// CaseID and CustomerID are taken from the contact; when set they
	// must match it.
	CaseID     string
	CustomerID string
	// Filename as the client sent it; it is sanitized here.
	Filename string
	// ContentType as the client declared it; empty or
	// application/octet-stream means "sniff it".
	ContentType string
	Body        io.Reader
	// ExpectedSHA256 is the client's digest in hex (see ParseDigestHeaders);
	// empty means none was sent.
	ExpectedSHA256 string
	// InTx runs inside the transaction that inserts the row (the audit
	// record); an error rolls everything back and removes the blob.
	InTx func(ctx context.Context, tx *sql.Tx, att cases.Attachment) error
}

// Put streams in.Body through a size limit, SHA-256 and encryption into the
// blob store, then inserts the row.
func (a *Attachments) Put(ctx context.Context, in AttachmentInput) (cases.Attachment, error) {
	expected := strings.ToLower(strings.TrimSpace(in.ExpectedSHA256))
	if expected != "" {
		if b, err := hex.DecodeString(expected); err != nil || len(b) != sha256.Size {
			return cases.Attachment{}, cases.Invalid("sha256", "must be 64 hexadecimal characters")
		}
	}

	if in.Body == nil {
		return cases.Attachment{}, cases.Invalid("body", "is required")
	}

	caseID, customerID, err := a.contact(ctx, in.ContactID)
	if err != nil {
		return cases.Attachment{}, err
	}

	if (in.CaseID != "" && in.CaseID != caseID) || (in.CustomerID != "" && in.CustomerID != customerID) {
		return cases.Attachment{}, cases.Invalid("contact_id", "does not belong to the given case or customer")
	}

	dataKey, wrapped, err := a.keys.dataKey(ctx, customerID, true)
	if err != nil {
		return cases.Attachment{}, err
	}

	att := cases.Attachment{
		ID:        cases.NewID(),
		ContactID: in.ContactID,
		Filename:  SanitizeFilename(in.Filename),
		CreatedAt: a.now().UTC().Truncate(time.Microsecond),
	}

	blobKey := BlobPrefix + customerID + "/" + att.ID
	if _, err := SplitKey(blobKey); err != nil {
		return cases.Attachment{}, fmt.Errorf("attachment key for customer %q: %w", customerID, err)
	}

	// limit → sniff → hash → encrypt → store. The hashing reader checks the
	// digest when the body ends and fails the read, so a mismatching upload
	// never completes in the store.
	limited := &limitReader{r: in.Body, left: a.maxSize}
	head := make([]byte, 512)
	nh, err := io.ReadFull(limited, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return cases.Attachment{}, err
	}

	head = head[:nh]
	att.ContentType = DetectContentType(in.ContentType, head)
	hr := &hashReader{r: io.MultiReader(bytes.NewReader(head), limited), h: sha256.New(), expected: expected}
	enc, err := encryptReader(hr, dataKey, att.ID)
	if err != nil {
		return cases.Attachment{}, fmt.Errorf("encrypt: %w", err)
	}

	// The stored bytes are hashed too: a backup names its verbatim copy of
	// the blob by this digest instead of hashing every blob again (issue
	// 17 §4).
	stored := &hashReader{r: enc, h: sha256.New()}
	if err := a.blobs.Put(ctx, blobKey, stored, -1); err != nil {
		a.removeBlob(ctx, blobKey)
		return cases.Attachment{}, err
	}

	if !hr.done || !stored.done {
		// Cannot happen with a well-behaved store, but never record a
		// digest of a partly read body.
		a.removeBlob(ctx, blobKey)
		return cases.Attachment{}, errors.New("attachment: body not fully consumed by the blob store")
	}

	att.Size = hr.n
	att.SHA256 = hr.sum

	err = a.db.InTx(ctx, func(tx *sql.Tx) error {
		// The key must still be the one we encrypted with: a customer
		// erased meanwhile gets no new readable attachment.
		w, _, err := a.keys.lookup(ctx, tx, customerID)
		if err != nil {
			return err
		}
		if w != wrapped {
			return fmt.Errorf("customer %q: data key changed during upload: %w", customerID, ErrKeyDestroyed)
		}
		_, err = tx.ExecContext(ctx, a.db.Rebind(`INSERT INTO attachments
			(id, contact_id, case_id, customer_id, filename, content_type, size, sha256, blob_key, created_at, stored_sha256)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			att.ID, att.ContactID, caseID, customerID, att.Filename, att.ContentType, att.Size, att.SHA256, blobKey, att.CreatedAt.UnixMicro(), stored.sum)
		if err != nil {
			return fmt.Errorf("insert attachment: %w", err)
		}
		if in.InTx != nil {
			return in.InTx(ctx, tx, att)
		}
		return nil
	})
	if err != nil {
		a.removeBlob(ctx, blobKey)
		return cases.Attachment{}, err
	}

	return att, nil
}

// removeBlob purges a blob whose row did not commit or was deleted: every
// version, so a versioned bucket keeps nothing readable. It runs even when
// the request was cancelled; if the store is down the reconciler removes
// the orphan (and its versions) later.
func (a *Attachments) removeBlob(ctx context.Context, key string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_ = a.blobs.Purge(dctx, key)
}

func (a *Attachments) contact(ctx context.Context, contactID string) (caseID, customerID string, err error) {
	if contactID == "" {
		return "", "", cases.Invalid("contact_id", "is required")
	}
	return sqlstore.ContactOwner(ctx, a.db, contactID)
}

type attRow struct {
	att        cases.Attachment
	customerID string
	blobKey    string
}

func (a *Attachments) row(ctx context.Context, id string) (attRow, error) {
	var r attRow
	var created int64
	err := a.db.Read.QueryRowContext(ctx, a.db.Rebind(`SELECT id, contact_id, customer_id, filename, content_type, size, sha256, blob_key, created_at
		FROM attachments WHERE id = ?`), id).Scan(&r.att.ID, &r.att.ContactID, &r.customerID, &r.att.Filename, &r.att.ContentType, &r.att.Size, &r.att.SHA256, &r.blobKey, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return attRow{}, fmt.Errorf("attachment %q: %w", id, cases.ErrNotFound)
	}
	if err != nil {
		return attRow{}, sqldb.Fail("attachment "+id, err)
	}
	r.att.CreatedAt = time.UnixMicro(created).UTC()
	return r, nil
}

// Meta returns the attachment's metadata.
func (a *Attachments) Meta(ctx context.Context, id string) (cases.Attachment, error) {
	r, err := a.row(ctx, id)
	return r.att, err
}

// ListByContact returns a contact's attachments, oldest first.
func (a *Attachments) ListByContact(ctx context.Context, contactID string) ([]cases.Attachment, error) {
	rows, err := a.db.Read.QueryContext(ctx, a.db.Rebind(`SELECT id, contact_id, filename, content_type, size, sha256, created_at
		FROM attachments WHERE contact_id = ? ORDER BY id`), contactID)
	if err != nil {
		return nil, sqldb.Fail("attachments", err)
	}
	defer rows.Close()
	out := []cases.Attachment{}
	for rows.Next() {
		var at cases.Attachment
		var created int64
		if err := rows.Scan(&at.ID, &at.ContactID, &at.Filename, &at.ContentType, &at.Size, &at.SHA256, &created); err != nil {
			return nil, err
		}
		at.CreatedAt = time.UnixMicro(created).UTC()
		out = append(out, at)
	}
	return out, rows.Err()
}

// Open streams the whole decrypted attachment. A tampered object fails with
// ErrCorrupt; a destroyed key with ErrKeyDestroyed; a store that is down
// with ErrUnavailable.
func (a *Attachments) Open(ctx context.Context, id string) (cases.Attachment, io.ReadCloser, error) {
	return a.open(ctx, id, 0, -1)
}

// OpenRange streams n bytes from off (n < 0: to the end) of the decrypted
// attachment; only the 64 KiB packages covering the range are fetched and
// decrypted. An offset beyond the size gives ErrInvalidRange (the API
// answers 416); a range running past the end is cut at the end.
func (a *Attachments) OpenRange(ctx context.Context, id string, off, n int64) (cases.Attachment, io.ReadCloser, error) {
	return a.open(ctx, id, off, n)
}

func (a *Attachments) open(ctx context.Context, id string, off, n int64) (cases.Attachment, io.ReadCloser, error) {
	r, err := a.row(ctx, id)
	if err != nil {
		return cases.Attachment{}, nil, err
	}
	if off < 0 || off > r.att.Size {
		return r.att, nil, fmt.Errorf("attachment %q: %w: offset %d of %d bytes", id, ErrInvalidRange, off, r.att.Size)
	}
	if n < 0 || n > r.att.Size-off {
		n = r.att.Size - off
	}
	dataKey, err := a.keys.ExistingDataKey(ctx, r.customerID)
	if err != nil {
		return r.att, nil, err
	}
	rc, err := openDecrypted(ctx, a.blobs, r.blobKey, dataKey, r.att.ID, r.att.Size, off, n)
	if err != nil {
		return r.att, nil, err
	}
	return r.att, rc, nil
}

// Delete removes the row (running inTx in the same transaction) and then
// the blob; a blob left behind by a store outage is an orphan the
// reconciler removes.
func (a *Attachments) Delete(ctx context.Context, id string, inTx func(ctx context.Context, tx *sql.Tx, att cases.Attachment) error) error {
	r, err := a.row(ctx, id)
	if err != nil {
		return err
	}
	err = a.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, a.db.Rebind(`DELETE FROM attachments WHERE id = ?`), id); err != nil {
			return fmt.Errorf("delete attachment: %w", err)
		}
		if inTx != nil {
			return inTx(ctx, tx, r.att)
		}
		return nil
	})
	if err != nil {
		return err
	}
	a.removeBlob(ctx, r.blobKey)
	return nil
}

// limitReader fails with ErrTooLarge as soon as more than left bytes come
// in, reading at most one byte beyond the limit.
type limitReader struct {
	r    io.Reader
	left int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return 0, ErrTooLarge
	}
	return n, err
}

// hashReader hashes and counts what passes through and, at the end of the
// body, compares with the expected digest, failing the final read on a
// mismatch.
type hashReader struct {
	r        io.Reader
	h        hash.Hash
	n        int64
	expected string
	sum      string
	done     bool
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	if err == io.EOF {
		h.sum = hex.EncodeToString(h.h.Sum(nil))
		if h.expected != "" && subtle.ConstantTimeCompare([]byte(h.sum), []byte(h.expected)) != 1 {
			return n, fmt.Errorf("%w: body has sha256 %s", ErrDigestMismatch, h.sum)
		}
		h.done = true
	}
	return n, err
}

// OpenSeeker returns the decrypted attachment as an io.ReadSeekCloser,
// for code that serves ranges by seeking (http.ServeContent). Seeking costs
// nothing; the next Read fetches and decrypts from the new position on.
// Prefer OpenRange when the range is known: a seeker reading a short range
// still asks the store for everything up to the end.
func (a *Attachments) OpenSeeker(ctx context.Context, id string) (cases.Attachment, io.ReadSeekCloser, error) {
	r, err := a.row(ctx, id)
	if err != nil {
		return cases.Attachment{}, nil, err
	}
	dataKey, err := a.keys.ExistingDataKey(ctx, r.customerID)
	if err != nil {
		return r.att, nil, err
	}
	return r.att, &seeker{ctx: ctx, blobs: a.blobs, row: r, dataKey: dataKey}, nil
}

type seeker struct {
	ctx     context.Context
	blobs   Blobs
	row     attRow
	dataKey []byte
	pos     int64
	rc      io.ReadCloser
}

func (s *seeker) Read(p []byte) (int, error) {
	size := s.row.att.Size
	if s.pos >= size {
		return 0, io.EOF
	}
	if s.rc == nil {
		rc, err := openDecrypted(s.ctx, s.blobs, s.row.blobKey, s.dataKey, s.row.att.ID, size, s.pos, size-s.pos)
		if err != nil {
			return 0, err
		}
		s.rc = rc
	}
	n, err := s.rc.Read(p)
	s.pos += int64(n)
	return n, err
}

func (s *seeker) Seek(offset int64, whence int) (int64, error) {
	var pos int64
	switch whence {
	case io.SeekStart:
		pos = offset
	case io.SeekCurrent:
		pos = s.pos + offset
	case io.SeekEnd:
		pos = s.row.att.Size + offset
	default:
		return s.pos, fmt.Errorf("seek: bad whence %d", whence)
	}
	if pos < 0 {
		return s.pos, fmt.Errorf("seek: %w: negative position", ErrInvalidRange)
	}
	if pos != s.pos && s.rc != nil {
		s.rc.Close()
		s.rc = nil
	}
	s.pos = pos
	return pos, nil
}

func (s *seeker) Close() error {
	if s.rc != nil {
		err := s.rc.Close()
		s.rc = nil
		return err
	}
	return nil
}
