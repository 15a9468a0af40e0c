package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/casevault/casevault/bg"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/search/bleve"
	"github.com/casevault/casevault/search/meili"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// indexLagDegraded is the lag beyond which /readyz calls the index degraded.
const indexLagDegraded = 30 * time.Second

// engineFactory opens the configured engine and, for a rebuild, builds the
// next versioned index.
type engineFactory struct {
	cfg   *config
	guard *bg.Guard
}

func (f engineFactory) name() string {
	if f.cfg.MeiliURL != "" {
		return "meilisearch"
	}
	return "bleve"
}

func (f engineFactory) meiliConfig() meili.Config {
	return meili.Config{URL: f.cfg.MeiliURL, APIKey: f.cfg.MeiliKey, IndexVersion: f.cfg.MeiliIndexVersion}
}

func (f engineFactory) bleveOptions() []bleve.Option {
	return []bleve.Option{bleve.WithGuard(f.guard), bleve.WithCores(f.cfg.Runtime.Cores)}
}

func (f engineFactory) open(ctx context.Context) (search.Engine, error) {
	if f.cfg.MeiliURL != "" {
		return meili.Open(ctx, f.meiliConfig())
	}
	return bleve.Open(ctx, filepath.Join(f.cfg.DataDir, "index"), f.bleveOptions()...)
}

// reopen opens the live engine again after it failed (search.ErrBroken):
// unlike open, it leaves a rebuild's index alone.
func (f engineFactory) reopen(ctx context.Context) (search.Engine, error) {
	if f.cfg.MeiliURL != "" {
		return f.open(ctx)
	}
	return bleve.Reopen(ctx, filepath.Join(f.cfg.DataDir, "index"), f.bleveOptions()...)
}

// build returns a new, empty index for a rebuild.
func (f engineFactory) build(ctx context.Context) (search.Engine, error) {
	if f.cfg.MeiliURL != "" {
		// A new index beside the live one, swapped in when full (issue 20 §9).
		return meili.Build(ctx, f.meiliConfig())
	}
	return bleve.Build(ctx, filepath.Join(f.cfg.DataDir, "index"), f.bleveOptions()...)
}

// needsRebuild reports whether the live index must be filled from the store:
// built with an older mapping, or just created empty (a lost or deleted index
// directory would otherwise leave every existing case unsearchable, since
// their outbox rows are long done).
func needsRebuild(eng search.Engine) bool {
	o, ok := eng.(interface{ Outdated() bool })
	c, ok2 := eng.(interface{ Created() bool })
	return (ok && o.Outdated()) || (ok2 && c.Created())
}

// consumerFile holds an embedded index's feed consumer ID, in its index
// directory: the ID belongs to the index files, so a lost directory is a
// new consumer (which rebuilds), not an old cursor over an empty index.
const consumerFile = "consumer-id"

// consumer returns the configured index's feed consumer: the one shared ID
// of a Meilisearch index, or the ID kept in the Bleve index directory
// (created on first use). untrusted says an existing Bleve index had none:
// it predates the change feed (or was copied in), so no cursor vouches for
// it and it must be rebuilt once.
func (f engineFactory) consumer(eng search.Engine) (id string, shared, untrusted bool, err error) {
	if f.cfg.MeiliURL != "" {
		return "meilisearch:cases", true, false, nil
	}

	dir := filepath.Join(f.cfg.DataDir, "index")
	path := filepath.Join(dir, consumerFile)
	raw, err := os.ReadFile(path)
	if err == nil && len(bytes.TrimSpace(raw)) > 0 {
		return string(bytes.TrimSpace(raw)), false, false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", false, false, fmt.Errorf("search consumer id: %w", err)
	}

	host, _ := os.Hostname()
	id = fmt.Sprintf("bleve:%s:%s", host, cases.NewID())
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, false, fmt.Errorf("search consumer id: %w", err)
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", false, false, fmt.Errorf("search consumer id: %w", err)
	}
	c, ok := eng.(interface{ Created() bool })
	return id, false, !ok || !c.Created(), nil
}

