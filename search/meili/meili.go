// Package meili is the Meilisearch search engine (meilisearch-go).
//
// Layout: one document per contact (id "ct-<contact id>-<rev>") carrying the
// case's fields, plus one case-only document ("cs-<case id>-<rev>") for a
// case without contacts. The index's distinctAttribute is the case id, so a
// search returns one hit per case: its best-matching contact. A case-only
// document has no channel, purposes or occurred_at, so contact filters never
// match it; it sorts by the case's creation time (sort_at).
//
// Filterable values are stored twice: as typed for display, and hex-encoded
// in x_* attributes that every filter and facet uses, because Meilisearch
// normalizes (case-folds) filter values while the embedded engine compares
// them exactly; hex has no case to fold.
//
// Requires Meilisearch minVersion or later (the version the vendored
// OpenAPI description describes); Open checks GET /version.
//
// Every write is a Meilisearch task; the adapter returns only after the task
// reached a final status and treats anything but "succeeded" as an error
// (meilisearch-go's WaitForTask returns a nil error for a failed task). The
// client's own retries are disabled: the indexer retries, and a hidden retry
// loop would only delay its error handling and double-count attempts.
package meili

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meilisearch/meilisearch-go"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
)

// minVersion is the oldest Meilisearch the adapter talks to: the version
// of the OpenAPI description its requests are checked against
// (testdata/meilisearch-openapi.json, info.version). Older servers reject
// settings fields the adapter sends (typoTolerance.disableOnNumbers came in
// 1.15, and meilisearch-go sends it always).
const minVersion = "1.53.0"

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
	// RequestTimeout bounds every HTTP call (default 10s): a stalled server
	// must not hang a search or the indexer.
	RequestTimeout time.Duration
	// MaxBatchBytes bounds one document addition's JSON (default 8 MiB,
	// well under Meilisearch's 100 MB payload limit).
	MaxBatchBytes int
}

const (
	primaryKey = "id"

	defaultTaskTimeout    = 2 * time.Minute
	defaultPollInterval   = 100 * time.Millisecond
	defaultRequestTimeout = 10 * time.Second
	defaultMaxBatchBytes  = 8 << 20

	// maxTotalHits caps how deep Meilisearch lets anyone page (offset+limit)
	// and how far totalHits counts. Meilisearch's documentation advises
	// against values over 20,000 (queries then take seconds); its default,
	// 1,000, would hide most of a busy search. Totals above the cap are
	// reported as the cap.
	maxTotalHits = 20_000

	// maxValuesPerFacet bounds each facet's value list (default 100). Status,
	// channel and purpose are small closed sets; tags are free-form, so keep
	// enough of them for the console's tag facet.
	maxValuesPerFacet = 1_000

	// maxQueryWords is how many words of q Meilisearch reads (a phrase's
	// words count one by one); it ignores the rest.
	maxQueryWords = 10

	// casesPerFilter bounds how many cases one stale-document filter names.
	casesPerFilter = 100

	// contactsPerFilter bounds how many contacts one filter over appended
	// contacts names (AddContacts), and so the facet values its searches
	// return (under maxValuesPerFacet).
	contactsPerFilter = 500

	// lookupPage is how many documents a write's clean-up looks up to
	// delete them by id; when more match, it deletes by the filter.
	lookupPage = 1_000
)

// What a document is (its doc_kind). Index writes every contact of a case
// and AddContacts only new ones; the checks that let a newer state win
// must tell the two apart, since only a whole write holds every contact
// its case had.
const (
	docWhole    = 0 // a contact's document, written with its whole case (Index)
	docAppended = 1 // a new contact's document, written alone (AddContacts)
	docCaseOnly = 2 // the document of a case without contacts
)

// kind says how an Engine came to its index, which decides what it may do
// to it.
type kind int

const (
	kindLive    kind = iota // Open: the configured live index
	kindBuild               // Build: a new index that Activate swaps in
	kindRestore             // Restore: a new index of a restore, never swapped
)

// Engine is the Meilisearch search.Engine.
type Engine struct {
	client       meilisearch.ServiceManager
	uid          string
	live         string // the live index name Build's index replaces
	kind         kind
	taskTimeout  time.Duration
	pollInterval time.Duration
	reqTimeout   time.Duration
	maxBatch     int
	lookupPage   int

	created  bool // Open created the index or found it empty
	setAside atomic.Int64

	mu        sync.Mutex
	activated bool
	// pending is a write task whose wait timed out: until it finished, no
	// new write is enqueued, so a retry cannot pile up duplicates behind a
	// stalled server.
	pending *meilisearch.TaskInfo
}

var (
	_ search.Engine   = (*Engine)(nil)
	_ search.Appender = (*Engine)(nil) // the indexer appends new contacts only when every engine can
)

func newEngine(cfg Config) (*Engine, error) {
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

	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = defaultRequestTimeout
	}

	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = defaultMaxBatchBytes
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

	live := fmt.Sprintf("cases_v%d", cfg.IndexVersion)
	return &Engine{
		client:       meilisearch.New(strings.TrimRight(cfg.URL, "/"), opts...),
		uid:          live,
		live:         live,
		taskTimeout:  cfg.TaskTimeout,
		pollInterval: cfg.TaskPollInterval,
		reqTimeout:   cfg.RequestTimeout,
		maxBatch:     cfg.MaxBatchBytes,
		lookupPage:   lookupPage,
	}, nil
}

// Open connects to Meilisearch, checks its version and makes sure the index
// cases_v<N> exists with its primary key and settings. A new index gets
// the settings; an existing one must already have them (see ensureIndex).
// An unreachable server gives an error wrapping search.ErrUnavailable, so
// that serve can start degraded and let the indexer retry.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	e, err := newEngine(cfg)
	if err != nil {
		return nil, err
	}

	if err := e.checkVersion(ctx); err != nil {
		return nil, unavailable(err)
	}

	if err := e.ensureIndex(ctx); err != nil {
		return nil, unavailable(err)
	}

	if err := e.ensureCustomers(ctx); err != nil {
		return nil, unavailable(err)
	}

	return e, nil
}

// Build creates a new, empty index beside the live cases_v<N> for a
// rebuild: the indexer fills it while the live index answers, then
// Activate swaps the two (swap-indexes) and deletes the replaced content.
func Build(ctx context.Context, cfg Config) (*Engine, error) {
	return create(ctx, cfg, kindBuild, "build")
}

