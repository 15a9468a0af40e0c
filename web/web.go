// Package web is the web console (issue 18): server-rendered pages for
// agents, legal teams, backup operators and admins, served by the same
// binary and Fiber app as the API. Templates and assets are embedded; the
// only script is our own small file for progressive enhancement, so every
// page works with JavaScript off. People sign in with a user name and
// password (auth.Users) into a server-side session (auth.Sessions); every
// page is checked against auth's role matrix and every read of personal
// data is audited with the API's action names, through the same services
// the API calls (api.Deps).
package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/api"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Config holds the console's settings.
type Config struct {
	// SecureCookies marks cookies Secure on every response; otherwise only
	// when the request came over TLS (directly or as X-Forwarded-Proto).
	SecureCookies bool
	Version       string
	// Now is the clock (tests move it); nil: time.Now.
	Now func() time.Time
	// LoginRate is how many sign-in attempts one client address may make
	// per minute (0: 20).
	LoginRate int
	// OIDC enables sign-in with an OpenID Connect provider (agent_oidc.go).
	OIDC *OIDCConfig
}

// Deps are the console's collaborators: the services the API calls (the
// same Deps, so both see one set of rules) plus users and sessions.
type Deps struct {
	API      api.Deps
	Users    *auth.Users
	Sessions *auth.Sessions
	// UserAudit writes the audit event of a user change in its
	// transaction.
	UserAudit cases.TxHook
	// CaseByNumber finds a case's id by its number (nil: "#17" is searched
	// as text).
	CaseByNumber func(ctx context.Context, n int64) (string, error)
	// JobTicks lists the last runs of the cron jobs (nil: not shown).
	JobTicks JobTicks
	// Ops serves the legal, operator and admin pages of ops.go.
	Ops OpsDeps
}

// Console is the mounted web console.
type Console struct {
	cfg   Config
	d     Deps
	log   *slog.Logger
	pages map[string]*template.Template
	// logins limits sign-in attempts per client address.
	logins *limiter
	// runs: work a page starts that outlives the request (a backup); ended
	// by Close.
	runCtx  context.Context
	stopRun context.CancelFunc
	assets  fs.FS
	cat     catalogue
	ops     opsState
	oidc    *oidcClient // nil: no OpenID Connect sign-in
}

// New builds the console.
func New(cfg Config, d Deps) (*Console, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	if cfg.LoginRate <= 0 {
		cfg.LoginRate = 20
	}

	log := d.API.Log
	if log == nil {
		log = slog.Default()
	}

	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}

	assets, err := fs.Sub(assetFS, "assets")
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	w := &Console{cfg: cfg, d: d, log: log, pages: pages, logins: newLimiter(cfg.LoginRate, time.Minute, cfg.Now),
		runCtx: ctx, stopRun: cancel, assets: assets, cat: newCatalogue(), ops: newOpsState()}
	if cfg.OIDC != nil {
		w.oidc = &oidcClient{cfg: *cfg.OIDC}
	}
	return w, nil
}

// Close cancels the work pages started (backups), like api.Server.Shutdown.
func (w *Console) Close() { w.stopRun() }

var funcs = template.FuncMap{
	"join": strings.Join,
	"add":  func(a, b int) int { return a + b },
	// dict passes several values to a sub-template (the explain page's
	// contact block gets the locale and the explanation).
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			if k, ok := kv[i].(string); ok {
				m[k] = kv[i+1]
			}
		}
		return m
	},
	// Attachments (agent_files.go).
	"previewKind": previewKind, "size": humanSize,
}

// parseTemplates parses each page with the layout.
func parseTemplates() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, err
		}
		out[base] = t
	}
	return out, nil
}

// csp is the Content-Security-Policy of every console response: our own
// script and style only, nothing inline, no other origin.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Mount adds the console's routes to the API's app (api.Deps.Console).
func (w *Console) Mount(app *fiber.App) {
	app.Get("/assets/:name", w.asset)
	app.Get("/lang/:tag", w.setLang)
	app.Get("/", w.wrap(w.home))
	app.Get("/login", w.wrap(w.loginPage))
	app.Post("/login", w.wrap(w.login))
	w.mountOIDC(app)
	app.Post("/logout", w.wrap(w.page("", "", "", w.logout)))
	app.Post("/logout-all", w.wrap(w.page("", "", "", w.logoutAll)))
	app.Get("/prefs", w.wrap(w.page("", "", "", func(r *req) error { return r.render("prefs", r.L.T("prefs.title"), nil) })))
	app.Post("/prefs", w.wrap(w.page("", "", "", w.savePrefs)))
	for _, p := range w.routes() {
		h := w.wrap(w.page(p.perm, p.read, p.target, p.h))
		app.Add(p.method, p.path, h)
	}
}

// pageRoute is one console page: the permission it needs and the audit
// action its successful read records, as the API's route table has them.
type pageRoute struct {
	method, path string
	perm         auth.Permission
	read, target string
	h            handler
}

// handler renders one page for a signed-in user.
type handler func(r *req) error

// req is one console request: the Fiber context, the user and the
// language.
type req struct {
	c     *fiber.Ctx
	w     *Console
	ses   auth.Session
	actor cases.Actor
	L     *locale
	// audited is the read to record once the page rendered.
	readID     string
	readDetail map[string]any
	// mp is a multipart form's reader after its CSRF part (postedCSRF).
	mp *multipart.Reader
}

func (w *Console) secure(c *fiber.Ctx) bool {
	return w.cfg.SecureCookies || c.Protocol() == "https"
}

