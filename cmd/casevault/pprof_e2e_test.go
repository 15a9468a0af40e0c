package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestPprofListen: --pprof-listen serves Go's profiler on its own address
// (the benchmarks profile serve under load through it), and only there:
// the API's port has no /debug/pprof, and without the setting nothing
// listens for it.
func TestPprofListen(t *testing.T) {
	get := func(url string) (int, string) {
		t.Helper()
		res, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	tests := []struct {
		name  string
		pprof bool
	}{{"on", true}, {"off", false}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var env []string
			if tc.pprof {
				env = append(env, "CASEVAULT_PPROF_LISTEN=127.0.0.1:0")
			}
			p := start(t, t.TempDir(), env...)
			addr := p.logged("profiler listening (unauthenticated)", "addr")
			if tc.pprof && (addr == "" || strings.HasSuffix(addr, ":0")) {
				t.Fatalf("the profiler logged %q, not the port it listens on", addr)
			}
			if !tc.pprof {
				if addr != "" {
					t.Fatalf("a profiler is listening on %s without --pprof-listen", addr)
				}
				addr = freeAddr(t)
			}
			code, body := get("http://" + addr + "/debug/pprof/goroutine?debug=1")
			if tc.pprof && (code != http.StatusOK || !strings.Contains(body, "goroutine profile")) {
				t.Fatalf("profiler on %s: %d %.200s", addr, code, body)
			}
			if !tc.pprof && code != 0 {
				t.Fatalf("something answers on the profiler's address without --pprof-listen: %d", code)
			}
			if code, _ := get("http://" + p.addr + "/debug/pprof/"); code == http.StatusOK {
				t.Fatal("the API's port serves the profiler")
			}
		})
	}
}
