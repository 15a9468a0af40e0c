package main

import (
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestGCSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		want    gcConfig
		wantErr string
	}{
		{name: "default", want: gcConfig{Percent: 400}},
		{name: "env", env: map[string]string{"CASEVAULT_GC_PERCENT": "200"}, want: gcConfig{Percent: 200}},
		{name: "flag", args: []string{"--gc-percent", "150"}, want: gcConfig{Percent: 150}},
		{name: "explicit GOGC beats the default", env: map[string]string{"GOGC": "50"}, want: gcConfig{}},
		{name: "our flag beats GOGC", env: map[string]string{"GOGC": "50"}, args: []string{"--gc-percent", "300"}, want: gcConfig{Percent: 300}},
		{name: "our env beats GOGC", env: map[string]string{"GOGC": "50", "CASEVAULT_GC_PERCENT": "250"}, want: gcConfig{Percent: 250}},
		{name: "memory limit", args: []string{"--memory-limit", "1GiB"}, want: gcConfig{Percent: 400, Limit: 1 << 30}},
		{name: "not a number", args: []string{"--gc-percent", "lots"}, wantErr: `invalid argument "lots" for "--gc-percent"`},
		{name: "too low", args: []string{"--gc-percent", "10"}, wantErr: "--gc-percent must be"},
		{name: "too high", env: map[string]string{"CASEVAULT_GC_PERCENT": "20000"}, wantErr: "--gc-percent must be"},
		{name: "tiny limit", args: []string{"--memory-limit", "32MiB"}, wantErr: "below 64MiB"},
		{name: "bad limit", args: []string{"--memory-limit", "plenty"}, wantErr: "--memory-limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"GOGC", "CASEVAULT_GC_PERCENT", "CASEVAULT_MEMORY_LIMIT"} {
				t.Setenv(k, "") // restored after the test
				os.Unsetenv(k)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c := newConfig()
			cmd := c.flags(&cobra.Command{Use: "x"}, useServer)
			err := cmd.Flags().Parse(tc.args)
			if err == nil {
				err = c.load(cmd.Flags())
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.GC != tc.want {
				t.Fatalf("gc = %+v, want %+v", c.GC, tc.want)
			}
		})
	}
}

func TestGCApply(t *testing.T) {
	oldPct, oldLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(oldPct); debug.SetMemoryLimit(oldLimit) })
	gcConfig{Percent: 321, Limit: 900 << 20}.apply(slog.New(slog.DiscardHandler))
	if p := debug.SetGCPercent(100); p != 321 {
		t.Errorf("GC percent %d, want 321", p)
	}
	if l := debug.SetMemoryLimit(-1); l != 900<<20 {
		t.Errorf("memory limit %d, want %d", l, 900<<20)
	}
	// zero values leave the runtime alone (GOGC / GOMEMLIMIT from the environment)
	debug.SetGCPercent(77)
	gcConfig{}.apply(slog.New(slog.DiscardHandler))
	if p := debug.SetGCPercent(100); p != 77 {
		t.Errorf("GC percent %d after an empty config, want 77 kept", p)
	}
}
