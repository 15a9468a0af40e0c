package meilifake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
)

// The fake Meilisearch below validates every request it receives (method,
// path, query, headers, JSON body) and every documented response it sends
// against Meilisearch's published OpenAPI description, and emulates just
// enough of the server for the adapter: indexes, settings, documents, tasks
// (enqueued → processing → succeeded/failed), filters and search.

const APIKey = "test-master-key"

// specValidator builds the validator once per test binary: parsing and
// compiling the 800 KB description is the slow part, and the validator is
// never mutated after construction.
var specValidator = sync.OnceValues(func() (validator.Validator, error) {
	path, err := findSpec()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if b, err = patchSpec(b); err != nil {
		return nil, fmt.Errorf("patch %s: %w", path, err)
	}
	doc, err := libopenapi.NewDocument(b)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		return nil, fmt.Errorf("build validator for %s: %v", path, errs)
	}
	return v, nil
})

// patchSpec corrects one known defect of the published description:
// AttributePatterns is a transparent wrapper around a list of strings in
// Meilisearch (the search parameter is sent as "facets": ["genres"], as in
// Meilisearch's own documentation and meilisearch-go), but the generator
// described it as an object {"patterns": [...]}. Validating against the
// defect would reject every correct facet request, so the component is
// replaced by what the server accepts; nothing else is touched.
func patchSpec(b []byte) ([]byte, error) {
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, err
	}
	components, _ := spec["components"].(map[string]any)
	schemas, _ := components["schemas"].(map[string]any)
	ap, _ := schemas["AttributePatterns"].(map[string]any)
	if ap == nil {
		return b, nil // fixed upstream or renamed: validate as published
	}
	if props, _ := ap["properties"].(map[string]any); ap["type"] == "object" && props["patterns"] != nil {
		schemas["AttributePatterns"] = map[string]any{
			"type":        "array",
			"items":       map[string]any{"type": "string"},
			"description": ap["description"],
		}
	}
	patchMultiSearch(spec, schemas)
	return json.Marshal(spec)
}

// patchMultiSearch corrects a second defect: POST /multi-search answers
// {"results": [...]} (the SearchResults component) when no federation is
// asked for, as Meilisearch documents, but the description lists only the
// federated shape for its 200.
func patchMultiSearch(spec, schemas map[string]any) {
	if schemas["SearchResults"] == nil {
		return
	}
	paths, _ := spec["paths"].(map[string]any)
	ms, _ := paths["/multi-search"].(map[string]any)
	post, _ := ms["post"].(map[string]any)
	responses, _ := post["responses"].(map[string]any)
	ok, _ := responses["200"].(map[string]any)
	content, _ := ok["content"].(map[string]any)
	js, _ := content["application/json"].(map[string]any)
	if js == nil {
		return
	}
	js["schema"] = map[string]any{"anyOf": []any{
		js["schema"],
		map[string]any{"$ref": "#/components/schemas/SearchResults"},
	}}
}

// vendoredSpec is the description search/meili carries as test data
// (testdata/README.md says where it comes from), relative to the module
// root; the tests need nothing from outside the repository.
const vendoredSpec = "search/meili/testdata/meilisearch-openapi.json"

// findSpec resolves MEILI_OPENAPI_SPEC when set (relative paths are tried
// from the test's working directory and from the module root, because
// .ci/run sets it relative to the repository), else the vendored
// description, found from the module root so that tests of any package
// (search/meili, cmd/casevault) find it.
func findSpec() (string, error) {
	p := os.Getenv("MEILI_OPENAPI_SPEC")
	if p == "" {
		p = vendoredSpec
	}
	candidates := []string{p}
	if !filepath.IsAbs(p) {
		if root, ok := moduleRoot(); ok {
			candidates = append(candidates, filepath.Join(root, p))
		}
	}
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
	}
	return "", fmt.Errorf("the Meilisearch OpenAPI description was not found (tried %v); unset MEILI_OPENAPI_SPEC to use the vendored %s", candidates, vendoredSpec)
}

func moduleRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// APIErr is Meilisearch's documented error body.
type APIErr struct {
	Message string `json:"message"`
	Code    string `json:"code"`
	Type    string `json:"type"`
	Link    string `json:"link"`
}

func NewAPIErr(code, typ, msg string) *APIErr {
	return &APIErr{Message: msg, Code: code, Type: typ, Link: "https://docs.meilisearch.com/errors#" + code}
}

type Recorded struct {
	Method, Path, RawQuery string
	Body                   []byte
}

type Index struct {
	UID, PK   string
	Created   time.Time
	Settings  map[string]json.RawMessage
	Docs      map[string]map[string]any
	Order     []string
	typoCache *typoSettings // parsed typoTolerance; reset by a settings update
}

type typoSettings struct {
	enabled  bool
	one, two int
}

type fakeTask struct {
	uid      int
	index    string
	typ      string
	enqueued time.Time
	polls    int
	status   string
	err      *APIErr
	details  map[string]any
	apply    func() *APIErr
}

