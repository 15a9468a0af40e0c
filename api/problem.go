package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/sqldb"
)

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type   string             `json:"type"`
	Title  string             `json:"title"`
	Status int                `json:"status"`
	Detail string             `json:"detail,omitempty"`
	Errors []cases.FieldError `json:"errors,omitempty"`
	// Hold names the legal hold that blocks a deletion (409).
	Hold string `json:"hold,omitempty"`
}

type fieldErr = cases.FieldError

// httpError carries a status and message chosen by a handler.
type httpError struct {
	status int
	detail string
	fields []cases.FieldError
	hold   string
}

func (e *httpError) Error() string { return fmt.Sprintf("%d: %s", e.status, e.detail) }

func errStatus(status int, format string, args ...any) error {
	return &httpError{status: status, detail: fmt.Sprintf(format, args...)}
}

// problemFor maps any error a handler returns to its problem document.
func (s *Server) problemFor(err error) Problem {
	var he *httpError
	var ve *cases.ValidationError
	var fe *fiber.Error
	var held *retention.HeldError
	switch {
	case errors.As(err, &he):
		return Problem{Status: he.status, Detail: he.detail, Errors: he.fields, Hold: he.hold}
	case errors.As(err, &ve):
		return Problem{Status: fiber.StatusUnprocessableEntity, Detail: "the request has invalid fields", Errors: ve.Fields}
	case errors.Is(err, cases.ErrNotFound):
		return Problem{Status: fiber.StatusNotFound, Detail: "no such record"}
	case errors.Is(err, archive.ErrCorrupt):
		// Never serve altered bytes; this is an integrity incident, logged
		// at error level by errorHandler.
		return Problem{Status: fiber.StatusInternalServerError, Detail: "the stored object failed its integrity check"}
	case errors.Is(err, archive.ErrKeyDestroyed):
		return Problem{Status: fiber.StatusGone, Detail: "this customer's data was erased (its key was destroyed)"}
	case errors.Is(err, archive.ErrInvalidRange):
		return Problem{Status: fiber.StatusRequestedRangeNotSatisfiable, Detail: "range outside the attachment"}
	case errors.Is(err, archive.ErrUnavailable):
		return Problem{Status: fiber.StatusServiceUnavailable, Detail: "the blob store is unavailable; retry later"}
	case errors.Is(err, sqldb.ErrUnavailable):
		return Problem{Status: fiber.StatusServiceUnavailable, Detail: "the database is unavailable; retry later"}
	case errors.Is(err, search.ErrUnavailable):
		return Problem{Status: fiber.StatusServiceUnavailable, Detail: "the search index is unavailable; retry later"}
	case errors.As(err, &held):
		return Problem{Status: fiber.StatusConflict, Detail: err.Error(), Hold: strings.Join(held.HoldIDs, ",")}
	case errors.Is(err, cases.ErrConflict):
		return Problem{Status: fiber.StatusConflict, Detail: err.Error()}
	case errors.As(err, &fe):
		return Problem{Status: fe.Code, Detail: fe.Message}
	}
	return Problem{Status: fiber.StatusInternalServerError, Detail: "internal error"}
}

func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	drainBody(c)
	p := s.problemFor(err)
	p.Type = "about:blank"
	p.Title = utilsStatusText(p.Status)
	if p.Status >= 500 && p.Status != fiber.StatusServiceUnavailable {
		s.log.ErrorContext(c.UserContext(), "request failed", "request_id", requestID(c), "route", c.Route().Path, "err", err)
	} else if p.Status == fiber.StatusServiceUnavailable {
		s.log.WarnContext(c.UserContext(), "backend unavailable", "request_id", requestID(c), "err", err)
		c.Set("Retry-After", "5")
	}
	if p.Status == fiber.StatusMethodNotAllowed && c.GetRespHeader("Allow") == "" {
		c.Set("Allow", "GET")
	}
	b, _ := json.Marshal(p)
	c.Set(fiber.HeaderContentType, "application/problem+json")
	return c.Status(p.Status).Send(b)
}

func utilsStatusText(code int) string {
	if t := utils.StatusMessage(code); t != "" {
		return t
	}
	return "Error"
}

