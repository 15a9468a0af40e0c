package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
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

// gc derives the collector settings. The default percent gives way to an
// explicit GOGC; a percent set by flag or environment wins over it.
func (c *config) gc() (gcConfig, error) {
	var g gcConfig
	_, gogc := os.LookupEnv("GOGC")
	if src := c.source["gc-percent"]; (src != "" && src != "default") || !gogc {
		if c.GCPercent < 25 || c.GCPercent > 10000 {
			return g, fmt.Errorf("--gc-percent must be a whole number from 25 to 10000, not %d", c.GCPercent)
		}
		g.Percent = c.GCPercent
	}
	if c.MemoryLimit != 0 && c.MemoryLimit < 64<<20 {
		return g, fmt.Errorf("--memory-limit %s is below 64MiB: the collector would run constantly", c.MemoryLimit.String())
	}
	g.Limit = int64(c.MemoryLimit)
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
