package web

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gofiber/fiber/v2"
	"golang.org/x/oauth2"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
)

// Sign-in with the organisation's OpenID Connect provider: the
// authorization-code flow with PKCE (S256), state and nonce. The flow's
// secrets live in one short-lived HttpOnly cookie of the browser that
// started it (so any replica can finish it); the callback checks the
// state against it, sends the PKCE verifier with the code, verifies the ID
// token (signature by the provider's keys, issuer, audience, expiry) and
// its nonce, maps the role claim through the configured table and signs
// the user in (auth.Users.SignInExternal creates or links the row). Every
// outcome is audited as console.login with method "oidc".

// OIDCConfig configures the provider (nil Config.OIDC: password sign-in
// only).
type OIDCConfig struct {
	Issuer, ClientID, ClientSecret string
	// RedirectURL is this console's callback as the provider knows it:
	// https://casevault.example/login/oidc/callback. Empty: made from the
	// request's scheme and Host (right when no proxy rewrites them).
	RedirectURL string
	// RoleClaim names the ID token claim holding the role (a string or a
	// list of strings); "roles" when empty.
	RoleClaim string
	// Roles maps claim values to roles; the first mapping (in order) whose
	// value the claim holds decides.
	Roles []RoleMapping
	// HTTPClient talks to the provider (nil: http.DefaultClient).
	HTTPClient *http.Client
}

// RoleMapping is one claim value and the role it gives.
type RoleMapping struct {
	Value string
	Role  auth.Role
}

// ParseRoleMap reads "value=role,value=role" (the --console-oidc-roles
// setting).
func ParseRoleMap(s string) ([]RoleMapping, error) {
	var out []RoleMapping
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		v, r, ok := strings.Cut(p, "=")
		if !ok || strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("role mapping %q: want value=role", p)
		}
		role, err := auth.ParseRole(strings.TrimSpace(r))
		if err != nil {
			return nil, fmt.Errorf("role mapping %q: %w", p, err)
		}
		out = append(out, RoleMapping{Value: strings.TrimSpace(v), Role: role})
	}
	if len(out) == 0 {
		return nil, errors.New("no role mapping: give value=role pairs")
	}
	return out, nil
}

const oidcCookie = "cv_oidc"

// oidcFlowTTL bounds how long a started sign-in may take at the provider.
const oidcFlowTTL = 10 * time.Minute

// oidcClient is the provider, discovered at the first sign-in (a provider
// that is down at start-up does not stop the server) and kept.
type oidcClient struct {
	cfg      OIDCConfig
	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	oauth    *oauth2.Config
}

func (o *oidcClient) ctx(ctx context.Context) context.Context {
	if o.cfg.HTTPClient != nil {
		return oidc.ClientContext(ctx, o.cfg.HTTPClient)
	}
	return ctx
}

// discover returns the provider's OAuth2 configuration and token verifier.
func (o *oidcClient) discover(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.oauth != nil {
		return o.oauth, o.verifier, nil
	}
	dctx, cancel := context.WithTimeout(o.ctx(ctx), 15*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(dctx, o.cfg.Issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("discover OpenID provider %s: %w", o.cfg.Issuer, err)
	}
	// The verifier fetches keys later, with the context of each Verify.
	o.verifier = p.Verifier(&oidc.Config{ClientID: o.cfg.ClientID})
	o.oauth = &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, RedirectURL: o.cfg.RedirectURL,
		Endpoint: p.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}
	return o.oauth, o.verifier, nil
}

func (w *Console) mountOIDC(app *fiber.App) {
	if w.oidc == nil {
		return
	}
	app.Get("/login/oidc", w.wrap(w.oidcStart))
	app.Get("/login/oidc/callback", w.wrap(w.oidcCallback))
}

