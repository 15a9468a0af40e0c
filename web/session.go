package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/api"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
)

// Cookie names. The session cookie holds the random secret whose SHA-256
// is the session's key; the pre-session cookie binds the sign-in form's
// CSRF token before there is a session.
const (
	sessionCookie = "cv_session"
	preCookie     = "cv_pre"
	langCookie    = "cv_lang"
	tzCookie      = "cv_tz"
)

func (w *Console) setCookie(c *fiber.Ctx, name, value string, maxAge time.Duration, httpOnly bool) {
	ck := &fiber.Cookie{Name: name, Value: value, Path: "/", HTTPOnly: httpOnly, SameSite: fiber.CookieSameSiteLaxMode, Secure: w.secure(c)}
	if maxAge < 0 {
		ck.Expires = time.Unix(1, 0)
		ck.MaxAge = -1
	} else if maxAge > 0 {
		ck.MaxAge = int(maxAge.Seconds())
	}
	c.Cookie(ck)
}

func (w *Console) baseActor(c *fiber.Ctx) cases.Actor {
	return cases.Actor{RequestID: api.RequestID(c), ClientIP: c.IP()}
}

// actorOf is the audit actor of a user: "user:" + id keeps console users
// apart from API tokens in the trail.
func actorOf(base cases.Actor, u auth.User) cases.Actor {
	base.TokenID, base.Name, base.Role = "user:"+u.ID, u.Name, string(u.Role)
	return base
}

// page is the console's guard, the API's (api.Server.guard) for sessions:
// a live session, the role's permission from auth's matrix (refusals
// audited with the API's actions), the CSRF token on every POST, and after
// a successful render the read audit event, before the page leaves (a
// read that cannot be recorded is a 503, not a page).
func (w *Console) page(perm auth.Permission, read, target string, h handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx := c.UserContext()
		routeName := "console " + c.Method() + " " + c.Route().Path
		ses, err := w.d.Sessions.Resolve(ctx, c.Cookies(sessionCookie))
		if errors.Is(err, auth.ErrNoSession) {
			if c.Method() != fiber.MethodGet {
				api.RecordDenial(ctx, w.d.API.Audit, w.log, w.baseActor(c), "auth.missing", routeName)
				return &statusError{fiber.StatusForbidden, "not signed in"}
			}
			return c.Redirect("/login?next="+url.QueryEscape(c.OriginalURL()), fiber.StatusSeeOther)
		}
		if err != nil {
			return err
		}
		r := &req{c: c, w: w, ses: ses, actor: actorOf(w.baseActor(c), ses.User)}
		r.L = w.localeFor(c, &ses.User)
		if c.Method() == fiber.MethodPost {
			want := auth.Derive(ses.Secret, "csrf")
			if subtle.ConstantTimeCompare([]byte(r.postedCSRF()), []byte(want)) != 1 {
				api.RecordDenial(ctx, w.d.API.Audit, w.log, r.actor, "auth.csrf", routeName)
				return &statusError{fiber.StatusForbidden, r.L.T("error.csrf")}
			}
		}
		if perm != "" && !ses.User.Role.Allows(perm) {
			api.RecordDenial(ctx, w.d.API.Audit, w.log, r.actor, "auth.forbidden", routeName)
			return &statusError{fiber.StatusForbidden, r.L.T("error.forbidden")}
		}
		if err := h(r); err != nil {
			return err
		}
		if read == "" || c.Response().StatusCode() >= 400 || w.d.API.Audit == nil {
			return nil
		}
		ch := cases.Change{Actor: r.actor, Action: read, TargetType: target, TargetID: r.readID, Detail: r.readDetail}
		if err := w.d.API.Audit.Record(ctx, ch, "ok"); err != nil {
			c.Response().ResetBody()
			return err
		}
		return nil
	}
}

// audit records a further read on the page (a case page also reads the
// customer's name), with the same rule as page's: no record, no page.
func (r *req) audit(action, target, id string, detail map[string]any) error {
	if r.w.d.API.Audit == nil {
		return nil
	}
	return r.w.d.API.Audit.Record(r.c.UserContext(), cases.Change{Actor: r.actor, Action: action, TargetType: target, TargetID: id, Detail: detail}, "ok")
}

func (w *Console) home(c *fiber.Ctx) error {
	ses, err := w.d.Sessions.Resolve(c.UserContext(), c.Cookies(sessionCookie))
	if err != nil {
		return c.Redirect("/login", fiber.StatusSeeOther)
	}
	to := "/search"
	switch r := ses.User.Role; {
	case r.Allows(auth.CaseRead):
	case r.Allows(auth.BackupWork):
		to = "/backups"
	}
	return c.Redirect(to, fiber.StatusSeeOther)
}

// safeNext keeps a post-sign-in redirect on this site: a path, never
// "//host" or a scheme.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/"
	}
	return next
}

func (w *Console) loginPage(c *fiber.Ctx) error {
	pre := c.Cookies(preCookie)
	if len(pre) < 32 || len(pre) > 64 {
		pre = newSecret()
		w.setCookie(c, preCookie, pre, 0, true)
	}
	return w.renderLogin(c, pre, "", fiber.StatusOK)
}

func (w *Console) renderLogin(c *fiber.Ctx, pre, msg string, status int) error {
	L := w.localeFor(c, nil)
	c.Status(status)
	return w.renderWith(c, "login", view{L: L, Title: L.T("login.title"), CSRF: auth.Derive(pre, "login"),
		Data: map[string]any{"Next": safeNext(c.Query("next", c.FormValue("next"))), "Error": msg, "Name": c.FormValue("name"), "OIDC": w.oidc != nil}})
}

