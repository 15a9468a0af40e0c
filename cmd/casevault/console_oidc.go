package main

import (
	"net/url"
	"os"
	"strings"

	"github.com/casevault/casevault/web"
)

// consoleOIDC reads the console's OpenID Connect settings (nil: not
// configured). A half configuration is a usage error, not a sign-in
// button that cannot work.
func consoleOIDC(c oidcConfig) (*web.OIDCConfig, error) {
	if c.Issuer == "" {
		if c.ClientID != "" || c.SecretFile != "" || c.Roles != "" || c.RedirectURL != "" {
			return nil, usagef("--console-oidc-client-id, -client-secret-file, -redirect-url and -roles need --console-oidc-issuer")
		}
		return nil, nil
	}
	if c.ClientID == "" || c.SecretFile == "" || c.Roles == "" {
		return nil, usagef("--console-oidc-issuer needs --console-oidc-client-id, --console-oidc-client-secret-file and --console-oidc-roles")
	}
	for _, u := range []string{c.Issuer, c.RedirectURL} {
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return nil, usagef("OpenID Connect URL %q: want http(s)://host/…", u)
		}
	}
	b, err := os.ReadFile(c.SecretFile)
	if err != nil {
		return nil, usagef("--console-oidc-client-secret-file: %v", err)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return nil, usagef("--console-oidc-client-secret-file %s is empty", c.SecretFile)
	}
	roles, err := web.ParseRoleMap(c.Roles)
	if err != nil {
		return nil, usagef("--console-oidc-roles: %v", err)
	}
	claim := c.RoleClaim
	if claim == "" {
		claim = "roles"
	}
	return &web.OIDCConfig{Issuer: c.Issuer, ClientID: c.ClientID, ClientSecret: secret, RedirectURL: c.RedirectURL, RoleClaim: claim, Roles: roles}, nil
}
