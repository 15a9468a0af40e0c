package web

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
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/api"
	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/cases"
)

// Attachments in the console: upload as a multipart form read as a stream
// (never buffered whole: the API's app streams request bodies), stored
// through the API's attachment service with the API's audit event, and
// shown inline only for the image and PDF types a browser renders without
// running anything of ours (never HTML or SVG).

// Limits of the form fields around a file: a console form has a handful
// of short fields; a body that is not that is refused before it costs
// memory.
const (
	maxFormField  = 64 << 10
	maxFormFields = 64
)

// previewTypes are the stored content types shown inline. Everything
// else downloads: HTML, SVG and XML can carry script, and a type a
// browser does not render gains nothing from inline.
var previewTypes = map[string]bool{
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true, "application/pdf": true,
}

// previewable reports whether an attachment is shown inline, by its
// stored type.
func previewable(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && previewTypes[mt]
}

// previewKind is how the case page shows an attachment inline: "image"
// (a thumbnail and a link), "pdf" (a link to its own tab) or "" (download
// only). The template's "previewKind".
func previewKind(contentType string) string {
	switch {
	case !previewable(contentType):
		return ""
	case strings.HasPrefix(contentType, "image/"):
		return "image"
	}
	return "pdf"
}

// previewCSP is the policy of an inline attachment: a browser's image or
// PDF view of our bytes, with nothing of its own to load and no framing.
const previewCSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; object-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"

// isMultipart reports a multipart/form-data request and its boundary.
func isMultipart(c *fiber.Ctx) (string, bool) {
	mt, params, err := mime.ParseMediaType(string(c.Request().Header.ContentType()))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return "", false
	}
	return params["boundary"], true
}

// postedCSRF reads a POST's CSRF token. A multipart form is read as a
// stream: its first part must be the token (the hidden field comes first
// in every console form, and browsers send fields in document order), and
// the rest stays unread for the handler (r.mp).
func (r *req) postedCSRF() string {
	boundary, ok := isMultipart(r.c)
	if !ok {
		return r.c.FormValue("csrf")
	}
	var body io.Reader = r.c.Context().RequestBodyStream()
	if body == nil {
		body = bytes.NewReader(r.c.Body())
	}
	r.mp = multipart.NewReader(body, boundary)
	part, err := r.mp.NextPart()
	if err != nil || part.FormName() != "csrf" {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(part, 256))
	if err != nil {
		return ""
	}
	return string(b)
}

// form is a posted form: its fields and, for a multipart form, the file
// part (the last field of the form; read by the handler as a stream).
type form struct {
	vals url.Values
	file *multipart.Part
}

func (f form) get(k string) string { return strings.TrimSpace(f.vals.Get(k)) }

// readForm reads the posted fields. Fields after the file are not read
// (the console's forms put the file last).
func (r *req) readForm() (form, error) {
	f := form{vals: url.Values{}}
	if r.mp == nil {
		r.c.Request().PostArgs().VisitAll(func(k, v []byte) { f.vals.Add(string(k), string(v)) })
		return f, nil
	}
	for range maxFormFields {
		part, err := r.mp.NextPart()
		if err == io.EOF {
			return f, nil
		}
		if err != nil {
			return f, &statusError{fiber.StatusBadRequest, "malformed multipart form"}
		}
		if part.FileName() != "" || part.FormName() == "file" {
			if part.FileName() != "" {
				f.file = part
			}
			return f, nil
		}
		b, err := io.ReadAll(io.LimitReader(part, maxFormField+1))
		if err != nil {
			return f, &statusError{fiber.StatusBadRequest, "malformed multipart form"}
		}
		if len(b) > maxFormField {
			return f, cases.Invalid(part.FormName(), "too long")
		}
		f.vals.Add(part.FormName(), string(b))
	}
	return f, &statusError{fiber.StatusBadRequest, "too many form fields"}
}

// storeFile stores an uploaded file on a contact through the API's
// attachment service, with the API's audit event (attachment.create, in
// the write's transaction) and hold flag; a failed upload is audited too.
func (w *Console) storeFile(r *req, contactID string, file *multipart.Part) (cases.Attachment, error) {
	att := w.d.API.Attachments
	if att == nil {
		return cases.Attachment{}, &statusError{fiber.StatusNotFound, "attachments are not configured"}
	}
	ctx := r.c.UserContext()
	a := r.actor
	body := &readWatch{r: file}
	in := archive.AttachmentInput{ContactID: contactID, Filename: file.FileName(), ContentType: file.Header.Get("Content-Type"), Body: body,
		InTx: func(ctx context.Context, tx *sql.Tx, at cases.Attachment) error {
			if w.d.API.AuditTx == nil {
				return nil
			}
			return w.d.API.AuditTx(ctx, tx, cases.Change{Actor: a, Action: "attachment.create", TargetType: "attachment", TargetID: at.ID,
				Detail: map[string]any{"contact_id": at.ContactID, "size": at.Size, "sha256": at.SHA256, "content_type": at.ContentType}})
		}}
	stored, err := att.Put(ctx, in)
	if err != nil {
		// What is left of the body is not read: the connection cannot
		// carry another request.
		r.c.Context().SetConnectionClose()
		reason := "error"
		switch {
		case errors.Is(err, archive.ErrTooLarge):
			reason = "too large"
			api.TooLarge(r.c)
			err = &statusError{fiber.StatusRequestEntityTooLarge, r.L.T("files.too_large", att.MaxSize())}
		case errors.Is(err, cases.ErrNotFound):
			reason = "contact not found"
		case body.err != nil && body.err != io.EOF:
			// The body ended inside the file: the client left or the
			// request was cut. Nothing was stored.
			reason = "body incomplete"
			err = &statusError{fiber.StatusBadRequest, "the upload was incomplete; nothing was stored"}
		}
		r.w.record(r.c, cases.Change{Actor: a, Action: "attachment.create", TargetType: "contact", TargetID: contactID, Detail: map[string]any{"reason": reason}}, "failed")
		return cases.Attachment{}, err
	}
	r.finishForm()
	if rt := w.d.API.Retention; rt != nil && rt.Flags != nil {
		// A hold may already cover the contact: its blob's flag now, the
		// reconciler retries a failure (as the API's upload does).
		if err := rt.Flags.AttachmentAdded(ctx, stored.ID); err != nil {
			w.log.Error("legal-hold flag of a console upload not set; the reconciler retries", "attachment", stored.ID, "err", err)
		}
	}
	return stored, nil
}

