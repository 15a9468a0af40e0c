package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/testkit"
)

// Every command's usage errors exit 2, and so does a mistyped subcommand
// at every level (a cron job must not report success for `backup rnu`).
func TestUsageErrorsExit2(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		env  []string
		want string // in stderr
	}{
		{args: []string{"nosuch"}, want: `unknown command "nosuch" for "casevault"`},
		{args: []string{"backup", "rnu"}, want: "Did you mean this?\n\trun"},
		{args: []string{"audit", "verfy"}, want: "Did you mean this?\n\tverify"},
		{args: []string{"token", "creat"}, want: "Did you mean this?\n\tcreate"},
		{args: []string{"attachments", "reconcil"}, want: "Did you mean this?\n\treconcile"},
		{args: []string{"retention", "rn"}, want: `unknown command "rn"`},
		{args: []string{"backup"}, want: "needs a subcommand"},
		{args: []string{"serve", "--listen"}, want: "flag needs an argument: --listen"},
		{args: []string{"serve", "--s3-tls=maybe"}, want: `invalid argument "maybe" for "--s3-tls"`},
		{args: []string{"serve", "--gc-percent", "many"}, want: `"--gc-percent"`},
		{args: []string{"serve", "--json-body-limit", "lots"}, want: "bad size"},
		{args: []string{"serve"}, env: []string{"CASEVAULT_S3_TLS=maybe"}, want: "CASEVAULT_S3_TLS"},
		{args: []string{"serve", "extra"}, want: "unknown command"},
		{args: []string{"migrate", "extra"}, want: "unknown command"},
		{args: []string{"config", "extra"}, want: "unknown command"},
		{args: []string{"reindex", "extra"}, want: "unknown command"},
		{args: []string{"token", "create", "--name", "x"}, want: "--name and --role are required"},
		{args: []string{"token", "create", "--name", "x", "--role", "root"}, want: "unknown role"},
		{args: []string{"token", "list", "extra"}, want: "unknown command"},
		{args: []string{"token", "revoke"}, want: "accepts 1 arg(s), received 0"},
		{args: []string{"audit", "verify", "extra"}, want: "unknown command"},
		{args: []string{"audit", "export", "--from", "30/11/2026"}, want: "must be RFC 3339"},
		{args: []string{"audit", "export", "--to", "yesterday"}, want: "must be RFC 3339"},
		{args: []string{"audit", "prune", "--audit-retention", "forever"}, want: "--audit-retention"},
		{args: []string{"attachments", "reconcile", "--grace", "soon"}, want: "--grace"},
		{args: []string{"retention", "run", "extra"}, want: "unknown command"},
		{args: []string{"backup", "run", "extra"}, want: "unknown command"},
		{args: []string{"backup", "list", "--listen", "127.0.0.1:1"}, want: "unknown flag: --listen"},
		{args: []string{"backup", "verify"}, want: "accepts 1 arg(s), received 0"},
		{args: []string{"backup", "restore"}, want: "accepts 1 arg(s), received 0"},
		{args: []string{"backup", "restore", "id"}, want: "exactly one of --to, --case and --undo-run"},
		{args: []string{"backup", "restore", "id", "--case", "c", "--no-live"}, want: "--no-live goes with --to"},
		{args: []string{"backup", "restore", "id", "--to", "x", "--undo-run", "r"}, want: "exactly one of --to, --case and --undo-run"},
		{args: []string{"backup", "restore", "id", "--to", "x", "--yes"}, want: "--yes and --source-master-key-file go with --case or --undo-run"},
		{args: []string{"backup", "restore", "id", "--undo-run", "r", "--yes", "--dry-run"}, want: "--yes and --dry-run exclude each other"},
		{args: []string{"backup", "restore", "id", "--case", "c", "--dry-run"}, want: "--dry-run goes with --to or --undo-run"},
		{args: []string{"backup", "diff", "a"}, want: "accepts 2 arg(s), received 1"},
		{args: []string{"backup", "forget", "--keep-within", "ages"}, want: "--keep-within"},
		{args: []string{"backup", "forget", "--keep-daily", "0", "--keep-weekly", "0", "--keep-monthly", "0"}, want: "no keep rule"},
		{args: []string{"backup", "forget", "--max-age", "ages"}, want: "--max-age"},
		{args: []string{"backup", "run", "--backup-keep-daily", "-1"}, want: "--backup-keep-daily must be"},
		{args: []string{"customer"}, want: "needs a subcommand"},
		{args: []string{"customer", "erse"}, want: "Did you mean this?\n\terase"},
		{args: []string{"customer", "erase"}, want: "accepts 1 arg(s), received 0"},
		{args: []string{"customer", "erase", "someone"}, want: "--reason is required"},
		{args: []string{"customer", "erase", "someone", "--reason", " "}, want: "--reason is required"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			// --data-dir before the first flag, so that a flag missing
			// its value stays last
			n := len(tc.args)
			for i, a := range tc.args {
				if strings.HasPrefix(a, "-") {
					n = i
					break
				}
			}
			args := append(append(append([]string{}, tc.args[:n]...), "--data-dir", dir), tc.args[n:]...)
			out, errOut, code := cv(t, tc.env, args...)
			if code != exitUsage || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, want %d with %q\nstdout: %s\nstderr: %s", code, exitUsage, tc.want, out, errOut)
			}
		})
	}
}

