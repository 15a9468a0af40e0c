package meili

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/search"
)

// These tests run the adapter against the validating fake Meilisearch in
// fakeserver_test.go; no Meilisearch server can run on the build machines.

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 123456000, time.UTC)

const (
	caseA = "0190f5e2-aaaa-7000-8000-000000000001"
	caseB = "0190f5e2-bbbb-7000-8000-000000000002"
	ctA1  = "0190f5e2-a001-7000-8000-0000000000a1"
	ctA2  = "0190f5e2-a002-7000-8000-0000000000a2"
	ctB1  = "0190f5e2-b001-7000-8000-0000000000b1"
)

func fixtureA() search.CaseDoc {
	return search.CaseDoc{
		CaseID: caseA, Number: 1, CustomerID: "cust-1", Subject: "Card charged twice",
		Status: "open", Priority: "high", Channel: "email", Assignee: "ann",
		Tags: []string{"vip", "billing"}, CreatedAt: t0, UpdatedAt: t0.Add(time.Hour),
		Contacts: []search.ContactDoc{
			{ID: ctA1, Channel: "email", Direction: "inbound", Author: "Customer",
				Body:       `Please refund me. I typed <mark>x</mark> and <script>alert(1)</script>`,
				OccurredAt: t0, Purposes: []string{"customer_service"}},
			{ID: ctA2, Channel: "phone", Direction: "outbound", Author: "Ann",
				Body:       "Called back about the chargeback",
				OccurredAt: t0.Add(30 * time.Minute), Purposes: []string{"customer_service", "fraud_monitoring"}},
		},
	}
}

func fixtureB() search.CaseDoc {
	return search.CaseDoc{
		CaseID: caseB, Number: 2, CustomerID: "cust-2", Subject: "Address change",
		Status: "closed", Priority: "low", Channel: "web",
		CreatedAt: t0.Add(2 * time.Hour), UpdatedAt: t0.Add(2 * time.Hour),
	}
}

