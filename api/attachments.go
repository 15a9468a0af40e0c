package api

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
)

// AttachmentStore is the attachment service the routes call.
type AttachmentStore interface {
	MaxSize() int64
	Put(ctx context.Context, in archive.AttachmentInput) (cases.Attachment, error)
	Meta(ctx context.Context, id string) (cases.Attachment, error)
	OpenRange(ctx context.Context, id string, off, n int64) (cases.Attachment, io.ReadCloser, error)
}

func (s *Server) addAttachmentRoutes() {
	if s.d.Attachments == nil {
		return
	}
	s.add(route{method: "POST", path: "/api/v1/contacts/:id/attachments", perm: auth.CaseWrite, summary: "Attach a file (raw body with ?filename=, or multipart with one file part)", h: s.uploadAttachment, ok: 201,
		upload: true, reply: cases.Attachment{}, query: []param{pString("filename", "The file's name, for a raw body (a multipart part names its own).")}})
	s.add(route{method: "GET", path: "/api/v1/attachments/:id", perm: auth.CaseRead, read: "attachment.read", target: "attachment", summary: "Download an attachment (Range supported)", h: s.downloadAttachment, ok: 200, media: "*/*", alt: map[int]any{206: nil}})
	s.add(route{method: "GET", path: "/api/v1/attachments/:id/meta", perm: auth.CaseRead, read: "attachment.meta", target: "attachment", summary: "Attachment metadata", h: s.attachmentMeta, ok: 200, reply: cases.Attachment{}})
}

// bodyStream returns the request body as a stream, never buffering a large
// upload in memory.
func bodyStream(c *fiber.Ctx) io.Reader {
	if st := requestBody(c); st != nil {
		return st
	}
	return bytes.NewReader(c.Body())
}

func (s *Server) uploadAttachment(c *fiber.Ctx) error {
	contactID := strings.Clone(c.Params("id"))
	err := s.storeUpload(c, contactID)
	if err == nil {
		return nil
	}
	s.auditFailedUpload(c, contactID, err)
	switch {
	case errors.Is(err, archive.ErrTooLarge):
		TooLarge(c)
	case errors.Is(err, errBodyIncomplete), errors.Is(err, errClientGone):
		// The client may still be sending, or is gone: the connection
		// cannot carry another request either way.
		c.Context().SetConnectionClose()
		s.log.Info("upload not stored", "request_id", requestID(c), "err", err)
	}
	return uploadError(err, s.d.Attachments.MaxSize())
}

// uploadError maps a failed upload to what the client is told; errors it
// does not know go to the general mapping (problemFor).
func uploadError(err error, max int64) error {
	switch {
	case errors.Is(err, archive.ErrTooLarge):
		return errStatus(fiber.StatusRequestEntityTooLarge, "attachment larger than %d bytes", max)
	case errors.Is(err, archive.ErrDigestMismatch):
		return fieldError("the body does not match the digest sent", "Content-Digest", "does not match the body")
	case errors.Is(err, errBodyIncomplete), errors.Is(err, errClientGone):
		return errStatus(fiber.StatusBadRequest, "the request body was incomplete or the client left; nothing was stored")
	case errors.Is(err, errMultipart):
		return errStatus(fiber.StatusBadRequest, "malformed multipart body")
	}
	return err
}

// auditFailedUpload records an upload that stored nothing, so the trail
// shows the attempt (a committed upload is audited in its transaction).
func (s *Server) auditFailedUpload(c *fiber.Ctx, contactID string, err error) {
	if s.d.Audit == nil {
		return
	}
	ch := cases.Change{Actor: actor(c), Action: "attachment.create", TargetType: "contact", TargetID: contactID,
		Detail: map[string]any{"reason": uploadFailure(err)}}
	if aerr := s.d.Audit.Record(c.UserContext(), ch, "failed"); aerr != nil {
		s.log.Warn("audit of failed upload failed", "request_id", requestID(c), "err", aerr)
	}
}

