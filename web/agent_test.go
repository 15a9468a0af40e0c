package web

import (
	"slices"
	"strings"
	"testing"

	"github.com/casevault/casevault/auth"
)

func TestParseRoleMap(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []RoleMapping
		err  string
	}{
		{in: "cv-admins=admin, cv-agents = agent", want: []RoleMapping{{"cv-admins", auth.RoleAdmin}, {"cv-agents", auth.RoleAgent}}},
		{in: "", err: "no role mapping"},
		{in: "admins", err: "want value=role"},
		{in: "=admin", err: "want value=role"},
		{in: "admins=root", err: "unknown role"},
	} {
		got, err := ParseRoleMap(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %v %v", tc.in, got, err)
		}
	}
}

// TestOIDCRole: the first mapping in configuration order whose value the
// claim holds decides; anything else is no role.
func TestOIDCRole(t *testing.T) {
	o := &oidcClient{cfg: OIDCConfig{RoleClaim: "groups", Roles: []RoleMapping{{"admins", auth.RoleAdmin}, {"agents", auth.RoleAgent}}}}
	for _, tc := range []struct {
		name   string
		claims map[string]any
		want   auth.Role
		ok     bool
	}{
		{"string", map[string]any{"groups": "agents"}, auth.RoleAgent, true},
		{"list, first mapping wins", map[string]any{"groups": []any{"agents", "admins"}}, auth.RoleAdmin, true},
		{"unknown value", map[string]any{"groups": []any{"visitors"}}, "", false},
		{"other claim", map[string]any{"roles": "admins"}, "", false},
		{"not strings", map[string]any{"groups": []any{1, true}}, "", false},
		{"no claim", map[string]any{}, "", false},
	} {
		got, ok := o.role(tc.claims)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: %q %v, want %q %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestReadFlow(t *testing.T) {
	s, n, v := strings.Repeat("s", 43), strings.Repeat("n", 43), strings.Repeat("v", 43)
	for _, tc := range []struct {
		name, cookie, next string
		ok                 bool
	}{
		{"whole", s + "." + n + "." + v + ".L3NlYXJjaA", "/search", true},
		{"next off-site becomes /", s + "." + n + "." + v + ".Ly9ldmlsLmV4YW1wbGU", "/", true},
		{"empty", "", "", false},
		{"short state", "abc." + n + "." + v + ".Lw", "", false},
		{"three parts", s + "." + n + "." + v, "", false},
		{"bad next", s + "." + n + "." + v + ".***", "", false},
	} {
		f, ok := readFlow(tc.cookie)
		if ok != tc.ok || (ok && f.next != tc.next) {
			t.Errorf("%s: %+v %v", tc.name, f, ok)
		}
	}
}

func TestPreviewable(t *testing.T) {
	for ct, want := range map[string]bool{
		"image/png": true, "image/jpeg": true, "application/pdf": true, "image/webp": true,
		"image/svg+xml": false, "text/html": false, "text/html; charset=utf-8": false, "application/xhtml+xml": false,
		"text/plain": false, "": false, "application/octet-stream": false, "image/png; x=\"": false,
	} {
		if got := previewable(ct); got != want {
			t.Errorf("previewable(%q) = %v", ct, got)
		}
	}
}

// TestAgentMessagesFormat: every agent message with verbs formats cleanly
// in both languages (the Chinese explanation reorders its arguments).
func TestAgentMessagesFormat(t *testing.T) {
	args := map[string][]any{
		"files.too_large": {int64(1 << 20)}, "case.explain.rule": {"customer_service", "2y", "capture", "delete"},
		"case.explain.version": {3}, "explain.hold_placed": {"2026-01-02 10:00", "legal1"},
	}
	cat := newCatalogue()
	for _, lang := range []string{"en", "zh-Hans"} {
		L := &locale{Lang: lang, msgs: cat.msgs[lang], en: cat.msgs["en"]}
		for k := range agentMessagesEN {
			got := L.T(k, args[k]...)
			if strings.Contains(got, "%!") || (len(args[k]) == 0 && strings.Contains(got, "%")) {
				t.Errorf("%s %s: %q", lang, k, got)
			}
			for _, a := range args[k] {
				if s, ok := a.(string); ok && !strings.Contains(got, s) {
					t.Errorf("%s %s: %q lacks %q", lang, k, got, s)
				}
			}
		}
	}
}
