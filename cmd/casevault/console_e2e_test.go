package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/casevault/casevault/testkit"
)

// The console's tests run the real binary; the browser tests drive
// Debian's chromium through chromedp and check every page with axe-core.
// Locally a missing chromium or axe-core skips them; under CI it fails them
// (scripts/test.sh installs both).

// axePath is where scripts/test.sh installs axe-core from npm. Without
// CASEVAULT_AXE_JS (a plain `go test` after one `make test`) the same
// install is found from this package's directory, the tests' working
// directory.
func axePath() string {
	if p := os.Getenv("CASEVAULT_AXE_JS"); p != "" {
		return p
	}
	rel := filepath.Join("..", "..", ".tmp", "npm", "node_modules", "axe-core", "axe.min.js")
	if p, err := filepath.Abs(rel); err == nil {
		return p // the messages name the file wherever go test runs
	}
	return rel
}

// axeSource is read once per test binary rather than for every checked page
// (over half a megabyte each time).
var axeSource = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile(axePath())
	return string(b), err
})

const consolePassword = "correct horse battery"

// addUser adds a console user through the CLI (the password on stdin).
func addUser(t *testing.T, dir, name, role string) {
	t.Helper()
	cmd := exec.Command(binary(t), "user", "add", "--data-dir", dir, "--name", name, "--role", role)
	cmd.Stdin = strings.NewReader(consolePassword + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("user add %s: %v\n%s", name, err, out)
	}
}