// startIndexer opens the engine and the indexer over the store's change
// feed, as the configured index's consumer.
//
// serving (the server, not a CLI command) makes a failed engine survivable:
// an engine that cannot be opened for lack of disk space is replaced by a
// stand-in answering 503 (search degraded, writes go on), and an engine
// that fails later is closed and reopened, both by the indexer, with
// backoff, until it works again. Without this a full disk made the server
// crash-loop at start-up.
func startIndexer(ctx context.Context, cfg *config, store *sqlstore.Store, log *slog.Logger, reg *prometheus.Registry, guard *bg.Guard, serving bool) (*search.Indexer, error) {
	f := engineFactory{cfg, guard}
	eng, err := f.open(ctx)
	if err != nil {
		// A full disk, or a Meilisearch that does not answer yet: serve
		// degraded and let the indexer reopen it (issue 20 §12).
		if !serving || !(isDiskFull(err) || errors.Is(err, search.ErrUnavailable)) {
			return nil, fmt.Errorf("search engine: %w", err)
		}
		log.Error("search engine could not be opened; search stays degraded until it can", "err", err)
		eng = search.Unavailable(f.name(), err)
	}
	id, shared, untrusted, err := f.consumer(eng)
	if err != nil {
		_ = eng.Close()
		return nil, err
	}
	// Other replicas learn of a write only by polling the feed: a quarter
	// second keeps every replica within the 2 s the issue asks, for one
	// indexed read per poll.
	opts := search.Options{Guard: guard, Consumer: id, Shared: shared, Untrusted: untrusted, PollInterval: 250 * time.Millisecond}
	var ix *search.Indexer
	if serving {
		opts.Rebuild = f.build
		opts.Reopen = func(ctx context.Context) (search.Engine, error) {
			eng, err := f.reopen(ctx)
			if err == nil && needsRebuild(eng) {
				// opened for the first time (it could not be at start-up):
				// fill it from the store, as serve does for a new index
				if err := ix.StartReindex(ctx, f.build, nil); err != nil {
					log.Warn("search: rebuild after reopening not started", "err", err)
				}
			}
			return eng, err
		}
	}
	ix = search.NewIndexer(store, eng, log.With("component", "indexer"), opts)
	reg.MustRegister(indexCollector{ix})
	return ix, nil
}

// isDiskFull reports whether err comes from a file system out of space or
// quota (Bleve does not always wrap the errno).
func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		strings.Contains(err.Error(), syscall.ENOSPC.Error()) || strings.Contains(err.Error(), syscall.EDQUOT.Error())
}

var (
	pendingDesc  = prometheus.NewDesc("casevault_index_pending", "Changes in the feed this replica's index has not applied.", nil, nil)
	lagDesc      = prometheus.NewDesc("casevault_index_lag_seconds", "Age of the oldest change this replica's index has not applied.", nil, nil)
	headDesc     = prometheus.NewDesc("casevault_feed_head", "Highest position of the change feed.", nil, nil)
	positionDesc = prometheus.NewDesc("casevault_feed_consumer_position", "Feed position every change at or below which the consumer's index holds (-1: must rebuild).", []string{"consumer", "kind"}, nil)
	setAsideDesc = prometheus.NewDesc("casevault_index_set_aside_total", "Cases the engine refused permanently (poison) and the indexer set aside since start; each is logged at error level.", nil, nil)
)

// indexCollector reads the indexer's status once per scrape for both
// gauges (a status costs database and engine round trips).
type indexCollector struct{ ix *search.Indexer }

func (c indexCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- lagDesc
	ch <- headDesc
	ch <- positionDesc
	ch <- setAsideDesc
}