// wrap sets the security headers and turns errors into HTML pages.
func (w *Console) wrap(h fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Set("Content-Security-Policy", csp)
		c.Set("X-Frame-Options", "DENY")
		c.Set("Referrer-Policy", "same-origin")
		c.Set("Cache-Control", "no-store")
		err := h(c)
		if err == nil {
			return nil
		}
		return w.errorPage(c, err)
	}
}

// statusError is an error with the HTTP status its page answers.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// problem maps an error to its status and the message shown, with the
// API's mapping (api.ProblemFor) for every error the services return.
func problem(err error) (int, string) {
	var se *statusError
	switch {
	case errors.As(err, &se):
		return se.status, se.msg
	case errors.Is(err, auth.ErrNoUser):
		return fiber.StatusNotFound, err.Error()
	}
	p := api.ProblemFor(err)
	msg := p.Detail
	for _, f := range p.Errors {
		msg += "; " + f.Field + ": " + f.Message
	}
	return p.Status, msg
}

func (w *Console) errorPage(c *fiber.Ctx, err error) error {
	status, msg := problem(err)
	if status >= 500 && status != fiber.StatusServiceUnavailable {
		w.log.Error("console", "path", c.Route().Path, "request_id", api.RequestID(c), "err", err)
		msg = ""
	}
	L := w.localeFor(c, nil)
	c.Status(status)
	return w.renderWith(c, "error", view{L: L, Title: L.T("error.title"), Data: map[string]any{"Status": status, "Text": http.StatusText(status), "Message": msg}})
}

// view is what every page template gets.
type view struct {
	L     *locale
	User  *auth.User
	CSRF  string
	Title string
	Nav   []navItem
	Path  string
	Flash string
	Data  any
}

type navItem struct {
	Href, Label string
	Current     bool
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (w *Console) renderWith(c *fiber.Ctx, name string, v view) error {
	t, ok := w.pages[name]
	if !ok {
		return errors.New("no template " + name)
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if err := t.ExecuteTemplate(buf, "layout", v); err != nil {
		return err
	}
	c.Type("html", "utf-8")
	c.Response().SetBody(buf.Bytes()) // copies: buf goes back to the pool
	return nil
}

// render renders a page for the signed-in user.
func (r *req) render(name, title string, data any) error {
	u := r.ses.User
	v := view{L: r.L, User: &u, CSRF: auth.Derive(r.ses.Secret, "csrf"), Title: title, Nav: r.w.nav(r), Path: r.c.Path(), Data: data,
		Flash: r.c.Query("done")}
	if v.Flash != "" {
		v.Flash = r.L.T("flash." + v.Flash)
	}
	return r.w.renderWith(r.c, name, v)
}

// redirect answers a form post with 303 to a page (Post/Redirect/Get);
// flash names a message of the catalogue shown there.
func (r *req) redirect(to, flash string) error {
	if flash != "" {
		sep := "?"
		if strings.Contains(to, "?") {
			sep = "&"
		}
		to += sep + "done=" + flash
	}
	return r.c.Redirect(to, fiber.StatusSeeOther)
}

func (w *Console) nav(r *req) []navItem {
	role := r.ses.User.Role
	var out []navItem
	add := func(p auth.Permission, href, key string) {
		if role.Allows(p) {
			out = append(out, navItem{Href: href, Label: r.L.T(key), Current: strings.HasPrefix(r.c.Path(), href)})
		}
	}
	add(auth.CaseRead, "/search", "nav.search")
	add(auth.CaseRead, "/customers", "nav.customers")
	add(auth.LegalWork, "/holds", "nav.holds")
	add(auth.LegalWork, "/audit", "nav.audit")
	add(auth.LegalWork, "/dispositions", "nav.dispositions")
	add(auth.LegalWork, "/retention/explain", "nav.explain")
	add(auth.BackupWork, "/backups", "nav.backups")
	add(auth.BackupWork, "/status", "nav.status")
	add(auth.Admin, "/admin/users", "nav.users")
	add(auth.Admin, "/admin/tokens", "nav.tokens")
	add(auth.Admin, "/admin/retention", "nav.retention")
	add(auth.Admin, "/admin/settings", "nav.settings")
	return out
}

func (w *Console) asset(c *fiber.Ctx) error {
	name := c.Params("name")
	b, err := fs.ReadFile(w.assets, name)
	if err != nil || strings.Contains(name, "/") {
		return fiber.ErrNotFound
	}
	switch {
	case strings.HasSuffix(name, ".css"):
		c.Type("css", "utf-8")
	case strings.HasSuffix(name, ".js"):
		c.Type("js", "utf-8")
	case strings.HasSuffix(name, ".svg"):
		c.Type("svg")
	}
	c.Set("Cache-Control", "public, max-age=3600")
	c.Set("X-Content-Type-Options", "nosniff")
	return c.Send(b)
}

// renderPartial renders one block of a page (the live search's results).
func (w *Console) renderPartial(r *req, page, block string, data any) error {
	t, ok := w.pages[page]
	if !ok {
		return errors.New("no template " + page)
	}
	u := r.ses.User
	v := view{L: r.L, User: &u, Path: r.c.Path(), Data: data}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if err := t.ExecuteTemplate(buf, block, v); err != nil {
		return err
	}
	r.c.Type("html", "utf-8")
	r.c.Response().SetBody(buf.Bytes()) // copies: buf goes back to the pool
	return nil
}
