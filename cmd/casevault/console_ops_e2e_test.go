package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// The legal, operator and admin pages of issue 18 (web/ops.go): over
// plain HTTP (no JavaScript: every form works, bad input is refused with
// the API's statuses), then in chromium with the live preview, the export
// download, a backup run's progress and the schedule editor, each page
// checked by axe-core and screenshotted, every payload inert.

// opsXSS is the payload put into every field these pages show.
const opsXSS = `<script>window.__xss=1</script><img src=x onerror="window.__xss=1">`

// secretMeili is a secret setting's value the settings page must not show.
const secretMeili = "meili-secret-value-7f3a"

var holdIDRE = regexp.MustCompile(`/holds/([0-9a-f-]{36})`)

// TestConsoleOpsHTTP runs on both engines: the bad input the pages refuse
// goes through the same services on SQLite and PostgreSQL.
func TestConsoleOpsHTTP(t *testing.T) {
	for _, eng := range []struct {
		name string
		env  func(t *testing.T) []string
	}{
		{"sqlite", func(t *testing.T) []string { return nil }},
		{"postgres", func(t *testing.T) []string {
			return []string{"CASEVAULT_DATABASE_URL=" + sqldbtest.Config(t, sqldb.Postgres).URL}
		}},
	} {
		t.Run(eng.name, func(t *testing.T) { consoleOpsHTTP(t, eng.env(t)) })
	}
}

// addUserEnv is addUser for a server configured by env (its database).
func addUserEnv(t *testing.T, dir, name, role string, env []string) {
	t.Helper()
	cmd := exec.Command(binary(t), "user", "add", "--data-dir", dir, "--name", name, "--role", role)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(consolePassword + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("user add %s: %v\n%s", name, err, out)
	}
}

