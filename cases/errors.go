package cases

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotFound means the named record does not exist.
var ErrNotFound = errors.New("not found")

// ErrErased means the record belonged to a customer who was erased (issue
// 15): it is gone for good, and the API answers 410.
var ErrErased = errors.New("erased")

// ErrConflict means the request conflicts with the record's state.
var ErrConflict = errors.New("conflict")

// ErrForbidden means the actor's role may not make the change.
var ErrForbidden = errors.New("forbidden")

// ForbiddenError names the change an actor's role may not make; it
// matches ErrForbidden.
type ForbiddenError struct {
	Role   string
	Change string // "close" or "reassign"
}

func (e *ForbiddenError) Error() string {
	return fmt.Sprintf("role %s may not %s cases", e.Role, e.Change)
}

func (e *ForbiddenError) Unwrap() error { return ErrForbidden }

// FieldError names one invalid input field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every invalid field of one request; the API answers
// it with 422.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// add records a problem with a field.
func (e *ValidationError) add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// err returns nil when nothing was recorded, so callers can `return v.err()`.
func (e *ValidationError) err() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

// Invalid builds a ValidationError for a single field.
func Invalid(field, message string) error {
	return &ValidationError{Fields: []FieldError{{Field: field, Message: message}}}
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