// oidcStart sends the browser to the provider with a fresh state, nonce
// and PKCE verifier, kept in the flow cookie.
func (w *Console) oidcStart(c *fiber.Ctx) error {
	oc, _, err := w.oidc.discover(c.UserContext())
	if err != nil {
		w.log.Warn("OpenID provider unavailable", "err", err)
		return w.oidcRefuse(c, "provider", fiber.StatusServiceUnavailable, nil)
	}
	oc = w.redirectFor(c, oc)
	state, nonce, verifier := newSecret(), newSecret(), oauth2.GenerateVerifier()
	next := base64.RawURLEncoding.EncodeToString([]byte(safeNext(c.Query("next", "/"))))
	ck := &fiber.Cookie{Name: oidcCookie, Value: state + "." + nonce + "." + verifier + "." + next, Path: "/login/oidc",
		HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode, Secure: w.secure(c), MaxAge: int(oidcFlowTTL.Seconds())}
	c.Cookie(ck)
	return c.Redirect(oc.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), fiber.StatusSeeOther)
}

// redirectFor is the OAuth2 configuration with this console's callback.
func (w *Console) redirectFor(c *fiber.Ctx, oc *oauth2.Config) *oauth2.Config {
	if oc.RedirectURL != "" {
		return oc
	}
	cp := *oc
	cp.RedirectURL = c.Protocol() + "://" + c.Hostname() + "/login/oidc/callback"
	return &cp
}

// oidcFlow is the flow cookie's content.
type oidcFlow struct{ state, nonce, verifier, next string }

func readFlow(v string) (oidcFlow, bool) {
	p := strings.Split(v, ".")
	if len(p) != 4 || len(p[0]) < 32 || len(p[1]) < 32 || len(p[2]) < 43 {
		return oidcFlow{}, false
	}
	next, err := base64.RawURLEncoding.DecodeString(p[3])
	if err != nil {
		return oidcFlow{}, false
	}
	return oidcFlow{state: p[0], nonce: p[1], verifier: p[2], next: safeNext(string(next))}, true
}