func consoleOpsHTTP(t *testing.T, env []string) {
	dir := t.TempDir()
	p, tok := startAdmin(t, dir, append([]string{"CASEVAULT_MEILI_KEY=" + secretMeili}, env...)...)
	for _, u := range [][2]string{{"legal1", "legal"}, {"ops1", "backup"}, {"admin1", "admin"}, {"agent1", "agent"}} {
		addUserEnv(t, dir, u[0], u[1], env)
	}
	base := "http://" + p.addr
	_, lagos := newCase(t, p.api(), tok, "Refund for the parcel to Lagos", "email")
	addContact(t, p.api(), tok, lagos, "email", "The parcel never arrived in Lagos.")
	waitSearch(t, p.api(), tok, "Lagos", lagos)

	legal := newConsoleClient(t, base)
	if code, body := legal.login("legal1", consolePassword); code != http.StatusSeeOther {
		t.Fatalf("login: %d %s", code, body)
	}
	csrf := legal.csrf("/holds")

	t.Run("hold preview without JavaScript", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			form   url.Values
			status int
			want   string
		}{
			{"query", url.Values{"query": {"Lagos"}}, 200, "/cases/" + lagos},
			{"query, partial", url.Values{"query": {"Lagos"}, "partial": {"1"}}, 200, "/cases/" + lagos},
			{"empty scope", url.Values{}, 200, "Enter cases"},
			{"bad date", url.Values{"query": {"Lagos"}, "from": {"yesterday"}}, 422, "YYYY-MM-DD"},
			{"reversed range", url.Values{"from": {"2026-02-01"}, "to": {"2026-01-01"}}, 422, "to"},
			{"bad query", url.Values{"query": {`nosuchfield:x`}}, 422, "query"},
			{"unknown case", url.Values{"case_ids": {"not-a-case"}}, 422, "case_ids"},
		} {
			f := url.Values{"csrf": {csrf}}
			path := "/holds/preview"
			for k, v := range tc.form {
				if k == "partial" {
					path += "?partial=1"
					continue
				}
				f[k] = v
			}
			code, body, _ := legal.post(path, f)
			if code != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("%s: %d, want %d with %q:\n%.600s", tc.name, code, tc.status, tc.want, body)
			}
			if strings.Contains(tc.name, "partial") && strings.Contains(body, "<html") {
				t.Errorf("%s: the whole page, not the preview block", tc.name)
			}
		}
		if code, _, _ := legal.post("/holds/preview", url.Values{"query": {"Lagos"}}); code != http.StatusForbidden {
			t.Errorf("preview without the CSRF token: %d, want 403", code)
		}
	})

	var holdID string
	t.Run("place, release with grace, reinstate", func(t *testing.T) {
		code, _, h := legal.post("/holds", url.Values{"csrf": {csrf}, "matter": {"Lagos dispute"}, "reason": {"litigation"}, "query": {"Lagos"}})
		m := holdIDRE.FindStringSubmatch(h.Get("Location"))
		if code != http.StatusSeeOther || m == nil {
			t.Fatalf("place: %d %s", code, h.Get("Location"))
		}
		holdID = m[1]
		code, body, _ := legal.get("/holds/" + holdID + "/release")
		if code != 200 || !strings.Contains(body, `id="due"`) || !strings.Contains(body, "/holds/"+holdID+"/release") {
			t.Fatalf("release preview: %d\n%.600s", code, body)
		}
		if code, _, _ := legal.post("/holds/"+holdID+"/release", url.Values{"csrf": {csrf}, "reason": {"settled"}}); code != http.StatusSeeOther {
			t.Fatalf("release: %d", code)
		}
		_, body, _ = legal.get("/holds/" + holdID)
		if !strings.Contains(body, "/holds/"+holdID+"/reinstate") {
			t.Fatalf("a released hold in its grace offers no reinstatement:\n%.800s", body)
		}
		if code, _, _ := legal.post("/holds/"+holdID+"/reinstate", url.Values{"csrf": {csrf}}); code != http.StatusSeeOther {
			t.Fatalf("reinstate: %d", code)
		}
		_, body, _ = legal.get("/holds/" + holdID)
		if strings.Contains(body, "/reinstate") || !strings.Contains(body, "/holds/"+holdID+"/release") {
			t.Fatalf("reinstated hold not active again:\n%.800s", body)
		}
		if code, _, _ := legal.post("/holds/"+holdID+"/reinstate", url.Values{"csrf": {csrf}}); code != http.StatusConflict {
			t.Errorf("reinstating an active hold: %d, want 409", code)
		}
	})

	t.Run("export and download", func(t *testing.T) {
		code, _, h := legal.post("/holds/"+holdID+"/export", url.Values{"csrf": {csrf}})
		loc := h.Get("Location")
		if code != http.StatusSeeOther || !strings.HasPrefix(loc, "/exports/") {
			t.Fatalf("export: %d %s", code, loc)
		}
		exportPath := strings.SplitN(loc, "?", 2)[0]
		testkit.Eventually(t, 60*time.Second, "the export to complete", func() bool {
			_, body, hdr := legal.get(exportPath)
			if strings.Contains(body, `id="download"`) {
				return hdr.Get("Refresh") == ""
			}
			if hdr.Get("Refresh") == "" && !strings.Contains(body, "complete") {
				t.Fatalf("a running export's page does not reload itself:\n%.600s", body)
			}
			return false
		})
		code, zipBody, hdr := legal.get(exportPath + "/download")
		if code != 200 || hdr.Get("Content-Type") != "application/zip" {
			t.Fatalf("download: %d %s", code, hdr.Get("Content-Type"))
		}
		checkExportZip(t, []byte(zipBody), lagos)
		code, res := call(t, "GET", p.api()+"/audit?action=export.download", tok, nil)
		if code != 200 || !strings.Contains(toJSON(res), "user:") {
			t.Errorf("the console's download is not audited: %d %v", code, res)
		}
		if code, _, _ := legal.get("/exports/not-an-export"); code != http.StatusNotFound {
			t.Errorf("unknown export: %d", code)
		}
	})

	t.Run("explain and dispositions", func(t *testing.T) {
		_, gone := newCase(t, p.api(), tok, "Delete me", "email")
		addContact(t, p.api(), tok, gone, "email", "to be deleted")
		// A query hold is in force: a deletion is decided only once the
		// index has the case (503 until then).
		waitSearch(t, p.api(), tok, "deleted", gone)
		var last map[string]any
		deadline := time.Now().Add(60 * time.Second)
		for {
			code, res := call(t, "DELETE", p.api()+"/cases/"+gone, tok, nil)
			if code == 204 {
				break
			}
			last = res
			if time.Now().After(deadline) {
				t.Fatalf("delete case: %d %v", code, last)
			}
			time.Sleep(250 * time.Millisecond)
		}
		for _, tc := range []struct {
			path   string
			status int
			want   string
		}{
			{"/retention/explain?id=" + lagos, 200, "Lagos dispute"},
			{"/retention/explain?id=no-such-record", 404, "No case"},
			{"/retention/explain", 200, `name="id"`},
			{"/dispositions", 200, gone},
			{"/dispositions?action=delete_case&case_id=" + gone, 200, gone},
			{"/dispositions?action=redact", 200, "No disposition record"},
			{"/dispositions?from=2000-01-01&to=2000-01-02", 200, "No disposition record"},
			{"/dispositions?from=yesterday", 422, "YYYY-MM-DD"},
			{"/dispositions?cursor=!!", 422, "cursor"},
		} {
			code, body, _ := legal.get(tc.path)
			if code != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("GET %s: %d, want %d with %q", tc.path, code, tc.status, tc.want)
			}
		}
		code, res := call(t, "GET", p.api()+"/audit?action=retention.explain", tok, nil)
		if code != 200 || !strings.Contains(toJSON(res), lagos) {
			t.Errorf("the explanation is not audited: %v", res)
		}
	})

	t.Run("operator: progress, verify, forget preview, restore", func(t *testing.T) {
		ops := newConsoleClient(t, base)
		ops.login("ops1", consolePassword)
		oc := ops.csrf("/backups")
		var runPath string
		for i := range 2 { // two backups, so that keep_last=1 would remove one
			// The run is recorded done just before its lease is released:
			// a second run at once may still be refused (409).
			var code int
			var h http.Header
			for try := 0; ; try++ {
				code, _, h = ops.post("/backups", url.Values{"csrf": {oc}})
				if code != http.StatusConflict || try == 20 {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/backups/runs/") {
				t.Fatalf("backup %d: %d %s", i, code, h.Get("Location"))
			}
			runPath = strings.SplitN(h.Get("Location"), "?", 2)[0]
			testkit.Eventually(t, 90*time.Second, "the backup to finish", func() bool {
				_, body, hdr := ops.get(runPath)
				return strings.Contains(body, `id="verifybtn"`) && hdr.Get("Refresh") == ""
			})
		}
		id := strings.TrimPrefix(runPath, "/backups/runs/")
		// The run's phases, reported by the backup while it ran, stay shown.
		if _, body, _ := ops.get(runPath); !strings.Contains(body, "<td>tables</td>") || !strings.Contains(body, " rows") {
			t.Errorf("the finished run's page shows no table phase:\n%.800s", body)
		}
		code, body, _ := ops.post("/backups/"+id+"/verify", url.Values{"csrf": {oc}})
		if code != 200 || !strings.Contains(body, "intact") {
			t.Fatalf("verify: %d\n%.500s", code, body)
		}
		for _, tc := range []struct {
			path   string
			status int
			want   string
		}{
			{"/backups/forget?preview=1&keep_last=1", 200, "1 backups would be removed, 1 kept"},
			{"/backups/forget?preview=1&keep_within=30d", 200, "0 backups would be removed, 2 kept"},
			{"/backups/forget?preview=1", 200, "at least one keep rule"},
			{"/backups/forget?keep_last=-1", 422, "keep_last"},
			{"/backups/forget?keep_within=soon", 422, "keep_within"},
			{"/backups/runs/nonsense", 422, "backup id"},
			{"/backups/runs/20000101T000000Z-abcdef", 404, "no backup run"},
			{"/backups/" + id + "/restore?case_id=" + lagos, 200, "Refund for the parcel to Lagos"},
			{"/backups/20000101T000000Z-abcdef/restore", 404, "no backup"},
		} {
			code, body, _ := ops.get(tc.path)
			if code != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("GET %s: %d, want %d with %q\n%.400s", tc.path, code, tc.status, tc.want, body)
			}
		}
		// The restore needs its confirmation box; then it adds what is missing.
		code, body, _ = ops.post("/backups/"+id+"/restore", url.Values{"csrf": {oc}, "case_id": {lagos}})
		if code != http.StatusUnprocessableEntity {
			t.Errorf("restore without confirmation: %d\n%.300s", code, body)
		}
		code, body, _ = ops.post("/backups/"+id+"/restore", url.Values{"csrf": {oc}, "case_id": {lagos}, "confirm": {"yes"}})
		if code != 200 || !strings.Contains(body, "already there") {
			t.Errorf("restore: %d\n%.500s", code, body)
		}
		code, body, _ = ops.post("/backups/"+id+"/restore", url.Values{"csrf": {oc}, "case_id": {"01900000-0000-7000-8000-000000000000"}, "confirm": {"yes"}})
		if code != http.StatusNotFound {
			t.Errorf("restore of a case not in the backup: %d\n%.300s", code, body)
		}
		code, res := call(t, "GET", p.api()+"/audit?action=backup.restore_case", tok, nil)
		if code != 200 || !strings.Contains(toJSON(res), lagos) || !strings.Contains(toJSON(res), "ops1") {
			t.Errorf("the restore is not audited as the console user: %v", res)
		}
	})

	t.Run("admin: schedule editor, settings", func(t *testing.T) {
		adm := newConsoleClient(t, base)
		adm.login("admin1", consolePassword)
		ac := adm.csrf("/admin/retention")
		_, page, _ := adm.get("/admin/retention")
		doc := textareaRE.FindStringSubmatch(page)
		if doc == nil {
			t.Fatalf("no schedule editor:\n%.600s", page)
		}
		cur := htmlUnescape(doc[1])
		edited := strings.Replace(cur, `"90d"`, `"1d"`, 1) // the notification rule
		if edited == cur {
			t.Fatalf("no 90d rule in %s", cur)
		}
		for _, tc := range []struct {
			name, path, doc string
			status          int
			want            string
		}{
			{"preview", "/admin/retention/preview", edited, 200, "would become due"},
			{"malformed", "/admin/retention/preview", `{"purposes": [`, 400, "malformed JSON"},
			{"unknown field", "/admin/retention/preview", `{"purposez": []}`, 422, "purposez"},
			{"invalid rule", "/admin/retention/preview", strings.Replace(cur, `"90d"`, `"soon"`, 1), 422, "keep"},
			{"empty", "/admin/retention", "", 400, "empty"},
			{"stale version", "/admin/retention", strings.Replace(edited, `"version": 1`, `"version": 7`, 1), 409, "changed since"},
		} {
			code, body, _ := adm.post(tc.path, url.Values{"csrf": {ac}, "schedule": {tc.doc}})
			if code != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("%s: %d, want %d with %q\n%.500s", tc.name, code, tc.status, tc.want, body)
			}
		}
		// Saving a text whose preview was not shown shows the preview.
		code, body, _ := adm.post("/admin/retention", url.Values{"csrf": {ac}, "schedule": {edited}})
		m := previewedRE.FindStringSubmatch(body)
		if code != 200 || m == nil || !strings.Contains(body, "would become due") {
			t.Fatalf("save without a preview: %d\n%.500s", code, body)
		}
		if code, res := call(t, "GET", p.api()+"/retention/schedule", tok, nil); code != 200 || res["version"].(float64) != 1 {
			t.Fatalf("saved without a preview: %v", res)
		}
		if code, _, _ := adm.post("/admin/retention", url.Values{"csrf": {ac}, "schedule": {edited + " "}, "previewed": {m[1]}}); code != 200 {
			t.Fatalf("save of a text edited after its preview: %d, want the preview again", code)
		}
		if code, _, _ := adm.post("/admin/retention", url.Values{"csrf": {ac}, "schedule": {edited}, "previewed": {m[1]}}); code != http.StatusSeeOther {
			t.Fatalf("save: %d", code)
		}
		code, res := call(t, "GET", p.api()+"/retention/schedule", tok, nil)
		if code != 200 || res["version"].(float64) != 2 || !strings.Contains(toJSON(res), `"1d"`) {
			t.Fatalf("the saved schedule: %v", res)
		}
		code, body, _ = adm.get("/admin/settings")
		if code != 200 || strings.Contains(body, secretMeili) || !strings.Contains(body, "--meili-key") || !strings.Contains(body, "(secret, set)") {
			t.Errorf("settings: %d, secret shown %v\n%.400s", code, strings.Contains(body, secretMeili), body)
		}
		if !strings.Contains(body, "--data-dir") || !strings.Contains(body, dir) {
			t.Errorf("settings do not show the data directory in force")
		}
	})

	t.Run("roles", func(t *testing.T) {
		ag := newConsoleClient(t, base)
		ag.login("agent1", consolePassword)
		for _, path := range []string{"/dispositions", "/retention/explain", "/exports/x", "/backups/forget", "/admin/settings"} {
			if code, _, _ := ag.get(path); code != http.StatusForbidden {
				t.Errorf("agent GET %s: %d, want 403", path, code)
			}
		}
		if code, _, _ := legal.get("/admin/settings"); code != http.StatusForbidden {
			t.Errorf("legal GET /admin/settings: %d", code)
		}
	})
}