// Each command shows only the flags it reads; server flags only on serve.
func TestFlagsShownOnlyWhereUsed(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		has, hasNot []string
	}{
		{args: []string{"serve"}, has: []string{"--listen", "--s3-tls", "--backup-schedule", "--gc-percent", "--meili-url"}},
		{args: []string{"token", "create"}, has: []string{"--data-dir", "--database-url", "--name"}, hasNot: []string{"--listen", "--s3-endpoint", "--backup-dir", "--gc-percent"}},
		{args: []string{"backup", "list"}, has: []string{"--backup-dir", "--allow-unsigned", "--json"}, hasNot: []string{"--listen", "--s3-endpoint", "--json-body-limit", "--backup-schedule"}},
		{args: []string{"backup", "restore"}, has: []string{"--s3-endpoint", "--meili-url", "--backup-identity-file"}, hasNot: []string{"--listen", "--retention-schedule"}},
		{args: []string{"audit", "prune"}, has: []string{"--audit-retention"}, hasNot: []string{"--listen", "--s3-tls"}},
		// A sweep never applies a schedule file (issue 21 §8); it opens the
		// search index for query holds.
		{args: []string{"retention", "run"}, has: []string{"--s3-endpoint", "--meili-url"}, hasNot: []string{"--listen", "--backup-dir", "--retention-schedule-file"}},
		{args: []string{"retention", "schedule", "apply"}, has: []string{"--data-dir", "--database-url"}, hasNot: []string{"--retention-schedule-file", "--s3-endpoint"}},
	} {
		out := cvOK(t, nil, append(tc.args, "--help")...)
		for _, f := range tc.has {
			if !strings.Contains(out, f+" ") {
				t.Errorf("%v --help lacks %s", tc.args, f)
			}
		}
		for _, f := range tc.hasNot {
			if strings.Contains(out, f+" ") {
				t.Errorf("%v --help shows %s, which it does not use", tc.args, f)
			}
		}
	}
}

// `casevault config` prints what a command would use, from flags, the
// environment and defaults, and never a secret's value.
func TestConfigPrintsEffectiveSettings(t *testing.T) {
	dir := t.TempDir()
	env := []string{"CASEVAULT_LISTEN=127.0.0.1:9999", "CASEVAULT_S3_SECRET_KEY=topsecret-value", "CASEVAULT_MASTER_KEY="}
	out := cvOK(t, env, "config", "--data-dir", dir, "--s3-tls=false", "--json-body-limit", "2MiB", "--meili-key", "flag-secret")
	for _, want := range [][]string{
		{"--listen", "127.0.0.1:9999", "env CASEVAULT_LISTEN"},
		{"--s3-tls", "false", "flag"},
		{"--json-body-limit", "2.0 MiB", "flag"},
		{"--data-dir", dir, "flag"},
		{"--s3-secret-key", "(set)", "env CASEVAULT_S3_SECRET_KEY"},
		{"--meili-key", "(set)", "flag"},
		{"--master-key", "(unset)", "default"},
		{"--backup-keep-daily", "7", "default"},
	} {
		if !hasRow(out, want) {
			t.Errorf("config output lacks the row %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "topsecret-value") || strings.Contains(out, "flag-secret") {
		t.Fatalf("config printed a secret:\n%s", out)
	}
	if help := cvOK(t, env, "serve", "--help"); strings.Contains(help, "topsecret-value") {
		t.Fatal("serve --help printed a secret from the environment")
	}
}

// hasRow reports whether a line of out has exactly the given fields.
func hasRow(out string, fields []string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(l), " ") == strings.Join(fields, " ") {
			return true
		}
	}
	return false
}