// uploadFailure names the failure class for the audit trail: a fixed
// vocabulary, never client text.
func uploadFailure(err error) string {
	var ve *cases.ValidationError
	switch {
	case errors.Is(err, errBodyIncomplete):
		return "body incomplete"
	case errors.Is(err, errClientGone):
		return "client gone"
	case errors.Is(err, archive.ErrTooLarge):
		return "too large"
	case errors.Is(err, archive.ErrDigestMismatch):
		return "digest mismatch"
	case errors.Is(err, archive.ErrUnavailable):
		return "blob store unavailable"
	case errors.Is(err, cases.ErrNotFound):
		return "contact not found"
	case errors.As(err, &ve):
		return "invalid"
	}
	var he *httpError
	if errors.As(err, &he) {
		return strconv.Itoa(he.status)
	}
	return "error"
}

func (s *Server) storeUpload(c *fiber.Ctx, contactID string) error {
	max := s.d.Attachments.MaxSize()
	if cl := c.Request().Header.ContentLength(); cl > 0 && int64(cl) > max+64<<10 {
		TooLarge(c)
		return errStatus(fiber.StatusRequestEntityTooLarge, "attachment larger than %d bytes", max)
	}

	digest, err := archive.ParseDigestHeaders(c.Get("Content-Digest"), c.Get("X-Content-SHA256"))
	if err != nil {
		return fieldError(err.Error(), "Content-Digest", "must be sha-256=:base64: or a hex X-Content-SHA256")
	}

	in := archive.AttachmentInput{ContactID: contactID, ExpectedSHA256: digest}
	ctype := string(c.Request().Header.ContentType())
	mt, params, _ := mime.ParseMediaType(ctype)
	if mt == "multipart/form-data" {
		raw := bodyStream(c)
		part, err := filePart(raw, params["boundary"])
		if err != nil {
			return err
		}
		in.Filename = part.FileName()
		in.ContentType = part.Header.Get("Content-Type")
		in.Body = part
	} else {
		in.Filename = c.Query("filename")
		in.ContentType = ctype
		in.Body = bodyStream(c)
	}

	if in.Filename == "" {
		in.Filename = "attachment"
	}

	a := actor(c)
	conn, _ := c.Context().Conn().(*watchedConn)
	in.InTx = func(ctx context.Context, tx *sql.Tx, att cases.Attachment) error {
		// Checked last, just before the commit: a client that gave up
		// (say while a slow blob store took the body) must not find its
		// upload committed behind its back when it retries.
		if conn != nil && conn.peerGone() {
			return errClientGone
		}
		if s.d.AuditTx == nil {
			return nil
		}
		return s.d.AuditTx(ctx, tx, cases.Change{Actor: a, Action: "attachment.create", TargetType: "attachment", TargetID: att.ID,
			Detail: map[string]any{"contact_id": att.ContactID, "size": att.Size, "sha256": att.SHA256, "content_type": att.ContentType}})
	}

	att, err := s.d.Attachments.Put(c.UserContext(), in)
	if err != nil {
		return err
	}
	// A hold may already cover the contact: its flag, after the commit.
	s.flagUpload(c, att.ID)

	c.Location("/api/v1/attachments/" + att.ID)
	return c.Status(fiber.StatusCreated).JSON(att)
}

// errMultipart: the multipart framing around the file is broken.
var errMultipart = errors.New("malformed multipart body")

// filePart returns the reader of the part named "file". Its stream ends
// with io.EOF only once the rest of the body has been read and found
// whole: the closing boundary present and the body complete (for a
// multipart body with a truncated tail, the file's bytes can all be there
// while the request is still broken).
func filePart(body io.Reader, boundary string) (*multipartFile, error) {
	if boundary == "" {
		return nil, errStatus(fiber.StatusBadRequest, "malformed multipart body: no boundary")
	}
	mr := multipart.NewReader(body, boundary)
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil, cases.Invalid("file", "a multipart upload needs one part named file")
		}
		if errors.Is(err, errBodyIncomplete) {
			return nil, err
		}
		if err != nil {
			return nil, errStatus(fiber.StatusBadRequest, "malformed multipart body")
		}
		if part.FormName() == "file" {
			return &multipartFile{Part: part, mr: mr, body: body}, nil
		}
	}
}

type multipartFile struct {
	*multipart.Part
	mr   *multipart.Reader
	body io.Reader
	err  error
}

func (f *multipartFile) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.Part.Read(p)
	switch {
	case err == io.EOF:
		f.err = f.finish()
		return n, f.err
	case errors.Is(err, errBodyIncomplete):
		f.err = err
	case err != nil:
		f.err = fmt.Errorf("%w: %w", errMultipart, err)
	}
	return n, f.err
}