func (c indexCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(setAsideDesc, prometheus.CounterValue, float64(c.ix.SetAside()))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.ix.Status(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(pendingDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, st.LagSeconds)
	ch <- prometheus.MustNewConstMetric(headDesc, prometheus.GaugeValue, float64(st.Head))
	for _, cs := range st.Consumers {
		ch <- prometheus.MustNewConstMetric(positionDesc, prometheus.GaugeValue, float64(cs.Position), cs.ID, cs.Kind)
	}
}

// indexProbe is the readiness check of the index: degraded (not down)
// while the engine is unreachable or catching up.
func indexProbe(ix *search.Indexer) func(ctx context.Context) (any, error) {
	return func(ctx context.Context) (any, error) {
		st, err := ix.Status(ctx)
		if err != nil {
			return nil, err
		}
		switch {
		case st.MustRebuild:
			return st, fmt.Errorf("index %s (consumer %s) missed changes and is being rebuilt; %d changes pending", st.Index, st.Consumer, st.Pending)
		case !st.Healthy && st.Error != "":
			return st, fmt.Errorf("search engine %s failing: %s; %d changes pending", st.Engine, st.Error, st.Pending)
		case !st.Healthy:
			return st, fmt.Errorf("search engine %s unhealthy; %d changes pending", st.Engine, st.Pending)
		case st.LagSeconds > indexLagDegraded.Seconds():
			return st, fmt.Errorf("index is %.0fs behind (%d pending)", st.LagSeconds, st.Pending)
		}
		return st, nil
	}
}

// rebuildIndex fills the target's search index from the restored store: a
// Bleve index under DIR/index for a directory target, else the configured
// engine. It returns the number of cases indexed.
func rebuildIndex(ctx context.Context, cfg *config, target *sqldb.DB, dir string) (int64, error) {
	// The restored rows are sealed under the instance's data keys, which
	// the restore brought along wrapped under the same master key.
	fields, err := storeFields(ctx, cfg, target)
	if err != nil {
		return 0, err
	}
	store := sqlstore.New(target, sqlstore.Options{Fields: fields})
	log := newLogger(cfg, io.Discard)
	var eng search.Engine
	var build func(ctx context.Context) (search.Engine, error)
	if dir != "" {
		ixDir := filepath.Join(dir, "index")
		opts := engineFactory{cfg: cfg}.bleveOptions() // the live engine's options, for an index elsewhere
		if eng, err = bleve.Open(ctx, ixDir, opts...); err != nil {
			return 0, err
		}
		build = func(ctx context.Context) (search.Engine, error) { return bleve.Build(ctx, ixDir, opts...) }
	} else {
		f := engineFactory{cfg: cfg}
		if eng, err = f.open(ctx); err != nil {
			return 0, err
		}
		build = f.build
		if cfg.MeiliURL != "" {
			// an index of the restore's own, never the live one (issue 20 §9)
			build = func(ctx context.Context) (search.Engine, error) { return meili.Restore(ctx, f.meiliConfig()) }
		}
	}
	f := engineFactory{cfg: cfg}
	if dir != "" {
		f.cfg = &config{DataDir: dir}
	}
	id, shared, _, err := f.consumer(eng)
	if err != nil {
		_ = eng.Close()
		return 0, err
	}
	ix := search.NewIndexer(store, eng, log, search.Options{Consumer: id, Shared: shared})
	defer ix.Close()
	if err := ix.Reindex(ctx, build); err != nil {
		return 0, err
	}
	st, err := ix.Status(ctx)
	if err != nil {
		return 0, err
	}
	return st.Documents, nil
}

// feedLag is the sweep's question to the index (retention.SweeperOptions
// IndexLag): how many changes, of those committed when the sweep started
// (the settled feed head), the index answering query holds has not
// applied. It gives the indexer up to wait to catch up first, so that a
// sweep right after a write on another replica is not deferred for
// nothing. Any replica's sweep then judges query holds by an index proven
// to hold every change up to the head, whichever replica wrote them.
func feedLag(store *sqlstore.Store, ix *search.Indexer, wait time.Duration) func(ctx context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		head, err := store.SettledHead(ctx)
		if err != nil {
			return 0, err
		}
		if ix == nil {
			return head, nil // no index: query holds cannot be judged
		}

		deadline := time.Now().Add(wait)
		for {
			pos, err := ix.Position(ctx)
			if err != nil {
				return 0, err
			}
			if pos >= head {
				return 0, nil
			}
			if !time.Now().Before(deadline) {
				return head - max(pos, 0), nil
			}
			ix.Kick()
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return 0, ctx.Err()
			case <-t.C:
			}
		}
	}
}

// freshMatcher answers query holds for one-off deletions (DELETE
// /cases/{id}): only from an index that has applied every change committed
// before the question, whichever replica wrote it. The sweep checks this
// once at its start instead (feedLag as its IndexLag). An index still
// behind counts the hold as covering and says why (503: retry).
type freshMatcher struct {
	m   indexMatcher
	lag func(ctx context.Context) (int64, error)
}

func (f freshMatcher) Matches(ctx context.Context, q search.Query, caseID string) (bool, error) {
	n, err := f.lag(ctx)
	if err != nil {
		return true, err
	}
	if n > 0 {
		return true, fmt.Errorf("%w: the index is %d changes behind the change feed, so a query hold cannot be judged yet", search.ErrUnavailable, n)
	}
	return f.m.Matches(ctx, q, caseID)
}
