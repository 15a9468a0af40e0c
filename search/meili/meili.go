// Package meili is the Meilisearch search engine (meilisearch-go).
//
// Layout: one document per contact (id "ct-<contact id>") carrying the case's
// fields, plus one case-only document (id "cs-<case id>") for a case without
// contacts. The index's distinctAttribute is case_id, so a search returns one
// hit per case: its best-matching contact. A case-only document has no
// channel, purposes or occurred_at, so contact filters never match it; it
// sorts by the case's creation time (sort_at).
//
// Requires Meilisearch 1.12 or later (prefixSearch setting, search-time
// distinct).
//
// Every write is a Meilisearch task; the adapter returns only after the task
// reached a final status and treats anything but "succeeded" as an error
// (meilisearch-go's WaitForTask returns a nil error for a failed task). The
// client's own retries are disabled: the indexer retries, and a hidden retry
// loop would only delay its error handling and double-count attempts.
package meili

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/meilisearch/meilisearch-go"

	"github.com/casevault/casevault/search"
)

// Config configures Open.
type Config struct {
	URL    string // e.g. http://127.0.0.1:7700 (CASEVAULT_MEILI_URL)
	APIKey string // CASEVAULT_MEILI_KEY; empty for a server without a master key
	// IndexVersion selects the index cases_v<N> (default 1). A change of
	// layout or settings gets a new version and a reindex, never an in-place
	// mutation of the live index.
	IndexVersion int
	HTTPClient   *http.Client  // optional; nil uses meilisearch-go's default transport
	TaskTimeout  time.Duration // longest wait for one task (default 2 minutes)
	// TaskPollInterval is the delay between task status checks (default 100ms).
	TaskPollInterval time.Duration
}

const (
	primaryKey = "id"

	defaultTaskTimeout  = 2 * time.Minute
	defaultPollInterval = 100 * time.Millisecond

	// maxTotalHits caps how deep Meilisearch lets anyone page (offset+limit)
	// and how far totalHits counts. Its default, 1,000, would make every hit
	// past the thousandth unreachable and the totals wrong; an archive must
	// reach every case, so the cap is set far above any expected result set.
	// Meilisearch only pays for it on queries that actually page that deep.
	maxTotalHits = 1_000_000

	// maxValuesPerFacet bounds each facet's value list (default 100). Status,
	// channel and purpose are small closed sets; tags are free-form, so keep
	// enough of them for the console's tag facet.
	maxValuesPerFacet = 1_000
)

// Engine is the Meilisearch search.Engine.
type Engine struct {
	client       meilisearch.ServiceManager
	uid          string
	taskTimeout  time.Duration
	pollInterval time.Duration

	mu      sync.Mutex
	lastRev int64
}

var _ search.Engine = (*Engine)(nil)

// Open connects to Meilisearch and makes sure the index cases_v<N> exists
// with its primary key and settings applied. It waits for every task it
// starts and fails if any of them did not succeed.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.URL == "" {
		return nil, errors.New("meili: URL is required")
	}

	if cfg.IndexVersion == 0 {
		cfg.IndexVersion = 1
	}

	if cfg.IndexVersion < 0 {
		return nil, fmt.Errorf("meili: invalid index version %d", cfg.IndexVersion)
	}

	if cfg.TaskTimeout <= 0 {
		cfg.TaskTimeout = defaultTaskTimeout
	}

	if cfg.TaskPollInterval <= 0 {
		cfg.TaskPollInterval = defaultPollInterval
	}

	opts := []meilisearch.Option{
		meilisearch.DisableRetries(),
	}

	if cfg.APIKey != "" {
		opts = append(opts, meilisearch.WithAPIKey(cfg.APIKey))
	}

	if cfg.HTTPClient != nil {
		opts = append(opts, meilisearch.WithCustomClient(cfg.HTTPClient))
	}

	e := &Engine{
		client:       meilisearch.New(strings.TrimRight(cfg.URL, "/"), opts...),
		uid:          fmt.Sprintf("cases_v%d", cfg.IndexVersion),
		taskTimeout:  cfg.TaskTimeout,
		pollInterval: cfg.TaskPollInterval,
	}

	if err := e.ensureIndex(ctx); err != nil {
		return nil, err
	}

	return e, nil
}