type Server struct {
	t   testing.TB
	v   validator.Validator
	Srv *httptest.Server

	Mu      sync.Mutex
	Indexes map[string]*Index
	tasks   []*fakeTask
	log     []Recorded
	// noLog keeps log empty (BenchmarkServe: a long run sends more
	// documents than a test reads back).
	noLog bool
	// pollsBeforeDone is how many GET /tasks/{id} report a task still
	// enqueued/processing before it finishes.
	PollsBeforeDone int
	// intercept, when it returns ok, answers the request instead of the
	// emulation (503s, injected errors).
	Intercept func(r Recorded) (status int, body []byte, ok bool)
	// failTask, when it returns an error for a task type, makes the next
	// task of that type end "failed" without applying it.
	FailTask func(typ string) *APIErr
	// cancelTask makes a task of that type end "canceled".
	CancelTask func(typ string) bool
	// version is what GET /version reports as pkgVersion.
	Version string
	// maxPayload is the largest request body the fake accepts (413 above),
	// like Meilisearch's --http-payload-size-limit; 0: no limit.
	MaxPayload int
	// holdTasks keeps every task enqueued (a stalled server) while set.
	HoldTasks bool
	// badDoc makes a document addition fail for good when one of its
	// documents satisfies it (invalid_document_fields).
	BadDoc func(doc map[string]any) bool
}

// New starts a fake on a loopback TCP port (closed when t's test ends) with
// no indexes; every protocol violation fails t.
func New(t testing.TB) *Server {
	t.Helper()
	v, err := specValidator()
	if err != nil {
		t.Fatal(err)
	}
	f := &Server{t: t, v: v, Indexes: map[string]*Index{}, PollsBeforeDone: 1, Version: "1.53.0"}
	f.Srv = httptest.NewServer(f)
	t.Cleanup(f.Srv.Close)
	return f
}

// URL is the fake's base URL, for meili.Config.URL or --meili-url.
func (f *Server) URL() string { return f.Srv.URL }

// Requests lists the recorded requests with that method and path.
func (f *Server) Requests(method, path string) []Recorded {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	var out []Recorded
	for _, r := range f.log {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// Index is the index uid, or nil.
func (f *Server) Index(uid string) *Index {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return f.Indexes[uid]
}

func (f *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("read request body: %v", err)
		return
	}
	f.Mu.Lock()
	defer f.Mu.Unlock()
	rec := Recorded{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Body: body}
	if !f.noLog {
		f.log = append(f.log, rec)
	}
	if f.MaxPayload > 0 && len(body) > f.MaxPayload {
		writeJSON(w, http.StatusRequestEntityTooLarge, NewAPIErr("payload_too_large", "invalid_request",
			fmt.Sprintf("The provided payload reached the size limit. The maximum accepted payload size is %d B.", f.MaxPayload)))
		return
	}

	vreq := func() *http.Request {
		c := r.Clone(r.Context())
		c.Body = io.NopCloser(bytes.NewReader(body))
		c.ContentLength = int64(len(body))
		return c
	}
	if ok, verrs := f.v.ValidateHttpRequestSync(vreq()); !ok {
		var msgs []string
		for _, e := range verrs {
			msgs = append(msgs, "  - "+e.Error())
		}
		f.t.Errorf("request %s %s?%s (body %.300s) violates the Meilisearch OpenAPI description:\n%s",
			r.Method, r.URL.Path, r.URL.RawQuery, body, strings.Join(msgs, "\n"))
		writeJSON(w, http.StatusBadRequest, NewAPIErr("bad_request", "invalid_request", "request does not match the OpenAPI description"))
		return
	}
	if r.URL.Path != "/health" && r.Header.Get("Authorization") != "Bearer "+APIKey {
		f.t.Errorf("request %s %s without the API key", r.Method, r.URL.Path)
	}

	rw := httptest.NewRecorder()
	if status, b, ok := f.interceptLocked(rec); ok {
		if json.Valid(b) {
			rw.Header().Set("Content-Type", "application/json")
		} else {
			rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		}
		rw.WriteHeader(status)
		rw.Write(b)
	} else {
		f.route(rw, r, body)
	}
	res := rw.Result()
	// Validate the emulation's answers too, so the adapter is tested against
	// documented shapes. 400 and 503 are real Meilisearch answers that the
	// description does not list per operation, so only their error body
	// shape is checked.
	switch res.StatusCode {
	case http.StatusBadRequest, http.StatusServiceUnavailable:
		if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			var e APIErr
			if err := json.Unmarshal(rw.Body.Bytes(), &e); err != nil || e.Code == "" || e.Message == "" || e.Type == "" || e.Link == "" {
				f.t.Errorf("fake error body %s is not Meilisearch's error shape", rw.Body.Bytes())
			}
		}
	default:
		res.Body = io.NopCloser(bytes.NewReader(rw.Body.Bytes()))
		if ok, verrs := f.v.ValidateHttpResponse(vreq(), res); !ok {
			var msgs []string
			for _, e := range verrs {
				msgs = append(msgs, "  - "+e.Error())
			}
			f.t.Errorf("fake response %d to %s %s (%.300s) violates the description:\n%s",
				res.StatusCode, r.Method, r.URL.Path, rw.Body.Bytes(), strings.Join(msgs, "\n"))
		}
	}
	for k, vs := range rw.Header() {
		w.Header()[k] = vs
	}
	w.WriteHeader(rw.Code)
	w.Write(rw.Body.Bytes())
}

