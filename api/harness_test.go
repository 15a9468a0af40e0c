package api_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/casevault/casevault/api"
	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/export"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/savedsearch"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/search/bleve"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
	"github.com/casevault/casevault/testkit"
)

// recordedAudit keeps what the server asked to record, to assert on it, and
// records it in the real audit trail too (log), as the server does.
type recordedAudit struct {
	mu      sync.Mutex
	events  []string
	details []map[string]any
	fail    bool
	log     *audit.Log
}

func (r *recordedAudit) Record(ctx context.Context, ch cases.Change, outcome string) error {
	r.mu.Lock()
	if r.fail {
		r.mu.Unlock()
		return sqldb.ErrUnavailable
	}
	r.events = append(r.events, ch.Action+":"+outcome+":"+ch.TargetID)
	r.details = append(r.details, ch.Detail)
	r.mu.Unlock()
	return r.log.Record(ctx, audit.FromChange(ch, outcome))
}

// has reports whether an event "action:outcome:target" was recorded.
func (r *recordedAudit) has(event string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.events, event)
}

// recorded returns a copy of the events recorded so far.
func (r *recordedAudit) recorded() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// fixedPolicy keeps every contact one year from capture; enough to see the
// store compute and persist retain_until.
type fixedPolicy struct{}

func (p fixedPolicy) RulesIn(context.Context, *sql.Tx) (cases.RetentionRules, error) { return p, nil }

func (fixedPolicy) RetainUntil(_ []cases.Purpose, captured time.Time, closed *time.Time) *time.Time {
	t := captured.AddDate(1, 0, 0)
	if closed != nil {
		t = closed.AddDate(3, 0, 0)
	}
	return &t
}

type harness struct {
	t *testing.T
	// clock is the legal holds' clock (release grace).
	clock *testkit.Clock
	db    *sqldb.DB
	srv   *api.Server
	audit *recordedAudit
	// trail is the real audit log behind audit and the audit routes.
	trail  *audit.Log
	tokens map[auth.Role]string
	revokd string
	base   string
	client *http.Client
	// blobDir is the attachment store's root, to inspect what is on disk
	// ("" when the attachments are not on local disk).
	blobDir string
	// blobs is the attachment store.
	blobs archive.Blobs
	// logs is what the server logged (info and above).
	logs *syncBuffer
	// reindexErr is what the reindex starter answers (tests set it).
	reindexErr *error
	// backups is the backup service behind /api/v1/backups, writing to
	// the local repository backupDir.
	backups   *backup.Service
	backupDir string
	// flags is the bucket's legal-hold flags the holds are mirrored onto.
	flags *memFlags
	// uploads is the attachment store as the server sees it.
	uploads *watchedUploads
	// ix is the search indexer (not running unless a test runs it).
	ix *search.Indexer
}

// watchedUploads is the real attachment store, counting the body bytes
// each contact's upload has delivered to it: a test waits until the server
// is streaming an upload (waitStreaming) instead of sleeping for it.
type watchedUploads struct {
	api.AttachmentStore
	mu   sync.Mutex
	read map[string]int64
}

func (w *watchedUploads) Put(ctx context.Context, in archive.AttachmentInput) (cases.Attachment, error) {
	in.Body = &countedBody{r: in.Body, add: func(n int) {
		w.mu.Lock()
		w.read[in.ContactID] += int64(n)
		w.mu.Unlock()
	}}
	return w.AttachmentStore.Put(ctx, in)
}

func (w *watchedUploads) bytesRead(contactID string) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.read[contactID]
}

type countedBody struct {
	r   io.Reader
	add func(int)
}

func (c *countedBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.add(n)
	return n, err
}

// waitStreaming waits until the store has received body bytes of an upload
// to contactID: the server has the request and is reading its body.
func (h *harness) waitStreaming(t *testing.T, contactID string) {
	t.Helper()
	testkit.Eventually(t, 15*time.Second, "the upload to "+contactID+" to be streaming", func() bool { return h.uploads.bytesRead(contactID) > 0 })
}

func newHarness(t *testing.T, d sqldb.Dialect) *harness {
	t.Helper()
	return newHarnessDB(t, sqldbtest.Open(t, d), nil)
}