// readWatch keeps the first error reading the upload: the blob store
// may report a broken body as its own failure.
type readWatch struct {
	r   io.Reader
	err error
}

func (rw *readWatch) Read(p []byte) (int, error) {
	n, err := rw.r.Read(p)
	if err != nil && rw.err == nil {
		rw.err = err
	}
	return n, err
}

// finishForm reads what follows the file (later fields, the closing
// boundary) so the connection can carry the next request; a form that
// does not end within the field limits gets the connection closed.
func (r *req) finishForm() {
	if r.mp == nil {
		return
	}
	for range maxFormFields {
		part, err := r.mp.NextPart()
		if err == io.EOF {
			return
		}
		if err != nil {
			break
		}
		if n, err := io.Copy(io.Discard, io.LimitReader(part, maxFormField+1)); err != nil || n > maxFormField {
			break
		}
	}
	r.c.Context().SetConnectionClose()
}

// checkUploadSize refuses a body larger than the attachment limit (plus
// the form around it) before reading it.
func (w *Console) checkUploadSize(r *req) error {
	att := w.d.API.Attachments
	if att == nil {
		return nil
	}
	if cl := r.c.Request().Header.ContentLength(); cl > 0 && int64(cl) > att.MaxSize()+maxFormFields*maxFormField {
		// Read (up to a bound) before refusing: a browser still sending
		// the file when the connection closes with its bytes unread gets
		// a reset, and the 413 page is lost (a CI run saw it once).
		api.TooLarge(r.c)
		return &statusError{fiber.StatusRequestEntityTooLarge, r.L.T("files.too_large", att.MaxSize())}
	}
	return nil
}

// uploadFile is the case page's "attach a file" form: a contact of the
// case and a file.
func (w *Console) uploadFile(r *req) error {
	caseID := r.c.Params("id")
	if err := w.checkUploadSize(r); err != nil {
		return err
	}
	if r.mp == nil {
		return &statusError{fiber.StatusUnsupportedMediaType, "send the form as multipart/form-data"}
	}
	f, err := r.readForm()
	if err != nil {
		return err
	}
	if f.file == nil {
		return cases.Invalid("file", "choose a file")
	}
	contactID := f.get("contact")
	ct, err := w.d.API.Cases.GetContact(r.c.UserContext(), contactID)
	if err != nil {
		return err
	}
	if ct.CaseID != caseID {
		// The form names the case in its path: a contact of another case
		// is not attached from here.
		return cases.Invalid("contact", "not a contact of this case")
	}
	if _, err := w.storeFile(r, contactID, f.file); err != nil {
		return err
	}
	return r.redirect("/cases/"+caseID, "file_added")
}

// previewAttachment shows an image or PDF inline; any other type is
// refused (the download link serves it as a file).
func (w *Console) previewAttachment(r *req) error {
	att := w.d.API.Attachments
	if att == nil {
		return fiber.ErrNotFound
	}
	ctx := r.c.UserContext()
	meta, err := att.Meta(ctx, r.c.Params("id"))
	if err != nil {
		return err
	}
	mt, _, _ := mime.ParseMediaType(meta.ContentType)
	if !previewTypes[mt] {
		return &statusError{fiber.StatusUnsupportedMediaType, r.L.T("files.no_preview")}
	}
	_, rc, err := att.OpenRange(ctx, meta.ID, 0, meta.Size)
	if err != nil {
		return err
	}
	r.readID = meta.ID
	r.readDetail = map[string]any{"inline": true}
	r.c.Set("Content-Security-Policy", previewCSP)
	r.c.Set("X-Frame-Options", "SAMEORIGIN")
	r.c.Set(fiber.HeaderContentDisposition, "inline; filename*=UTF-8''"+url.PathEscape(meta.Filename))
	// The type is one of the list, never the client's parameters.
	r.c.Set(fiber.HeaderContentType, mt)
	r.c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	r.c.Set("Cache-Control", "private, no-store")
	return r.c.SendStream(rc, int(meta.Size))
}

// humanSize shows a byte count (the template's "size" func).
func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