// finish reads past any later parts to the closing boundary and the end
// of the body. Later parts are ignored, as before; the body limit bounds
// what this reads.
func (f *multipartFile) finish() error {
	for {
		part, err := f.mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, errBodyIncomplete) {
				return err
			}
			return fmt.Errorf("%w: %w", errMultipart, err)
		}
		if _, err := io.Copy(io.Discard, part); err != nil {
			if errors.Is(err, errBodyIncomplete) {
				return err
			}
			return fmt.Errorf("%w: %w", errMultipart, err)
		}
	}
	// The epilogue after the closing boundary; what matters is that the
	// body itself ends cleanly.
	if _, err := io.Copy(io.Discard, f.body); err != nil {
		return err
	}
	return io.EOF
}

func (s *Server) attachmentMeta(c *fiber.Ctx) error {
	att, err := s.d.Attachments.Meta(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(att)
}

// parseRange reads a single "bytes=a-b", "bytes=a-" or "bytes=-n" range.
// ok is false when there is no usable single range (serve everything).
func parseRange(h string, size int64) (off, n int64, ok bool, unsatisfiable bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}

	a, b, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false, false
	}

	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	switch {
	case a == "" && b == "":
		return 0, 0, false, false
	case a == "":
		k, err := strconv.ParseInt(b, 10, 64)
		if err != nil || k <= 0 {
			return 0, 0, false, err == nil
		}
		if k > size {
			k = size
		}
		return size - k, k, size > 0, size == 0
	default:
		start, err := strconv.ParseInt(a, 10, 64)
		if err != nil || start < 0 {
			return 0, 0, false, false
		}
		if start >= size {
			return 0, 0, false, true
		}
		end := size - 1
		if b != "" {
			e, err := strconv.ParseInt(b, 10, 64)
			if err != nil || e < start {
				return 0, 0, false, false
			}
			if e < end {
				end = e
			}
		}
		return start, end - start + 1, true, false
	}
}

func (s *Server) downloadAttachment(c *fiber.Ctx) error {
	id := c.Params("id")
	meta, err := s.d.Attachments.Meta(c.UserContext(), id)
	if err != nil {
		return err
	}

	off, n, partial, unsat := parseRange(c.Get(fiber.HeaderRange), meta.Size)
	if unsat {
		c.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes */%d", meta.Size))
		return errStatus(fiber.StatusRequestedRangeNotSatisfiable, "range outside the %d-byte attachment", meta.Size)
	}

	if !partial {
		off, n = 0, meta.Size
	}

	_, rc, err := s.d.Attachments.OpenRange(c.UserContext(), id, off, n)
	if err != nil {
		s.auditCorruptRead(c, id, err, 0)
		return err
	}

	// Decrypt the first package before any header leaves: a flipped byte
	// there, a swapped or truncated blob, or a store that fails at once
	// become a proper error status instead of a 200 with a short body.
	head := make([]byte, min(n, firstPackage))
	if _, err := io.ReadFull(rc, head); err != nil {
		rc.Close()
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("%w: attachment shorter than recorded", archive.ErrCorrupt)
		}
		s.auditCorruptRead(c, id, err, 0)
		return err
	}

	c.Set(fiber.HeaderContentType, meta.ContentType)
	c.Set(fiber.HeaderContentDisposition, contentDisposition(meta.Filename))
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderAcceptRanges, "bytes")
	c.Set(fiber.HeaderETag, `"`+meta.SHA256+`"`)
	c.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	status := fiber.StatusOK
	if partial {
		status = fiber.StatusPartialContent
		c.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, meta.Size))
	}

	c.Status(status)
	// fasthttp streams the reader after the handler chain (and the read
	// audit) returned, and closes it. A failure from here on can only cut
	// the connection (the client sees fewer bytes than Content-Length);
	// it is logged and audited by onError, which must not touch c.
	ctx := context.WithoutCancel(c.UserContext())
	a, rid := actor(c), requestID(c)
	id = strings.Clone(id)
	c.Context().SetBodyStream(&chunkedWriterTo{rc: readCloser{io.MultiReader(bytes.NewReader(head), rc), rc}, onError: func(err error, sent int64) {
		s.streamFailed(ctx, a, rid, id, err, sent)
	}}, int(n))
	return nil
}

