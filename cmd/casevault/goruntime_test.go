package main

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestRuntimeSettings(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		want    runtimeConfig
		wantErr string
	}{
		{name: "default", want: runtimeConfig{Cores: procs, Percent: 400, Procs: 2 * procs}},
		{name: "env", env: map[string]string{"CASEVAULT_GC_PERCENT": "200"}, want: runtimeConfig{Cores: procs, Percent: 200, Procs: 2 * procs}},
		{name: "flag", args: []string{"--gc-percent", "150"}, want: runtimeConfig{Cores: procs, Percent: 150, Procs: 2 * procs}},
		{name: "explicit GOGC beats the default", env: map[string]string{"GOGC": "50"}, want: runtimeConfig{Cores: procs, Procs: 2 * procs}},
		{name: "our flag beats GOGC", env: map[string]string{"GOGC": "50"}, args: []string{"--gc-percent", "300"}, want: runtimeConfig{Cores: procs, Percent: 300, Procs: 2 * procs}},
		{name: "our env beats GOGC", env: map[string]string{"GOGC": "50", "CASEVAULT_GC_PERCENT": "250"}, want: runtimeConfig{Cores: procs, Percent: 250, Procs: 2 * procs}},
		{name: "memory limit", args: []string{"--memory-limit", "1GiB"}, want: runtimeConfig{Cores: procs, Percent: 400, Limit: 1 << 30, Procs: 2 * procs}},
		{name: "procs flag", args: []string{"--gomaxprocs", "3"}, want: runtimeConfig{Cores: procs, Percent: 400, Procs: 3}},
		{name: "procs env", env: map[string]string{"CASEVAULT_GOMAXPROCS": "5"}, want: runtimeConfig{Cores: procs, Percent: 400, Procs: 5}},
		{name: "explicit GOMAXPROCS beats the default", env: map[string]string{"GOMAXPROCS": "1"}, want: runtimeConfig{Cores: procs, Percent: 400}},
		{name: "our flag beats GOMAXPROCS", env: map[string]string{"GOMAXPROCS": "1"}, args: []string{"--gomaxprocs", "6"}, want: runtimeConfig{Cores: procs, Percent: 400, Procs: 6}},
		{name: "empty GOGC and GOMAXPROCS are unset", env: map[string]string{"GOGC": "", "GOMAXPROCS": ""}, want: runtimeConfig{Cores: procs, Percent: 400, Procs: 2 * procs}},
		{name: "our zero beats GOMAXPROCS", env: map[string]string{"GOMAXPROCS": "1"}, args: []string{"--gomaxprocs", "0"}, want: runtimeConfig{Cores: procs, Percent: 400, Procs: 2 * procs}},
		{name: "not a number", args: []string{"--gc-percent", "lots"}, wantErr: `invalid argument "lots" for "--gc-percent"`},
		{name: "too low", args: []string{"--gc-percent", "10"}, wantErr: "--gc-percent must be"},
		{name: "too high", env: map[string]string{"CASEVAULT_GC_PERCENT": "20000"}, wantErr: "--gc-percent must be"},
		{name: "tiny limit", args: []string{"--memory-limit", "32MiB"}, wantErr: "below 64MiB"},
		{name: "bad limit", args: []string{"--memory-limit", "plenty"}, wantErr: "--memory-limit"},
		{name: "negative procs", args: []string{"--gomaxprocs", "-1"}, wantErr: "--gomaxprocs must be"},
		{name: "too many procs", env: map[string]string{"CASEVAULT_GOMAXPROCS": "20000"}, wantErr: "--gomaxprocs must be"},
		{name: "procs not a number", args: []string{"--gomaxprocs", "all"}, wantErr: `invalid argument "all" for "--gomaxprocs"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"GOGC", "GOMAXPROCS", "CASEVAULT_GC_PERCENT", "CASEVAULT_MEMORY_LIMIT", "CASEVAULT_GOMAXPROCS"} {
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
			if c.Runtime != tc.want {
				t.Fatalf("runtime = %+v, want %+v", c.Runtime, tc.want)
			}
		})
	}
}

func TestRuntimeApply(t *testing.T) {
	oldPct, oldLimit, oldProcs := debug.SetGCPercent(100), debug.SetMemoryLimit(-1), runtime.GOMAXPROCS(0)
	t.Cleanup(func() { debug.SetGCPercent(oldPct); debug.SetMemoryLimit(oldLimit); runtime.GOMAXPROCS(oldProcs) })
	runtimeConfig{Percent: 321, Limit: 900 << 20, Procs: oldProcs + 3}.apply(slog.New(slog.DiscardHandler))
	if p := debug.SetGCPercent(100); p != 321 {
		t.Errorf("GC percent %d, want 321", p)
	}
	if l := debug.SetMemoryLimit(-1); l != 900<<20 {
		t.Errorf("memory limit %d, want %d", l, 900<<20)
	}
	if p := runtime.GOMAXPROCS(0); p != oldProcs+3 {
		t.Errorf("GOMAXPROCS %d, want %d", p, oldProcs+3)
	}
	// zero values leave the runtime alone (GOGC / GOMAXPROCS from the environment)
	debug.SetGCPercent(77)
	runtime.GOMAXPROCS(oldProcs)
	runtimeConfig{}.apply(slog.New(slog.DiscardHandler))
	if p := debug.SetGCPercent(100); p != 77 {
		t.Errorf("GC percent %d after an empty config, want 77 kept", p)
	}
	if p := runtime.GOMAXPROCS(0); p != oldProcs {
		t.Errorf("GOMAXPROCS %d after an empty config, want %d kept", p, oldProcs)
	}
}