// Restore creates a new index of its own for a restored store: it is filled
// like a rebuild, but Activate never swaps it into the live index, so a
// restore drill cannot write into production's index.
func Restore(ctx context.Context, cfg Config) (*Engine, error) {
	return create(ctx, cfg, kindRestore, "restore")
}

func create(ctx context.Context, cfg Config, k kind, what string) (*Engine, error) {
	e, err := newEngine(cfg)
	if err != nil {
		return nil, err
	}

	if err := e.checkVersion(ctx); err != nil {
		return nil, unavailable(err)
	}

	e.kind = k
	e.uid = fmt.Sprintf("%s_%s_%d", e.live, what, time.Now().UnixNano())
	if err := e.createIndex(ctx); err != nil {
		return nil, unavailable(err)
	}
	if err := e.createCustomers(ctx); err != nil {
		return nil, unavailable(err)
	}

	e.created = true
	return e, nil
}

// unavailable marks errors of an unreachable or failing server (as opposed
// to a refusal such as a version below the floor) as search.ErrUnavailable.
func unavailable(err error) error {
	var me *Error
	if errors.As(err, &me) && me.Temporary() {
		return fmt.Errorf("%w: %w", search.ErrUnavailable, err)
	}
	return err
}

// ctx bounds one HTTP call.
func (e *Engine) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.reqTimeout)
}

func (e *Engine) checkVersion(ctx context.Context) error {
	cctx, cancel := e.call(ctx)
	defer cancel()
	v, err := e.client.Version(cctx)
	if err != nil {
		return wrap("version", err)
	}
	if !atLeast(v.PkgVersion, minVersion) {
		return fmt.Errorf("meili: Meilisearch %s is older than %s, the oldest version casevault supports "+
			"(older servers reject settings casevault sends); upgrade the server to %s or later", v.PkgVersion, minVersion, minVersion)
	}
	return nil
}

// atLeast compares release versions major.minor.patch; a pre-release or
// anything unparsable is below every floor.
func atLeast(version, floor string) bool {
	parse := func(s string) ([3]int, bool) {
		var out [3]int
		parts := strings.Split(s, ".")
		if len(parts) != 3 {
			return out, false
		}
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 {
				return out, false
			}
			out[i] = n
		}
		return out, true
	}
	v, ok := parse(version)
	f, _ := parse(floor)
	if !ok {
		return false
	}
	for i := range v {
		if v[i] != f[i] {
			return v[i] > f[i]
		}
	}
	return true
}

// indexSettings returns the index settings. Every field this adapter
// relies on is set explicitly, so a server whose defaults differ still
// behaves the same.
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
		// A contact's text is its case's subject plus its body; cjk holds
		// their CJK bigrams (cjk.go).
		// The customer's name is searchable too (free text finds it);
		// CustomerIDsByName searches the customer index (customers.go).
		SearchableAttributes: []string{"subject", "body", "cjk", attrName, attrNameCJK},
		FilterableAttributes: filterable(),
		SortableAttributes:   []string{"sort_at", "updated_at"},
		PrefixSearch:         &prefixSearch,
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

func filterable() []string {
	return []string{
		string(attrCaseID), string(attrStatus), string(attrChannel), string(attrPriority),
		string(attrCustomerID), string(attrAssignee), string(attrTags), string(attrPurposes),
		string(attrOccurredAt), string(attrRev), string(attrNumber), string(attrUpdatedAt),
		string(attrContactID), string(attrDocKind),
		primaryKey, // search-time distinct per document, for contact facets
	}
}

// ensureIndex makes sure the live index exists with the primary key and
// the settings. A new (or still empty) index gets the settings; one with
// documents and other settings is refused: changing settings in place makes
// Meilisearch re-index everything under live traffic, and two casevault
// versions during a rolling upgrade would patch it back and forth. A new
// index version is the way to change them.
func (e *Engine) ensureIndex(ctx context.Context) error {
	cctx, cancel := e.call(ctx)
	info, err := e.client.GetIndex(cctx, e.uid)
	cancel()
	switch {
	case err == nil:
		if info.PrimaryKey == "" {
			cctx, cancel := e.call(ctx)
			t, err := e.client.Index(e.uid).UpdateIndex(cctx, &meilisearch.UpdateIndexRequestParams{PrimaryKey: primaryKey})
			cancel()
			if err := e.wait(ctx, "set primary key", t, err); err != nil {
				return err
			}
		} else if info.PrimaryKey != primaryKey {
			return fmt.Errorf("meili: index %s has primary key %q, want %q (use a new index version)", e.uid, info.PrimaryKey, primaryKey)
		}
	case hasCode(err, meilisearch.APIErrCodeIndexNotFound):
		return e.createIndex(ctx)
	default:
		return wrap("get index "+e.uid, err)
	}

	n, err := e.documents(ctx)
	if err != nil {
		return err
	}
	e.created = n == 0

	same, err := e.settingsMatch(ctx)
	if err != nil || same {
		return err
	}
	if n > 0 {
		return fmt.Errorf("meili: index %s has other settings than this casevault uses; "+
			"raise the index version (--meili-index-version / CASEVAULT_MEILI_INDEX_VERSION) to build a new index", e.uid)
	}
	return e.applySettings(ctx)
}

// createIndex creates e.uid with its primary key and settings.
func (e *Engine) createIndex(ctx context.Context) error {
	cctx, cancel := e.call(ctx)
	t, err := e.client.CreateIndex(cctx, &meilisearch.IndexConfig{Uid: e.uid, PrimaryKey: primaryKey})
	cancel()
	err = e.wait(ctx, "create index", t, err)
	// Another replica may have created it between our check and our task.
	var me *Error
	if err != nil && !(errors.As(err, &me) && me.Code == string(meilisearch.APIErrCodeIndexAlreadyExists)) {
		return err
	}
	e.created = true
	return e.applySettings(ctx)
}

func (e *Engine) applySettings(ctx context.Context) error {
	cctx, cancel := e.call(ctx)
	t, err := e.client.Index(e.uid).UpdateSettings(cctx, indexSettings())
	cancel()
	return e.wait(ctx, "update settings", t, err)
}