// firstPackage is how much plaintext is checked before the headers: one
// DARE package, the unit the cipher authenticates.
const firstPackage = 64 << 10

type readCloser struct {
	io.Reader
	io.Closer
}

// auditCorruptRead records a read refused because the stored object failed
// its integrity check (other errors are not reads of the attachment).
func (s *Server) auditCorruptRead(c *fiber.Ctx, id string, err error, sent int64) {
	if !errors.Is(err, archive.ErrCorrupt) || s.d.Audit == nil {
		return
	}
	ch := cases.Change{Actor: actor(c), Action: "attachment.read", TargetType: "attachment", TargetID: strings.Clone(id),
		Detail: map[string]any{"reason": "integrity check failed", "bytes_sent": sent}}
	if aerr := s.d.Audit.Record(c.UserContext(), ch, "failed"); aerr != nil {
		s.log.Error("audit of failed read failed", "request_id", requestID(c), "err", aerr)
	}
}

// streamFailed handles an error after the headers were sent: the read
// already recorded as ok is followed by a failed event, and the incident
// is logged at error level (an integrity failure means stored data was
// altered or lost).
func (s *Server) streamFailed(ctx context.Context, a cases.Actor, rid, id string, err error, sent int64) {
	reason := "store failed"
	if errors.Is(err, archive.ErrCorrupt) {
		reason = "integrity check failed"
	} else if !errors.Is(err, archive.ErrUnavailable) {
		// The client went away (write error): nothing to report.
		return
	}
	s.log.ErrorContext(ctx, "download cut short", "request_id", rid, "attachment", id, "bytes_sent", sent, "err", err)
	if s.d.Audit == nil {
		return
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ch := cases.Change{Actor: a, Action: "attachment.read", TargetType: "attachment", TargetID: id,
		Detail: map[string]any{"reason": reason, "bytes_sent": sent}}
	if aerr := s.d.Audit.Record(actx, ch, "failed"); aerr != nil {
		s.log.Error("audit of failed read failed", "request_id", rid, "err", aerr)
	}
}

// chunkedWriterTo makes fasthttp copy the download in large writes: without
// WriterTo it would pull 4 KiB at a time through its pooled buffer, which
// costs a large share of download throughput.
type chunkedWriterTo struct {
	rc io.ReadCloser
	// onError is told about a read failure (not a write failure: that is
	// the client leaving) and how many bytes had been sent.
	onError func(err error, sent int64)
}

func (c *chunkedWriterTo) Read(p []byte) (int, error) { return c.rc.Read(p) }

func (c *chunkedWriterTo) Close() error { return c.rc.Close() }

func (c *chunkedWriterTo) WriteTo(w io.Writer) (int64, error) {
	// Fetching and decrypting the next chunk overlaps with sending the
	// current one: two buffers in flight, so the blob store and the client
	// connection are both kept busy.
	type chunk struct {
		buf []byte
		err error
	}

	const size = 256 << 10
	free := make(chan []byte, 2)
	free <- make([]byte, size)
	free <- make([]byte, size)
	full := make(chan chunk, 2)
	stop := make(chan struct{})
	done := make(chan struct{})
	// The reader is closed by fasthttp after WriteTo returns, so the
	// producer must have stopped reading by then.
	defer func() { close(stop); <-done }()
	go func() {
		defer close(done)
		defer close(full)
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			n, err := io.ReadFull(c.rc, buf)
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			select {
			case full <- chunk{buf[:n], err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var total int64
	for ch := range full {
		if len(ch.buf) > 0 {
			m, werr := w.Write(ch.buf)
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if ch.err == io.EOF {
			return total, nil
		}
		if ch.err != nil {
			if c.onError != nil {
				c.onError(ch.err, total)
			}
			return total, ch.err
		}
		free <- ch.buf[:cap(ch.buf)]
	}

	return total, nil
}

// contentDisposition always forces a download, with an ASCII fallback name
// and the exact UTF-8 name (RFC 6266 / 5987).
func contentDisposition(name string) string {
	ascii := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == ';' {
			return '_'
		}
		return r
	}, name)
	return fmt.Sprintf(`attachment; filename="%s"; filename*=UTF-8''%s`, ascii, url.PathEscape(name))
}