// oidcCallback finishes the sign-in.
func (w *Console) oidcCallback(c *fiber.Ctx) error {
	ctx := c.UserContext()
	flow, ok := readFlow(c.Cookies(oidcCookie))
	// The flow is used once, whatever happens next.
	c.Cookie(&fiber.Cookie{Name: oidcCookie, Value: "", Path: "/login/oidc", HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
		Secure: w.secure(c), Expires: time.Unix(1, 0), MaxAge: -1})
	if e := c.Query("error"); e != "" {
		// The provider's error code is a fixed vocabulary (RFC 6749 §4.1.2.1); cut anyway.
		return w.oidcRefuse(c, "denied", fiber.StatusUnauthorized, map[string]any{"error": truncate(e, 64)})
	}
	if !ok || subtle.ConstantTimeCompare([]byte(c.Query("state")), []byte(flow.state)) != 1 {
		return w.oidcRefuse(c, "state", fiber.StatusForbidden, nil)
	}
	oc, verifier, err := w.oidc.discover(ctx)
	if err != nil {
		w.log.Warn("OpenID provider unavailable", "err", err)
		return w.oidcRefuse(c, "provider", fiber.StatusServiceUnavailable, nil)
	}
	oc = w.redirectFor(c, oc)
	pctx, cancel := context.WithTimeout(w.oidc.ctx(ctx), 30*time.Second)
	defer cancel()
	tok, err := oc.Exchange(pctx, c.Query("code"), oauth2.VerifierOption(flow.verifier))
	if err != nil {
		w.log.Warn("OpenID code exchange failed", "err", err)
		return w.oidcRefuse(c, "provider", fiber.StatusBadGateway, map[string]any{"step": "exchange"})
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := verifier.Verify(pctx, raw)
	if err != nil {
		w.log.Warn("OpenID ID token refused", "err", err)
		return w.oidcRefuse(c, "provider", fiber.StatusBadGateway, map[string]any{"step": "id_token"})
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(flow.nonce)) != 1 {
		return w.oidcRefuse(c, "nonce", fiber.StatusForbidden, nil)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return w.oidcRefuse(c, "provider", fiber.StatusBadGateway, map[string]any{"step": "claims"})
	}
	role, ok := w.oidc.role(claims)
	if !ok {
		return w.oidcRefuse(c, "role", fiber.StatusForbidden, map[string]any{"subject": idt.Subject})
	}
	name := claimString(claims, "preferred_username")
	if name == "" {
		name = claimString(claims, "email")
	}
	if name == "" {
		name = idt.Subject
	}
	base := w.baseActor(c)
	res, err := w.d.Users.SignInExternal(ctx, auth.ExternalSignIn{Issuer: idt.Issuer, Subject: idt.Subject, Name: name, Role: role},
		func(ctx context.Context, tx *sql.Tx, res auth.ExternalResult) error {
			a := actorOf(base, res.User)
			var chs []cases.Change
			switch {
			case res.Created:
				chs = append(chs, userChange(a, "user.create", res.User.ID, map[string]any{"name": res.User.Name, "role": string(res.User.Role), "method": "oidc"}))
			case res.Linked:
				chs = append(chs, userChange(a, "user.link", res.User.ID, map[string]any{"issuer": idt.Issuer}))
			}
			if res.PreviousRole != "" {
				chs = append(chs, userChange(a, "user.role", res.User.ID, map[string]any{"from": string(res.PreviousRole), "to": string(res.User.Role), "method": "oidc"}))
			}
			for _, ch := range chs {
				if err := w.auditTx(ch)(ctx, tx); err != nil {
					return err
				}
			}
			return nil
		})
	if errors.Is(err, auth.ErrIdentityConflict) {
		return w.oidcRefuse(c, "name_taken", fiber.StatusConflict, map[string]any{"subject": idt.Subject})
	}
	if err != nil {
		return err
	}
	if res.User.DisabledAt != nil {
		w.record(c, cases.Change{Actor: actorOf(base, res.User), Action: "console.login", TargetType: "user", TargetID: res.User.ID,
			Detail: map[string]any{"method": "oidc", "reason": "disabled"}}, "denied")
		return w.renderOIDCFailure(c, "disabled", fiber.StatusForbidden)
	}
	ses, err := w.d.Sessions.Start(ctx, res.User, c.IP())
	if err != nil {
		return err
	}
	w.record(c, cases.Change{Actor: actorOf(base, res.User), Action: "console.login", TargetType: "user", TargetID: res.User.ID,
		Detail: map[string]any{"method": "oidc"}}, "ok")
	w.setCookie(c, sessionCookie, ses.Secret, 0, true)
	return c.Redirect(flow.next, fiber.StatusSeeOther)
}

// role maps the role claim: the first configured mapping whose value the
// claim holds.
func (o *oidcClient) role(claims map[string]any) (auth.Role, bool) {
	name := o.cfg.RoleClaim
	if name == "" {
		name = "roles"
	}
	var have []string
	switch v := claims[name].(type) {
	case string:
		have = []string{v}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				have = append(have, s)
			}
		}
	}
	for _, m := range o.cfg.Roles {
		for _, h := range have {
			if h == m.Value {
				return m.Role, true
			}
		}
	}
	return "", false
}

func claimString(claims map[string]any, k string) string {
	s, _ := claims[k].(string)
	return strings.TrimSpace(s)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// oidcRefuse audits a refused OpenID sign-in and shows why.
func (w *Console) oidcRefuse(c *fiber.Ctx, reason string, status int, detail map[string]any) error {
	d := map[string]any{"method": "oidc", "reason": reason}
	for k, v := range detail {
		d[k] = v
	}
	w.record(c, cases.Change{Actor: w.baseActor(c), Action: "console.login", TargetType: "user", Detail: d}, "denied")
	return w.renderOIDCFailure(c, reason, status)
}

func (w *Console) renderOIDCFailure(c *fiber.Ctx, reason string, status int) error {
	L := w.localeFor(c, nil)
	c.Status(status)
	return w.renderWith(c, "oidcfail", view{L: L, Title: L.T("oidc.failed"), Data: map[string]any{"Message": L.T("oidc." + reason)}})
}