// consoleClient signs in over plain HTTP and keeps the cookies.
type consoleClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newConsoleClient(t *testing.T, base string) *consoleClient {
	jar, _ := cookiejar.New(nil)
	return &consoleClient{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func (cc *consoleClient) get(path string) (int, string, http.Header) {
	cc.t.Helper()
	res, err := cc.c.Get(cc.base + path)
	if err != nil {
		cc.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

func (cc *consoleClient) post(path string, form url.Values) (int, string, http.Header) {
	cc.t.Helper()
	res, err := cc.c.PostForm(cc.base+path, form)
	if err != nil {
		cc.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

// csrf reads the CSRF token of a page's forms.
func (cc *consoleClient) csrf(path string) string {
	cc.t.Helper()
	_, body, _ := cc.get(path)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		cc.t.Fatalf("no csrf token on %s:\n%s", path, body)
	}
	return m[1]
}

func (cc *consoleClient) login(name, password string) (int, string) {
	cc.t.Helper()
	tok := cc.csrf("/login")
	code, body, _ := cc.post("/login", url.Values{"csrf": {tok}, "name": {name}, "password": {password}})
	return code, body
}

func TestConsoleHTTP(t *testing.T) {
	dir := t.TempDir()
	p, tok := startAdmin(t, dir, "CASEVAULT_CONSOLE_SESSION_IDLE=10s")
	addUser(t, dir, "agent1", "agent")
	addUser(t, dir, "backup1", "backup")
	base := "http://" + p.addr
	_, caseID := newCase(t, p.api(), tok, "Parcel lost", "email")

	t.Run("security headers and sign-in redirect", func(t *testing.T) {
		cc := newConsoleClient(t, base)
		code, _, h := cc.get("/search")
		if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login") {
			t.Fatalf("GET /search without a session: %d %s", code, h.Get("Location"))
		}
		_, _, h = cc.get("/login")
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Fatalf("CSP %q", csp)
		}
		var session bool
		cc.login("agent1", consolePassword)
		u, _ := url.Parse(base)
		for _, ck := range cc.c.Jar.Cookies(u) {
			session = session || ck.Name == "cv_session"
		}
		if !session {
			t.Fatal("no session cookie after sign-in")
		}
	})

	t.Run("CSRF", func(t *testing.T) {
		cc := newConsoleClient(t, base)
		if code, body := cc.login("agent1", consolePassword); code != http.StatusSeeOther {
			t.Fatalf("login: %d %s", code, body)
		}
		form := url.Values{"channel": {"phone"}, "direction": {"inbound"}, "body": {"no token"}}
		for _, tc := range []struct {
			name, token string
		}{{"missing", ""}, {"wrong", strings.Repeat("0", 64)}} {
			f := url.Values{}
			for k, v := range form {
				f[k] = v
			}
			if tc.token != "" {
				f.Set("csrf", tc.token)
			}
			if code, _, _ := cc.post("/cases/"+caseID+"/contacts", f); code != http.StatusForbidden {
				t.Errorf("%s CSRF token: %d, want 403", tc.name, code)
			}
		}
		form.Set("csrf", cc.csrf("/cases/"+caseID))
		if code, body, _ := cc.post("/cases/"+caseID+"/contacts", form); code != http.StatusSeeOther {
			t.Fatalf("with the token: %d %s", code, body)
		}
	})

	t.Run("role matrix", func(t *testing.T) {
		cc := newConsoleClient(t, base)
		cc.login("backup1", consolePassword)
		for _, path := range []string{"/search", "/cases/" + caseID, "/admin/users", "/holds"} {
			if code, _, _ := cc.get(path); code != http.StatusForbidden {
				t.Errorf("backup role GET %s: %d, want 403", path, code)
			}
		}
		if code, _, _ := cc.get("/backups"); code != http.StatusOK {
			t.Errorf("backup role GET /backups: %d", code)
		}
	})

	t.Run("session expiry and sign-out", func(t *testing.T) {
		cc := newConsoleClient(t, base)
		cc.login("agent1", consolePassword)
		if code, _, _ := cc.get("/search"); code != http.StatusOK {
			t.Fatalf("signed in: %d", code)
		}
		time.Sleep(12 * time.Second) // the idle timeout is 10s
		if code, _, h := cc.get("/search"); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login") {
			t.Fatalf("after the idle timeout: %d %s", code, h.Get("Location"))
		}
		cc.login("agent1", consolePassword)
		tokn := cc.csrf("/prefs")
		if code, _, _ := cc.post("/logout", url.Values{"csrf": {tokn}}); code != http.StatusSeeOther {
			t.Fatalf("logout: %d", code)
		}
		if code, _, _ := cc.get("/search"); code != http.StatusSeeOther {
			t.Fatalf("after sign-out: %d", code)
		}
	})

	t.Run("lockout", func(t *testing.T) {
		addUser(t, dir, "victim", "agent")
		cc := newConsoleClient(t, base)
		for i := 0; i < 5; i++ {
			if code, _ := cc.login("victim", "wrong password!"); code != http.StatusUnauthorized {
				t.Fatalf("attempt %d: %d, want 401", i, code)
			}
		}
		code, body := cc.login("victim", consolePassword)
		if code != http.StatusUnauthorized || !strings.Contains(body, "locked") {
			t.Fatalf("the right password while locked out: %d", code)
		}
		code, res := call(t, "GET", p.api()+"/audit?action=console.lockout", tok, nil)
		if code != 200 || !strings.Contains(toJSON(res), "console.lockout") {
			t.Fatalf("no lockout audit event: %d %v", code, res)
		}
	})

	t.Run("console off", func(t *testing.T) {
		d2 := t.TempDir()
		p2 := start(t, d2, "CASEVAULT_CONSOLE=false")
		res, err := http.Get("http://" + p2.addr + "/login")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Fatalf("--console=false: GET /login %d, want 404", res.StatusCode)
		}
	})
}

// browserTools finds chromium and checks that axe-core can be read (check
// injects it): either missing, the browser tests skip locally and fail
// under CI. It returns chromium's path.
func browserTools(t *testing.T) string {
	t.Helper()
	chrome := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chrome = p
			break
		}
	}
	if chrome == "" {
		missingTool(t, "chromium is not installed (scripts/test.sh installs it with apt-get)",
			"chromium is not installed; the console's browser tests need it (apt-get install chromium)")
	}
	if _, err := axeSource(); err != nil {
		missingTool(t, fmt.Sprintf("axe-core is not installed: %v (run `make test`: scripts/test.sh installs it with npm into .tmp/npm)", err),
			fmt.Sprintf("axe-core is not installed (%v); the console's browser tests need it: run `make test` once "+
				"(it installs axe-core with npm into .tmp/npm) or set CASEVAULT_AXE_JS to an axe.min.js", err))
	}
	return chrome
}

// missingTool stops a browser test whose tool is missing: locally a skip,
// under CI a failure, since CI must never pass by skipping.
func missingTool(t *testing.T, ciMsg, skipMsg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(ciMsg)
	}
	t.Skip(skipMsg)
}

// browser is one signed-in browser context (its own cookies).
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	shot string // directory for screenshots
}

func newBrowser(t *testing.T, root context.Context, base, shots string) *browser {
	ctx, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	ctx, cancel2 := context.WithTimeout(ctx, 5*time.Minute)
	t.Cleanup(cancel2)
	return &browser{t: t, ctx: ctx, base: base, shot: shots}
}

