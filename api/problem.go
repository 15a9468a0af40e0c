package api

import (
	"encoding/json"
	"errors"
	"fmt"
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

// fieldError is a 422 naming one field, with detail as the problem's
// summary. A handler that finds several invalid fields returns a
// *cases.ValidationError instead (detail "the request has invalid fields").
func fieldError(detail, field, message string) error {
	return &httpError{status: fiber.StatusUnprocessableEntity, detail: detail,
		fields: []cases.FieldError{{Field: field, Message: message}}}
}

func (s *Server) problemFor(err error) Problem { return ProblemFor(err) }

// ProblemFor maps any error a handler returns to its problem document (the
// console shows the same status and detail as an HTML page).
func ProblemFor(err error) Problem {
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
	case errors.Is(err, cases.ErrErased):
		return Problem{Status: fiber.StatusGone, Detail: "erased: this customer's data was erased"}
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
	case errors.Is(err, cases.ErrForbidden):
		return Problem{Status: fiber.StatusForbidden, Detail: err.Error()}
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