func (f *Server) interceptLocked(rec Recorded) (int, []byte, bool) {
	if f.Intercept == nil {
		return 0, nil, false
	}
	return f.Intercept(rec)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func (f *Server) route(w http.ResponseWriter, r *http.Request, body []byte) {
	seg := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodGet && len(seg) == 1 && seg[0] == "health":
		writeJSON(w, 200, map[string]string{"status": "available"})
	case r.Method == http.MethodGet && len(seg) == 1 && seg[0] == "version":
		writeJSON(w, 200, map[string]string{"commitSha": "0000000", "commitDate": "2026-01-01", "pkgVersion": f.Version})
	case r.Method == http.MethodPost && len(seg) == 1 && seg[0] == "swap-indexes":
		f.swapIndexes(w, body)
	case r.Method == http.MethodPost && len(seg) == 1 && seg[0] == "multi-search":
		f.multiSearch(w, body)
	case r.Method == http.MethodGet && len(seg) == 2 && seg[0] == "tasks":
		f.getTask(w, seg[1])
	case r.Method == http.MethodPost && len(seg) == 1 && seg[0] == "indexes":
		f.createIndex(w, body)
	case len(seg) >= 2 && seg[0] == "indexes":
		uid, rest := seg[1], strings.Join(seg[2:], "/")
		switch {
		case r.Method == http.MethodGet && rest == "":
			idx := f.Indexes[uid]
			if idx == nil {
				writeJSON(w, 404, NewAPIErr("index_not_found", "invalid_request", "Index `"+uid+"` not found."))
				return
			}
			view := map[string]any{"uid": uid, "createdAt": rfc3339(idx.Created), "updatedAt": rfc3339(idx.Created), "primaryKey": nil}
			if idx.PK != "" {
				view["primaryKey"] = idx.PK
			}
			writeJSON(w, 200, view)
		case r.Method == http.MethodPatch && rest == "":
			f.updateIndex(w, uid, body)
		case r.Method == http.MethodDelete && rest == "":
			f.deleteIndex(w, uid)
		case r.Method == http.MethodGet && rest == "stats":
			f.stats(w, uid)
		case r.Method == http.MethodGet && rest == "settings":
			f.getSettings(w, uid)
		case r.Method == http.MethodPatch && rest == "settings":
			f.updateSettings(w, uid, body)
		case r.Method == http.MethodPost && rest == "documents":
			f.addDocuments(w, uid, r.URL.Query().Get("primaryKey"), body)
		case r.Method == http.MethodPost && rest == "documents/delete":
			f.deleteByFilter(w, uid, body)
		case r.Method == http.MethodPost && rest == "documents/delete-batch":
			f.deleteBatch(w, uid, body)
		case r.Method == http.MethodPost && rest == "search":
			f.search(w, uid, body)
		default:
			f.unemulated(w, r)
		}
	default:
		f.unemulated(w, r)
	}
}

func (f *Server) unemulated(w http.ResponseWriter, r *http.Request) {
	f.t.Errorf("fake Meilisearch does not emulate %s %s", r.Method, r.URL.Path)
	writeJSON(w, http.StatusNotImplemented, NewAPIErr("internal", "internal", "not emulated"))
}

// enqueue registers a task and answers 202 with the summarized task view.
func (f *Server) enqueue(w http.ResponseWriter, index, typ string, details map[string]any, apply func() *APIErr) {
	t := &fakeTask{uid: len(f.tasks), index: index, typ: typ, enqueued: time.Now(), status: "enqueued", details: details, apply: apply}
	f.tasks = append(f.tasks, t)
	writeJSON(w, http.StatusAccepted, map[string]any{
		"taskUid": t.uid, "indexUid": index, "status": "enqueued", "type": typ, "enqueuedAt": rfc3339(t.enqueued),
	})
}

// finish runs a task to its end. Meilisearch processes tasks in order, so all
// earlier unfinished tasks finish first.
func (f *Server) finish(upTo int) {
	for _, t := range f.tasks[:upTo+1] {
		if t.status == "succeeded" || t.status == "failed" || t.status == "canceled" {
			continue
		}
		switch {
		case f.CancelTask != nil && f.CancelTask(t.typ):
			t.status = "canceled"
		case f.FailTask != nil && f.FailTask(t.typ) != nil:
			t.status, t.err = "failed", f.FailTask(t.typ)
		default:
			if err := t.apply(); err != nil {
				t.status, t.err = "failed", err
			} else {
				t.status = "succeeded"
			}
		}
	}
}