func (b *browser) run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) signIn(name string) {
	b.t.Helper()
	b.run(chromedp.Navigate(b.base+"/login"),
		chromedp.SendKeys(chromedp.ID("name"), name),
		chromedp.SendKeys(chromedp.ID("password"), consolePassword),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.CSS("header nav")))
}

// axeResult is what check reads back from axe.run.
type axeResult struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  int    `json:"nodes"`
}

// check injects axe-core into the current page and fails on any serious
// or critical violation, then saves a screenshot named name.
func (b *browser) check(name string) {
	b.t.Helper()
	src, err := axeSource()
	if err != nil {
		b.t.Fatal(err) // not reached: browserTools read it already
	}
	script := src + `;
(async () => { const r = await axe.run(document, {resultTypes: ["violations"]});
  return r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
    .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length})); })()`
	violations, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]axeResult](script, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("axe on %s: %v", name, err)
	}
	for _, v := range violations {
		b.t.Errorf("axe on %s: %s (%s, %d nodes): %s", name, v.ID, v.Impact, v.Nodes, v.Help)
	}
	img, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(80))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.shot, name+".jpg"), img, 0o600); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

func (b *browser) eval(expr string) int {
	b.t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](expr))
	if err != nil {
		b.t.Fatal(err)
	}
	return n
}
func TestConsoleBrowser(t *testing.T) {
	chrome := browserTools(t)
	dir := t.TempDir()
	p, tok := startAdmin(t, dir)
	for _, u := range [][2]string{{"agent1", "agent"}, {"legal1", "legal"}, {"ops1", "backup"}, {"admin1", "admin"}} {
		addUser(t, dir, u[0], u[1])
	}
	base := "http://" + p.addr
	shots := os.Getenv("CASEVAULT_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}

	// The data: a case found by a typo, one by Chinese text, one whose
	// every displayed field carries a script.
	_, lagos := newCase(t, p.api(), tok, "Refund for the parcel to Lagos", "email")
	addContact(t, p.api(), tok, lagos, "email", "The customer asks for a refund: the parcel never arrived in Lagos.")
	_, zh := newCase(t, p.api(), tok, "退款申请", "chat")
	addContact(t, p.api(), tok, zh, "chat", "客户申请退款，包裹在运输途中丢失。")
	const xss = `<script>window.__xss=1</script><img src=x onerror="window.__xss=1">`
	code, cust := call(t, "POST", p.api()+"/customers", tok, map[string]any{"name": "Eve " + xss, "email": "eve@example.com"})
	if code != 201 {
		t.Fatalf("customer: %d", code)
	}
	code, evil := call(t, "POST", p.api()+"/cases", tok, map[string]any{"customer_id": cust["id"], "subject": "Payload " + xss, "channel": "web"})
	if code != 201 {
		t.Fatalf("case: %d %v", code, evil)
	}
	evilID := evil["id"].(string)
	code, _ = call(t, "POST", p.api()+"/cases/"+evilID+"/contacts", tok, map[string]any{"channel": "web", "direction": "inbound", "author": "Eve " + xss, "body": "Payload body " + xss})
	if code != 201 {
		t.Fatalf("contact: %d", code)
	}
	waitSearch(t, p.api(), tok, "Lagos", lagos)
	waitSearch(t, p.api(), tok, url.QueryEscape("退款"), zh)
	waitSearch(t, p.api(), tok, "Payload", evilID)
	var lagosNumber float64
	if code, c := call(t, "GET", p.api()+"/cases/"+lagos, tok, nil); code == 200 {
		lagosNumber = c["number"].(float64)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	// The browser starts with the first Run, on a context without a
	// timeout (it lives as long as that context); each role then gets its
	// own browser context (cookies) in it.
	root, cancelRoot := chromedp.NewContext(alloc)
	t.Cleanup(cancelRoot)
	if err := chromedp.Do(root, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	alloc = root

	t.Run("agent", func(t *testing.T) {
		b := newBrowser(t, alloc, base, shots)
		b.run(chromedp.Navigate(base + "/login"))
		b.check("login")
		b.signIn("agent1")
		b.check("search-empty")

		for _, tc := range []struct{ name, q, want string }{
			{"typo", "Lagoss refnud", "Refund for the parcel to Lagos"},
			{"chinese", "退款", "退款申请"},
		} {
			b.run(chromedp.Navigate(base+"/search?q="+url.QueryEscape(tc.q)), chromedp.WaitVisible(chromedp.CSS("ol.hits")))
			if got := b.text("ol.hits"); !strings.Contains(got, tc.want) {
				t.Errorf("search %s %q: hits %q, want %q", tc.name, tc.q, got, tc.want)
			}
		}
		b.run(chromedp.Navigate(base+"/search?q=Lagos"), chromedp.WaitVisible(chromedp.CSS("ol.hits")))
		b.check("search")

		// By number: the case opens directly.
		b.run(chromedp.Navigate(base+"/search?q="+url.QueryEscape(fmt.Sprintf("#%d", int(lagosNumber)))), chromedp.WaitVisible(chromedp.CSS("ol.timeline")))
		if h := b.text("h1"); !strings.Contains(h, "Lagos") {
			t.Fatalf("case by number: h1 %q", h)
		}
		b.check("case")

		// Add a contact on the case page.
		b.run(chromedp.SendKeys(chromedp.ID("body"), "Called back: refund approved."),
			chromedp.Submit(chromedp.ID("body")), chromedp.WaitVisible(chromedp.CSS("p.flash")))
		if got := b.text("ol.timeline"); !strings.Contains(got, "refund approved") {
			t.Fatalf("the new contact is not on the timeline: %q", got)
		}

		// Every field with a payload shows it as text, runs nothing.
		for _, path := range []string{"/cases/" + evilID, "/customers/" + cust["id"].(string), "/search?q=Payload"} {
			b.run(chromedp.Navigate(base+path), chromedp.WaitReady(chromedp.CSS("main")))
			fired := b.eval(`window.__xss === 1 ? 1 : 0`) == 1
			body := b.text("main")
			if fired || !strings.Contains(body, "<script>window.__xss=1</script>") {
				t.Errorf("%s: payload ran (%v) or is not shown as text", path, fired)
			}
		}
		b.run(chromedp.Navigate(base + "/customers/" + cust["id"].(string)))
		b.check("customer")
	})

	t.Run("legal", func(t *testing.T) {
		b := newBrowser(t, alloc, base, shots)
		b.signIn("legal1")
		b.run(chromedp.Navigate(base + "/holds"))
		b.check("holds")
		b.run(chromedp.SendKeys(chromedp.ID("matter"), "Lagos dispute"), chromedp.SendKeys(chromedp.ID("reason"), "litigation expected"),
			chromedp.SendKeys(chromedp.ID("query"), "Lagos"), chromedp.Submit(chromedp.ID("matter")),
			chromedp.WaitVisible(chromedp.CSS("p.flash")))
		if got := b.text("main"); !strings.Contains(got, "Lagos dispute") {
			t.Fatalf("hold page: %q", got)
		}
		b.check("hold")
		b.run(chromedp.Navigate(base+"/audit?verify=1"), chromedp.WaitVisible(chromedp.CSS("p[role=status]")))
		if got := b.text("p[role=status]"); !strings.Contains(got, "intact") {
			t.Errorf("audit verify: %q", got)
		}
		b.check("audit")
	})

	t.Run("operator", func(t *testing.T) {
		b := newBrowser(t, alloc, base, shots)
		b.signIn("ops1")
		b.run(chromedp.Navigate(base+"/backups"), chromedp.Click(chromedp.CSS("form[action='/backups'] button")),
			chromedp.WaitVisible(chromedp.CSS("p.flash")))
		testkit.Eventually(t, 90*time.Second, "the backup to complete", func() bool {
			b.run(chromedp.Navigate(base + "/backups"))
			return b.eval(`document.querySelectorAll("form[action$='/verify']").length`) > 0
		})
		b.check("backups")
		b.run(chromedp.Click(chromedp.CSS("form[action$='/verify'] button")), chromedp.WaitVisible(chromedp.CSS("p[role=status]")))
		if got := b.text("p[role=status]"); !strings.Contains(got, "intact") {
			t.Errorf("backup verify: %q", got)
		}
		b.run(chromedp.Navigate(base + "/status"))
		b.check("status")
	})

	t.Run("admin", func(t *testing.T) {
		b := newBrowser(t, alloc, base, shots)
		b.signIn("admin1")
		for _, page := range []string{"users", "tokens", "retention"} {
			b.run(chromedp.Navigate(base + "/admin/" + page))
			b.check("admin-" + page)
		}
		b.run(chromedp.Navigate(base + "/prefs"))
		b.check("prefs")
		// Chinese: the language switch and a page in it.
		b.run(chromedp.Navigate(base+"/lang/zh-Hans?next=/search"), chromedp.WaitVisible(chromedp.ID("q")))
		if h := b.text("h1"); h != "搜索案件" {
			t.Errorf("zh-Hans search page h1 %q", h)
		}
		b.check("search-zh")
	})
}
