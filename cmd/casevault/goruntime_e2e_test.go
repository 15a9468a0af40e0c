package main

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"testing"
)

// TestServeAppliesRuntimeSettings: serve applies what goRuntime derived,
// as the runtime itself reports it on /metrics (Prometheus's Go
// collector reads runtime/metrics), so a serve that forgot to call apply,
// or a default that stopped doubling, fails here.
func TestServeAppliesRuntimeSettings(t *testing.T) {
	// The default case runs serve with GOMAXPROCS empty, so Go picks its
	// own value: this process's, unless the runner set GOMAXPROCS (make
	// test does not).
	if os.Getenv("GOMAXPROCS") != "" {
		t.Fatal("GOMAXPROCS is set for the test run: Go's own default, which the default case doubles, is unknown")
	}
	def := runtime.GOMAXPROCS(0)
	tests := []struct {
		name              string
		env               []string
		wantProcs, wantGC int
	}{
		{name: "defaults", env: []string{"GOGC=", "GOMAXPROCS="}, wantProcs: 2 * def, wantGC: 400},
		{name: "ours", env: []string{"CASEVAULT_GOMAXPROCS=3", "CASEVAULT_GC_PERCENT=250"}, wantProcs: 3, wantGC: 250},
		{name: "Go's variables win over the defaults", env: []string{"GOMAXPROCS=1", "GOGC=150"}, wantProcs: 1, wantGC: 150},
		{name: "ours win over Go's", env: []string{"GOMAXPROCS=1", "CASEVAULT_GOMAXPROCS=5"}, wantProcs: 5, wantGC: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := start(t, t.TempDir(), tc.env...)
			res, err := http.Get("http://" + p.addr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			for metric, want := range map[string]int{"go_sched_gomaxprocs_threads": tc.wantProcs, "go_gc_gogc_percent": tc.wantGC} {
				m := regexp.MustCompile(`(?m)^` + metric + ` (\S+)$`).FindSubmatch(body)
				if m == nil {
					t.Fatalf("%s missing from /metrics", metric)
				}
				if got, err := strconv.ParseFloat(string(m[1]), 64); err != nil || got != float64(want) {
					t.Errorf("%s = %s, want %d", metric, m[1], want)
				}
			}
		})
	}
}