// login signs a user in. Attempts are limited per client address (429)
// and per user (auth.Users' lockout); every outcome is audited.
func (w *Console) login(c *fiber.Ctx) error {
	ctx := c.UserContext()
	pre := c.Cookies(preCookie)
	base := w.baseActor(c)
	if pre == "" || subtle.ConstantTimeCompare([]byte(c.FormValue("csrf")), []byte(auth.Derive(pre, "login"))) != 1 {
		api.RecordDenial(ctx, w.d.API.Audit, w.log, base, "auth.csrf", "console POST /login")
		L := w.localeFor(c, nil)
		return &statusError{fiber.StatusForbidden, L.T("error.csrf")}
	}
	L := w.localeFor(c, nil)
	name := c.FormValue("name")
	if !w.logins.allow(c.IP()) {
		w.record(c, cases.Change{Actor: base, Action: "console.login", TargetType: "user", TargetID: name, Detail: map[string]any{"reason": "rate_limited"}}, "denied")
		c.Set("Retry-After", "60")
		return w.renderLogin(c, pre, L.T("login.rate"), fiber.StatusTooManyRequests)
	}
	res, err := w.d.Users.Login(ctx, name, c.FormValue("password"))
	switch {
	case errors.Is(err, auth.ErrBadCredentials), errors.Is(err, auth.ErrLockedOut):
		reason := "bad_credentials"
		msg := L.T("login.bad")
		if errors.Is(err, auth.ErrLockedOut) {
			reason, msg = "locked_out", L.T("login.locked")
		}
		a := base
		if res.User.ID != "" {
			a = actorOf(base, res.User)
		}
		w.record(c, cases.Change{Actor: a, Action: "console.login", TargetType: "user", TargetID: res.User.ID, Detail: map[string]any{"reason": reason}}, "denied")
		if res.LockedNow {
			w.record(c, cases.Change{Actor: a, Action: "console.lockout", TargetType: "user", TargetID: res.User.ID,
				Detail: map[string]any{"failed": auth.MaxFailedLogins, "minutes": int(auth.LockoutFor.Minutes())}}, "ok")
		}
		return w.renderLogin(c, pre, msg, fiber.StatusUnauthorized)
	case err != nil:
		return err
	}
	ses, err := w.d.Sessions.Start(ctx, res.User, c.IP())
	if err != nil {
		return err
	}
	w.record(c, cases.Change{Actor: actorOf(base, res.User), Action: "console.login", TargetType: "user", TargetID: res.User.ID}, "ok")
	w.setCookie(c, sessionCookie, ses.Secret, 0, true)
	w.setCookie(c, preCookie, "", -1, true)
	return c.Redirect(safeNext(c.FormValue("next")), fiber.StatusSeeOther)
}

// record stores an audit event of the sign-in flow; a failure is logged
// (a sign-in must not depend on it more than the API's denials do).
func (w *Console) record(c *fiber.Ctx, ch cases.Change, outcome string) {
	if w.d.API.Audit == nil {
		return
	}
	if err := w.d.API.Audit.Record(c.UserContext(), ch, outcome); err != nil {
		w.log.Warn("audit of console sign-in failed", "request_id", ch.Actor.RequestID, "err", err)
	}
}

func (w *Console) logout(r *req) error {
	if err := w.d.Sessions.End(r.c.UserContext(), r.ses.Secret); err != nil {
		return err
	}
	w.record(r.c, cases.Change{Actor: r.actor, Action: "console.logout", TargetType: "user", TargetID: r.ses.User.ID}, "ok")
	w.setCookie(r.c, sessionCookie, "", -1, true)
	return r.c.Redirect("/login", fiber.StatusSeeOther)
}

func (w *Console) logoutAll(r *req) error {
	n, err := w.d.Sessions.EndAll(r.c.UserContext(), r.ses.User.ID)
	if err != nil {
		return err
	}
	w.record(r.c, cases.Change{Actor: r.actor, Action: "console.logout_all", TargetType: "user", TargetID: r.ses.User.ID, Detail: map[string]any{"sessions": n}}, "ok")
	w.setCookie(r.c, sessionCookie, "", -1, true)
	return r.c.Redirect("/login", fiber.StatusSeeOther)
}

// savePrefs stores the user's time zone and language.
func (w *Console) savePrefs(r *req) error {
	tz := strings.TrimSpace(r.c.FormValue("time_zone"))
	if err := w.d.Users.SetTimeZone(r.c.UserContext(), r.ses.User.ID, tz); err != nil {
		return err
	}
	if lang := r.c.FormValue("lang"); w.cat.has(lang) {
		w.setCookie(r.c, langCookie, lang, 365*24*time.Hour, false)
	}
	return r.redirect(safeNext(r.c.FormValue("next")), "prefs")
}

// limiter is a fixed-window counter per key (a client address).
type limiter struct {
	mu     sync.Mutex
	n      int
	window time.Duration
	now    func() time.Time
	seen   map[string]*windowCount
}

type windowCount struct {
	start time.Time
	n     int
}

func newLimiter(n int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{n: n, window: window, now: now, seen: map[string]*windowCount{}}
}

func (l *limiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.seen) > 10000 {
		// Bounded memory: forget windows that have ended.
		for k, v := range l.seen {
			if now.Sub(v.start) >= l.window {
				delete(l.seen, k)
			}
		}
	}
	wc, ok := l.seen[key]
	if !ok || now.Sub(wc.start) >= l.window {
		wc = &windowCount{start: now}
		// The map outlives the request: its key must not be a view into
		// Fiber's reused buffers (c.IP() is one behind a proxy header).
		l.seen[strings.Clone(key)] = wc
	}
	wc.n++
	return wc.n <= l.n
}

// newSecret is a random 256-bit value, base64url (the pre-session cookie).
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
