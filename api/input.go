package api

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/cases"
)

// MaxURLBytes is the longest request target (path and query) the API
// accepts; longer ones get 414. Every parameter of the v1 API fits many times
// over, and it keeps one request's audit record small.
const MaxURLBytes = 2048

// Text input is checked here, once, before any handler or store sees it:
// every query parameter and path parameter (checkParams, run by the guard on
// every authenticated route) and every string of a JSON body, keys included
// (checkJSONStrings, run by decodeJSON). NUL and invalid UTF-8 are 422
// naming the field on both engines: PostgreSQL cannot store a NUL and
// rejects invalid UTF-8, SQLite stores both, and a SQLite backup holding one
// could never be restored into PostgreSQL.

const (
	msgNUL  = "must not contain NUL characters"
	msgUTF8 = "must be valid UTF-8"
)

// textProblem says what is wrong with one piece of text ("" = nothing).
func textProblem(s []byte) string {
	switch {
	case !utf8.Valid(s):
		return msgUTF8
	case bytes.IndexByte(s, 0) >= 0:
		return msgNUL
	}
	return ""
}

// checkParams validates the request target of a route: its length, every
// query parameter (decoded) and every path parameter. A route that does not
// page takes no cursor: a client sending one would otherwise get the first
// page back and believe it had the next. A parameter the route does not
// declare is a 422 listing those it does: a misspelt filter (?priority=
// on a list that cannot filter by it) would otherwise be silently ignored
// and the client would believe the list filtered.
func checkParams(c *fiber.Ctx, r route) error {
	if n := len(c.Request().RequestURI()); n > MaxURLBytes {
		return errStatus(fiber.StatusRequestURITooLong, "the URL is %d bytes, more than %d", n, MaxURLBytes)
	}
	var err error
	c.Context().QueryArgs().VisitAll(func(k, v []byte) {
		if err != nil {
			return
		}
		if p := textProblem(k); p != "" {
			err = cases.Invalid(strings.ToValidUTF8(strings.ReplaceAll(string(k), "\x00", ""), "?"), "parameter name "+p)
			return
		}
		if p := textProblem(v); p != "" {
			err = cases.Invalid(string(k), p)
			return
		}
		if !r.paged && string(k) == "cursor" && len(v) > 0 {
			err = cases.Invalid("cursor", "this list has a single page and takes no cursor")
			return
		}
		if !r.takes(string(k)) {
			err = cases.Invalid(string(k), r.unknownParam())
		}
	})
	if err != nil {
		return err
	}
	for name, v := range c.AllParams() {
		if p := textProblem([]byte(v)); p != "" {
			return cases.Invalid(name, p)
		}
	}
	return nil
}

// checkJSONStrings walks a syntactically valid JSON document and returns the
// 422 for the first string (object key or value) holding a NUL or invalid
// UTF-8, named by its path ("location.label", "tags[1]"). encoding/json
// silently turns invalid UTF-8 into U+FFFD while decoding, so invalid bytes
// are located by offset in the raw body.
func checkJSONStrings(body []byte) error {
	// A NUL can reach a decoded string only as the escape \u0000 (a raw one
	// is a syntax error), so a valid body without that text needs no walk;
	// the walk costs more than the decode.
	valid := utf8.Valid(body)
	if valid && !bytes.Contains(body, []byte(`\u0000`)) {
		return nil
	}

	badAt := -1
	if !valid {
		for i := 0; i < len(body); {
			r, n := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && n <= 1 {
				badAt = i
				break
			}
			i += n
		}
	}

	type frame struct {
		array   bool
		index   int
		key     string
		wantKey bool
	}

	var stack []frame
	path := func() string {
		var b strings.Builder
		for _, f := range stack {
			if f.array {
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(f.key)
		}
		return b.String()
	}

	afterValue := func() {
		if n := len(stack); n > 0 {
			if stack[n-1].array {
				stack[n-1].index++
			} else {
				stack[n-1].wantKey = true
			}
		}
	}

	dec := json.NewDecoder(bytes.NewReader(body))
	prevEnd := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // io.EOF; a syntax error was reported by the decode before
		}
		end := int(dec.InputOffset())
		invalidHere := badAt >= prevEnd && badAt < end
		prevEnd = end
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, frame{wantKey: true})
			case '[':
				stack = append(stack, frame{array: true})
			default:
				stack = stack[:len(stack)-1]
				afterValue()
			}
		case string:
			if n := len(stack); n > 0 && !stack[n-1].array && stack[n-1].wantKey {
				stack[n-1].key, stack[n-1].wantKey = strings.ReplaceAll(t, "\x00", `\u0000`), false
				switch {
				case invalidHere:
					return cases.Invalid(path(), "field name "+msgUTF8)
				case strings.IndexByte(t, 0) >= 0:
					return cases.Invalid(path(), "field name "+msgNUL)
				}
				continue
			}
			switch {
			case invalidHere:
				return cases.Invalid(path(), msgUTF8)
			case strings.IndexByte(t, 0) >= 0:
				return cases.Invalid(path(), msgNUL)
			}
			afterValue()
		default:
			afterValue()
		}
	}
}
