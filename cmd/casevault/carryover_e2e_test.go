package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRestoreCarryOverSummary: a full restore says what the operator must
// carry over to the restored instance (issue 17 §1) — the master key, the
// backup identity and the repository, with the paths of this instance —
// in the text summary and as carry_over in --json.
func TestRestoreCarryOverSummary(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	repo := filepath.Join(t.TempDir(), "repo")
	env := []string{"CASEVAULT_BACKUP_DIR=" + repo}
	p, tok := startAdmin(t, dir, env...)
	seed(t, p.api(), tok, "Carry", 1<<10)
	cvOK(t, env, "backup", "run", "--data-dir", dir)

	// Each line names what to carry and where it is now.
	want := []struct{ prefix, names string }{
		{"master key:", filepath.Join(dir, "master.key")},
		{"backup identity:", filepath.Join(dir, "backup.key")},
		{"backup repository:", repo},
	}
	tests := []struct {
		name  string
		json  bool
		lines func(t *testing.T, out string) []string
	}{
		{"text", false, func(t *testing.T, out string) []string {
			_, after, ok := strings.Cut(out, "carry over before serving the restored instance:\n")
			if !ok {
				t.Fatalf("no carry-over section:\n%s", out)
			}
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(after), "\n") {
				lines = append(lines, strings.TrimPrefix(strings.TrimSpace(l), "- "))
			}
			return lines
		}},
		{"json", true, func(t *testing.T, out string) []string {
			var lines []string
			for _, l := range result(t, out)["carry_over"].([]any) {
				lines = append(lines, l.(string))
			}
			return lines
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "restored")
			args := []string{"backup", "restore", "latest", "--to", target, "--data-dir", dir}
			if tt.json {
				args = append(args, "--json")
			}
			lines := tt.lines(t, cvOK(t, env, args...))
			if len(lines) != len(want) {
				t.Fatalf("carry-over lines %q, want %d", lines, len(want))
			}
			for i, w := range want {
				// the keys go to the target; the repository stays where it is
				namesTarget := i == 2 || strings.Contains(lines[i], target)
				if !strings.HasPrefix(lines[i], w.prefix) || !strings.Contains(lines[i], w.names) || !namesTarget {
					t.Errorf("carry-over line %d %q: want %q naming %s and %s", i, lines[i], w.prefix, w.names, target)
				}
			}
		})
	}
}