// indexSettings returns the index settings Open applies. Every field this adapter
// relies on is set explicitly, so a server whose defaults differ (older or
// newer Meilisearch) still behaves the same.
func indexSettings() *meilisearch.Settings {
	distinct := string(attrCaseID)
	// Words match whole (with typos); prefix matching would let "ref" find
	// every refund and make the agent's query mean something else than the
	// embedded engine's.
	prefixSearch := "disabled"
	return &meilisearch.Settings{
		// "sort" first: an explicit newest/oldest/updated order is a strict
		// order, not a tie-breaker after relevance. Without a sort parameter
		// the rule is a no-op and relevance decides.
		RankingRules:      []string{"sort", "words", "typo", "proximity", "attribute", "exactness"},
		DistinctAttribute: &distinct,
		// A contact's text is its case's subject plus its body.
		SearchableAttributes: []string{"subject", "body"},
		FilterableAttributes: []string{
			string(attrCaseID), string(attrStatus), string(attrChannel), string(attrPriority),
			string(attrCustomerID), string(attrAssignee), string(attrTags), string(attrPurposes),
			string(attrOccurredAt), string(attrRev),
			primaryKey, // search-time distinct per document, for contact facets
		},
		SortableAttributes: []string{"sort_at", "updated_at"},
		PrefixSearch:       &prefixSearch,
		// meilisearch-go's TypoTolerance has no omitempty: every field is
		// sent, so every field is set. These are Meilisearch's defaults for
		// words (one typo from 5 letters, two from 9), pinned so the
		// behaviour does not depend on the server version.
		TypoTolerance: &meilisearch.TypoTolerance{
			Enabled: true,
			MinWordSizeForTypos: meilisearch.MinWordSizeForTypos{
				OneTypo:  5,
				TwoTypos: 9,
			},
			DisableOnWords:      []string{},
			DisableOnAttributes: []string{},
			// Numbers in support text are order numbers, amounts and phone
			// fragments: 1234 must not find 1243.
			DisableOnNumbers: true,
		},
		Pagination: &meilisearch.Pagination{MaxTotalHits: maxTotalHits},
		Faceting: &meilisearch.Faceting{
			MaxValuesPerFacet: maxValuesPerFacet,
			SortFacetValuesBy: map[string]meilisearch.SortFacetType{"*": meilisearch.SortFacetTypeCount},
		},
	}
}

func (e *Engine) ensureIndex(ctx context.Context) error {
	info, err := e.client.GetIndex(ctx, e.uid)
	switch {
	case err == nil:
		if info.PrimaryKey == "" {
			t, err := e.client.Index(e.uid).UpdateIndex(ctx, &meilisearch.UpdateIndexRequestParams{PrimaryKey: primaryKey})
			if err := e.wait(ctx, "set primary key", t, err); err != nil {
				return err
			}
		} else if info.PrimaryKey != primaryKey {
			return fmt.Errorf("meili: index %s has primary key %q, want %q (use a new index version)", e.uid, info.PrimaryKey, primaryKey)
		}
	case hasCode(err, meilisearch.APIErrCodeIndexNotFound):
		t, err := e.client.CreateIndex(ctx, &meilisearch.IndexConfig{Uid: e.uid, PrimaryKey: primaryKey})
		err = e.wait(ctx, "create index", t, err)
		// Another replica may have created it between our check and our task.
		var me *Error
		if err != nil && !(errors.As(err, &me) && me.Code == string(meilisearch.APIErrCodeIndexAlreadyExists)) {
			return err
		}
	default:
		return wrap("get index "+e.uid, err)
	}
	t, err := e.client.Index(e.uid).UpdateSettings(ctx, indexSettings())
	return e.wait(ctx, "update settings", t, err)
}

// Name implements search.Engine.
func (e *Engine) Name() string { return "meilisearch" }

// IndexName implements search.Engine.
func (e *Engine) IndexName() string { return e.uid }

// Close implements search.Engine. The HTTP client belongs to the caller (or
// to meilisearch-go); there is nothing else to release.
func (e *Engine) Close() error { return nil }

// Ping implements search.Engine.
func (e *Engine) Ping(ctx context.Context) error {
	h, err := e.client.Health(ctx)
	if err != nil {
		return wrap("health", err)
	}
	if h.Status != "available" {
		return &Error{Op: "health", Message: "status " + h.Status}
	}
	return nil
}

