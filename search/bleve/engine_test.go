package bleve_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/search/bleve"
	"github.com/casevault/casevault/search/searchtest"
)

func TestConformance(t *testing.T) {
	// Bleve answers from what it applied once Index returns, so the suite
	// has nothing to wait for: a short poll makes a wrong answer fail in
	// seconds (at the default 30 s a check, a broken contact column ran
	// the suite past go test's 10 minutes).
	searchtest.RunWith(t, searchtest.Options{Timeout: 2 * time.Second}, func(t *testing.T) search.Engine {
		e, err := bleve.Open(t.Context(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return e
	})
}

func current(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "CURRENT"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func exists(dir, name string) bool {
	_, err := os.Stat(filepath.Join(dir, name))
	return err == nil
}

func TestVersionedIndexes(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	e1, err := bleve.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if e1.IndexName() != "cases_v1" || current(t, dir) != "cases_v1" || e1.Outdated() || !e1.Created() {
		t.Fatalf("fresh open: index %s current %s outdated %v", e1.IndexName(), current(t, dir), e1.Outdated())
	}
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	doc := search.CaseDoc{CaseID: "c1", Number: 7, Subject: "printer jam", Status: "open", CreatedAt: at, UpdatedAt: at}
	if err := e1.Index(ctx, []search.CaseDoc{doc}); err != nil {
		t.Fatal(err)
	}

	e2, err := bleve.Build(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if e2.IndexName() != "cases_v2" || current(t, dir) != "cases_v1" {
		t.Fatalf("build: %s, current %s", e2.IndexName(), current(t, dir))
	}
	if n, _ := e2.Count(ctx); n != 0 {
		t.Fatalf("new index has %d cases", n)
	}
	if err := e2.Drop(ctx); err != nil { // a failed rebuild is thrown away
		t.Fatal(err)
	}
	if exists(dir, "cases_v2") {
		t.Fatal("dropped index still on disk")
	}

	e3, err := bleve.Build(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if e3.IndexName() != "cases_v2" {
		t.Fatalf("rebuild named %s", e3.IndexName())
	}
	if err := e3.Index(ctx, []search.CaseDoc{doc}); err != nil {
		t.Fatal(err)
	}
	// the old index keeps answering until the switch
	if res, err := e1.Search(ctx, search.Query{Words: []string{"printer"}}); err != nil || res.Total != 1 {
		t.Fatalf("old index during rebuild: %v %v", res.Total, err)
	}
	if err := e3.Activate(ctx); err != nil {
		t.Fatal(err)
	}
	if current(t, dir) != "cases_v2" {
		t.Fatal("CURRENT not switched")
	}
	if err := e3.Drop(ctx); err == nil {
		t.Fatal("dropped the live index")
	}
	if err := e1.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e3.Close(); err != nil {
		t.Fatal(err)
	}

	e4, err := bleve.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer e4.Close()
	if e4.IndexName() != "cases_v2" || exists(dir, "cases_v1") || e4.Created() || e4.Outdated() {
		t.Fatalf("reopen: %s", e4.IndexName())
	}
	res, err := e4.Search(ctx, search.Query{Words: []string{"printer"}})
	if err != nil || res.Total != 1 || res.Hits[0].Number != 7 {
		t.Fatalf("after reopen: %+v %v", res, err)
	}
}

func TestOpenRejectsBadCurrent(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "CURRENT"), []byte("../etc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := bleve.Open(t.Context(), dir); err == nil {
		t.Fatal("Open accepted CURRENT pointing outside")
	}
}

func TestSearchRejectsUnknownSort(t *testing.T) {
	e, err := bleve.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Search(t.Context(), search.Query{Sort: "sideways"}); err == nil {
		t.Fatal("unknown sort accepted")
	}
}
