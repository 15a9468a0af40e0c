package web

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/testkit"
)

func testConsole(tb testing.TB) *Console {
	tb.Helper()
	w, err := New(Config{}, Deps{})
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

// testReq is a request of a signed-in agent on a bare Fiber context.
func testReq(w *Console, app *fiber.App) (*req, func()) {
	fc := app.AcquireCtx(&fasthttp.RequestCtx{})
	u := auth.User{ID: "u1", Name: "agent1", Role: auth.RoleAgent}
	r := &req{c: fc, w: w, ses: auth.Session{Secret: "s", User: u}, L: w.localeFor(fc, &u)}
	return r, func() { app.ReleaseCtx(fc) }
}

// searchData is a search page of 20 hits, with facets, as searchPage
// builds it.
func searchData() map[string]any {
	hits := make([]hitView, 20)
	for i := range hits {
		h := search.Hit{CaseID: fmt.Sprintf("case-%d", i), Number: int64(1000 + i), Subject: "Refund for the parcel to Lagos", Status: "open",
			Snippet: "…the customer asks for a <mark>refund</mark>: the parcel never arrived in <mark>Lagos</mark> &lt;again&gt;…"}
		hits[i] = hitView{Hit: h, SnippetHTML: safeSnippet(h.Snippet)}
	}
	vals := url.Values{"q": {"refund lagos"}}
	facets := map[string]map[string]int64{"status": {"open": 12, "closed": 8}, "channel": {"email": 15, "phone": 5},
		"tag": {"vip": 3, "refund": 17}, "purpose": {"customer_service": 20}}
	return map[string]any{"Q": "refund lagos", "Vals": vals, "Hits": hits, "Total": int64(4321), "Page": 1,
		"Next": pageHref(vals, 2), "Facets": facetLinks(vals, facets)}
}

func caseData(contacts int) map[string]any {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cs := cases.Case{ID: "c1", Number: 17, CustomerID: "cu1", Subject: "Parcel", Status: "open", Priority: "normal", Tags: []string{"vip"}, CreatedAt: at}
	for i := range contacts {
		t := at.Add(time.Duration(i) * time.Hour)
		cs.Contacts = append(cs.Contacts, cases.Contact{ID: fmt.Sprintf("ct%d", i), Channel: "email", Direction: "inbound", Author: "Han Meimei",
			Body: strings.Repeat("The parcel has not arrived yet. ", 8), OccurredAt: t, RetainUntil: &t,
			Attachments: []cases.Attachment{{ID: fmt.Sprintf("a%d", i), Filename: "photo.jpg", ContentType: "image/jpeg", Size: 1234}}})
	}
	return map[string]any{"Case": cs, "Timeline": caseTimeline(cs), "CanWrite": true, "CanManage": false,
		"Statuses": cases.Statuses, "Channels": cases.Channels, "Directions": cases.Directions, "Purposes": cases.Purposes, "Tags": "vip"}
}

// benchRender renders one page b.N times and reports the p99 of one
// render; the login page, rendered in the same run, is the reference.
func benchRender(b *testing.B, page string, data func() map[string]any) {
	w := testConsole(b)
	app := fiber.New()
	r, release := testReq(w, app)
	defer release()
	d := data()
	times := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	cpu0 := testkit.ProcessCPU(b)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := r.render(page, "t", d); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	// CPU time per render: what the figure is on a machine shared with
	// other work (the wall-clock p99 then mostly measures the waiting).
	b.ReportMetric(float64((testkit.ProcessCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(len(r.c.Response().Body())), "bytes")
}

func BenchmarkRenderLoginReference(b *testing.B) {
	benchRender(b, "login", func() map[string]any { return map[string]any{"Next": "/", "Error": "", "Name": ""} })
}

func BenchmarkRenderSearch20Hits(b *testing.B) { benchRender(b, "search", searchData) }

func BenchmarkRenderCase500Contacts(b *testing.B) {
	benchRender(b, "case", func() map[string]any { return caseData(500) })
}

// TestSearchPageWeight: the search page with 20 hits, its stylesheet and
// its script (everything a first load transfers; no images or fonts) stay
// under 150 KB uncompressed.
func TestSearchPageWeight(t *testing.T) {
	w := testConsole(t)
	app := fiber.New()
	r, release := testReq(w, app)
	defer release()
	if err := r.render("search", "Search", searchData()); err != nil {
		t.Fatal(err)
	}
	html := len(r.c.Response().Body())
	total := html
	for _, a := range []string{"app.css", "app.js"} {
		b, err := fs.ReadFile(w.assets, a)
		if err != nil {
			t.Fatal(err)
		}
		total += len(b)
	}
	t.Logf("search page %d B, with assets %d B", html, total)
	if total >= 150<<10 {
		t.Fatalf("first load of the search page is %d bytes, over 150 KB", total)
	}
}

// TestSafeSnippet: only <mark> survives, whatever an engine returns.
func TestSafeSnippet(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a <mark>b</mark> c", "a <mark>b</mark> c"},
		{"&lt;script&gt;x<mark>y</mark>", "&lt;script&gt;x<mark>y</mark>"},
		{"<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"},
		{"<mark><img src=x onerror=alert(1)></mark>", "<mark>&lt;img src=x onerror=alert(1)&gt;</mark>"},
		{"<mark>unclosed", "<mark>unclosed</mark>"},
		{"</mark>stray", "&lt;/mark&gt;stray"},
		{`"quote' &amp;`, "&#34;quote&#39; &amp;"},
	} {
		if got := string(safeSnippet(tc.in)); got != tc.want {
			t.Errorf("safeSnippet(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestCatalogueComplete: every key has both languages, and every key the
// templates and pages use exists.
func TestCatalogueComplete(t *testing.T) {
	for lang, files := range map[string][]map[string]string{"en": {messagesEN, messagesOpsEN, agentMessagesEN}, "zh-Hans": {messagesZH, messagesOpsZH, agentMessagesZH}} {
		seen := map[string]bool{}
		for _, f := range files {
			for k := range f {
				if seen[k] {
					t.Errorf("%s: %s is in two message files", lang, k)
				}
				seen[k] = true
			}
		}
	}
	cat := newCatalogue()
	en, zh := cat.msgs["en"], cat.msgs["zh-Hans"]
	for k := range en {
		if _, ok := zh[k]; !ok {
			t.Errorf("%s: no zh-Hans text", k)
		}
	}
	for k := range zh {
		if _, ok := en[k]; !ok {
			t.Errorf("%s: no English text", k)
		}
	}
	names, _ := fs.Glob(templateFS, "templates/*.html")
	keyRE := regexp.MustCompile(`\.T "([a-z_.]+)"`)
	for _, n := range names {
		b, _ := fs.ReadFile(templateFS, n)
		for _, m := range keyRE.FindAllStringSubmatch(string(b), -1) {
			if _, ok := en[m[1]]; !ok {
				t.Errorf("%s uses %s, which the catalogue lacks", n, m[1])
			}
		}
	}
	// The pages' own texts (titles, flashes, errors) too.
	goRE := regexp.MustCompile(`\.T\("([a-z_]+(?:\.[a-z_]+)+)"`)
	files, _ := filepath.Glob("*.go")
	for _, n := range files {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range goRE.FindAllStringSubmatch(string(b), -1) {
			if _, ok := en[m[1]]; !ok {
				t.Errorf("%s uses %s, which the catalogue lacks", n, m[1])
			}
		}
	}
	flashRE := regexp.MustCompile(`redirect\("[^"]*", "([a-z_]+)"\)`)
	for _, n := range files {
		b, _ := os.ReadFile(n)
		for _, m := range flashRE.FindAllStringSubmatch(string(b), -1) {
			if _, ok := en["flash."+m[1]]; !ok {
				t.Errorf("%s flashes %s, which the catalogue lacks", n, m[1])
			}
		}
	}
	for _, f := range []string{"status", "channel", "tag", "purpose"} {
		if _, ok := en["facet."+f]; !ok {
			t.Errorf("no label for facet %s", f)
		}
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{"/search?q=x": "/search?q=x", "//evil.example": "/", "https://evil.example": "/",
		"/\\evil.example": "/", "": "/", "/a\r\nSet-Cookie: x": "/"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
