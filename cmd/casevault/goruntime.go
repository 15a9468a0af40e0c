package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
)

// runtimeConfig tunes the Go runtime of a long-running server: the
// garbage collector and how many threads run Go code at once.
//
// Why not Go's default GOGC=100: the write path (Bleve analysis, SQLite
// bindings, JSON) allocates a lot of short-lived memory, and on a 2-core
// machine a collection every 100% of heap growth took about a tenth of the
// CPU. At 400 the contact ingest benchmark gained 15-25% for roughly 80 MB
// more resident memory (bench figures in the README). The memory limit is
// the guard for small containers: near it the collector runs as often as
// needed whatever the percent says.
//
// Why not Go's default GOMAXPROCS (one per CPU): the embedded Bleve
// indexer builds a segment and analyses a batch in bursts of tens of
// milliseconds, and its merger runs beside it; with one P per core those
// bursts held the Ps, and the requests and the one SQLite writer queued
// behind them until Go preempted them (10 ms slices). With twice the CPUs
// in Ps the kernel shares the cores among more runnable threads at a finer
// grain. On the 2-core VM, alternated with the build before: wrk's p99 of
// SQLite ingest 53-61 → 34-36 ms, ingest / /healthz under cvbench 0.094-
// 0.105 → 0.103-0.113; with the indexer switched off the setting changed
// nothing (docs/ARCHITECTURE.md).
type runtimeConfig struct {
	// Percent is the GOGC value to set; 0 leaves the runtime's own (an
	// explicit GOGC in the environment and no casevault setting).
	Percent int
	// Limit is the soft heap limit in bytes; 0 leaves the runtime's own
	// (GOMEMLIMIT, or none).
	Limit int64
	// Procs is the GOMAXPROCS to set; 0 leaves the runtime's own (an
	// explicit GOMAXPROCS in the environment and no casevault setting).
	Procs int
	// Cores is the runtime's own GOMAXPROCS, before Procs: the CPUs, or
	// fewer under a container's CPU limit or an explicit GOMAXPROCS. Work
	// that keeps a core busy per goroutine (the embedded index's parallel
	// batches and searches' splits) is sized by it, not by Procs.
	Cores int
}

// maxProcs bounds --gomaxprocs: far above any useful value, low enough that
// a typo (an extra digit or two) is refused instead of starting thousands
// of threads.
const maxProcs = 1024

// goRuntime derives the runtime settings. A default gives way to an
// explicit GOGC or GOMAXPROCS; a value set by flag or environment wins over
// those.
func (c *config) goRuntime() (runtimeConfig, error) {
	g := runtimeConfig{Cores: runtime.GOMAXPROCS(0)}
	if c.explicit("gc-percent") || !inEnv("GOGC") {
		if c.GCPercent < 25 || c.GCPercent > 10000 {
			return g, fmt.Errorf("--gc-percent must be a whole number from 25 to 10000, not %d", c.GCPercent)
		}
		g.Percent = c.GCPercent
	}
	if c.MemoryLimit != 0 && c.MemoryLimit < 64<<20 {
		return g, fmt.Errorf("--memory-limit %s is below 64MiB: the collector would run constantly", c.MemoryLimit.String())
	}
	g.Limit = int64(c.MemoryLimit)

	if c.explicit("gomaxprocs") || !inEnv("GOMAXPROCS") {
		if c.GoMaxProcs < 0 || c.GoMaxProcs > maxProcs {
			return g, fmt.Errorf("--gomaxprocs must be a whole number from 0 (twice the CPUs) to %d, not %d", maxProcs, c.GoMaxProcs)
		}
		g.Procs = c.GoMaxProcs
		if g.Procs == 0 {
			// GOMAXPROCS(0) is what Go would use: the CPUs, or fewer
			// under a container's CPU limit.
			g.Procs = 2 * g.Cores
		}
	}
	return g, nil
}

// explicit reports whether the setting came from a flag or the environment.
func (c *config) explicit(name string) bool {
	src := c.source[name]
	return src != "" && src != "default"
}

// inEnv reports whether the runtime variable name is set: an empty value
// is not (Go's runtime ignores it too).
func inEnv(name string) bool {
	return os.Getenv(name) != ""
}

// apply sets the runtime up; it is called once, by serve.
func (g runtimeConfig) apply(log *slog.Logger) {
	if g.Percent > 0 {
		debug.SetGCPercent(g.Percent)
	}
	if g.Limit > 0 {
		debug.SetMemoryLimit(g.Limit)
	}
	if g.Procs > 0 {
		runtime.GOMAXPROCS(g.Procs)
	}
	log.Debug("go runtime", "gc_percent", g.Percent, "memory_limit_bytes", debug.SetMemoryLimit(-1), "gomaxprocs", runtime.GOMAXPROCS(0))
}
