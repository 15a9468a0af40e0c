package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	verrors "github.com/pb33f/libopenapi-validator/errors"

	"github.com/casevault/casevault/api"
)

// docValidator is built once per test binary from the first harness's
// document: every harness serves the same routes.
type docValidator struct {
	once sync.Once
	v    validator.Validator
	err  error
}

func (d *docValidator) get(srv *api.Server) (validator.Validator, error) {
	d.once.Do(func() { d.v, d.err = buildValidator(srv) })
	return d.v, d.err
}

func buildValidator(srv *api.Server) (validator.Validator, error) {
	b, err := json.Marshal(srv.Document())
	if err != nil {
		return nil, err
	}
	doc, err := libopenapi.NewDocument(b)
	if err != nil {
		return nil, fmt.Errorf("parse the document: %w", err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		return nil, fmt.Errorf("build a validator: %v", errs)
	}
	return v, nil
}

// sharedValidator is the one validator of this test binary (read-only once
// built).
var sharedValidator docValidator

// validatingTransport checks every exchange of the api tests against the
// OpenAPI document: every response (status, headers, JSON body) and, when
// the server accepted it (2xx), the request (path, query, body) — a request
// the server takes but the document calls invalid is a defect of one of
// the two. Requests the tests send on purpose to routes that do not exist
// (404/405 of an undocumented path or method) are the only ones skipped.
type validatingTransport struct {
	t    testing.TB
	srv  *api.Server
	base http.RoundTripper
}

// maxChecked bounds the request body kept for checking (larger uploads
// are not buffered: only their response is checked).
const maxChecked = 256 << 10

func (vt *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var tee *teeBody
	if req.Body != nil && req.Body != http.NoBody {
		tee = &teeBody{r: req.Body, c: req.Body}
		req.Body = tee
	}

	res, err := vt.base.RoundTrip(req)
	if err != nil {
		return res, err
	}

	// The transport may still be writing the body after the answer came
	// (a 413 before the server read it all): copy what was sent so far.
	var sent *bytes.Buffer
	if tee != nil {
		sent = bytes.NewBuffer(tee.sent())
	}

	v, verr := sharedValidator.get(vt.srv)
	if verr != nil {
		vt.t.Errorf("OpenAPI document: %v", verr)
		return res, nil
	}

	// Only JSON bodies are read and checked; a download is checked by its
	// status and headers, and streams to the test untouched.
	var body []byte
	mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	isJSON := strings.HasSuffix(mt, "json")
	if isJSON && req.Method != http.MethodHead {
		body, err = io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return nil, err
		}
		res.Body = io.NopCloser(bytes.NewReader(body))
	}

	// A download (Content-Disposition) is bytes whatever its stored
	// content type says; so is an upload the server took whose body is not
	// JSON (a JSON route answers such a body 400, never 2xx). Both are
	// checked as the bytes the document declares.
	binaryRes := res.Header.Get("Content-Disposition") != "" && isJSON
	checkReq := req.Clone(req.Context())
	if sent != nil && !json.Valid(sent.Bytes()) {
		checkReq.Header.Set("Content-Type", "application/octet-stream")
	}
	checkReq.Body = io.NopCloser(bytes.NewReader(nil))
	if sent != nil && sent.Len() < maxChecked {
		checkReq.Body = io.NopCloser(bytes.NewReader(sent.Bytes()))
	}
	checkRes := &http.Response{StatusCode: res.StatusCode, Header: res.Header, Request: checkReq,
		Body: io.NopCloser(bytes.NewReader(body))}
	if !isJSON || binaryRes {
		// The validator reads no body it has no schema for; give it none.
		checkRes.Body = io.NopCloser(bytes.NewReader(nil))
	}
	if binaryRes {
		checkRes.Header = res.Header.Clone()
		checkRes.Header.Set("Content-Type", "application/octet-stream")
	}

	if ok, errs := v.ValidateHttpResponse(checkReq, checkRes); !ok {
		if undocumentedRoute(errs) && (res.StatusCode == 404 || res.StatusCode == 405) {
			return res, nil
		}
		vt.t.Errorf("response %d to %s %s does not match the OpenAPI document:%s\nbody: %.400s", res.StatusCode, req.Method, req.URL.RequestURI(), describe(errs), body)
	}

	if res.StatusCode < 300 && (sent == nil || sent.Len() < maxChecked) {
		checkReq.Body = io.NopCloser(bytes.NewReader(nil))
		if sent != nil {
			checkReq.Body = io.NopCloser(bytes.NewReader(sent.Bytes()))
		}
		if ok, errs := v.ValidateHttpRequestSync(checkReq); !ok {
			vt.t.Errorf("request %s %s was accepted (%d) but does not match the OpenAPI document:%s", req.Method, req.URL.RequestURI(), res.StatusCode, describe(errs))
		}
	}
	return res, nil
}

func undocumentedRoute(errs []*verrors.ValidationError) bool {
	for _, e := range errs {
		if !e.IsPathMissingError() && !e.IsOperationMissingError() {
			return false
		}
	}
	return len(errs) > 0
}

func describe(errs []*verrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "\n  - %s: %s", e.Message, e.Reason)
		for _, se := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "\n      %s: %s", se.FieldPath, se.Reason)
		}
	}
	return b.String()
}

// teeBody copies what the client sends, up to maxChecked bytes. The
// transport's write loop reads it while RoundTrip's caller may already
// look at the copy, hence the lock.
type teeBody struct {
	r   io.Reader
	c   io.Closer
	mu  sync.Mutex
	buf bytes.Buffer
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.mu.Lock()
	if t.buf.Len() < maxChecked {
		t.buf.Write(p[:n])
	}
	t.mu.Unlock()
	return n, err
}

// sent is a copy of what was sent so far.
func (t *teeBody) sent() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.buf.Bytes())
}

func (t *teeBody) Close() error { return t.c.Close() }
