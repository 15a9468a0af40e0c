package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"

	"github.com/spf13/pflag"
)

// gcConfig tunes the Go garbage collector of a long-running server.
//
// Why not Go's default GOGC=100: the write path (Bleve analysis, SQLite
// bindings, JSON) allocates a lot of short-lived memory, and on a 2-core
// machine a collection every 100% of heap growth took about a tenth of the
// CPU. At 400 the contact ingest benchmark gained 15-25% for roughly 80 MB
// more resident memory (bench figures in the README). The memory limit is
// the guard for small containers: near it the collector runs as often as
// needed whatever the percent says.
type gcConfig struct {
	// Percent is the GOGC value to set; 0 leaves the runtime's own (an
	// explicit GOGC in the environment and no casevault setting).
	Percent int
	// Limit is the soft heap limit in bytes; 0 leaves the runtime's own
	// (GOMEMLIMIT, or none).
	Limit int64
}

func loadGC(fs *pflag.FlagSet, get func(string) string) (gcConfig, error) {
	var g gcConfig
	_, ours := os.LookupEnv("CASEVAULT_GC_PERCENT")
	f := fs.Lookup("gc-percent")
	explicit := ours || (f != nil && f.Changed)
	if _, gogc := os.LookupEnv("GOGC"); explicit || !gogc {
		n, err := strconv.Atoi(get("gc-percent"))
		if err != nil || n < 25 || n > 10000 {
			return g, fmt.Errorf("--gc-percent must be a whole number from 25 to 10000, not %q", get("gc-percent"))
		}
		g.Percent = n
	}
	if v := get("memory-limit"); v != "" {
		n, err := parseSize(v)
		if err != nil {
			return g, fmt.Errorf("--memory-limit: %w", err)
		}
		if n < 64<<20 {
			return g, fmt.Errorf("--memory-limit %s is below 64MiB: the collector would run constantly", v)
		}
		g.Limit = n
	}
	return g, nil
}

// apply sets the collector up; it is called once, by serve.
func (g gcConfig) apply(log *slog.Logger) {
	if g.Percent > 0 {
		debug.SetGCPercent(g.Percent)
	}
	if g.Limit > 0 {
		debug.SetMemoryLimit(g.Limit)
	}
	log.Debug("garbage collector", "gc_percent", g.Percent, "memory_limit_bytes", debug.SetMemoryLimit(-1))
}