// settingsMatch compares the index's settings with indexSettings, field by
// field as JSON (lists that Meilisearch keeps as sets compared sorted).
func (e *Engine) settingsMatch(ctx context.Context) (bool, error) {
	cctx, cancel := e.call(ctx)
	defer cancel()
	raw, err := e.client.Index(e.uid).GetSettings(cctx)
	if err != nil {
		return false, wrap("get settings", err)
	}
	got, err := settingsMap(raw)
	if err != nil {
		return false, err
	}
	want, err := settingsMap(indexSettings())
	if err != nil {
		return false, err
	}
	for k, w := range want {
		if !reflect.DeepEqual(normalizeSetting(k, got[k]), normalizeSetting(k, w)) {
			return false, nil
		}
	}
	return true, nil
}

func settingsMap(s *meilisearch.Settings) (map[string]any, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	err = json.Unmarshal(b, &m)
	return m, err
}

func normalizeSetting(name string, v any) any {
	switch name {
	case "filterableAttributes", "sortableAttributes":
		l, _ := v.([]any)
		out := make([]string, 0, len(l))
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			} else if m, ok := x.(map[string]any); ok { // the object form of newer servers
				if p, ok := m["attributePatterns"].([]any); ok && len(p) == 1 {
					s, _ := p[0].(string)
					out = append(out, s)
				}
			}
		}
		sort.Strings(out)
		return out
	}
	return v
}

// documents reads the index's document count from its stats: no search,
// no scan.
func (e *Engine) documents(ctx context.Context) (int64, error) {
	cctx, cancel := e.call(ctx)
	defer cancel()
	st, err := e.client.Index(e.uid).GetStats(cctx, nil)
	if err != nil {
		return 0, wrap("stats", err)
	}
	return st.NumberOfDocuments, nil
}

// Name implements search.Engine.
func (e *Engine) Name() string { return "meilisearch" }

// IndexName implements search.Engine.
func (e *Engine) IndexName() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.uid
}

func (e *Engine) index() meilisearch.IndexManager {
	return e.client.Index(e.IndexName())
}

// Created reports whether the index was new or empty when opened: the
// indexer then rebuilds it from the store (a lost volume, a new server, a
// new index version or a switch from Bleve would otherwise leave every
// existing case unsearchable).
func (e *Engine) Created() bool { return e.created }

// Outdated is always false: an index with other settings is refused by
// Open (a new index version is required), never used.
func (e *Engine) Outdated() bool { return false }

// SetAside reports how many cases Index set aside as poison since Open
// (the metric casevault_index_set_aside_total).
func (e *Engine) SetAside() int64 { return e.setAside.Load() }

// Close implements search.Engine. The HTTP client belongs to the caller (or
// to meilisearch-go); there is nothing else to release.
func (e *Engine) Close() error { return nil }

