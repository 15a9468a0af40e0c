package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConsoleOIDCSettings(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := oidcConfig{Issuer: "https://idp.example", ClientID: "cv", SecretFile: secret, Roles: "a=agent"}
	with := func(f func(c *oidcConfig)) oidcConfig { c := good; f(&c); return c }
	for _, tc := range []struct {
		name string
		cfg  oidcConfig
		err  string // "" ok
	}{
		{"off", oidcConfig{}, ""},
		{"whole", good, ""},
		{"client id without issuer", oidcConfig{ClientID: "cv"}, "need --console-oidc-issuer"},
		{"no client id", with(func(c *oidcConfig) { c.ClientID = "" }), "needs"},
		{"no roles", with(func(c *oidcConfig) { c.Roles = "" }), "needs"},
		{"bad roles", with(func(c *oidcConfig) { c.Roles = "a=root" }), "--console-oidc-roles"},
		{"issuer not a URL", with(func(c *oidcConfig) { c.Issuer = "idp.example" }), "want http(s)"},
		{"bad redirect", with(func(c *oidcConfig) { c.RedirectURL = "ftp://x/cb" }), "want http(s)"},
		{"missing secret file", with(func(c *oidcConfig) { c.SecretFile = filepath.Join(dir, "nope") }), "client-secret-file"},
		{"empty secret", with(func(c *oidcConfig) { c.SecretFile = empty }), "is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := consoleOIDC(tc.cfg)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tc.cfg.Issuer != "" && (got == nil || got.ClientSecret != "s3cret" || got.RoleClaim != "roles") {
					t.Fatalf("config %+v", got)
				}
				return
			}
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want a usage error with %q", err, tc.err)
			}
		})
	}
}