// taskSummary counts the write tasks enqueued, by kind, for
// scripts/bench.sh. A deletion by filter is its own batch in Meilisearch
// (its documentation: such a task is never autobatched), so the kinds say
// how much of a write load Meilisearch could batch.
func (f *Server) taskSummary() string {
	f.Mu.Lock()
	defer f.Mu.Unlock()

	var add, byFilter, byID, other int
	for _, t := range f.tasks {
		switch {
		case t.typ == "documentAdditionOrUpdate":
			add++
		case t.typ == "documentDeletion" && t.details["originalFilter"] != nil:
			byFilter++
		case t.typ == "documentDeletion":
			byID++
		default:
			other++
		}
	}
	return fmt.Sprintf("tasks: %d document additions, %d deletions by filter, %d deletions by id, %d others", add, byFilter, byID, other)
}

func (f *Server) getTask(w http.ResponseWriter, id string) {
	n, err := strconv.Atoi(id)
	if err != nil || n < 0 || n >= len(f.tasks) {
		writeJSON(w, 404, NewAPIErr("task_not_found", "invalid_request", "Task `"+id+"` not found."))
		return
	}
	t := f.tasks[n]
	t.polls++
	if (t.status == "enqueued" || t.status == "processing") && !f.HoldTasks {
		if t.polls > f.PollsBeforeDone {
			f.finish(n)
		} else if t.polls > 1 {
			t.status = "processing"
		}
	}
	view := map[string]any{
		"uid": t.uid, "batchUid": nil, "indexUid": t.index, "status": t.status, "type": t.typ,
		"canceledBy": nil, "details": t.details, "error": nil, "duration": nil,
		"enqueuedAt": rfc3339(t.enqueued),
	}
	if t.status != "enqueued" {
		view["startedAt"] = rfc3339(t.enqueued)
	}
	switch t.status {
	case "succeeded", "failed", "canceled":
		view["finishedAt"] = rfc3339(t.enqueued)
		view["duration"] = "PT0.001S"
	}
	if t.err != nil {
		view["error"] = t.err
	}
	writeJSON(w, 200, view)
}

