package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/casevault/casevault/testkit"
)

// A contact written through the API becomes findable through the outbox
// and the embedded engine, with typos and in Chinese, and a masked card
// number is not searchable.
func TestSearchFindsWhatWasWritten(t *testing.T) {
	dir := t.TempDir()
	p, admin := startAdmin(t, dir)
	base := p.api()
	_, cust := call(t, "POST", base+"/customers", admin, map[string]any{"name": "Wang"})
	_, cs := call(t, "POST", base+"/cases", admin, map[string]any{"customer_id": cust["id"], "subject": "Refund request", "channel": "email", "tags": []string{"vip"}})
	caseID := cs["id"].(string)
	for _, body := range []string{"The customer asked about the invoice refund", "请查看阅读记录", "card 4111 1111 1111 1111 charged"} {
		if code, _ := call(t, "POST", base+"/cases/"+caseID+"/contacts", admin, map[string]any{"channel": "email", "direction": "inbound", "author": "w", "body": body}); code != 201 {
			t.Fatalf("contact: %d", code)
		}
	}
	find := func(q string) float64 {
		code, res := call(t, "GET", base+"/search?q="+url.QueryEscape(q), admin, nil)
		if code != 200 {
			t.Fatalf("search %q: %d %v", q, code, res)
		}
		return res["total"].(float64)
	}
	// Wait until the outbox is drained: then everything written is indexed.
	testkit.Eventually(t, 20*time.Second, "the outbox to drain", func() bool {
		_, st := call(t, "GET", base+"/search/status", admin, nil)
		p, ok := st["pending"].(float64)
		return ok && p == 0
	})
	// A card number in q is masked like the stored body (issue 12 §5): it
	// finds the contact by the last four digits both keep, never by the
	// digits behind the mask ("41111111" is no word of any document).
	for q, want := range map[string]float64{"invoise": 1, "阅读": 1, "tag:vip refund": 1, "status:closed invoice": 0, "4111111111111111": 1, "41111111": 0} {
		if got := find(q); got != want {
			t.Errorf("search %q: total %v, want %v", q, got, want)
		}
	}
	code, st := call(t, "GET", base+"/search/status", admin, nil)
	if code != 200 || st["engine"] != "bleve" || st["pending"].(float64) != 0 {
		t.Fatalf("search status: %d %v", code, st)
	}
	code, ready := call(t, "GET", "http://"+p.addr+"/readyz", "", nil)
	checks, _ := ready["checks"].(map[string]any)
	if code != 200 || checks["index"] == nil || checks["blobs"] == nil {
		t.Fatalf("readyz: %d %v", code, ready)
	}
	// Rebuild through the running server; it keeps answering meanwhile.
	if code, _ := call(t, "POST", base+"/search/reindex", admin, nil); code != 202 {
		t.Fatalf("reindex: %d", code)
	}
	testkit.Eventually(t, 20*time.Second, "the reindex to switch to cases_v2", func() bool {
		_, st := call(t, "GET", base+"/search/status", admin, nil)
		return st["index"] == "cases_v2" && find("invoice") == 1
	})
	// Offline reindex refuses while the server holds the index.
	if err := exec.Command(binary(t), "reindex", "--data-dir", dir).Run(); err == nil {
		t.Fatal("offline reindex succeeded while the server holds the index")
	}
}

// A lost index directory is rebuilt from the store at the next start, and
// the index gauges are exported.
func TestLostIndexIsRebuiltAtStart(t *testing.T) {
	dir := t.TempDir()
	p, tok := startAdmin(t, dir)
	base := p.api()
	_, cust := call(t, "POST", base+"/customers", tok, map[string]any{"name": "Rebuild"})
	_, cs := call(t, "POST", base+"/cases", tok, map[string]any{"customer_id": cust["id"], "subject": "lost index", "channel": "web"})
	call(t, "POST", base+"/cases/"+cs["id"].(string)+"/contacts", tok, map[string]any{"channel": "web", "direction": "inbound", "author": "a", "body": "warranty question"})
	waitTotal := func(base string, want float64) {
		t.Helper()
		testkit.Eventually(t, 20*time.Second, fmt.Sprintf("%v hits for warranty", want), func() bool {
			_, res := call(t, "GET", base+"/search?q=warranty", tok, nil)
			return res != nil && res["total"] == want
		})
	}
	waitTotal(base, 1)
	res, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), "\ncasevault_index_pending ") || !strings.Contains(string(body), "casevault_index_lag_seconds") {
		t.Fatalf("index gauges missing from /metrics")
	}
	// the queue tables' vacuum counters, one series per table (0 on
	// SQLite, which needs none)
	for _, series := range []string{`casevault_queue_vacuums_total{table="audit_pending"} 0`, `casevault_queue_vacuums_total{table="outbox"} 0`,
		`casevault_queue_vacuum_failures_total{table="audit_pending"} 0`, `casevault_queue_vacuum_failures_total{table="outbox"} 0`} {
		if !strings.Contains(string(body), "\n"+series+"\n") {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	// the contact batches: the one contact written, in one batch, on
	// SQLite's one slot
	for _, series := range []string{"casevault_contact_batches_total 1", "casevault_contact_batch_contacts_total 1", "casevault_contact_batch_slots 1", "casevault_contact_batch_overflows_total 0"} {
		if !strings.Contains(string(body), "\n"+series+"\n") {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	if !strings.Contains(string(body), "\ncasevault_contact_batch_seconds_total ") {
		t.Error("/metrics lacks casevault_contact_batch_seconds_total")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = p.wait()
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	p2 := start(t, dir)
	waitTotal(p2.api(), 1)
}