// readBody reads a JSON request body, enforcing the limit even for bodies
// that arrive chunked without a Content-Length.
func (s *Server) readBody(c *fiber.Ctx) ([]byte, error) {
	limit := s.cfg.JSONBodyLimit
	if cl := c.Request().Header.ContentLength(); cl > int(limit) {
		tooLarge(c)
		return nil, errStatus(fiber.StatusRequestEntityTooLarge, "request body is larger than %d bytes", limit)
	}
	var body []byte
	if st := requestBody(c); st != nil {
		b, err := io.ReadAll(io.LimitReader(st, limit+1))
		if err != nil {
			return nil, errStatus(fiber.StatusBadRequest, "reading the body failed")
		}
		body = b
	} else {
		body = c.Body()
	}
	if int64(len(body)) > limit {
		tooLarge(c)
		return nil, errStatus(fiber.StatusRequestEntityTooLarge, "request body is larger than %d bytes", limit)
	}
	return body, nil
}

// drainLimit bounds how much of a rejected body is read and discarded so the
// client can receive the 413 (closing a socket with unread input makes the
// kernel reset it, which can destroy the response in flight).
const drainLimit = 8 << 20

const bodyKey = "casevault.body"

// stickyReader keeps returning the first error (EOF included): reading a
// finished chunked stream again would block on the next request's bytes.
type stickyReader struct {
	r   io.Reader
	err error
}

func (s *stickyReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

// requestBody is the request's body stream, shared by every reader of this
// request (nil when fasthttp already buffered it).
func requestBody(c *fiber.Ctx) io.Reader {
	if r, ok := c.Locals(bodyKey).(*stickyReader); ok {
		return r
	}
	st := c.Context().RequestBodyStream()
	if st == nil {
		return nil
	}
	r := &stickyReader{r: newCompleteBody(c, st)}
	c.Locals(bodyKey, r)
	return r
}

// tooLarge prepares the connection for a 413: it discards what is left of a
// moderately oversized body and closes the connection afterwards, so unread
// bytes can never be parsed as a next request.
func tooLarge(c *fiber.Ctx) {
	c.Context().SetConnectionClose()
	drainBody(c)
}

// drainBody discards what a failed handler left unread of the request body
// (up to drainLimit) and reports whether the body ended; when it did not, the
// connection is closed so the rest cannot be parsed as the next request.
func drainBody(c *fiber.Ctx) {
	st := requestBody(c)
	if st == nil {
		return
	}
	n, _ := io.Copy(io.Discard, io.LimitReader(st, drainLimit+1))
	if n > drainLimit {
		c.Context().SetConnectionClose()
	}
}

// decodeJSON decodes a strict JSON object: malformed → 400; unknown field,
// wrong type, a NUL or invalid UTF-8 in any string → 422 naming the field.
func (s *Server) decodeJSON(c *fiber.Ctx, dst any) error {
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	if ct := string(c.Request().Header.ContentType()); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return errStatus(fiber.StatusUnsupportedMediaType, "send application/json")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return errStatus(fiber.StatusBadRequest, "the body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return errStatus(fiber.StatusBadRequest, "malformed JSON")
		case errors.As(err, &typ):
			field := typ.Field
			if field == "" {
				return errStatus(fiber.StatusBadRequest, "the body must be a JSON object")
			}
			return &httpError{status: fiber.StatusUnprocessableEntity, detail: "wrong type",
				fields: []cases.FieldError{{Field: field, Message: "must be " + jsonKind(typ.Type.Kind().String())}}}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return &httpError{status: fiber.StatusUnprocessableEntity, detail: "unknown field",
				fields: []cases.FieldError{{Field: f, Message: "is not a known field"}}}
		}
		return errStatus(fiber.StatusBadRequest, "malformed JSON")
	}
	if dec.More() {
		return errStatus(fiber.StatusBadRequest, "malformed JSON: data after the object")
	}
	var tail json.RawMessage
	if err := dec.Decode(&tail); err != io.EOF {
		return errStatus(fiber.StatusBadRequest, "malformed JSON: data after the object")
	}
	return checkJSONStrings(body)
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	case "float64", "float32", "int", "int64", "int32":
		return "a number"
	}
	return "of another type"
}