// newHarnessDB serves the API over db with the attachments in blobs (nil:
// a local store in a temporary directory, h.blobDir).
func newHarnessDB(t *testing.T, db *sqldb.DB, blobs archive.Blobs) *harness {
	t.Helper()
	rec := &recordedAudit{}
	// Fields in clear (no keyring: the tests read the rows they wrote) but
	// with the lookup hashes, which GET /customers?email= uses.
	lookupKey, err := sqlstore.LookupKey(bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	fields := sqlstore.NewFields(nil, lookupKey)
	store := sqlstore.New(db, sqlstore.Options{Policy: fixedPolicy{}, Fields: fields})
	tokens := auth.NewTokens(db)
	var blobDir string
	if blobs == nil {
		blobDir = t.TempDir()
		lb, err := local.New(blobDir)
		if err != nil {
			t.Fatal(err)
		}
		blobs = lb
	}
	key := make([]byte, 32)
	keys, err := archive.NewKeyring(db, key, archive.KeyringOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plainAtts := archive.NewAttachments(db, blobs, keys, archive.AttachmentOptions{MaxSize: 1 << 20})
	atts := &watchedUploads{AttachmentStore: plainAtts, read: map[string]int64{}}
	trail := audit.New(db)
	t.Cleanup(func() { trail.Close(context.Background()) })
	rec.log = trail
	eng, err := bleve.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ix := search.NewIndexer(store, eng, nil, search.Options{})
	t.Cleanup(func() { ix.Close() })
	reindexErr := new(error)
	logs := &syncBuffer{}
	policy := retention.NewPolicy(retention.DefaultSchedule())
	clock := testkit.NewClock(time.Now().UTC())
	holds := retention.NewHoldsWith(db, retention.HoldsOptions{Policy: policy, Now: clock.Now})
	sweeper := retention.NewSweeper(db, retention.SweeperOptions{Policy: policy, Holds: holds, Blobs: blobs})
	flags := &memFlags{on: map[string]bool{}}
	ret := &api.RetentionDeps{Schedules: retention.NewSchedules(db, policy), Holds: holds,
		Explainer: retention.NewExplainer(db, policy, holds), Sweeper: sweeper,
		Deleter: retention.NewDeleter(db, retention.DeleterOptions{Holds: holds, Blobs: blobs}),
		Flags:   retention.NewFlagMirror(db, holds, retention.FlagMirrorOptions{Flags: flags})}
	backupDir := t.TempDir()
	repoStore, err := local.New(backupDir)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := backup.DeriveSigningKey(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := backup.OpenRepo(repoStore, "", backup.RepoOptions{Signer: sk})
	if err != nil {
		t.Fatal(err)
	}
	bkeys, err := backup.LoadKeys(backup.KeyConfig{DefaultIdentityFile: t.TempDir() + "/backup.key"}, true)
	if err != nil {
		t.Fatal(err)
	}
	bsvc := backup.New(db, repo, backup.Options{Blobs: blobs, Keys: bkeys})
	exportKey, err := export.Key(key)
	if err != nil {
		t.Fatal(err)
	}
	exports := export.New(export.Options{DB: db, Blobs: blobs, Attachments: plainAtts, Holds: holds, Key: exportKey,
		AuditTx: func(ctx context.Context, tx *sql.Tx, ch cases.Change) error {
			_, err := audit.AppendTx(ctx, tx, db.Dialect, audit.FromChange(ch, audit.OutcomeOK))
			return err
		}})
	auditTx := func(ctx context.Context, tx *sql.Tx, ch cases.Change) error {
		_, err := audit.AppendTx(ctx, tx, db.Dialect, audit.FromChange(ch, audit.OutcomeOK))
		return err
	}
	srv := api.New(api.Config{JSONBodyLimit: 64 << 10, AttachmentLimit: 1 << 20, Version: "test"}, api.Deps{
		Cases: cases.NewService(store, nil, cases.WithCaseManagers(auth.ManagesCases)), Tokens: tokens, Audit: rec,
		Log:         slog.New(slog.NewTextHandler(logs, nil)),
		Attachments: atts,
		AuditTx: func(ctx context.Context, tx *sql.Tx, ch cases.Change) error {
			_, err := audit.AppendTx(ctx, tx, db.Dialect, audit.FromChange(ch, audit.OutcomeOK))
			return err
		},
		SavedSearches: savedsearch.New(db),
		AuditTrail:    trail, Search: api.CustomerSearch{Searcher: ix, Names: ix, Lookup: func(ctx context.Context, email, phone string) ([]cases.Customer, error) {
			return store.FindCustomers(ctx, sqlstore.CustomerLookup{Email: email, Phone: phone})
		}}, Reindex: func(context.Context) error { return *reindexErr }, Retention: ret, Exports: exports,
		Backups: &api.BackupDeps{Service: bsvc, Identity: bkeys.Identity, Ping: repoStore.Ping},
		Privacy: &api.PrivacyDeps{
			Eraser: retention.NewEraser(db, retention.EraserOptions{Holds: holds, Keys: keys, Fields: fields, Blobs: blobs,
				OnChange: auditTx}),
			FindCustomers: func(ctx context.Context, email, phone string) ([]cases.Customer, error) {
				return store.FindCustomers(ctx, sqlstore.CustomerLookup{Email: email, Phone: phone})
			},
			Consents: retention.NewConsents(db, retention.ConsentOptions{Holds: holds, OnChange: auditTx}),
			Exporter: export.NewSubjectAccess(export.SubjectOptions{DB: db, Attachments: plainAtts, Explain: ret.Explainer, Fields: fields}),
		},
		Checks: []api.Check{{Name: "database", Probe: func(ctx context.Context) (any, error) { return nil, db.Ping(ctx) }}},
	})
	// A real loopback listener: the server is exercised exactly as clients
	// reach it (chunked bodies, connection handling), not through app.Test.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.App().Shutdown() })
	h := &harness{t: t, clock: clock, db: db, srv: srv, trail: trail, blobDir: blobDir, blobs: blobs, logs: logs, reindexErr: reindexErr, audit: rec, tokens: map[auth.Role]string{},
		base: "http://" + ln.Addr().String(), client: &http.Client{Timeout: 30 * time.Second, Transport: &validatingTransport{t: t, srv: srv, base: http.DefaultTransport}},
		backups: bsvc, backupDir: backupDir, uploads: atts, flags: flags, ix: ix}
	ctx := context.Background()
	for _, r := range auth.Roles {
		_, secret, err := tokens.Create(ctx, "test-"+string(r), r, nil)
		if err != nil {
			t.Fatal(err)
		}
		h.tokens[r] = secret
	}
	tok, secret, err := tokens.Create(ctx, "revoked", auth.RoleAdmin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens.Revoke(ctx, tok.ID, nil); err != nil {
		t.Fatal(err)
	}
	h.revokd = secret
	return h
}

// syncBuffer is a log sink the server writes from its goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// do sends a request; body may be a string (sent raw) or any value (JSON).
func (h *harness) do(method, path, token string, body any) resp {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: out}
}

// mustCreate posts as admin and returns the created object's id.
func (h *harness) mustCreate(path string, body any) map[string]any {
	h.t.Helper()
	r := h.do("POST", path, h.tokens[auth.RoleAdmin], body)
	if r.status != 201 {
		h.t.Fatalf("POST %s = %d: %s", path, r.status, r.body)
	}
	return r.json(h.t)
}

// mustCreateStatus posts as admin and expects the given status.
func (h *harness) mustCreateStatus(path string, body any, status int) map[string]any {
	h.t.Helper()
	r := h.do("POST", path, h.tokens[auth.RoleAdmin], body)
	if r.status != status {
		h.t.Fatalf("POST %s = %d: %s", path, r.status, r.body)
	}
	return r.json(h.t)
}

// mustCreateRaw posts a raw body as admin.
func (h *harness) mustCreateRaw(path, body string) map[string]any {
	h.t.Helper()
	return h.mustCreateStatus(path, body, 201)
}

// counts snapshots row counts to prove a bad request changed nothing.
func (h *harness) counts() map[string]int {
	h.t.Helper()
	out := map[string]int{}
	for _, tbl := range []string{"customers", "cases", "contacts", "outbox", "tokens"} {
		var n int
		if err := h.db.Read.QueryRow(`SELECT COUNT(*) FROM ` + tbl).Scan(&n); err != nil && err != sql.ErrNoRows {
			h.t.Fatal(err)
		}
		out[tbl] = n
	}
	return out
}

// with returns the harness reporting to a subtest.
func (h *harness) with(t *testing.T) *harness {
	c := *h
	c.t = t
	return &c
}

// liveURL is the base URL of the app's loopback listener.
func (h *harness) liveURL(*testing.T) string { return h.base }

func (h *harness) live(*testing.T) *http.Client { return h.client }

// forEachDialect runs fn as a subtest against a server on a fresh
// database of every engine.
func forEachDialect(t *testing.T, fn func(t *testing.T, h *harness)) {
	t.Helper()
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) { fn(t, newHarnessDB(t, db, nil)) })
}
