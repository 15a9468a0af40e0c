package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// Request bodies: read whole under the JSON limit (readBody), or as the
// shared stream of a streamed upload (requestBody, checked complete by
// completeBody in bodycheck.go), and drained after a failure so the
// connection stays usable. decodeJSON is the one strict JSON decoder.

// readBody reads a JSON request body, enforcing the limit even for bodies
// that arrive chunked without a Content-Length.
func (s *Server) readBody(c *fiber.Ctx) ([]byte, error) {
	limit := s.cfg.JSONBodyLimit
	if cl := c.Request().Header.ContentLength(); cl > int(limit) {
		TooLarge(c)
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
		TooLarge(c)
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

// TooLarge prepares the connection for a 413: it discards what is left of a
// moderately oversized body and closes the connection afterwards, so unread
// bytes can never be parsed as a next request. The console's uploads use it
// too: a refusal closed without draining could be lost to the reset.
func TooLarge(c *fiber.Ctx) {
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

	return DecodeStrictJSON(body, dst)
}

// DecodeStrictJSON is decodeJSON's check of a body already read: the web
// console's JSON fields (the retention schedule editor) are held to the
// same rule as a request body, with the same errors (ProblemFor maps them).
func DecodeStrictJSON(body []byte, dst any) error {
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
			return fieldError("wrong type", field, "must be "+jsonKind(typ.Type.Kind().String()))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return fieldError("unknown field", f, "is not a known field")
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