var previewedRE = regexp.MustCompile(`name="previewed" value="([0-9a-f]{64})"`)

var textareaRE = regexp.MustCompile(`(?s)<textarea id="schedule"[^>]*>(.*?)</textarea>`)

func htmlUnescape(s string) string {
	return strings.NewReplacer("&#34;", `"`, "&quot;", `"`, "&lt;", "<", "&gt;", ">", "&#39;", "'", "&amp;", "&", "&#43;", "+").Replace(s)
}

// checkExportZip fails unless b is a ZIP with a manifest.json and the
// held case's records.
func checkExportZip(t *testing.T, b []byte, caseID string) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("the download is not a ZIP (%d bytes): %v", len(b), err)
	}
	var manifest bool
	for _, f := range zr.File {
		manifest = manifest || f.Name == "manifest.json"
	}
	if !manifest {
		names := make([]string, len(zr.File))
		for i, f := range zr.File {
			names[i] = f.Name
		}
		t.Fatalf("no manifest.json in the package: %v", names)
	}
	var all bytes.Buffer
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		_, _ = all.ReadFrom(rc)
		rc.Close()
	}
	if !strings.Contains(all.String(), caseID) {
		t.Errorf("the package does not hold case %s", caseID)
	}
}

func TestConsoleOpsBrowser(t *testing.T) {
	chrome := browserTools(t)
	dir := t.TempDir()
	p, tok := startAdmin(t, dir, "CASEVAULT_MEILI_KEY="+secretMeili)
	for _, u := range [][2]string{{"legal1", "legal"}, {"ops1", "backup"}, {"admin1", "admin"}} {
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
	_, lagos := newCase(t, p.api(), tok, "Refund for the parcel to Lagos", "email")
	addContact(t, p.api(), tok, lagos, "email", "The customer asks for a refund: the parcel never arrived in Lagos.")
	code, evil := call(t, "POST", p.api()+"/cases", tok, map[string]any{"customer_id": mustCustomer(t, p.api(), tok, "Eve "+opsXSS), "subject": "Payload " + opsXSS, "channel": "web"})
	if code != 201 {
		t.Fatalf("case: %d", code)
	}
	evilID := evil["id"].(string)
	addContact(t, p.api(), tok, evilID, "web", "Payload body "+opsXSS)
	waitSearch(t, p.api(), tok, "Lagos", lagos)
	if code, h := call(t, "POST", p.api()+"/holds", tok, map[string]any{"matter": "Matter " + opsXSS, "reason": "Reason " + opsXSS,
		"scope": map[string]any{"case_ids": []string{evilID}}}); code != 201 {
		t.Fatalf("hold: %d %v", code, h)
	}
	_, gone := newCase(t, p.api(), tok, "Delete me", "email")
	addContact(t, p.api(), tok, gone, "email", "to be deleted")
	if code, _ := call(t, "DELETE", p.api()+"/cases/"+gone, tok, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	root, cancelRoot := chromedp.NewContext(alloc)
	t.Cleanup(cancelRoot)
	if err := chromedp.Do(root, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}

	// inert fails when a payload ran on the current page or is not shown
	// as text.
	inert := func(b *browser, what string) {
		t.Helper()
		if b.eval(`window.__xss === 1 ? 1 : 0`) == 1 {
			t.Errorf("%s: a payload ran", what)
		}
		if body := b.text("main"); !strings.Contains(body, "<script>window.__xss=1</script>") {
			t.Errorf("%s: the payload is not shown as text", what)
		}
	}

	t.Run("legal", func(t *testing.T) {
		b := newBrowser(t, root, base, shots)
		b.signIn("legal1")
		b.run(chromedp.Navigate(base+"/holds"), chromedp.WaitVisible(chromedp.ID("matter")))
		// The live preview: typing the query shows what it covers.
		b.run(chromedp.SendKeys(chromedp.ID("matter"), "Lagos dispute "+opsXSS), chromedp.SendKeys(chromedp.ID("reason"), "litigation expected "+opsXSS),
			chromedp.SendKeys(chromedp.ID("query"), "Lagos"),
			chromedp.WaitVisible(chromedp.CSS("#preview .covers")))
		if got := b.text("#preview"); !strings.Contains(got, lagos) || !strings.Contains(got, "1 cases") {
			t.Fatalf("live preview: %q", got)
		}
		b.check("holds-preview")
		b.run(chromedp.Click(chromedp.CSS("#holdform > button[type=submit]")), chromedp.WaitVisible(chromedp.CSS("p.flash")))
		holdURL := b.location()
		// The report lists the held case.
		if got := b.text("main table"); !strings.Contains(got, lagos) {
			t.Fatalf("hold report: %q", got)
		}
		inert(b, "hold page")
		b.check("hold-report")

		// Export, follow its progress, download the package in the browser.
		b.run(chromedp.Click(chromedp.ID("exportbtn")), chromedp.WaitVisible(chromedp.ID("exportstatus")))
		exportURL := b.location()
		testkit.Eventually(t, 60*time.Second, "the export to complete", func() bool {
			b.run(chromedp.Navigate(exportURL), chromedp.WaitVisible(chromedp.ID("exportstatus")))
			return b.eval(`document.getElementById("download") ? 1 : 0`) == 1
		})
		b.check("export")
		zipB64, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(async () => {
			const r = await fetch(document.getElementById("download").href, {credentials: "same-origin"});
			if (!r.ok) return "status " + r.status;
			const buf = new Uint8Array(await r.arrayBuffer());
			let s = ""; for (let i = 0; i < buf.length; i += 0x8000) s += String.fromCharCode.apply(null, buf.subarray(i, i + 0x8000));
			return btoa(s); })()`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		zipBytes, err := base64.StdEncoding.DecodeString(zipB64)
		if err != nil {
			t.Fatalf("download: %.80s", zipB64)
		}
		checkExportZip(t, zipBytes, lagos)

		// Release: the preview page, then the hold in its grace.
		holdPath := strings.TrimPrefix(strings.SplitN(holdURL, "?", 2)[0], base)
		b.run(chromedp.Navigate(base+holdPath+"/release"), chromedp.WaitVisible(chromedp.ID("due")))
		inert(b, "release page")
		b.check("hold-release")
		b.run(chromedp.SendKeys(chromedp.ID("rreason"), "settled"), chromedp.Submit(chromedp.ID("rreason")), chromedp.WaitVisible(chromedp.ID("ireason")))
		b.check("hold-in-grace")

		// A hold on the payload case: its explanation names it.
		b.run(chromedp.Navigate(base+"/retention/explain?id="+evilID), chromedp.WaitVisible(chromedp.CSS("section.explain")))
		inert(b, "explanation")
		b.check("explain")
		b.run(chromedp.Navigate(base+"/dispositions"), chromedp.WaitVisible(chromedp.CSS("main table")))
		if got := b.text("main table"); !strings.Contains(got, gone) {
			t.Errorf("dispositions: %q", got)
		}
		b.check("dispositions")
		b.run(chromedp.Navigate(base + "/holds"))
		inert(b, "holds list")
	})

	t.Run("operator", func(t *testing.T) {
		b := newBrowser(t, root, base, shots)
		b.signIn("ops1")
		b.run(chromedp.Navigate(base+"/backups"), chromedp.Click(chromedp.CSS("form[action='/backups'] button")),
			chromedp.WaitVisible(chromedp.ID("runstatus")))
		runURL := strings.SplitN(b.location(), "?", 2)[0] // without the flash
		b.check("backup-run")
		testkit.Eventually(t, 90*time.Second, "the backup to finish", func() bool {
			b.run(chromedp.Navigate(runURL), chromedp.WaitVisible(chromedp.ID("runstatus")))
			return b.eval(`document.getElementById("verifybtn") ? 1 : 0`) == 1
		})
		if got := b.text("#runstatus"); !strings.Contains(got, "done") {
			t.Fatalf("run status %q", got)
		}
		b.run(chromedp.Click(chromedp.ID("verifybtn")), chromedp.WaitVisible(chromedp.CSS("p.ok[role=status], p.error[role=status]")))
		if got := b.text("p[role=status]"); !strings.Contains(got, "intact") {
			t.Errorf("verify: %q", got)
		}
		b.check("backup-verified")
		b.run(chromedp.Navigate(base+"/backups/forget?preview=1&keep_last=1"), chromedp.WaitVisible(chromedp.ID("forgetsummary")))
		b.check("backup-forget")
		id := strings.TrimPrefix(runURL, base+"/backups/runs/")
		b.run(chromedp.Navigate(base+"/backups/"+id+"/restore?case_id="+evilID), chromedp.WaitVisible(chromedp.ID("rconfirm")))
		inert(b, "restore confirmation")
		b.check("backup-restore-case")
		b.run(chromedp.Click(chromedp.ID("rconfirm")), chromedp.Click(chromedp.ID("restorebtn")), chromedp.WaitVisible(chromedp.CSS("p[role=status]")))
		if got := b.text("p[role=status]"); !strings.Contains(got, "already there") {
			t.Errorf("restore: %q", got)
		}
		b.check("backup-restored")
	})

	t.Run("admin", func(t *testing.T) {
		b := newBrowser(t, root, base, shots)
		b.signIn("admin1")
		b.run(chromedp.Navigate(base+"/admin/retention"), chromedp.WaitVisible(chromedp.ID("schedule")))
		doc, err := chromedp.Run(b.ctx, chromedp.Value(chromedp.ID("schedule")))
		if err != nil {
			t.Fatal(err)
		}
		edited := strings.Replace(doc, `"90d"`, `"30d"`, 1)
		b.run(chromedp.SetValue(chromedp.ID("schedule"), edited), chromedp.Click(chromedp.ID("schedulepreviewbtn")),
			chromedp.WaitVisible(chromedp.ID("schedulepreview")))
		b.check("admin-retention-preview")
		b.run(chromedp.Click(chromedp.ID("schedulesave")), chromedp.WaitVisible(chromedp.CSS("p.flash")))
		if got := b.text("main"); !strings.Contains(got, "Version 2 is in force") {
			t.Errorf("after saving: %.300q", got)
		}
		b.run(chromedp.Navigate(base+"/admin/settings"), chromedp.WaitVisible(chromedp.ID("settings")))
		if got := b.text("#settings"); strings.Contains(got, secretMeili) || !strings.Contains(got, "(secret, set)") {
			t.Errorf("settings show a secret or not its state")
		}
		b.check("admin-settings")
		// In Chinese: the same page from the catalogue's other half.
		b.run(chromedp.Navigate(base+"/lang/zh-Hans?next=/admin/settings"), chromedp.WaitVisible(chromedp.ID("settings")))
		if h := b.text("h1"); h != "生效的设置" {
			t.Errorf("zh-Hans settings h1 %q", h)
		}
		b.run(chromedp.Navigate(base+"/dispositions"), chromedp.WaitVisible(chromedp.CSS("main table")))
		b.check("dispositions-zh")
	})
}

// mustCustomer creates a customer named name and returns its id.
func mustCustomer(t *testing.T, api, tok, name string) string {
	t.Helper()
	code, c := call(t, "POST", api+"/customers", tok, map[string]any{"name": name})
	if code != 201 {
		t.Fatalf("customer: %d %v", code, c)
	}
	return c["id"].(string)
}

// location is the current page's URL.
func (b *browser) location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	return loc
}
