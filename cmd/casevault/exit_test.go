package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/sqldb"
)

// exitCode is the one mapping from errors to exit codes; wrapped errors
// keep their code.
func TestExitCode(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	wrap := func(err error) error { return fmt.Errorf("doing things: %w", err) }
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, exitOK},
		{"plain", errors.New("boom"), exitError},
		{"usage", usagef("bad flag"), exitUsage},
		{"wrapped usage", wrap(usageError{errors.New("x")}), exitUsage},
		{"chosen code", exitCodeError{exitIncomplete, errors.New("incomplete")}, exitIncomplete},
		{"interrupted", interrupted(cancelled, errors.New("sqlite: interrupted")), exitInterrupt},
		{"interrupted wins over a backup code", interrupted(cancelled, backup.ErrLocked), exitInterrupt},
		{"not interrupted", interrupted(context.Background(), backup.ErrLocked), exitLocked},
		{"context canceled", wrap(context.Canceled), exitInterrupt},
		{"locked", wrap(backup.ErrLocked), exitLocked},
		{"no key", wrap(backup.ErrNoKey), exitKey},
		{"wrong key", wrap(backup.ErrWrongKey), exitKey},
		{"no signing key", wrap(backup.ErrNoSigningKey), exitKey},
		{"target in use", wrap(backup.ErrTargetInUse), exitRefused},
		{"held", wrap(backup.ErrHeld), exitRefused},
		{"deleted", wrap(backup.ErrDeleted), exitRefused},
		{"damaged", wrap(backup.ErrDamaged), exitDamaged},
		{"no repository", wrap(backup.ErrNoRepository), exitNoRepo},
		{"no such backup", wrap(backup.ErrNotFound), exitNoRepo},
		{"database down", wrap(sqldb.ErrUnavailable), exitUnavailable},
		{"s3 down", wrap(archive.ErrUnavailable), exitUnavailable},
		{"wrong master key", wrap(archive.ErrWrongMasterKey), exitMasterKey},
		{"no master key", wrap(archive.ErrNoMasterKey), exitMasterKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCode(tc.err); got != tc.want {
				t.Fatalf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

// Sizes are read and printed by go-humanize.
func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		printed string
		bad     bool
	}{
		{in: "1048576", want: 1 << 20, printed: "1.0 MiB"},
		{in: "1MiB", want: 1 << 20, printed: "1.0 MiB"},
		{in: "100 MiB", want: 100 << 20, printed: "100 MiB"},
		{in: "2GiB", want: 2 << 30, printed: "2.0 GiB"},
		{in: "512KiB", want: 512 << 10, printed: "512 KiB"},
		{in: "1MB", want: 1_000_000, printed: "977 KiB"},
		{in: "", want: 0, printed: ""},
		{in: "0", bad: true},
		{in: "lots", bad: true},
		{in: "-1MiB", bad: true},
	} {
		var b byteSize
		err := b.Set(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q accepted as %d", tc.in, b)
			}
			continue
		}
		if err != nil || int64(b) != tc.want || b.String() != tc.printed {
			t.Errorf("%q = %d %q (%v), want %d %q", tc.in, b, b.String(), err, tc.want, tc.printed)
		}
	}
}

// Every option has a field of a type bind knows and a default that parses
// (bind panics otherwise), and names its environment variable after itself.
func TestOptionsTable(t *testing.T) {
	c := newConfig()
	if err := c.resolve(); err != nil {
		t.Fatalf("defaults do not resolve: %v", err)
	}
	seen := map[string]bool{}
	for _, o := range options() {
		if seen[o.name] || o.uses == 0 || o.help == "" {
			t.Errorf("option %s: duplicate, unused or undocumented", o.name)
		}
		seen[o.name] = true
	}
	if c.JSONBodyLimit != 1<<20 || c.AttachmentLimit != 100<<20 || !c.S3.TLS || c.Backup.KeepMonthly != 12 || c.AuditRetention.d == 0 {
		t.Fatalf("defaults not applied: %+v", c)
	}
}