func openFake(t *testing.T, f *fakeMeili, version int) *Engine {
	t.Helper()
	e, err := Open(context.Background(), Config{
		URL: f.Srv.URL, APIKey: testAPIKey, IndexVersion: version,
		HTTPClient: f.Srv.Client(), TaskTimeout: 10 * time.Second, TaskPollInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	if err == nil {
		t.Fatal("want an error, got nil")
	}
	var me *Error
	if !errors.As(err, &me) {
		t.Fatalf("error %v (%T) is not a *meili.Error", err, err)
	}
	return me
}

func docIDs(ix *fakeIndex) []string {
	return append([]string(nil), ix.Order...)
}

func lastBody(t *testing.T, f *fakeMeili, method, path string) map[string]any {
	t.Helper()
	reqs := f.Requests(method, path)
	if len(reqs) == 0 {
		t.Fatalf("no %s %s received", method, path)
	}
	var m map[string]any
	if err := json.Unmarshal(reqs[len(reqs)-1].Body, &m); err != nil {
		t.Fatalf("body of %s %s: %v", method, path, err)
	}
	return m
}

func TestOpenCreatesIndexWithSettings(t *testing.T) {
	f := newFake(t)
	f.PollsBeforeDone = 3 // tasks stay enqueued/processing for a while
	e := openFake(t, f, 0)
	if e.IndexName() != "cases_v1" || e.Name() != "meilisearch" {
		t.Fatalf("name %q index %q", e.Name(), e.IndexName())
	}
	creates := f.Requests(http.MethodPost, "/indexes")
	if len(creates) != 2 {
		t.Fatalf("%d indexes created, want cases_v1 and customers_v1", len(creates))
	}
	for i, uid := range []string{"cases_v1", "customers_v1"} {
		var create map[string]any
		if err := json.Unmarshal(creates[i].Body, &create); err != nil || !reflect.DeepEqual(create, map[string]any{"uid": uid, "primaryKey": "id"}) {
			t.Fatalf("create index body %s (%v), want %s", creates[i].Body, err, uid)
		}
	}
	// the customer index (issue 16 §2): names searchable, ties by ID
	cs := lastBody(t, f, http.MethodPatch, "/indexes/customers_v1/settings")
	if r, _ := cs["rankingRules"].([]any); len(r) == 0 || r[len(r)-1] != "customer_id:asc" {
		t.Errorf("customer rankingRules %v", cs["rankingRules"])
	}
	if a, _ := cs["searchableAttributes"].([]any); !reflect.DeepEqual(a, []any{"customer_name", "customer_name_cjk"}) {
		t.Errorf("customer searchableAttributes %v", cs["searchableAttributes"])
	}
	s := lastBody(t, f, http.MethodPatch, "/indexes/cases_v1/settings")
	wantTypo := map[string]any{
		"enabled":             true,
		"minWordSizeForTypos": map[string]any{"oneTypo": 5.0, "twoTypos": 9.0},
		"disableOnWords":      []any{},
		"disableOnAttributes": []any{},
		"disableOnNumbers":    true,
	}
	if !reflect.DeepEqual(s["typoTolerance"], wantTypo) {
		t.Errorf("typoTolerance %v, want %v", s["typoTolerance"], wantTypo)
	}
	// Meilisearch's documentation advises against more than 20,000.
	if p, _ := s["pagination"].(map[string]any); p == nil || p["maxTotalHits"].(float64) != 20_000 {
		t.Errorf("pagination %v: maxTotalHits not the documented 20,000", s["pagination"])
	}
	if s["distinctAttribute"] != "x_case_id" {
		t.Errorf("distinctAttribute %v", s["distinctAttribute"])
	}
	if r, _ := s["rankingRules"].([]any); len(r) == 0 || r[0] != "sort" {
		t.Errorf("rankingRules %v", s["rankingRules"])
	}
	var filterable []string
	for _, a := range s["filterableAttributes"].([]any) {
		filterable = append(filterable, a.(string))
	}
	for _, want := range []string{"x_case_id", "x_status", "x_channel", "x_priority", "x_customer_id", "x_assignee", "x_tags", "x_purposes", "occurred_at", "rev"} {
		if !slices.Contains(filterable, want) {
			t.Errorf("%s not filterable: %v", want, filterable)
		}
	}
	// Each task was polled until it finished, not just once.
	for _, path := range []string{"/tasks/0", "/tasks/1"} {
		if n := len(f.Requests(http.MethodGet, path)); n != f.PollsBeforeDone+1 {
			t.Errorf("%s polled %d times, want %d", path, n, f.PollsBeforeDone+1)
		}
	}
	ix := f.Index("cases_v1")
	if ix == nil || ix.PK != "id" {
		t.Fatalf("index not created with primary key: %+v", ix)
	}
	if err := e.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestOpenExistingAndVersionedIndexes(t *testing.T) {
	tests := []struct {
		name       string
		version    int
		existingPK *string // nil: no index yet
		wantErr    bool
		wantCreate bool
		wantPKSet  bool
	}{
		{"new version", 3, nil, false, true, false},
		{"existing with id", 2, ptr("id"), false, false, false},
		{"existing without primary key", 2, ptr(""), false, false, true},
		{"existing with another key", 2, ptr("sku"), true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			uid := fmt.Sprintf("cases_v%d", tt.version)
			if tt.existingPK != nil {
				f.Indexes[uid] = newFakeIndex(uid, *tt.existingPK)
			}
			_, err := Open(context.Background(), Config{URL: f.Srv.URL, APIKey: testAPIKey, IndexVersion: tt.version, TaskPollInterval: time.Millisecond})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Open error %v, want error %v", err, tt.wantErr)
			}
			created := false
			for _, r := range f.Requests(http.MethodPost, "/indexes") {
				created = created || strings.Contains(string(r.Body), `"`+uid+`"`)
			}
			if got := created; got != tt.wantCreate {
				t.Errorf("index created: %v, want %v", got, tt.wantCreate)
			}
			if got := len(f.Requests(http.MethodPatch, "/indexes/"+uid)) > 0; got != tt.wantPKSet {
				t.Errorf("primary key set: %v, want %v", got, tt.wantPKSet)
			}
			if !tt.wantErr && f.Index(uid).PK != "id" {
				t.Errorf("primary key %q", f.Index(uid).PK)
			}
		})
	}
	t.Run("bad config", func(t *testing.T) {
		for _, cfg := range []Config{{}, {URL: "http://127.0.0.1:1", IndexVersion: -1}} {
			if _, err := Open(context.Background(), cfg); err == nil {
				t.Errorf("Open(%+v) succeeded", cfg)
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestIndexAndSearch(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	f.PollsBeforeDone = 2
	e := openFake(t, f, 1)

	if err := e.Index(ctx, []search.CaseDoc{fixtureA(), fixtureB()}); err != nil {
		t.Fatalf("Index: %v", err)
	}
	ix := f.Index("cases_v1")
	wantIDs := []string{"ct-" + ctA1 + "-0", "ct-" + ctA2 + "-0", "cs-" + caseB + "-0"}
	if got := docIDs(ix); !reflect.DeepEqual(got, wantIDs) {
		t.Fatalf("documents %v, want %v", got, wantIDs)
	}
	a2 := ix.Docs["ct-"+ctA2+"-0"]
	if a2["case_id"] != caseA || a2["channel"] != "phone" || a2["status"] != "open" ||
		a2["occurred_at"] != float64(t0.Add(30*time.Minute).UnixMicro()) ||
		!reflect.DeepEqual(a2["tags"], []any{"vip", "billing"}) ||
		!reflect.DeepEqual(a2["purposes"], []any{"customer_service", "fraud_monitoring"}) {
		t.Errorf("contact document %v", a2)
	}
	if b := ix.Docs["cs-"+caseB+"-0"]; b["contact_id"] != "" || b["channel"] != nil || b["occurred_at"] != nil || b["purposes"] != nil ||
		b["sort_at"] != float64(t0.Add(2*time.Hour).UnixMicro()) || b["subject"] != "Address change" {
		t.Errorf("case-only document %v", b)
	}
	if n, err := e.Count(ctx); err != nil || n != 3 { // documents
		t.Fatalf("Count = %d, %v; want 2 cases", n, err)
	}

	t.Run("words, snippet escaped", func(t *testing.T) {
		res, err := e.Search(ctx, search.Query{Words: []string{"refund"}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Total != 1 || len(res.Hits) != 1 {
			t.Fatalf("total %d hits %+v", res.Total, res.Hits)
		}
		h := res.Hits[0]
		if h.CaseID != caseA || h.ContactID != ctA1 || h.Number != 1 || h.Subject != "Card charged twice" || h.Status != "open" || h.CustomerID != "cust-1" || h.Score <= 0 {
			t.Errorf("hit %+v", h)
		}
		want := "Please <mark>refund</mark> me. I typed &lt;mark&gt;x&lt;/mark&gt; and &lt;script&gt;alert(1)&lt;/script&gt;"
		if h.Snippet != want {
			t.Errorf("snippet %q\nwant     %q", h.Snippet, want)
		}
		if res.Facets != nil {
			t.Errorf("facets without asking: %v", res.Facets)
		}
		body := lastBody(t, f, http.MethodPost, "/indexes/cases_v1/search")
		if body["q"] != "refund" || body["showMatchesPosition"] != true {
			t.Errorf("search body %v", body)
		}
	})
	t.Run("typo within Meilisearch's default budget", func(t *testing.T) {
		res, err := e.Search(ctx, search.Query{Words: []string{"refnd"}})
		if err != nil || res.Total != 1 {
			t.Fatalf("total %d err %v", res.Total, err)
		}
	})
	t.Run("exclusion and phrase", func(t *testing.T) {
		res, err := e.Search(ctx, search.Query{Phrases: []string{"called back"}, Excluded: []string{"refund"}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Total != 1 || res.Hits[0].ContactID != ctA2 {
			t.Fatalf("got %+v", res)
		}
		if q := lastBody(t, f, http.MethodPost, "/indexes/cases_v1/search")["q"]; q != `"called back" -"refund"` {
			t.Errorf("q %q", q)
		}
	})
	t.Run("facets", func(t *testing.T) {
		res, err := e.Search(ctx, search.Query{Facets: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Total != 2 || len(res.Hits) != 2 {
			t.Fatalf("total %d hits %d", res.Total, len(res.Hits))
		}
		// Channel and purpose count cases with a contact having the value:
		// case A counts under both of its contacts' channels, case B (no
		// contacts) under none.
		want := map[string]map[string]int64{
			"status":  {"open": 1, "closed": 1},
			"tag":     {"vip": 1, "billing": 1},
			"channel": {"email": 1, "phone": 1},
			"purpose": {"customer_service": 1, "fraud_monitoring": 1},
		}
		if !reflect.DeepEqual(res.Facets, want) {
			t.Errorf("facets %v\nwant   %v", res.Facets, want)
		}
		for _, k := range []string{"status", "channel", "tag", "purpose"} {
			if _, ok := res.Facets[k]; !ok {
				t.Errorf("facet %q missing: %v", k, res.Facets)
			}
		}
		// One multi-search: the page, the total with the case-level facets,
		// and one count per channel and purpose value (the value as its own
		// filter element).
		ms := f.Requests(http.MethodPost, "/multi-search")
		if len(ms) == 0 {
			t.Fatal("no multi-search")
		}
		var body struct {
			Queries []map[string]any `json:"queries"`
		}
		_ = json.Unmarshal(ms[len(ms)-1].Body, &body)
		if n := 2 + 6 + 9; len(body.Queries) != n {
			t.Errorf("%d queries, want %d", len(body.Queries), n)
		}
		if len(body.Queries) > 1 && !reflect.DeepEqual(body.Queries[1]["facets"], []any{"x_status", "x_tags"}) {
			t.Errorf("count query %v", body.Queries[1])
		}
		if !strings.Contains(string(ms[len(ms)-1].Body), eq(attrChannel, encodeValue("phone")).String()[:12]) {
			t.Errorf("no count query for channel phone")
		}
		// facets are disjunctive within a field (issue 16): a channel
		// filter leaves the channel counts as they were without it, and a
		// status filter the status counts; all of it in one multi-search
		// (issue 16 §4): the query's page and counts, then the status
		// distribution without the status filter, then the counts per
		// channel value without the channel filter
		msBefore, sBefore := len(f.Requests(http.MethodPost, "/multi-search")), len(f.Requests(http.MethodPost, "/indexes/cases_v1/search"))
		res, err = e.Search(ctx, search.Query{Facets: true, Filter: search.Filter{Channels: []string{"phone"}, Statuses: []string{"open"}}})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int64{"phone": 1, "email": 1}; !reflect.DeepEqual(res.Facets["channel"], want) {
			t.Errorf("channel facet under channel filter %v", res.Facets["channel"])
		}
		if want := map[string]int64{"open": 1}; !reflect.DeepEqual(res.Facets["status"], want) {
			// case B (closed) has no contact, so no phone contact either
			t.Errorf("status facet under status and channel filters %v", res.Facets["status"])
		}
		ms = f.Requests(http.MethodPost, "/multi-search")
		if n, s := len(ms)-msBefore, len(f.Requests(http.MethodPost, "/indexes/cases_v1/search"))-sBefore; n != 1 || s != 0 {
			t.Fatalf("%d multi-searches and %d searches for one query with disjunctive facets, want 1 and 0", n, s)
		}
		body.Queries = nil
		_ = json.Unmarshal(ms[len(ms)-1].Body, &body)
		if n := 2 + 6 + 9 + 6 + 1; len(body.Queries) != n {
			t.Errorf("%d queries in the multi-search, want %d (page, count, 6 channel and 9 purpose counts, 6 channel and 1 status count without their own filter)", len(body.Queries), n)
		}
		// the status part comes first (search.DisjunctiveVariants' order)
		if last := body.Queries[min(2+6+9, len(body.Queries)-1)]; !reflect.DeepEqual(last["facets"], []any{"x_status"}) ||
			strings.Contains(fmt.Sprint(last["filter"]), eq(attrStatus, encodeValue("open")).String()) {
			t.Errorf("status count query %v: want facets [x_status] and no status filter", last)
		}
	})
	t.Run("sort newest, one hit per case", func(t *testing.T) {
		res, err := e.Search(ctx, search.Query{Sort: search.SortNewest})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Hits) != 2 || res.Hits[0].CaseID != caseB || res.Hits[1].ContactID != ctA2 {
			t.Fatalf("hits %+v", res.Hits)
		}
		if s := lastBody(t, f, http.MethodPost, "/indexes/cases_v1/search")["sort"]; !reflect.DeepEqual(s, []any{"sort_at:desc"}) {
			t.Errorf("sort %v", s)
		}
	})
	t.Run("filters", func(t *testing.T) {
		tests := []struct {
			name    string
			filter  search.Filter
			want    []string // contact IDs ("" for case-only)
			wantArr []any
		}{
			{"channel", search.Filter{Channels: []string{"phone"}}, []string{ctA2}, []any{eq(attrChannel, encodeValue("phone")).String()}},
			{"from, never a case without contacts", search.Filter{From: t0.Add(time.Minute)}, []string{ctA2}, []any{fmt.Sprintf("occurred_at >= %d", t0.Add(time.Minute).UnixMicro())}},
			{"case-only document has no channel", search.Filter{Channels: []string{"web"}}, nil, nil},
			{"to is exclusive to the microsecond", search.Filter{To: t0.Add(30 * time.Minute)}, []string{ctA1}, nil},
			{"purpose and status", search.Filter{Purposes: []string{"fraud_monitoring"}, Statuses: []string{"open", "pending"}}, []string{ctA2},
				[]any{in(attrStatus, hexAll([]string{"open", "pending"})).String(), eq(attrPurposes, encodeValue("fraud_monitoring")).String()}},
			{"nothing", search.Filter{CustomerIDs: []string{"nobody"}}, nil, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res, err := e.Search(ctx, search.Query{Filter: tt.filter, Sort: search.SortOldest})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, h := range res.Hits {
					got = append(got, h.ContactID)
				}
				if !reflect.DeepEqual(got, tt.want) || res.Total != int64(len(tt.want)) {
					t.Errorf("contacts %q total %d, want %q", got, res.Total, tt.want)
				}
				if tt.wantArr != nil {
					if f := lastBody(t, f, http.MethodPost, "/indexes/cases_v1/search")["filter"]; !reflect.DeepEqual(f, tt.wantArr) {
						t.Errorf("filter %#v, want %#v", f, tt.wantArr)
					}
				}
			})
		}
	})

	// Reindexing replaces: a removed contact disappears, a case that gained
	// contacts loses its case-only document.
	a := fixtureA()
	a.Contacts = a.Contacts[:1]
	a.Rev = 7
	b := fixtureB()
	b.Contacts = []search.ContactDoc{{ID: ctB1, Channel: "web", Body: "new address", OccurredAt: t0.Add(3 * time.Hour)}}
	b.Rev = 7
	if err := e.Index(ctx, []search.CaseDoc{a, b}); err != nil {
		t.Fatalf("reindex: %v", err)
	}
	wantIDs = []string{"ct-" + ctA1 + "-7", "ct-" + ctB1 + "-7"}
	if got := docIDs(f.Index("cases_v1")); !reflect.DeepEqual(got, wantIDs) {
		t.Fatalf("after reindex documents %v, want %v", got, wantIDs)
	}
	// the stale documents of both cases are looked up with one filter,
	// older revs, and deleted by id in one task, never by that filter:
	// Meilisearch runs a deletion by filter as a batch of its own
	var stale string
	for _, r := range f.Requests(http.MethodPost, "/multi-search") {
		var body struct {
			Queries []map[string]any `json:"queries"`
		}
		_ = json.Unmarshal(r.Body, &body)
		for _, q := range body.Queries {
			if s, ok := q["filter"].(string); ok && strings.Contains(s, "rev < 7") {
				stale = s
			}
		}
	}
	if want := fmt.Sprintf(`(x_case_id IN ["%s", "%s"] AND rev < 7)`, encodeValue(caseA), encodeValue(caseB)); stale != want {
		t.Errorf("stale-document filter %q, want %q", stale, want)
	}
	if n := len(f.Requests(http.MethodPost, "/indexes/cases_v1/documents/delete")); n != 0 {
		t.Errorf("%d deletions by filter, want none", n)
	}
	batches := f.Requests(http.MethodPost, "/indexes/cases_v1/documents/delete-batch")
	if len(batches) != 1 {
		t.Fatalf("%d deletions by id, want 1", len(batches))
	}
	var deleted []string
	if err := json.Unmarshal(batches[0].Body, &deleted); err != nil {
		t.Fatal(err)
	}
	slices.Sort(deleted)
	if want := []string{"cs-" + caseB + "-0", "ct-" + ctA1 + "-0", "ct-" + ctA2 + "-0"}; !slices.Equal(deleted, want) {
		t.Errorf("deleted by id %v, want %v", deleted, want)
	}

	if err := e.Delete(ctx, []string{caseA}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got := docIDs(f.Index("cases_v1")); !reflect.DeepEqual(got, []string{"ct-" + ctB1 + "-7"}) {
		t.Fatalf("after delete documents %v", got)
	}
	if n, err := e.Count(ctx); err != nil || n != 1 {
		t.Fatalf("Count = %d, %v; want 1", n, err)
	}
	if err := e.Index(ctx, nil); err != nil {
		t.Fatalf("Index(nil): %v", err)
	}
	if err := e.Delete(ctx, nil); err != nil {
		t.Fatalf("Delete(nil): %v", err)
	}
}

func TestTaskFailures(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		setup      func(f *fakeMeili)
		call       func(e *Engine) error
		wantStatus string
		wantCode   string
		wantDelete bool // did the stale-document deletion run
	}{
		{
			name: "document addition fails",
			setup: func(f *fakeMeili) {
				f.FailTask = func(typ string) *apiErr {
					if typ == "documentAdditionOrUpdate" {
						return newAPIErr("invalid_document_fields", "invalid_request", "bad field")
					}
					return nil
				}
			},
			call:       func(e *Engine) error { return e.Index(ctx, []search.CaseDoc{fixtureA()}) },
			wantStatus: "failed", wantCode: "invalid_document_fields",
		},
		{
			name: "stale deletion fails",
			setup: func(f *fakeMeili) {
				f.FailTask = func(typ string) *apiErr {
					if typ == "documentDeletion" {
						return newAPIErr("internal", "internal", "disk full")
					}
					return nil
				}
			},
			// fixtureB rewritten: its older documents are deleted
			call: func(e *Engine) error {
				b := fixtureB()
				b.Rev = 3
				return e.Index(ctx, []search.CaseDoc{b})
			},
			wantStatus: "failed", wantCode: "internal", wantDelete: true,
		},
		{
			name: "delete fails",
			setup: func(f *fakeMeili) {
				f.FailTask = func(typ string) *apiErr {
					if typ == "documentDeletion" {
						return newAPIErr("internal", "internal", "disk full")
					}
					return nil
				}
			},
			call:       func(e *Engine) error { return e.Delete(ctx, []string{caseA}) },
			wantStatus: "failed", wantCode: "internal", wantDelete: true,
		},
		{
			name: "task canceled",
			setup: func(f *fakeMeili) {
				f.CancelTask = func(typ string) bool { return typ == "documentAdditionOrUpdate" }
			},
			call:       func(e *Engine) error { return e.Index(ctx, []search.CaseDoc{fixtureA()}) },
			wantStatus: "canceled",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			e := openFake(t, f, 1)
			if err := e.Index(ctx, []search.CaseDoc{fixtureB()}); err != nil {
				t.Fatal(err)
			}
			before := docIDs(f.Index("cases_v1"))
			deletions := func() int {
				return len(f.Requests(http.MethodPost, "/indexes/cases_v1/documents/delete")) +
					len(f.Requests(http.MethodPost, "/indexes/cases_v1/documents/delete-batch"))
			}
			deletesBefore := deletions()
			tt.setup(f)

			me := asError(t, tt.call(e))
			if me.TaskStatus != tt.wantStatus || me.Code != tt.wantCode || me.Temporary() {
				t.Errorf("error %+v: want task %s code %q, not temporary", me, tt.wantStatus, tt.wantCode)
			}
			if !strings.Contains(me.Error(), tt.wantStatus) || (tt.wantCode != "" && !strings.Contains(me.Error(), tt.wantCode)) {
				t.Errorf("message %q lacks status or code", me.Error())
			}
			deleted := deletions() > deletesBefore
			if deleted != tt.wantDelete {
				t.Errorf("deletion sent: %v, want %v", deleted, tt.wantDelete)
			}
			if tt.name == "document addition fails" || tt.name == "task canceled" {
				if got := docIDs(f.Index("cases_v1")); !reflect.DeepEqual(got, before) {
					t.Errorf("documents changed by a failed task: %v -> %v", before, got)
				}
			}
		})
	}
}

func TestHTTPErrors(t *testing.T) {
	ctx := context.Background()

	t.Run("404 index not found is typed", func(t *testing.T) {
		f := newFake(t)
		e := openFake(t, f, 1)
		f.Mu.Lock()
		delete(f.Indexes, "cases_v1")
		f.Mu.Unlock()
		_, err := e.Search(ctx, search.Query{Words: []string{"x"}})
		me := asError(t, err)
		if me.StatusCode != 404 || me.Code != "index_not_found" || me.Type != "invalid_request" || me.Temporary() {
			t.Errorf("error %+v", me)
		}
		_, err = e.Count(ctx)
		if me := asError(t, err); me.Code != "index_not_found" {
			t.Errorf("Count error %+v", me)
		}
	})

	t.Run("400 with Meilisearch's error body", func(t *testing.T) {
		f := newFake(t)
		e := openFake(t, f, 1)
		f.Intercept = func(r recorded) (int, []byte, bool) {
			if r.Path == "/indexes/cases_v1/search" {
				b, _ := json.Marshal(newAPIErr("invalid_search_filter", "invalid_request", "Attribute `x` is not filterable."))
				return 400, b, true
			}
			return 0, nil, false
		}
		_, err := e.Search(ctx, search.Query{})
		me := asError(t, err)
		if me.StatusCode != 400 || me.Code != "invalid_search_filter" || !strings.Contains(me.Message, "not filterable") || me.Temporary() {
			t.Errorf("error %+v", me)
		}
	})

	unavailable := []struct {
		name, method, path string
		body               string
		call               func(e *Engine) error
	}{
		{"add documents", http.MethodPost, "/indexes/cases_v1/documents", "upstream unavailable",
			func(e *Engine) error { return e.Index(ctx, []search.CaseDoc{fixtureA()}) }},
		// task 4: after the two indexes' creation and settings
		{"task poll", http.MethodGet, "/tasks/4", `{"message":"overloaded","code":"internal","type":"internal","link":"https://docs.meilisearch.com/errors#internal"}`,
			func(e *Engine) error { return e.Index(ctx, []search.CaseDoc{fixtureA()}) }},
		{"search", http.MethodPost, "/indexes/cases_v1/search", "",
			func(e *Engine) error { _, err := e.Search(ctx, search.Query{}); return err }},
		{"delete", http.MethodPost, "/indexes/cases_v1/documents/delete", "busy",
			func(e *Engine) error { return e.Delete(ctx, []string{caseA}) }},
	}
	for _, tt := range unavailable {
		t.Run("503 on "+tt.name+" is not retried", func(t *testing.T) {
			f := newFake(t)
			e := openFake(t, f, 1)
			f.Intercept = func(r recorded) (int, []byte, bool) {
				if r.Method == tt.method && r.Path == tt.path {
					return http.StatusServiceUnavailable, []byte(tt.body), true
				}
				return 0, nil, false
			}
			me := asError(t, tt.call(e))
			if me.StatusCode != http.StatusServiceUnavailable || !me.Temporary() {
				t.Errorf("error %+v: want HTTP 503, temporary", me)
			}
			if n := len(f.Requests(tt.method, tt.path)); n != 1 {
				t.Errorf("%s %s sent %d times: the client retried", tt.method, tt.path, n)
			}
		})
	}

	t.Run("unreachable server", func(t *testing.T) {
		f := newFake(t)
		e := openFake(t, f, 1)
		f.Srv.Close()
		me := asError(t, e.Ping(ctx))
		if me.StatusCode != 0 || !me.Temporary() {
			t.Errorf("error %+v", me)
		}
	})
}

// TestFilterInjection checks that user text arrives at Meilisearch only as
// quoted, escaped literals, each constraint its own array element, and that
// injected operators therefore cannot widen a search.
func TestFilterInjection(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	e := openFake(t, f, 1)
	if err := e.Index(ctx, []search.CaseDoc{fixtureA(), fixtureB()}); err != nil {
		t.Fatal(err)
	}
	hostile := []string{
		`open" OR status = "closed`,
		`x") OR (status = "open`,
		`x\" OR status = \"open`,
		`x\`,
		`x" OR case_id IN ["` + caseA + `"] OR status = "y`,
		`status:open OR customer:cust-1`,
		"x\" OR status = \"open\n",
	}
	for _, h := range hostile {
		t.Run(h, func(t *testing.T) {
			q := search.Query{Filter: search.Filter{Statuses: []string{h}, CustomerIDs: []string{"cust-1"}, Tags: []string{h, "vip"}}}
			if queryWords(cleanTerm(h)) <= maxQueryWords {
				q.Words = []string{h}
			}
			res, err := e.Search(ctx, q)
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			if res.Total != 0 || len(res.Hits) != 0 {
				t.Fatalf("injected filter widened the search: %+v", res)
			}
			body := lastBody(t, f, http.MethodPost, "/indexes/cases_v1/search")
			want := []any{eq(attrStatus, encodeValue(h)).String(), eq(attrCustomerID, encodeValue("cust-1")).String(), in(attrTags, hexAll([]string{search.FoldKeyword(h), "vip"})).String()} // tags are folded (issue 16)
			if !reflect.DeepEqual(body["filter"], want) {
				t.Fatalf("filter %#v, want %#v", body["filter"], want)
			}
			// Each element reads back as one predicate whose literal is the
			// user's text, byte for byte (a tag as folded).
			for i, el := range body["filter"].([]any) {
				p, err := parsePredicate(el.(string))
				if err != nil {
					t.Fatalf("element %d %q: %v", i, el, err)
				}
				if i == 0 && (p.Attr != "x_status" || len(p.Strs) != 1 || decodeValue(p.Strs[0]) != h) {
					t.Errorf("status predicate %+v", p)
				}
				if i == 2 && (p.Attr != "x_tags" || !reflect.DeepEqual(p.Strs, hexAll([]string{search.FoldKeyword(h), "vip"}))) {
					t.Errorf("tags predicate %+v", p)
				}
			}
			sent, _ := body["q"].(string)
			if strings.Contains(sent, `"`) || strings.HasPrefix(sent, "-") || strings.Contains(sent, " -") {
				t.Errorf("q %q carries phrase or exclusion syntax from user text", sent)
			}
		})
	}
}

func TestDeepPaging(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	e := openFake(t, f, 1)
	const n = 1500 // beyond Meilisearch's default maxTotalHits of 1,000
	docs := make([]search.CaseDoc, n)
	for i := range docs {
		docs[i] = search.CaseDoc{
			CaseID: fmt.Sprintf("case-%04d", i+1), Number: int64(i + 1), Subject: "paging", Status: "open",
			CreatedAt: t0, UpdatedAt: t0,
			Contacts: []search.ContactDoc{{ID: fmt.Sprintf("contact-%04d", i+1), Channel: "email", Body: "deep page", OccurredAt: t0.Add(time.Duration(i) * time.Minute)}},
		}
	}
	if err := e.Index(ctx, docs); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		offset, limit int
		first, count  int // expected first case number and hit count
	}{
		{0, 20, 1, 20},
		{1480, 20, 1481, 20},
		{1001, 7, 1002, 7},
		{1495, 10, 1496, 5},
		{839, 2, 840, 2}, // no page size in [limit, 4*limit] covers it: offset/limit plus a count
		{1500, 20, 0, 0},
		{5000, 20, 0, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("offset %d limit %d", tt.offset, tt.limit), func(t *testing.T) {
			res, err := e.Search(ctx, search.Query{Words: []string{"deep"}, Sort: search.SortOldest, Offset: tt.offset, Limit: tt.limit})
			if err != nil {
				t.Fatal(err)
			}
			if res.Total != n {
				t.Errorf("total %d, want %d", res.Total, n)
			}
			if len(res.Hits) != tt.count {
				t.Fatalf("%d hits, want %d", len(res.Hits), tt.count)
			}
			for i, h := range res.Hits {
				if h.Number != int64(tt.first+i) {
					t.Fatalf("hit %d is case %d, want %d", i, h.Number, tt.first+i)
				}
			}
		})
	}
}