// Activate implements search.Activator. A Build engine swaps its index with
// the live one (one swap-indexes task: queries see the old or the new index,
// never a mix), then deletes the replaced content, which now has the build
// name. A Restore engine keeps its own index apart.
func (e *Engine) Activate(ctx context.Context) error {
	if e.kind != kindBuild {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.activated {
		return nil
	}
	tmp := e.uid
	cctx, cancel := e.call(ctx)
	// the customer index swaps in the same task (customers.go)
	t, err := e.client.SwapIndexes(cctx, []*meilisearch.SwapIndexesParams{{Indexes: []string{e.live, tmp}}, {Indexes: []string{custUID(e.live), custUID(tmp)}}})
	cancel()
	if err := e.wait(ctx, "swap indexes", t, err); err != nil {
		return err
	}
	e.uid, e.activated = e.live, true

	// The replaced content is garbage now; failing to delete it leaves a
	// stray index, not a wrong one.
	for _, uid := range []string{tmp, custUID(tmp)} {
		cctx, cancel = e.call(ctx)
		t, err = e.client.DeleteIndex(cctx, uid)
		cancel()
		_ = e.wait(ctx, "delete replaced index", t, err)
	}
	return nil
}

// Drop implements search.Dropper: it deletes the index only if this engine
// created it and it never went live (a failed rebuild or a finished
// restore drill's scratch index); the live index is only closed.
func (e *Engine) Drop(ctx context.Context) error {
	e.mu.Lock()
	mine := e.kind != kindLive && !e.activated
	uid := e.uid
	e.mu.Unlock()
	if !mine {
		return e.Close()
	}
	cctx, cancel := e.call(ctx)
	t, err := e.client.DeleteIndex(cctx, uid)
	cancel()
	if err := e.wait(ctx, "delete index "+uid, t, err); err != nil {
		return err
	}
	cctx, cancel = e.call(ctx)
	t, err = e.client.DeleteIndex(cctx, custUID(uid))
	cancel()
	err = e.wait(ctx, "delete index "+custUID(uid), t, err)
	var me *Error
	if errors.As(err, &me) && me.Code == string(meilisearch.APIErrCodeIndexNotFound) {
		return nil // a build interrupted before it created its customer index
	}
	return err
}

// Ping implements search.Engine.
func (e *Engine) Ping(ctx context.Context) error {
	cctx, cancel := e.call(ctx)
	defer cancel()
	h, err := e.client.Health(cctx)
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
	CJK        []string `json:"cjk,omitempty"` // CJK bigrams of subject and body (cjk.go)
	// The customer's name (search.CaseDoc.CustomerName) and its CJK
	// bigrams (free text finds a case by its customer's name).
	CustomerName    string `json:"customer_name,omitempty"`
	CustomerNameCJK string `json:"customer_name_cjk,omitempty"`
	OccurredAt      *int64 `json:"occurred_at,omitempty"` // Unix microseconds; contacts only
	SortAt          int64  `json:"sort_at"`               // occurred_at, or the case's creation
	UpdatedAt       int64  `json:"updated_at"`            // Unix microseconds
	// Rev is the feed position of the case state the document reflects
	// (search.CaseDoc.Rev); see Index.
	Rev int64 `json:"rev"`
	// Kind is docWhole, docAppended or docCaseOnly.
	Kind int `json:"doc_kind"`

	// The filter forms (hex, see the package comment).
	XCaseID     string   `json:"x_case_id"`
	XCustomerID string   `json:"x_customer_id"`
	XStatus     string   `json:"x_status"`
	XPriority   string   `json:"x_priority"`
	XChannel    string   `json:"x_channel,omitempty"`
	XContactID  string   `json:"x_contact_id,omitempty"`
	XAssignee   string   `json:"x_assignee"`
	XTags       []string `json:"x_tags"`
	XPurposes   []string `json:"x_purposes,omitempty"`
}

// validDocID is Meilisearch's rule for document ids.
var validDocID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,400}$`)

// docID builds a document id from a store id and the revision. Store ids
// are UUIDs and pass through readably; anything else is hashed so that no
// id can be rejected. The revision is part of the id, so that an older
// state written late never overwrites a newer one's documents (see Index).
func docID(prefix, id string, rev int64) string {
	r := strconv.FormatInt(rev, 10)
	if validDocID.MatchString(id) {
		return prefix + "-" + id + "-" + r
	}
	sum := sha256.Sum256([]byte(id))
	return prefix + "_" + hex.EncodeToString(sum[:]) + "-" + r
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func hexAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = encodeValue(v)
	}
	return out
}

func caseDocuments(c search.CaseDoc) []document {
	base := document{
		CaseID:     c.CaseID,
		Number:     c.Number,
		CustomerID: c.CustomerID,
		// the name's bigrams are in their own field only: a CJK word of
		// free text is also searched there (searchable attributes)
		CustomerName:    c.CustomerName,
		CustomerNameCJK: cjkField(c.CustomerName),
		Subject:         c.Subject,
		Status:          c.Status,
		Priority:        c.Priority,
		Assignee:        c.Assignee,
		Tags:            nonNil(c.Tags),
		UpdatedAt:       timeValue(c.UpdatedAt),
		Rev:             c.Rev,
		XCaseID:         encodeValue(c.CaseID),
		XCustomerID:     encodeValue(c.CustomerID),
		XStatus:         encodeValue(c.Status),
		XPriority:       encodeValue(c.Priority),
		// keyword filter forms are folded (search.FoldKeyword): tag:VIP
		// finds "vip" on both engines
		XAssignee: encodeValue(search.FoldKeyword(c.Assignee)),
		XTags:     hexAll(nonNil(search.FoldKeywords(c.Tags))),
	}
	subjectCJK := cjkField(c.Subject)
	cjk := func(body string) []string {
		var out []string
		for _, s := range []string{subjectCJK, cjkField(body)} {
			if s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	ids := documentIDs(c)
	if len(c.Contacts) == 0 {
		d := base
		d.ID = ids[0]
		d.Kind = docCaseOnly
		d.SortAt = timeValue(c.CreatedAt)
		d.CJK = cjk("")
		return []document{d}
	}
	out := make([]document, 0, len(c.Contacts))
	for i, ct := range c.Contacts {
		d := base
		d.ID = ids[i]
		d.ContactID = ct.ID
		d.XContactID = encodeValue(ct.ID)
		d.Channel = ct.Channel
		d.XChannel = encodeValue(ct.Channel)
		d.Direction = ct.Direction
		d.Author = ct.Author
		d.Body = ct.Body
		d.CJK = cjk(ct.Body)
		d.Purposes = nonNil(ct.Purposes)
		d.XPurposes = hexAll(d.Purposes)
		at := timeValue(ct.OccurredAt)
		d.OccurredAt, d.SortAt = &at, at
		out = append(out, d)
	}
	return out
}

// documentIDs are the ids of caseDocuments(c), one per contact or the
// case-only one, without building the documents: the clean-ups after a
// write need only the ids.
func documentIDs(c search.CaseDoc) []string {
	if len(c.Contacts) == 0 {
		return []string{docID("cs", c.CaseID, c.Rev)}
	}
	ids := make([]string, len(c.Contacts))
	for i, ct := range c.Contacts {
		ids[i] = docID("ct", ct.ID, c.Rev)
	}
	return ids
}

// Index implements search.Engine.
//
// Every document carries its case's feed position (CaseDoc.Rev) in its id
// and in rev. Strategy, per batch: add the cases' documents (chunked by
// bytes); then delete each case's documents with an older rev; then, for
// any case of which a newer rev is in the index (another writer got there
// first), delete the documents just added. A case's newest documents are
// never deleted by anyone, so no interleaving of two writers loses a case,
// and once both are done only the newest state is left. Unlike
// delete-then-add there is no moment in which a reindexed case is missing.
// A case Meilisearch rejects for good (too large, invalid) is set aside
// and reported as a *search.PoisonError after the rest was indexed.
//
// A CaseDoc without Rev (0: a caller with no feed position) replaces the
// case's other rev-0 documents by id; such callers must not race.
func (e *Engine) Index(ctx context.Context, docs []search.CaseDoc) error {
	if len(docs) == 0 {
		return nil
	}
	for _, c := range docs {
		if c.CaseID == "" {
			return errors.New("meili: index: case without ID")
		}
	}

	return e.write(ctx, docs, caseDocuments, e.deleteStale)
}

// write adds the documents build makes of docs, chunked by bytes, then
// lets settle clean up around what was written.
func (e *Engine) write(ctx context.Context, docs []search.CaseDoc, build func(search.CaseDoc) []document,
	settle func(context.Context, []search.CaseDoc) error) error {
	if err := e.ready(ctx); err != nil {
		return err
	}

	var bad []string
	var badErr error
	var written []search.CaseDoc
	for _, chunk := range e.chunks(docs, build) {
		ok, poisoned, err := e.addCases(ctx, chunk)
		if err != nil {
			return err
		}
		written = append(written, ok...)
		for _, p := range poisoned {
			bad = append(bad, p.id)
			if badErr == nil {
				badErr = p.err
			}
		}
	}

	if err := settle(ctx, written); err != nil {
		return err
	}

	if len(bad) > 0 {
		e.setAside.Add(int64(len(bad)))
		return &search.PoisonError{CaseIDs: bad, Err: badErr}
	}
	return nil
}

// AddContacts implements search.Appender: each new contact gets its
// document and nothing else of its case is sent, so a contact costs the
// same in a case of 3 contacts or of 30,000. Index sends every document
// of a case, and a steady stream of contacts into long cases made
// indexing quadratic (issue 19: 200 cases under load re-sent ~20,000
// documents a batch).
//
// The documents carry the batch's feed position, as Index's do, marked
// docAppended; then settleAppended makes the newest state win, as
// deleteStale does for whole cases. A retried batch is harmless.
func (e *Engine) AddContacts(ctx context.Context, docs []search.CaseDoc) error {
	var parts []search.CaseDoc
	for _, c := range docs {
		if c.CaseID == "" {
			return errors.New("meili: add contacts: case without ID")
		}
		if c.Rev <= 0 {
			return fmt.Errorf("meili: add contacts: case %s without a feed position", c.CaseID)
		}
		for _, ct := range c.Contacts {
			if ct.ID == "" {
				return fmt.Errorf("meili: add contacts: case %s: contact without ID", c.CaseID)
			}
		}
		if len(c.Contacts) > 0 {
			parts = append(parts, c)
		}
	}
	if len(parts) == 0 {
		return nil
	}

	return e.write(ctx, parts, appendedDocuments, e.settleAppended)
}

func appendedDocuments(c search.CaseDoc) []document {
	docs := caseDocuments(c)
	for i := range docs {
		docs[i].Kind = docAppended
	}
	return docs
}

// settleAppended runs after AddContacts wrote the contacts of written:
//   - older documents of the same contacts (a retried batch, or a whole
//     write whose load already saw the contact) and the case's case-only
//     document are deleted: the new documents stand for them;
//   - a contact with a newer document, or whose case has a newer whole
//     write, loses the document just added. A whole write holds every
//     contact its case still had, so a contact erased since stays gone.
func (e *Engine) settleAppended(ctx context.Context, written []search.CaseDoc) error {
	for _, chunk := range chunkContacts(written, casesPerFilter, contactsPerFilter) {
		byRev, revs := byRevision(chunk)

		var older []string
		var checks []*meilisearch.SearchRequest // two a position: newer documents of its contacts, newer whole writes of its cases
		for _, r := range revs {
			var caseIDs, contactIDs []string
			for _, c := range byRev[r] {
				caseIDs = append(caseIDs, c.CaseID)
				for _, ct := range c.Contacts {
					contactIDs = append(contactIDs, ct.ID)
				}
			}
			cases, contacts := in(attrCaseID, hexAll(caseIDs)), in(attrContactID, hexAll(contactIDs))
			older = append(older, and(or(contacts, and(cases, eqNum(attrDocKind, docCaseOnly))), lt(attrRev, r)).String())
			checks = append(checks,
				e.valuesQuery(attrContactID, and(contacts, gt(attrRev, r)).String()),
				e.valuesQuery(attrCaseID, and(cases, gt(attrRev, r), neNum(attrDocKind, docAppended)).String()))
		}
		olderFilter := strings.Join(older, " OR ")
		found, _, err := e.multiSearch(ctx, append([]*meilisearch.SearchRequest{e.idsQuery(olderFilter)}, checks...), nil)
		if err != nil {
			return err
		}

		var own []string
		for i, r := range revs {
			newer, whole := facetValues(found[1+2*i], attrContactID), facetValues(found[2+2*i], attrCaseID)
			for _, c := range byRev[r] {
				ids := documentIDs(c)
				for j, ct := range c.Contacts {
					if whole[encodeValue(c.CaseID)] || newer[encodeValue(ct.ID)] {
						own = append(own, ids[j])
					}
				}
			}
		}
		if err := e.deleteFound(ctx, "delete older and superseded documents", olderFilter, found[0], own); err != nil {
			return err
		}
	}
	return nil
}

// byRevision groups cases by their feed position, positions ascending.
func byRevision(cases []search.CaseDoc) (map[int64][]search.CaseDoc, []int64) {
	byRev := map[int64][]search.CaseDoc{}
	var revs []int64
	for _, c := range cases {
		if _, ok := byRev[c.Rev]; !ok {
			revs = append(revs, c.Rev)
		}
		byRev[c.Rev] = append(byRev[c.Rev], c)
	}
	slices.Sort(revs)
	return byRev, revs
}

// chunkContacts cuts docs into groups of at most maxCases cases and
// maxContacts contacts, splitting a case's contacts where it must.
func chunkContacts(docs []search.CaseDoc, maxCases, maxContacts int) [][]search.CaseDoc {
	var out [][]search.CaseDoc
	var cur []search.CaseDoc
	n := 0
	for _, c := range docs {
		rest := c.Contacts
		for len(rest) > 0 {
			if len(cur) == maxCases || n == maxContacts {
				out = append(out, cur)
				cur, n = nil, 0
			}
			k := min(len(rest), maxContacts-n)
			part := c
			part.Contacts = rest[:k]
			cur = append(cur, part)
			n += k
			rest = rest[k:]
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

type encodedCase struct {
	c    search.CaseDoc
	json []byte // the case's documents, each followed by a comma
}

// chunks groups cases into additions of at most maxBatch bytes; a case
// larger than that goes alone (and is set aside if Meilisearch refuses it).
func (e *Engine) chunks(docs []search.CaseDoc, build func(search.CaseDoc) []document) [][]encodedCase {
	var out [][]encodedCase
	var cur []encodedCase
	size := 2
	for _, c := range docs {
		var b bytes.Buffer
		for _, d := range build(c) {
			j, _ := json.Marshal(d) // plain strings and numbers: cannot fail
			b.Write(j)
			b.WriteByte(',')
		}
		ec := encodedCase{c: c, json: b.Bytes()}
		if len(cur) > 0 && size+len(ec.json) > e.maxBatch {
			out = append(out, cur)
			cur, size = nil, 2
		}
		cur = append(cur, ec)
		size += len(ec.json)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

type poisoned struct {
	id  string
	err error
}

// addCases adds one chunk. A refusal that is about the payload (413, a
// task failed as an invalid request) is bisected down to the cases that
// cause it; any other error ends the call.
func (e *Engine) addCases(ctx context.Context, chunk []encodedCase) ([]search.CaseDoc, []poisoned, error) {
	var body bytes.Buffer
	body.WriteByte('[')
	for _, c := range chunk {
		body.Write(c.json)
	}
	b := body.Bytes()
	b[len(b)-1] = ']'

	pk := primaryKey
	cctx, cancel := e.call(ctx)
	// A fresh index handle per call: meilisearch-go's AddDocuments writes
	// the primary key into the handle, which would race between goroutines.
	t, err := e.index().AddDocuments(cctx, json.RawMessage(b), &meilisearch.DocumentOptions{PrimaryKey: &pk})
	cancel()
	err = e.wait(ctx, "add documents", t, err)
	if err == nil {
		out := make([]search.CaseDoc, len(chunk))
		for i, c := range chunk {
			out[i] = c.c
		}
		return out, nil, nil
	}
	if !isPoison(err) {
		return nil, nil, err
	}
	if len(chunk) == 1 {
		return nil, []poisoned{{chunk[0].c.CaseID, err}}, nil
	}
	half := len(chunk) / 2
	okA, badA, err := e.addCases(ctx, chunk[:half])
	if err != nil {
		return nil, nil, err
	}
	okB, badB, err := e.addCases(ctx, chunk[half:])
	if err != nil {
		return nil, nil, err
	}
	return append(okA, okB...), append(badA, badB...), nil
}

// isPoison reports whether Meilisearch refused a document addition
// because of what it holds: the payload too large, or the task failed as
// an invalid request. Internal and system failures (a full disk) are not
// the documents' fault and are retried whole.
func isPoison(err error) bool {
	var me *Error
	if !errors.As(err, &me) {
		return false
	}
	if me.StatusCode == http.StatusRequestEntityTooLarge {
		return true
	}
	return me.TaskStatus == string(meilisearch.TaskStatusFailed) && me.Type == "invalid_request"
}

// deleteStale removes what the written cases' new documents replace, and
// the new documents themselves where a newer state is already in the index:
// a newer whole write of the case, or, contact by contact, a newer
// appended document (a write that saw the contact and landed late).
func (e *Engine) deleteStale(ctx context.Context, written []search.CaseDoc) error {
	for chunk := range slices.Chunk(written, casesPerFilter) {
		byRev, revs := byRevision(chunk)

		var older, newer, appended []string
		for _, r := range revs {
			ids := make([]string, 0, len(byRev[r]))
			for _, c := range byRev[r] {
				ids = append(ids, c.CaseID)
			}
			cases := in(attrCaseID, hexAll(ids)).String()
			if r == 0 {
				// No feed position: documents of the same rev are replaced by
				// id, so the ones not written now are stale.
				var keep []string
				for _, c := range byRev[r] {
					keep = append(keep, documentIDs(c)...)
				}
				older = append(older, "("+cases+" AND rev = 0 AND "+notIn(primaryKey, keep).String()+")")
			} else {
				older = append(older, "("+cases+" AND "+lt(attrRev, r).String()+")")
			}
			// Only a newer whole write stands for the case: a newer
			// appended document holds one contact.
			newer = append(newer, "("+cases+" AND "+gt(attrRev, r).String()+" AND "+neNum(attrDocKind, docAppended).String()+")")
			appended = append(appended, "("+cases+" AND "+gt(attrRev, r).String()+" AND "+eqNum(attrDocKind, docAppended).String()+")")
		}
		olderFilter := strings.Join(older, " OR ")
		found, _, err := e.multiSearch(ctx, []*meilisearch.SearchRequest{
			e.idsQuery(olderFilter),
			e.valuesQuery(attrCaseID, strings.Join(newer, " OR ")),
			e.valuesQuery(attrContactID, strings.Join(appended, " OR ")),
		}, nil)
		if err != nil {
			return err
		}

		// What this write added gives way where a newer state is in: all of
		// a case a newer whole write holds, and a contact of which a newer
		// appended document exists (this write saw it, but landed late),
		// which keeps that one, not a second copy.
		superseded, later := facetValues(found[1], attrCaseID), facetValues(found[2], attrContactID)
		var own []string
		for _, r := range revs {
			for _, c := range byRev[r] {
				whole := superseded[encodeValue(c.CaseID)]
				for i, id := range documentIDs(c) {
					if whole || (len(c.Contacts) > 0 && later[encodeValue(c.Contacts[i].ID)]) {
						own = append(own, id)
					}
				}
			}
		}
		if err := e.deleteFound(ctx, "delete stale and superseded documents", olderFilter, found[0], own); err != nil {
			return err
		}
	}
	return nil
}

// idsQuery looks up the ids of the documents filter matches, a page of
// them: deleteFound deletes them by id.
func (e *Engine) idsQuery(filter string) *meilisearch.SearchRequest {
	n := int64(e.lookupPage)
	return &meilisearch.SearchRequest{
		IndexUID: e.IndexName(), Filter: filter, Page: 1, HitsPerPage: &n,
		AttributesToRetrieve: []string{primaryKey}, Distinct: primaryKey,
	}
}

// valuesQuery asks for the values of a that the documents matching filter
// have. Every document counts (distinct by id): the index's distinct case
// would count one contact per case.
func (e *Engine) valuesQuery(a attr, filter string) *meilisearch.SearchRequest {
	zero := int64(0)
	return &meilisearch.SearchRequest{
		IndexUID: e.IndexName(), Filter: filter, Page: 1, HitsPerPage: &zero,
		Facets: []string{string(a)}, Distinct: primaryKey,
	}
}

// facetValues reads a valuesQuery's answer as a set of (encoded) values.
func facetValues(resp *searchResponse, a attr) map[string]bool {
	out := map[string]bool{}
	for v, n := range resp.FacetDistribution[string(a)] {
		if n > 0 {
			out[v] = true
		}
	}
	return out
}

// deleteFound deletes what a write's clean-up found (the documents its
// idsQuery over filter returned) and the write's own documents that gave
// way, by id, in one task. Meilisearch runs a deletion by filter as a
// batch of its own, never batched with the additions around it, so a
// filter per write would cut its task queue into batches of one write
// each when several replicas write; and a new contact, the usual write,
// finds nothing and sends no deletion at all. Reading the filter now rather than when a
// task runs loses nothing: every writer checks for newer documents after
// its own addition, so an older document added after this lookup is
// removed by its own writer. A lookup that found more than a page (a long
// case rewritten) deletes by the filter.
func (e *Engine) deleteFound(ctx context.Context, op, filter string, found *searchResponse, own []string) error {
	ids := own
	if *found.TotalHits > int64(len(found.Hits)) {
		cctx, cancel := e.call(ctx)
		t, err := e.index().DeleteDocumentsByFilter(cctx, filter, nil)
		cancel()
		if err := e.wait(ctx, op, t, err); err != nil {
			return err
		}
	} else {
		for _, h := range found.Hits {
			ids = append(ids, h.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}

	cctx, cancel := e.call(ctx)
	t, err := e.index().DeleteDocuments(cctx, ids, nil)
	cancel()
	return e.wait(ctx, op, t, err)
}

// ready runs before every write: it waits out a write task whose wait timed
// out (so a retry does not pile up duplicates behind a stalled server) and
// checks that the index still exists, because Meilisearch would create a
// deleted index on the next addition, without settings. A deleted index
// gives search.ErrBroken: the indexer reopens the engine, Open creates the
// index with its settings and reports it new, and it is rebuilt.
func (e *Engine) ready(ctx context.Context) error {
	e.mu.Lock()
	p := e.pending
	e.mu.Unlock()
	if p != nil {
		tctx, cancel := context.WithTimeout(ctx, e.taskTimeout)
		task, err := e.client.WaitForTask(tctx, p.TaskUID, e.pollInterval)
		cancel()
		if err != nil {
			return wrap(fmt.Sprintf("wait for earlier task %d", p.TaskUID), err)
		}
		_ = task // whatever its end, the indexer re-sends what it was for
		e.mu.Lock()
		e.pending = nil
		e.mu.Unlock()
	}

	cctx, cancel := e.call(ctx)
	defer cancel()
	_, err := e.client.GetIndex(cctx, e.IndexName())
	if hasCode(err, meilisearch.APIErrCodeIndexNotFound) {
		return fmt.Errorf("meili: index %s was deleted behind casevault: %w", e.IndexName(), search.ErrBroken)
	}
	if err != nil {
		return wrap("get index", err)
	}
	return nil
}

// Delete implements search.Engine. It deletes by filter, although
// Meilisearch batches such a task with nothing else (deleteFound): a
// deleted case leaves no newer document that a late writer's check
// would see, so the documents must be matched when the task runs, not
// looked up before. Deletions are rare next to additions.
func (e *Engine) Delete(ctx context.Context, caseIDs []string) error {
	if len(caseIDs) == 0 {
		return nil
	}
	if err := e.ready(ctx); err != nil {
		return err
	}
	for chunk := range slices.Chunk(caseIDs, casesPerFilter) {
		cctx, cancel := e.call(ctx)
		t, err := e.index().DeleteDocumentsByFilter(cctx, filterArray(in(attrCaseID, hexAll(chunk))), nil)
		cancel()
		if err := e.wait(ctx, "delete documents", t, err); err != nil {
			return err
		}
	}
	return nil
}

// Count implements search.Engine: the number of documents (contacts, and
// cases without contacts) from the index stats, which Meilisearch keeps
// without a search; exact case totals come from Search.
func (e *Engine) Count(ctx context.Context) (int64, error) {
	return e.documents(ctx)
}

// caseFacets are case fields, equal on all of a case's documents, so
// Meilisearch's facet counts (taken over the one document per case that
// distinct keeps, in page mode) count cases. contactFacets differ between
// a case's contacts and are counted per value (see Search).
var (
	caseFacets = [...]struct {
		attr attr
		key  string
	}{{attrStatus, "status"}, {attrTags, "tag"}}
	contactFacets = [...]struct {
		attr   attr
		key    string
		values []string
	}{{attrChannel, "channel", enumValues(cases.Channels)}, {attrPurposes, "purpose", enumValues(cases.Purposes)}}
)

func enumValues[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

var retrieved = []string{"case_id", "number", "subject", "status", "customer_id", "contact_id", "body"}

type searchResponse struct {
	Hits               []hitDoc                    `json:"hits"`
	TotalHits          *int64                      `json:"totalHits"`
	EstimatedTotalHits *int64                      `json:"estimatedTotalHits"`
	FacetDistribution  map[string]map[string]int64 `json:"facetDistribution"`
}

type hitDoc struct {
	ID              string                   `json:"id"`
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

// Search implements search.Engine. A plain page is one search; facets or an
// offset no page covers add count queries, all sent in one multi-search:
// the total and the case facets from a page-mode query without hits (only
// page mode applies distinct to every candidate; offset mode counts every
// matching contact), and one count per channel and purpose value (cases with
// a matching contact having it).
//
// Facets are disjunctive within a field (search.DisjunctiveVariants): the
// requests counting them go into the query's own multi-search (facets.go).
func (e *Engine) Search(ctx context.Context, q search.Query) (search.Result, error) {
	parts, err := e.facetParts(q)
	if err != nil {
		return search.Result{}, err
	}
	return e.search(ctx, q, parts)
}

// search answers q, sending parts' requests in its first multi-search.
func (e *Engine) search(ctx context.Context, q search.Query, parts []facetPart) (search.Result, error) {
	bs, err := branches(q, q.Exact)
	if err != nil {
		return search.Result{}, err
	}

	// Meilisearch would drop a term it cannot search and answer the rest,
	// down to a placeholder search (everything) when it was the only one:
	// such a branch matches nothing.
	bs = slices.DeleteFunc(bs, func(b branch) bool { return !everyTermSearchable(b.words, b.phrases) })
	if len(bs) == 0 {
		return search.Result{Hits: []search.Hit{}, Facets: map[string]map[string]int64{}}, nil
	}

	for _, b := range bs {
		if n := queryWords(b.text()); n > maxQueryWords {
			return search.Result{}, &search.QueryError{Message: fmt.Sprintf("more than %d words (Meilisearch reads only the first %d)", maxQueryWords, maxQueryWords)}
		}
	}

	if len(bs) > 1 {
		return e.searchUnion(ctx, q, bs, parts)
	}

	b := bs[0]
	text := b.text()

	req := &meilisearch.SearchRequest{
		IndexUID:             e.IndexName(),
		Query:                text,
		MatchingStrategy:     meilisearch.All, // every word must match
		AttributesToRetrieve: retrieved,
		ShowMatchesPosition:  true,
		ShowRankingScore:     true,
	}

	if len(b.filters) > 0 {
		req.Filter = filterArray(b.filters...)
	}

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

	skip := 0
	page, perPage, paged := pageFor(offset, limit)
	if paged {
		pp := int64(perPage)
		req.Page, req.HitsPerPage = int64(page), &pp
		skip = offset - (page-1)*perPage
	} else {
		req.Offset, req.Limit = int64(offset), int64(limit)
	}

	queries := []*meilisearch.SearchRequest{req}
	zero := int64(0)
	count := func(extra ...filterExpr) *meilisearch.SearchRequest {
		f := append(slices.Clone(b.filters), extra...)
		c := &meilisearch.SearchRequest{IndexUID: req.IndexUID, Query: req.Query, MatchingStrategy: req.MatchingStrategy, Page: 1, HitsPerPage: &zero}
		if len(f) > 0 {
			c.Filter = filterArray(f...)
		}
		return c
	}
	if q.Facets || !paged {
		c := count()
		if q.Facets {
			for _, f := range caseFacets {
				c.Facets = append(c.Facets, string(f.attr))
			}
		}
		queries = append(queries, c)
	}
	if q.Facets {
		for _, f := range contactFacets {
			for _, v := range f.values {
				queries = append(queries, count(eq(f.attr, encodeValue(v))))
			}
		}
	}

	var resps []*searchResponse
	var partResps []json.RawMessage
	if len(queries) == 1 && len(parts) == 0 {
		r, err := e.rawSearch(ctx, req)
		if err != nil {
			return search.Result{}, err
		}
		resps = []*searchResponse{r}
	} else if resps, partResps, err = e.multiSearch(ctx, queries, partQueries(parts)); err != nil {
		return search.Result{}, err
	}

	resp := resps[0]
	res := search.Result{Hits: []search.Hit{}}
	counted := resp
	if len(resps) > 1 {
		counted = resps[1]
	}
	if counted.TotalHits == nil {
		return search.Result{}, &Error{Op: "search", Message: "response without totalHits"}
	}
	res.Total = *counted.TotalHits

	hits := resp.Hits
	if skip < len(hits) {
		hits = hits[skip:]
	} else {
		hits = nil
	}

	if len(hits) > limit {
		hits = hits[:limit]
	}

	runs := queryCJKRuns(q)
	for _, h := range hits {
		addCJKMatches(&h, runs)
		hit := search.Hit{
			CaseID:     h.CaseID,
			Number:     h.Number,
			Subject:    h.Subject,
			Status:     h.Status,
			CustomerID: h.CustomerID,
			ContactID:  h.ContactID,
		}
		hit.Snippet, hit.SnippetField = hitSnippet(h)
		if h.RankingScore != nil {
			hit.Score = *h.RankingScore
		}
		res.Hits = append(res.Hits, hit)
	}

	if q.Facets {
		res.Facets = make(map[string]map[string]int64, len(caseFacets)+len(contactFacets))
		for _, f := range caseFacets {
			m := map[string]int64{}
			for v, n := range counted.FacetDistribution[string(f.attr)] {
				m[decodeValue(v)] = n
			}
			res.Facets[f.key] = m
		}
		i := 2
		for _, f := range contactFacets {
			m := map[string]int64{}
			for _, v := range f.values {
				if t := resps[i].TotalHits; t != nil && *t > 0 {
					m[v] = *t
				}
				i++
			}
			res.Facets[f.key] = m
		}
	}
	if err := readParts(parts, partResps, &res); err != nil {
		return search.Result{}, err
	}

	return res, nil
}

// queryCJKRuns returns the CJK runs of the query's words and phrases:
// Meilisearch reports their matches in the hidden cjk field, so the
// snippet finds them in the body and subject itself.
func queryCJKRuns(q search.Query) []string {
	var out []string
	for _, t := range append(slices.Clone(q.Words), q.Phrases...) {
		for _, r := range cjkRuns(t) {
			out = append(out, string(r))
		}
	}
	for _, g := range q.Groups {
		if !g.Negated {
			for _, a := range g.Any {
				out = append(out, queryCJKRuns(a)...)
			}
		}
	}
	return out
}

// addCJKMatches adds the occurrences of runs in the hit's body and subject
// to its match positions (byte offsets, as Meilisearch reports them).
func addCJKMatches(h *hitDoc, runs []string) {
	if len(runs) == 0 {
		return
	}
	if h.MatchesPosition == nil {
		h.MatchesPosition = map[string][]matchBounds{}
	}
	for _, field := range []struct {
		name, text string
	}{{"body", h.Body}, {"subject", h.Subject}} {
		for _, r := range runs {
			for from := 0; ; {
				i := strings.Index(field.text[from:], r)
				if i < 0 {
					break
				}
				h.MatchesPosition[field.name] = append(h.MatchesPosition[field.name], matchBounds{Start: from + i, Length: len(r)})
				from += i + len(r)
			}
		}
		sort.Slice(h.MatchesPosition[field.name], func(a, b int) bool {
			return h.MatchesPosition[field.name][a].Start < h.MatchesPosition[field.name][b].Start
		})
	}
}

// queryWords counts the words of q the way Meilisearch's limit does.
func queryWords(q string) int {
	n := 0
	for _, f := range strings.FieldsFunc(q, func(r rune) bool { return r == ' ' || r == '"' || r == '-' }) {
		if hasTerms([]string{f}, nil) {
			n++
		}
	}
	return n
}

// hitSnippet shows the body around its first match; when only the subject
// matched (or the case has no contact), the subject with its matches.
func hitSnippet(h hitDoc) (text, field string) {
	if m := h.MatchesPosition["body"]; len(m) > 0 || (h.Body != "" && len(h.MatchesPosition["subject"]) == 0) {
		return snippet(h.Body, m), "body"
	}
	if m := h.MatchesPosition["subject"]; len(m) > 0 || h.Body == "" {
		return snippet(h.Subject, m), "subject"
	}
	return snippet(h.Body, nil), "body"
}

func (e *Engine) rawSearch(ctx context.Context, req *meilisearch.SearchRequest) (*searchResponse, error) {
	cctx, cancel := e.call(ctx)
	defer cancel()
	raw, err := e.index().SearchRaw(cctx, req.Query, req)
	if err != nil {
		return nil, wrap("search", err)
	}
	var resp searchResponse
	if err := json.Unmarshal(*raw, &resp); err != nil {
		return nil, &Error{Op: "search", Message: "decode response", Err: err}
	}
	return &resp, nil
}

// multiSearch sends queries and then extra in one multi-search; the
// answers to extra come back undecoded, for their readers.
func (e *Engine) multiSearch(ctx context.Context, queries, extra []*meilisearch.SearchRequest) ([]*searchResponse, []json.RawMessage, error) {
	raws, err := multiSearchInto[json.RawMessage](ctx, e, append(slices.Clone(queries), extra...))
	if err != nil {
		return nil, nil, err
	}
	out := make([]*searchResponse, len(queries))
	for i := range queries {
		out[i] = new(searchResponse)
		if err := json.Unmarshal(*raws[i], out[i]); err != nil {
			return nil, nil, &Error{Op: "multi-search", Message: "decode response", Err: err}
		}
		if queries[i].HitsPerPage != nil && out[i].TotalHits == nil {
			// meilisearch-go drops a zero totalHits (omitempty)
			out[i].TotalHits = new(int64)
		}
	}
	return out, derefAll(raws[len(queries):]), nil
}

// wait waits for an enqueued task (or returns the enqueue error) and checks
// the task's final status. A wait that times out leaves the task pending:
// the next write waits for it first (see ready).
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
		e.mu.Lock()
		e.pending = info
		e.mu.Unlock()
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