func (f *Server) createIndex(w http.ResponseWriter, body []byte) {
	var req struct {
		UID        string `json:"uid"`
		PrimaryKey string `json:"primaryKey"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, 400, NewAPIErr("bad_request", "invalid_request", err.Error()))
		return
	}
	f.enqueue(w, req.UID, "indexCreation", map[string]any{"primaryKey": req.PrimaryKey}, func() *APIErr {
		if f.Indexes[req.UID] != nil {
			return NewAPIErr("index_already_exists", "invalid_request", "Index `"+req.UID+"` already exists.")
		}
		f.Indexes[req.UID] = NewIndex(req.UID, req.PrimaryKey)
		return nil
	})
}

func NewIndex(uid, pk string) *Index {
	return &Index{UID: uid, PK: pk, Created: time.Now(), Settings: map[string]json.RawMessage{}, Docs: map[string]map[string]any{}}
}

func (f *Server) updateIndex(w http.ResponseWriter, uid string, body []byte) {
	var req struct {
		PrimaryKey string `json:"primaryKey"`
	}
	_ = json.Unmarshal(body, &req)
	f.enqueue(w, uid, "indexUpdate", map[string]any{"primaryKey": req.PrimaryKey}, func() *APIErr {
		idx := f.Indexes[uid]
		if idx == nil {
			return NewAPIErr("index_not_found", "invalid_request", "Index `"+uid+"` not found.")
		}
		if len(idx.Docs) > 0 && idx.PK != "" && idx.PK != req.PrimaryKey {
			return NewAPIErr("index_primary_key_already_exists", "invalid_request", "primary key already set")
		}
		idx.PK = req.PrimaryKey
		return nil
	})
}

func (f *Server) updateSettings(w http.ResponseWriter, uid string, body []byte) {
	var s map[string]json.RawMessage
	if err := json.Unmarshal(body, &s); err != nil {
		writeJSON(w, 400, NewAPIErr("bad_request", "invalid_request", err.Error()))
		return
	}
	f.enqueue(w, uid, "settingsUpdate", map[string]any{}, func() *APIErr {
		idx := f.Indexes[uid]
		if idx == nil { // Meilisearch creates the index on a settings update
			idx = NewIndex(uid, "")
			f.Indexes[uid] = idx
		}
		for k, v := range s {
			idx.Settings[k] = v
		}
		idx.typoCache = nil
		return nil
	})
}

var fakeDocID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,511}$`)

func (f *Server) addDocuments(w http.ResponseWriter, uid, pk string, body []byte) {
	var docs []map[string]any
	if err := json.Unmarshal(body, &docs); err != nil {
		writeJSON(w, 400, NewAPIErr("malformed_payload", "invalid_request", err.Error()))
		return
	}
	f.enqueue(w, uid, "documentAdditionOrUpdate", map[string]any{"receivedDocuments": len(docs), "indexedDocuments": nil}, func() *APIErr {
		idx := f.Indexes[uid]
		if idx == nil {
			idx = NewIndex(uid, pk)
			f.Indexes[uid] = idx
		}
		if pk != "" && idx.PK != "" && pk != idx.PK {
			return NewAPIErr("index_primary_key_already_exists", "invalid_request", "primary key already set")
		}
		key := idx.PK
		if key == "" {
			return NewAPIErr("index_primary_key_no_candidate_found", "invalid_request", "no primary key")
		}
		for _, d := range docs {
			if f.BadDoc != nil && f.BadDoc(d) {
				return NewAPIErr("invalid_document_fields", "invalid_request", "a document is invalid")
			}
			id, _ := d[key].(string)
			if !fakeDocID.MatchString(id) {
				return NewAPIErr("invalid_document_id", "invalid_request", fmt.Sprintf("Document identifier `%v` is invalid.", d[key]))
			}
		}
		for _, d := range docs {
			id := d[key].(string)
			if _, ok := idx.Docs[id]; !ok {
				idx.Order = append(idx.Order, id)
			}
			idx.Docs[id] = d
		}
		return nil
	})
}

func (ix *Index) stringsSetting(name string) ([]string, bool) {
	raw, ok := ix.Settings[name]
	if !ok {
		return nil, false
	}
	var out []string
	_ = json.Unmarshal(raw, &out)
	return out, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkFilterAttrs rejects attributes that are not filterable, as
// Meilisearch does.
func (ix *Index) checkFilterAttrs(groups [][]Predicate) error {
	filterable, _ := ix.stringsSetting("filterableAttributes")
	for _, g := range groups {
		var preds []Predicate
		for _, p := range g {
			if p.expr != nil {
				preds = append(preds, p.expr.preds()...)
			} else {
				preds = append(preds, p)
			}
		}
		for _, p := range preds {
			if !contains(filterable, p.Attr) {
				return fmt.Errorf("attribute `%s` is not filterable", p.Attr)
			}
		}
	}
	return nil
}

func (f *Server) deleteByFilter(w http.ResponseWriter, uid string, body []byte) {
	var req struct {
		Filter any `json:"filter"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, 400, NewAPIErr("bad_request", "invalid_request", err.Error()))
		return
	}
	groups, err := parseFilter(req.Filter)
	if err != nil || len(groups) == 0 {
		f.t.Errorf("delete filter %s does not parse: %v", body, err)
		writeJSON(w, 400, NewAPIErr("invalid_document_filter", "invalid_request", fmt.Sprint(err)))
		return
	}
	f.enqueue(w, uid, "documentDeletion", map[string]any{"providedIds": 0, "deletedDocuments": nil, "originalFilter": string(body)}, func() *APIErr {
		idx := f.Indexes[uid]
		if idx == nil {
			return NewAPIErr("index_not_found", "invalid_request", "Index `"+uid+"` not found.")
		}
		if err := idx.checkFilterAttrs(groups); err != nil {
			return NewAPIErr("invalid_document_filter", "invalid_request", err.Error())
		}
		kept := idx.Order[:0]
		for _, id := range idx.Order {
			if matchFilter(groups, idx.Docs[id]) {
				delete(idx.Docs, id)
				continue
			}
			kept = append(kept, id)
		}
		idx.Order = kept
		return nil
	})
}

// deleteBatch deletes documents by id (POST documents/delete-batch); ids
// not held are no error, as in Meilisearch.
func (f *Server) deleteBatch(w http.ResponseWriter, uid string, body []byte) {
	var ids []any
	if err := json.Unmarshal(body, &ids); err != nil {
		writeJSON(w, 400, NewAPIErr("bad_request", "invalid_request", err.Error()))
		return
	}
	f.enqueue(w, uid, "documentDeletion", map[string]any{"providedIds": len(ids), "deletedDocuments": nil, "originalFilter": nil}, func() *APIErr {
		idx := f.Indexes[uid]
		if idx == nil {
			return NewAPIErr("index_not_found", "invalid_request", "Index `"+uid+"` not found.")
		}
		gone := map[string]bool{}
		for _, id := range ids {
			k := fmt.Sprint(id)
			if _, ok := idx.Docs[k]; ok {
				delete(idx.Docs, k)
				gone[k] = true
			}
		}
		kept := idx.Order[:0]
		for _, id := range idx.Order {
			if !gone[id] {
				kept = append(kept, id)
			}
		}
		idx.Order = kept
		return nil
	})
}

// --- search emulation -----------------------------------------------------

type searchReq struct {
	Q                    *string  `json:"q"`
	Offset               *int     `json:"offset"`
	Limit                *int     `json:"limit"`
	Page                 *int     `json:"page"`
	HitsPerPage          *int     `json:"hitsPerPage"`
	Filter               any      `json:"filter"`
	Sort                 []string `json:"sort"`
	Facets               []string `json:"facets"`
	AttributesToRetrieve []string `json:"attributesToRetrieve"`
	ShowMatchesPosition  bool     `json:"showMatchesPosition"`
	ShowRankingScore     bool     `json:"showRankingScore"`
	Distinct             *string  `json:"distinct"`
	MatchingStrategy     string   `json:"matchingStrategy"`
	AttributesToSearchOn []string `json:"attributesToSearchOn"`
}

type qTerm struct {
	text   string
	phrase bool
	neg    bool
	prefix bool // the last word of q, where prefix search is enabled
}

// parseQ reads Meilisearch's q syntax: "phrase", -word, -"phrase", words.
func parseQ(q string) []qTerm {
	var out []qTerm
	for i := 0; i < len(q); {
		if q[i] == ' ' {
			i++
			continue
		}
		neg := false
		if q[i] == '-' {
			neg = true
			i++
		}
		if i < len(q) && q[i] == '"' {
			end := strings.IndexByte(q[i+1:], '"')
			if end < 0 {
				end = len(q) - i - 1
			}
			out = append(out, qTerm{text: q[i+1 : i+1+end], phrase: true, neg: neg})
			i += end + 2
			continue
		}
		end := strings.IndexByte(q[i:], ' ')
		if end < 0 {
			end = len(q) - i
		}
		if w := q[i : i+end]; w != "" {
			out = append(out, qTerm{text: w, neg: neg})
		}
		i += end
	}
	return out
}

type token struct {
	text       string
	start, end int // byte offsets
}

// tokenize splits text into lower-cased words; runs of ideographs are cut
// into words by segmentHan, as Meilisearch's jieba segmenter does.
func tokenize(s string) []token {
	var out []token
	start, hanStart := -1, -1
	flushHan := func(end int) {
		if hanStart < 0 {
			return
		}
		pos := hanStart
		for _, w := range segmentHan([]rune(s[hanStart:end])) {
			out = append(out, token{w, pos, pos + len(w)})
			pos += len(w)
		}
		hanStart = -1
	}
	for i, r := range s {
		if isHan(r) {
			if start >= 0 {
				out = append(out, token{strings.ToLower(s[start:i]), start, i})
				start = -1
			}
			if hanStart < 0 {
				hanStart = i
			}
			continue
		}
		flushHan(i)
		word := unicode.IsLetter(r) || unicode.IsDigit(r)
		if word && start < 0 {
			start = i
		}
		if !word && start >= 0 {
			out = append(out, token{strings.ToLower(s[start:i]), start, i})
			start = -1
		}
	}
	flushHan(len(s))
	if start >= 0 {
		out = append(out, token{strings.ToLower(s[start:]), start, len(s)})
	}
	return out
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur := make([]int, len(rb)+1)
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(rb)]
}

// prefixSearch reports whether the index's prefixSearch setting leaves
// prefix search on.
func (ix *Index) prefixSearch() bool {
	var mode string
	if raw, ok := ix.Settings["prefixSearch"]; ok && json.Unmarshal(raw, &mode) == nil {
		return mode != "disabled"
	}
	return true
}

// typoBudget follows the index's typoTolerance setting.
func (ix *Index) typoBudget(word string) int {
	if ix.typoCache == nil {
		c := &typoSettings{one: 5, two: 9, enabled: true}
		var tt struct {
			Enabled *bool `json:"enabled"`
			Min     struct {
				OneTypo, TwoTypos *int
			} `json:"minWordSizeForTypos"`
		}
		if raw, ok := ix.Settings["typoTolerance"]; ok && json.Unmarshal(raw, &tt) == nil {
			if tt.Enabled != nil {
				c.enabled = *tt.Enabled
			}
			if tt.Min.OneTypo != nil {
				c.one = *tt.Min.OneTypo
			}
			if tt.Min.TwoTypos != nil {
				c.two = *tt.Min.TwoTypos
			}
		}
		ix.typoCache = c
	}
	if !ix.typoCache.enabled {
		return 0
	}
	one, two := ix.typoCache.one, ix.typoCache.two
	n := len([]rune(word))
	switch {
	case n >= two:
		return 2
	case n >= one:
		return 1
	}
	return 0
}

// matchTerm finds the term's tokens (a phrase's tokens in sequence) in text.
func (ix *Index) matchTerm(term qTerm, toks []token) []matchBounds {
	qt := tokenize(term.text)
	if len(qt) == 0 {
		return nil
	}
	var out []matchBounds
	if term.phrase || term.neg || len(qt) > 1 {
	outer:
		for i := 0; i+len(qt) <= len(toks); i++ {
			for j := range qt {
				if toks[i+j].text != qt[j].text {
					continue outer
				}
			}
			for j := range qt {
				out = append(out, matchBounds{toks[i+j].start, toks[i+j].end - toks[i+j].start})
			}
		}
		return out
	}
	word := qt[0].text
	budget := ix.typoBudget(word)
	for _, t := range toks {
		text := t.text
		// Prefix search: the last word matches the beginning of a word,
		// typos included (ref finds refunded, refnu too).
		if term.prefix {
			if n := utf8.RuneCountInString(word); utf8.RuneCountInString(text) > n {
				text = string([]rune(text)[:n])
			}
		}
		if text == word || (budget > 0 && typos(text, word, budget) <= budget) {
			out = append(out, matchBounds{t.start, t.end - t.start})
		}
	}
	return out
}

// typos counts edits the way Meilisearch documents it: a typo on the first
// character counts as two.
func typos(token, word string, budget int) int {
	lt, lw := utf8.RuneCountInString(token), utf8.RuneCountInString(word)
	if lt-lw > budget || lw-lt > budget {
		return budget + 1
	}
	d := levenshtein(token, word)
	ft, _ := utf8.DecodeRuneInString(token)
	fw, _ := utf8.DecodeRuneInString(word)
	if ft != fw {
		d++
	}
	return d
}

func (f *Server) search(w http.ResponseWriter, uid string, body []byte) {
	var req searchReq
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, 400, NewAPIErr("bad_request", "invalid_request", err.Error()))
		return
	}
	resp, status, aerr := f.searchLocked(uid, req)
	if aerr != nil {
		writeJSON(w, status, aerr)
		return
	}
	writeJSON(w, 200, resp)
}

// searchLocked answers one search request: the response body, or an HTTP
// status with Meilisearch's error.
func (f *Server) searchLocked(uid string, req searchReq) (map[string]any, int, *APIErr) {
	idx := f.Indexes[uid]
	if idx == nil {
		return nil, 404, NewAPIErr("index_not_found", "invalid_request", "Index `"+uid+"` not found.")
	}
	groups, err := parseFilter(req.Filter)
	if err == nil {
		err = idx.checkFilterAttrs(groups)
	}
	if err != nil {
		return nil, 400, NewAPIErr("invalid_search_filter", "invalid_request", err.Error())
	}
	sortable, _ := idx.stringsSetting("sortableAttributes")
	for _, s := range req.Sort {
		a, _, _ := strings.Cut(s, ":")
		if !contains(sortable, a) {
			return nil, 400, NewAPIErr("invalid_search_sort", "invalid_request", "attribute `"+a+"` is not sortable")
		}
	}
	// Facets on attributes that are not filterable are ignored silently, as
	// Meilisearch documents.
	filterable, _ := idx.stringsSetting("filterableAttributes")
	var facets []string
	for _, a := range req.Facets {
		if contains(filterable, a) {
			facets = append(facets, a)
		}
	}
	req.Facets = facets
	searchable, ok := idx.stringsSetting("searchableAttributes")
	if !ok {
		searchable = []string{"subject", "body"}
	}
	// attributesToSearchOn narrows q to some searchable attributes; one
	// that is not searchable is refused, as Meilisearch documents.
	if req.AttributesToSearchOn != nil {
		for _, a := range req.AttributesToSearchOn {
			if !contains(searchable, a) {
				return nil, 400, NewAPIErr("invalid_search_attributes_to_search_on", "invalid_request",
					"Attribute `"+a+"` is not searchable. Available searchable attributes are: `"+strings.Join(searchable, ", ")+"`.")
			}
		}
		searchable = req.AttributesToSearchOn
	}
	q := ""
	if req.Q != nil {
		q = *req.Q
	}
	var terms []qTerm
	words := 0
	for _, term := range parseQ(q) {
		n := len(tokenize(term.text))
		if n == 0 { // separators only: no term
			continue
		}
		// Meilisearch reads only the first ten words of q (a phrase's
		// words count one by one); the rest is ignored, not matched.
		if words += n; words > maxQueryWords {
			break
		}
		terms = append(terms, term)
	}
	// Meilisearch matches the last word of q as a prefix, unless the
	// index's prefixSearch setting is "disabled" (default "indexingTime").
	if n := len(terms); n > 0 && !terms[n-1].phrase && !terms[n-1].neg && idx.prefixSearch() {
		terms[n-1].prefix = true
	}

	type cand struct {
		doc     map[string]any
		matches map[string][]matchBounds
		score   float64
	}
	var cands []cand
docs:
	for _, id := range idx.Order {
		doc := idx.Docs[id]
		if !matchFilter(groups, doc) {
			continue
		}
		matches := map[string][]matchBounds{}
		positive, matched := 0, 0
		for _, term := range terms {
			found := false
			for _, a := range searchable {
				var texts []string
				switch v := doc[a].(type) {
				case string:
					texts = []string{v}
				case []any:
					for _, x := range v {
						if s, ok := x.(string); ok {
							texts = append(texts, s)
						}
					}
				}
				for _, text := range texts {
					if m := idx.matchTerm(term, tokenize(text)); len(m) > 0 {
						found = true
						if !term.neg {
							if _, isString := doc[a].(string); isString {
								matches[a] = append(matches[a], m...)
							}
						}
					}
				}
			}
			if term.neg {
				if found {
					continue docs
				}
				continue
			}
			positive++
			if !found {
				continue docs // matching strategy "all", enough for the emulation
			}
			matched++
		}
		score := 1.0
		if positive > 0 {
			score = float64(matched) / float64(positive)
		}
		cands = append(cands, cand{doc, matches, score})
	}
	if len(req.Sort) > 0 {
		sort.SliceStable(cands, func(i, j int) bool {
			for _, s := range req.Sort {
				a, dir, _ := strings.Cut(s, ":")
				x, _ := cands[i].doc[a].(float64)
				y, _ := cands[j].doc[a].(float64)
				if x != y {
					return (x < y) == (dir != "desc")
				}
			}
			return false
		})
	}
	var distinct string
	if raw, ok := idx.Settings["distinctAttribute"]; ok {
		_ = json.Unmarshal(raw, &distinct)
	}
	if req.Distinct != nil { // search-time distinct overrides the setting
		if !contains(filterable, *req.Distinct) {
			return nil, 400, NewAPIErr("invalid_search_distinct", "invalid_request", "attribute `"+*req.Distinct+"` is not filterable")
		}
		distinct = *req.Distinct
	}
	// In offset/limit mode Meilisearch applies distinct only while it
	// collects the requested window, so the facet distribution (and the
	// estimated total) still count every candidate document; page mode is
	// exhaustive and counts distinct documents.
	paged := req.Page != nil || req.HitsPerPage != nil
	beforeDistinct := cands
	if distinct != "" {
		cands = append([]cand(nil), cands...)
		seen := map[any]bool{}
		kept := cands[:0]
		for _, c := range cands {
			if v := c.doc[distinct]; !seen[v] {
				seen[v] = true
				kept = append(kept, c)
			}
		}
		cands = kept
	}
	maxTotal := 1000
	var pg struct {
		MaxTotalHits *int `json:"maxTotalHits"`
	}
	if raw, ok := idx.Settings["pagination"]; ok && json.Unmarshal(raw, &pg) == nil && pg.MaxTotalHits != nil {
		maxTotal = *pg.MaxTotalHits
	}
	var facetDist map[string]map[string]int
	if req.Facets != nil {
		facetDist = map[string]map[string]int{}
		counted := cands
		if !paged {
			counted = beforeDistinct
		}
		for _, a := range req.Facets {
			facetDist[a] = map[string]int{}
			for _, c := range counted {
				switch v := c.doc[a].(type) {
				case string:
					facetDist[a][v]++
				case []any:
					for _, x := range v {
						if s, ok := x.(string); ok {
							facetDist[a][s]++
						}
					}
				}
			}
		}
	}
	reachable := cands[:min(len(cands), maxTotal)]

	resp := map[string]any{"query": q, "processingTimeMs": 0}
	var window []cand
	if req.Page != nil || req.HitsPerPage != nil {
		page, hpp := 1, 20
		if req.Page != nil {
			page = *req.Page
		}
		if req.HitsPerPage != nil {
			hpp = *req.HitsPerPage
		}
		total := len(reachable)
		pages := 0
		if hpp > 0 {
			pages = (total + hpp - 1) / hpp
			lo := min((max(page, 1)-1)*hpp, total)
			window = reachable[lo:min(lo+hpp, total)]
		}
		resp["page"], resp["hitsPerPage"], resp["totalHits"], resp["totalPages"] = page, hpp, total, pages
	} else {
		offset, limit := 0, 20
		if req.Offset != nil {
			offset = *req.Offset
		}
		if req.Limit != nil {
			limit = *req.Limit
		}
		lo := min(offset, len(reachable))
		window = reachable[lo:min(lo+limit, len(reachable))]
		resp["offset"], resp["limit"], resp["estimatedTotalHits"] = offset, limit, len(reachable)
	}
	hits := []map[string]any{}
	for _, c := range window {
		h := map[string]any{}
		for k, v := range c.doc {
			if len(req.AttributesToRetrieve) == 0 || contains(req.AttributesToRetrieve, k) {
				h[k] = v
			}
		}
		if req.ShowMatchesPosition {
			h["_matchesPosition"] = c.matches
		}
		if req.ShowRankingScore {
			h["_rankingScore"] = c.score
		}
		hits = append(hits, h)
	}
	resp["hits"] = hits
	if facetDist != nil {
		resp["facetDistribution"] = facetDist
	}
	return resp, 0, nil
}

// matchBounds is one entry of Meilisearch's _matchesPosition (byte offsets
// into the attribute's value), as the server sends it.
type matchBounds struct {
	Start  int `json:"start"`
	Length int `json:"length"`
}

// maxQueryWords is how many words of q Meilisearch reads; the rest are
// ignored by the server.
const maxQueryWords = 10
