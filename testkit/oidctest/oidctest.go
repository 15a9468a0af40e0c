// Package oidctest is a small OpenID Connect provider for tests: discovery,
// a JWKS of one RSA key, an authorization endpoint with a sign-in form
// (the person types a user name the test registered), and a token
// endpoint that checks the client secret, the redirect URI and the PKCE
// verifier (S256 only) and answers an RS256-signed ID token carrying the
// nonce it was given. It speaks the protocol over real HTTP, so the
// client under test (go-oidc, x/oauth2) runs unchanged; Tamper lets a test
// break one claim (a wrong nonce) the way a confused or hostile provider
// would.
package oidctest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Provider is a running test provider.
type Provider struct {
	// Issuer is the provider's URL (its discovery document's issuer).
	Issuer       string
	ClientID     string
	ClientSecret string

	srv *httptest.Server
	key *rsa.PrivateKey
	kid string

	mu     sync.Mutex
	users  map[string]map[string]any
	grants map[string]grant
	tamper func(claims map[string]any)
	// Tokens counts the codes exchanged (a test checks a refused flow
	// never reached the token endpoint, or did).
	tokens int
}

type grant struct {
	redirect, nonce, challenge string
	claims                     map[string]any
}

// Start runs a provider for one client until the test ends.
func Start(t testing.TB, clientID, clientSecret string) *Provider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &Provider{ClientID: clientID, ClientSecret: clientSecret, key: key, kid: "k1",
		users: map[string]map[string]any{}, grants: map[string]grant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("GET /authorize", p.authorizeForm)
	mux.HandleFunc("POST /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	p.Issuer = p.srv.URL
	return p
}

// AddUser registers a person: the subject and the claims their ID token
// carries (preferred_username, roles, …).
func (p *Provider) AddUser(name, subject string, claims map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := map[string]any{"sub": subject, "preferred_username": name}
	for k, v := range claims {
		c[k] = v
	}
	p.users[name] = c
}

// Tamper changes the claims of every ID token issued from now on (nil:
// none).
func (p *Provider) Tamper(f func(claims map[string]any)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tamper = f
}

// Exchanged is how many codes the token endpoint has exchanged.
func (p *Provider) Exchanged() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tokens
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (p *Provider) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, 200, map[string]any{
		"issuer": p.Issuer, "authorization_endpoint": p.Issuer + "/authorize", "token_endpoint": p.Issuer + "/token",
		"jwks_uri": p.Issuer + "/jwks", "response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"}, "code_challenge_methods_supported": []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
	})
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (p *Provider) jwks(w http.ResponseWriter, _ *http.Request) {
	pub := p.key.PublicKey
	writeJSON(w, 200, map[string]any{"keys": []map[string]any{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": p.kid,
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

var formPage = template.Must(template.New("f").Parse(`<!doctype html><html lang="en"><head><title>Test identity provider</title></head>
<body><main><h1>Test identity provider</h1><form method="post" action="/authorize">
{{range $k, $v := .}}<input type="hidden" name="{{$k}}" value="{{index $v 0}}">{{end}}
<label for="username">User name</label><input id="username" name="username" autocomplete="off">
<button id="signin" type="submit">Sign in</button></form></main></body></html>`))

// authorizeForm checks the request and shows the sign-in form.
func (p *Provider) authorizeForm(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if msg := p.checkAuthorize(q); msg != "" {
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = formPage.Execute(w, q)
}

func (p *Provider) checkAuthorize(q url.Values) string {
	switch {
	case q.Get("client_id") != p.ClientID:
		return "unknown client"
	case q.Get("response_type") != "code":
		return "response_type must be code"
	case q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43:
		return "PKCE with S256 is required"
	case q.Get("state") == "" || q.Get("nonce") == "" || q.Get("redirect_uri") == "":
		return "state, nonce and redirect_uri are required"
	}
	return ""
}

// authorize signs the person in and sends the browser back with a code.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := r.PostForm
	if msg := p.checkAuthorize(q); msg != "" {
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	claims, ok := p.users[q.Get("username")]
	p.mu.Unlock()
	to, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	back := url.Values{"state": {q.Get("state")}}
	if !ok {
		back.Set("error", "access_denied")
	} else {
		code := randomString()
		p.mu.Lock()
		p.grants[code] = grant{redirect: q.Get("redirect_uri"), nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), claims: claims}
		p.mu.Unlock()
		back.Set("code", code)
	}
	to.RawQuery = back.Encode()
	http.Redirect(w, r, to.String(), http.StatusFound)
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return b64(b)
}

// token exchanges a code once, for the client that asked for it, with the
// PKCE verifier of its challenge.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, 400, map[string]string{"error": "invalid_request"})
		return
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != p.ClientID || secret != p.ClientSecret {
		writeJSON(w, 401, map[string]string{"error": "invalid_client"})
		return
	}
	p.mu.Lock()
	g, ok := p.grants[r.PostForm.Get("code")]
	delete(p.grants, r.PostForm.Get("code"))
	tamper := p.tamper
	p.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	switch {
	case r.PostForm.Get("grant_type") != "authorization_code" || !ok:
		writeJSON(w, 400, map[string]string{"error": "invalid_grant"})
		return
	case r.PostForm.Get("redirect_uri") != g.redirect:
		writeJSON(w, 400, map[string]string{"error": "invalid_grant", "error_description": "redirect_uri differs"})
		return
	case b64(sum[:]) != g.challenge:
		writeJSON(w, 400, map[string]string{"error": "invalid_grant", "error_description": "PKCE verifier does not match"})
		return
	}
	now := time.Now()
	claims := map[string]any{"iss": p.Issuer, "aud": p.ClientID, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "nonce": g.nonce}
	for k, v := range g.claims {
		claims[k] = v
	}
	if tamper != nil {
		tamper(claims)
	}
	idt, err := p.sign(claims)
	if err != nil {
		writeJSON(w, 500, map[string]string{"error": "server_error"})
		return
	}
	p.mu.Lock()
	p.tokens++
	p.mu.Unlock()
	writeJSON(w, 200, map[string]any{"access_token": randomString(), "token_type": "Bearer", "expires_in": 300, "id_token": idt})
}

// sign makes a compact RS256 JWS.
func (p *Provider) sign(claims map[string]any) (string, error) {
	h, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": p.kid})
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	in := b64(h) + "." + b64(c)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, p.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return in + "." + b64(sig), nil
}