// document is what the index stores: one contact with its case's fields.
type document struct {
	ID         string   `json:"id"`
	CaseID     string   `json:"case_id"`
	Number     int64    `json:"number"`
	CustomerID string   `json:"customer_id"`
	Subject    string   `json:"subject"`
	Status     string   `json:"status"`
	Priority   string   `json:"priority"`
	Channel    string   `json:"channel,omitempty"`
	Assignee   string   `json:"assignee"`
	Tags       []string `json:"tags"`
	Purposes   []string `json:"purposes,omitempty"`
	ContactID  string   `json:"contact_id"`
	Direction  string   `json:"direction"`
	Author     string   `json:"author"`
	Body       string   `json:"body"`
	OccurredAt *int64   `json:"occurred_at,omitempty"` // Unix microseconds; contacts only
	SortAt     int64    `json:"sort_at"`               // occurred_at, or the case's creation
	UpdatedAt  int64    `json:"updated_at"`            // Unix microseconds
	// Rev identifies the Index call that wrote the document; see Index.
	Rev int64 `json:"rev"`
}

// validDocID is Meilisearch's rule for document ids.
var validDocID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,400}$`)

// docID builds a document id from a store id. Store ids are UUIDs and pass
// through readably; anything else is hashed so that no id can be rejected.
func docID(prefix, id string) string {
	if validDocID.MatchString(id) {
		return prefix + "-" + id
	}
	sum := sha256.Sum256([]byte(id))
	return prefix + "_" + hex.EncodeToString(sum[:])
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func documents(docs []search.CaseDoc, rev int64) []document {
	var out []document
	for _, c := range docs {
		base := document{
			CaseID:     c.CaseID,
			Number:     c.Number,
			CustomerID: c.CustomerID,
			Subject:    c.Subject,
			Status:     c.Status,
			Priority:   c.Priority,
			Assignee:   c.Assignee,
			Tags:       nonNil(c.Tags),
			UpdatedAt:  timeValue(c.UpdatedAt),
			Rev:        rev,
		}
		if len(c.Contacts) == 0 {
			d := base
			d.ID = docID("cs", c.CaseID)
			d.SortAt = timeValue(c.CreatedAt)
			out = append(out, d)
			continue
		}
		for _, ct := range c.Contacts {
			d := base
			d.ID = docID("ct", ct.ID)
			d.ContactID = ct.ID
			d.Channel = ct.Channel
			d.Direction = ct.Direction
			d.Author = ct.Author
			d.Body = ct.Body
			d.Purposes = nonNil(ct.Purposes)
			at := timeValue(ct.OccurredAt)
			d.OccurredAt, d.SortAt = &at, at
			out = append(out, d)
		}
	}

	return out
}

// nextRev returns a revision greater than every one this Engine handed out,
// normally the current time in microseconds so that revisions from several
// processes still order by time.
func (e *Engine) nextRev() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := time.Now().UnixMicro()
	if r <= e.lastRev {
		r = e.lastRev + 1
	}
	e.lastRev = r
	return r
}

// Index implements search.Engine.
//
// Strategy: add (replace) the new documents of the given cases, all stamped
// with a fresh revision, wait until that task succeeded, then delete the
// cases' documents with an older revision (contacts that no longer exist, or
// the case-only document of a case that now has contacts) and wait for that
// too. Unlike delete-then-add there is no moment in which a reindexed case is
// missing from search results. If the second step fails the error is
// returned and the indexer retries; until then a removed contact may still
// be found, never a case lost. Index calls for the same case must not run
// concurrently (the indexer serialises them).
func (e *Engine) Index(ctx context.Context, docs []search.CaseDoc) error {
	if len(docs) == 0 {
		return nil
	}
	rev := e.nextRev()
	ids := make([]string, 0, len(docs))
	for _, c := range docs {
		if c.CaseID == "" {
			return errors.New("meili: index: case without ID")
		}
		ids = append(ids, c.CaseID)
	}
	pk := primaryKey
	// A fresh index handle per call: meilisearch-go's AddDocuments writes the
	// primary key into the handle, which would race between goroutines.
	t, err := e.client.Index(e.uid).AddDocuments(ctx, documents(docs, rev), &meilisearch.DocumentOptions{PrimaryKey: &pk})
	if err := e.wait(ctx, "add documents", t, err); err != nil {
		return err
	}
	filter := filterArray(in(attrCaseID, ids), lt(attrRev, rev))
	t, err = e.client.Index(e.uid).DeleteDocumentsByFilter(ctx, filter, nil)
	return e.wait(ctx, "delete stale documents", t, err)
}

// Delete implements search.Engine.
func (e *Engine) Delete(ctx context.Context, caseIDs []string) error {
	if len(caseIDs) == 0 {
		return nil
	}
	t, err := e.client.Index(e.uid).DeleteDocumentsByFilter(ctx, filterArray(in(attrCaseID, caseIDs)), nil)
	return e.wait(ctx, "delete documents", t, err)
}

// Count implements search.Engine: the exact number of distinct cases
// (hitsPerPage 0 asks for the exhaustive totalHits without documents; the
// distinct attribute makes it count cases, not contacts).
func (e *Engine) Count(ctx context.Context) (int64, error) {
	zero := int64(0)
	resp, err := e.rawSearch(ctx, &meilisearch.SearchRequest{Page: 1, HitsPerPage: &zero})
	if err != nil {
		return 0, err
	}
	if resp.TotalHits == nil {
		return 0, &Error{Op: "count", Message: "response without totalHits"}
	}
	return *resp.TotalHits, nil
}

// caseFacets are case fields, equal on all of a case's documents, so
// Meilisearch's facet counts (taken over the one document per case that
// distinct keeps) count cases. contactFacets differ between a case's
// contacts and are counted separately (see contactFacetCounts).
var (
	caseFacets    = [...]struct{ attr, key string }{{"status", "status"}, {"tags", "tag"}}
	contactFacets = [...]struct {
		attr attr
		key  string
	}{{attrChannel, "channel"}, {attrPurposes, "purpose"}}
)

var retrieved = []string{"case_id", "number", "subject", "status", "customer_id", "contact_id", "body"}

type searchResponse struct {
	Hits               []hitDoc                    `json:"hits"`
	TotalHits          *int64                      `json:"totalHits"`
	EstimatedTotalHits *int64                      `json:"estimatedTotalHits"`
	FacetDistribution  map[string]map[string]int64 `json:"facetDistribution"`
}

type hitDoc struct {
	CaseID          string                   `json:"case_id"`
	Number          int64                    `json:"number"`
	Subject         string                   `json:"subject"`
	Status          string                   `json:"status"`
	CustomerID      string                   `json:"customer_id"`
	ContactID       string                   `json:"contact_id"`
	Body            string                   `json:"body"`
	MatchesPosition map[string][]matchBounds `json:"_matchesPosition"`
	RankingScore    *float64                 `json:"_rankingScore"`
}

// pageFor finds Meilisearch page parameters whose page covers
// [offset, offset+limit): page mode is the one that reports an exact
// totalHits, but it only addresses multiples of hitsPerPage. The smallest
// hitsPerPage >= limit whose page contains the whole window is used; ok is
// false when that would fetch too much, and the caller falls back to
// offset/limit plus a separate count.
func pageFor(offset, limit int) (page, perPage int, ok bool) {
	for s := limit; s <= 4*limit; s++ {
		if offset/s == (offset+limit-1)/s {
			return offset/s + 1, s, true
		}
	}
	return 0, 0, false
}

// Search implements search.Engine.
func (e *Engine) Search(ctx context.Context, q search.Query) (search.Result, error) {
	if !everyTermSearchable(q.Words, q.Phrases) {
		// Meilisearch would drop such a term and answer the rest, down to
		// a placeholder search (everything) when it was the only one.
		return search.Result{Hits: []search.Hit{}, Facets: map[string]map[string]int64{}}, nil
	}

	req := &meilisearch.SearchRequest{
		Query:                buildQ(q),
		MatchingStrategy:     meilisearch.All, // every word must match
		AttributesToRetrieve: retrieved,
		ShowMatchesPosition:  true,
		ShowRankingScore:     true,
	}

	if f := buildFilter(q.Filter); len(f) > 0 {
		req.Filter = filterArray(f...)
	}

	// Every term is searchable here, so the query has text exactly when
	// Meilisearch has terms to rank by.
	w, err := q.Window()
	if err != nil {
		return search.Result{}, fmt.Errorf("meili: %w", err)
	}

	offset, limit := w.Offset, w.Limit
	switch w.Sort {
	case search.SortNewest:
		req.Sort = []string{"sort_at:desc"}
	case search.SortOldest:
		req.Sort = []string{"sort_at:asc"}
	case search.SortUpdated:
		req.Sort = []string{"updated_at:desc"}
	}

	if q.Facets {
		for _, f := range caseFacets {
			req.Facets = append(req.Facets, f.attr)
		}
	}

	skip := 0
	page, perPage, paged := pageFor(offset, limit)
	if paged {
		pp := int64(perPage)
		req.Page, req.HitsPerPage = int64(page), &pp
		skip = offset - (page-1)*perPage
	} else {
		req.Offset, req.Limit = int64(offset), int64(limit)
	}

	resp, err := e.rawSearch(ctx, req)
	if err != nil {
		return search.Result{}, err
	}

	res := search.Result{Hits: []search.Hit{}}
	switch {
	case resp.TotalHits != nil:
		res.Total = *resp.TotalHits
	case !paged:
		// Offset/limit mode only estimates the total; ask for the exact one
		// with the same query and filter.
		zero := int64(0)
		count := &meilisearch.SearchRequest{Query: req.Query, MatchingStrategy: req.MatchingStrategy, Filter: req.Filter, Page: 1, HitsPerPage: &zero}
		cr, err := e.rawSearch(ctx, count)
		if err != nil {
			return search.Result{}, err
		}
		if cr.TotalHits == nil {
			return search.Result{}, &Error{Op: "search", Message: "response without totalHits"}
		}
		res.Total = *cr.TotalHits
	default:
		return search.Result{}, &Error{Op: "search", Message: "response without totalHits"}
	}

	hits := resp.Hits
	if skip < len(hits) {
		hits = hits[skip:]
	} else {
		hits = nil
	}

	if len(hits) > limit {
		hits = hits[:limit]
	}

	for _, h := range hits {
		hit := search.Hit{
			CaseID:     h.CaseID,
			Number:     h.Number,
			Subject:    h.Subject,
			Status:     h.Status,
			CustomerID: h.CustomerID,
			ContactID:  h.ContactID,
			Snippet:    hitSnippet(h),
		}
		if h.RankingScore != nil {
			hit.Score = *h.RankingScore
		}
		res.Hits = append(res.Hits, hit)
	}

	if q.Facets {
		res.Facets = make(map[string]map[string]int64, len(caseFacets)+len(contactFacets))
		for _, f := range caseFacets {
			m := map[string]int64{}
			for v, n := range resp.FacetDistribution[f.attr] {
				m[v] = n
			}
			res.Facets[f.key] = m
		}
		if err := e.contactFacetCounts(ctx, req, res.Facets); err != nil {
			return search.Result{}, err
		}
	}

	return res, nil
}

// contactFacetCounts counts, per channel and per purpose value, the cases
// that have a matching contact with that value. Meilisearch cannot do this
// in one query: with a distinct attribute its facet counts only look at the
// one document kept per case, so a case's other contacts would be missing.
// One query with distinct per document finds the values present among the
// matching contacts; then one count query per value (same q and filter plus
// "attribute = value", distinct per case) gives the exact number of cases.
func (e *Engine) contactFacetCounts(ctx context.Context, base *meilisearch.SearchRequest, out map[string]map[string]int64) error {
	zero := int64(0)
	discover := &meilisearch.SearchRequest{
		Query: base.Query, MatchingStrategy: base.MatchingStrategy, Filter: base.Filter,
		Page: 1, HitsPerPage: &zero, Distinct: primaryKey,
	}

	for _, f := range contactFacets {
		discover.Facets = append(discover.Facets, string(f.attr))
	}

	dr, err := e.rawSearch(ctx, discover)
	if err != nil {
		return err
	}

	baseFilter, _ := base.Filter.([]any)
	for _, f := range contactFacets {
		m := map[string]int64{}
		values := make([]string, 0, len(dr.FacetDistribution[string(f.attr)]))
		for v := range dr.FacetDistribution[string(f.attr)] {
			values = append(values, v)
		}
		sort.Strings(values)
		for _, v := range values {
			filter := append(append([]any{}, baseFilter...), eq(f.attr, v).String())
			cr, err := e.rawSearch(ctx, &meilisearch.SearchRequest{
				Query: base.Query, MatchingStrategy: base.MatchingStrategy, Filter: filter,
				Page: 1, HitsPerPage: &zero,
			})
			if err != nil {
				return err
			}
			if cr.TotalHits != nil && *cr.TotalHits > 0 {
				m[v] = *cr.TotalHits
			}
		}
		out[f.key] = m
	}

	return nil
}

// hitSnippet shows the body around its first match; when only the subject
// matched (or the case has no contact), the subject with its matches.
func hitSnippet(h hitDoc) string {
	if m := h.MatchesPosition["body"]; len(m) > 0 || (h.Body != "" && len(h.MatchesPosition["subject"]) == 0) {
		return snippet(h.Body, m)
	}
	if m := h.MatchesPosition["subject"]; len(m) > 0 || h.Body == "" {
		return snippet(h.Subject, m)
	}
	return snippet(h.Body, nil)
}

func (e *Engine) rawSearch(ctx context.Context, req *meilisearch.SearchRequest) (*searchResponse, error) {
	raw, err := e.client.Index(e.uid).SearchRaw(ctx, req.Query, req)
	if err != nil {
		return nil, wrap("search", err)
	}
	var resp searchResponse
	if err := json.Unmarshal(*raw, &resp); err != nil {
		return nil, &Error{Op: "search", Message: "decode response", Err: err}
	}
	return &resp, nil
}

// wait waits for an enqueued task (or returns the enqueue error) and checks
// the task's final status.
func (e *Engine) wait(ctx context.Context, op string, info *meilisearch.TaskInfo, err error) error {
	if err != nil {
		return wrap(op, err)
	}
	if info == nil {
		return &Error{Op: op, Message: "no task in response"}
	}
	tctx, cancel := context.WithTimeout(ctx, e.taskTimeout)
	defer cancel()
	task, err := e.client.WaitForTask(tctx, info.TaskUID, e.pollInterval)
	if err != nil {
		return wrap(fmt.Sprintf("%s: wait for task %d", op, info.TaskUID), err)
	}
	if task.Status == meilisearch.TaskStatusSucceeded {
		return nil
	}
	return &Error{
		Op:         op,
		TaskUID:    info.TaskUID,
		TaskStatus: string(task.Status),
		Code:       string(task.Error.Code),
		Type:       task.Error.Type,
		Message:    task.Error.Message,
	}
}

// Error is a failed Meilisearch call or task.
type Error struct {
	Op string
	// StatusCode is the HTTP status of a rejected request; 0 when the request
	// got no answer or when a task failed.
	StatusCode int
	// TaskUID and TaskStatus identify a task that ended without succeeding
	// (TaskStatus "failed" or "canceled"); TaskStatus is empty otherwise.
	TaskUID    int64
	TaskStatus string
	Code       string // Meilisearch error code, e.g. index_not_found
	Type       string // Meilisearch error type, e.g. invalid_request
	Message    string
	Err        error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("meili: ")
	b.WriteString(e.Op)
	if e.TaskStatus != "" {
		fmt.Fprintf(&b, ": task %d %s", e.TaskUID, e.TaskStatus)
	}
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	if e.Code != "" {
		b.WriteString(": ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil && e.Code == "" {
		// The Meilisearch code and message above already say what the
		// client's error would; only a transport failure needs its text.
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether the same call may succeed later: no answer,
// 429, or a 5xx status. Task failures and other 4xx are not temporary.
func (e *Error) Temporary() bool {
	if e.TaskStatus != "" {
		return false
	}
	return e.StatusCode == 0 || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

func wrap(op string, err error) error {
	out := &Error{Op: op, Err: err}
	var me *meilisearch.Error
	if errors.As(err, &me) {
		out.StatusCode = me.StatusCode
		out.Code = string(me.APIError.Code)
		out.Type = me.APIError.Type
		if me.ErrCode == meilisearch.APIError {
			out.Message = me.APIError.Message
		}
	}
	return out
}

func hasCode(err error, code meilisearch.APIErrCode) bool {
	var me *meilisearch.Error
	return errors.As(err, &me) && me.APIError.Code == code
}