// token list and revoke go through the same calls as the API and are
// audited under the API's action names; a revoked token stops working.
func TestTokenListRevokeCLI(t *testing.T) {
	dir := t.TempDir()
	secret := strings.TrimSpace(cvOK(t, nil, "token", "create", "--data-dir", dir, "--name", "ops", "--role", "admin"))

	var list struct {
		Items []struct {
			ID, Name, Role string
			RevokedAt      *time.Time `json:"revoked_at"`
		}
	}
	if err := json.Unmarshal([]byte(cvOK(t, nil, "token", "list", "--json", "--data-dir", dir)), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "ops" || list.Items[0].Role != "admin" || list.Items[0].RevokedAt != nil {
		t.Fatalf("token list: %+v", list.Items)
	}
	id := list.Items[0].ID
	if human := cvOK(t, nil, "token", "list", "--data-dir", dir); !strings.Contains(human, id) || strings.Contains(human, secret) {
		t.Fatalf("token list (human) must name the token and never show its secret:\n%s", human)
	}

	p := start(t, dir)
	if code, _ := call(t, "GET", p.api()+"/tokens", secret, nil); code != 200 {
		t.Fatalf("token before revoke: %d", code)
	}
	cvOK(t, nil, "token", "revoke", id, "--data-dir", dir)
	// The server learns of a revocation by another process through the
	// database, within auth.DefaultCacheTTL (issue 19).
	testkit.Eventually(t, 5*time.Second, "the revoked token refused", func() bool {
		code, _ := call(t, "GET", p.api()+"/tokens", secret, nil)
		return code == 401
	})
	cvCode(t, exitError, nil, "token", "revoke", "no-such-token", "--data-dir", dir)

	audit := cvOK(t, nil, "audit", "export", "--action", "token.*", "--data-dir", dir)
	for _, action := range []string{`"token.create"`, `"token.list"`, `"token.revoke"`} {
		if !strings.Contains(audit, action) {
			t.Errorf("%s not audited:\n%s", action, audit)
		}
	}
	if !strings.Contains(audit, `"target_id":"`+id+`"`) {
		t.Errorf("revoke event does not name the token %s:\n%s", id, audit)
	}
}

// audit export takes the dates the API takes: RFC 3339 or YYYY-MM-DD
// (UTC midnight; from inclusive, to exclusive).
func TestAuditExportDates(t *testing.T) {
	dir := t.TempDir()
	cvOK(t, nil, "migrate", "--data-dir", dir) // one audited event today
	today := time.Now().UTC().Format(time.DateOnly)
	tomorrow := time.Now().UTC().Add(24 * time.Hour).Format(time.DateOnly)
	for _, tc := range []struct {
		args []string
		want bool // the migrate event is exported
	}{
		{[]string{"--from", today}, true},
		{[]string{"--to", tomorrow}, true},
		{[]string{"--from", tomorrow}, false},
		{[]string{"--to", today}, false},
		{[]string{"--from", today + "T00:00:00Z", "--to", tomorrow + "T00:00:00+00:00"}, true},
	} {
		out := cvOK(t, nil, append([]string{"audit", "export", "--action", "schema.migrate", "--data-dir", dir}, tc.args...)...)
		if got := strings.Contains(out, `"schema.migrate"`); got != tc.want {
			t.Errorf("audit export %v: migrate event exported %v, want %v\n%s", tc.args, got, tc.want, out)
		}
	}

	// each export is audited with the range it was asked for
	out := cvOK(t, nil, "audit", "export", "--action", "audit.export", "--data-dir", dir)
	for _, want := range []string{`"from":"` + today + `"`, `"to":"` + tomorrow + `"`, `"to":"` + tomorrow + `T00:00:00+00:00"`} {
		if !strings.Contains(out, want) {
			t.Errorf("no audit.export event with %s:\n%s", want, out)
		}
	}
}
