package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/casevault/casevault/api"
	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/bg"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/cluster"
	"github.com/casevault/casevault/export"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/savedsearch"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
	"github.com/casevault/casevault/web"
)

// app is everything `serve` runs, built from the configuration.
type app struct {
	cfg         *config
	log         *slog.Logger
	db          *sqldb.DB
	store       *sqlstore.Store
	keys        *archive.Keyring
	fields      *sqlstore.Fields // the store's sealing under keys
	svc         *cases.Service
	tokens      *auth.Tokens
	audit       *audit.Log
	attachments *archive.Attachments
	indexer     *search.Indexer
	retention   *retentionParts
	flags       *retention.FlagMirror // holds onto the S3 legal-hold flags
	backup      *backupParts
	exports     *export.Service
	metrics     *prometheus.Registry
	server      *api.Server
	guard       *bg.Guard // recovers and reports panics in background work
	replicas    *cluster.Registry
	ticks       *cluster.Ticks // which replica runs each cron tick
	closers     []func() error
	sessions    *auth.Sessions // the console's (nil: console off)
}

func buildApp(ctx context.Context, cfg *config, log *slog.Logger) (*app, error) {
	db, err := openDB(ctx, cfg)
	if err != nil {
		return nil, err
	}

	// Before anything else writes: a replica or a restored directory
	// without the instance's master key refuses here (issue 20 §14).
	master, err := masterKey(ctx, cfg, db)
	if err != nil {
		db.Close()
		return nil, err
	}

	a := &app{cfg: cfg, log: log, db: db, metrics: prometheus.NewRegistry()}
	host, _ := os.Hostname()
	a.replicas = cluster.NewRegistry(db, cluster.RegistryOptions{Host: host, Backups: backupsOf(cfg)})
	a.ticks = cluster.NewTicks(db, a.replicas.ID(), nil)
	a.closers = append(a.closers, db.Close)
	a.metrics.MustRegister(collectors.NewDBStatsCollector(db.Write, "write"))
	if db.Read != db.Write {
		a.metrics.MustRegister(collectors.NewDBStatsCollector(db.Read, "read"))
	}

	a.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.guard = bg.New(log, a.metrics)
	// Events about legal holds in force and what they cover outlive the
	// audit retention while the hold lasts (issue 21 §12).
	auditOpts := []audit.Option{audit.WithRetention(cfg.AuditRetention.d), audit.WithKeep(retention.AuditKeep)}
	if db.Dialect == sqldb.Postgres {
		// No global writer lock (issue 19): writes append their events
		// unsequenced and commit concurrently; a sequencer, one at a time
		// across replicas, chains them (audit/sequencer.go). Every write
		// shares the write barrier that schedule changes and hold
		// placements take exclusively (retention/barrier.go). On SQLite
		// the one writer appends to the chain directly: measured faster
		// there (docs/ARCHITECTURE.md).
		delay := sequencingDelay(a.metrics)
		auditOpts = append(auditOpts, audit.WithSequencer(audit.DefaultSequenceInterval),
			audit.WithSequencedObserver(func(d time.Duration) { delay.Observe(d.Seconds()) }),
			audit.WithFaultPoint(faultPoint(log)))
		db.SetPrologue(retention.WritePrologue(db, time.Now))
	}
	a.audit = audit.New(db, auditOpts...)

	a.closers = append(a.closers, func() error { return a.audit.Close(context.Background()) })
	sink := auditSink{log: a.audit}
	// The indexer is built after the store; the store wakes it after each
	// commit through this indirection.
	kick := func() {
		if a.indexer != nil {
			a.indexer.Kick()
		}
	}

	policy := retention.NewPolicy(retention.DefaultSchedule())
	schedules, err := loadRetention(ctx, cfg, db, policy, sink.hook, log)
	if err != nil {
		a.Close()
		return nil, err
	}

	// Retention is built after the indexer too; a case update records what
	// legal holds cover the case before it changes (retention/holditems.go).
	recordHolds := func(ctx context.Context, tx *sql.Tx, caseID string) error {
		if a.retention == nil {
			return nil
		}
		return a.retention.holds.RecordCase(ctx, tx, caseID)
	}
	// Every write also keeps what holds cover current (RecordWrite), in
	// its transaction, before its audit event.
	onChange := func(ctx context.Context, tx *sql.Tx, ch cases.Change) error {
		if a.retention != nil {
			if err := a.retention.holds.RecordWrite(ctx, tx, ch); err != nil {
				return err
			}
		}
		return sink.hook(ctx, tx, ch)
	}
	// A contact batch (sqlstore/contactbatch.go) runs both for all its
	// changes at once: the active holds read once, the audit events in one
	// multi-row INSERT.
	onChanges := func(ctx context.Context, tx *sql.Tx, chs []cases.Change) error {
		if a.retention != nil {
			if err := a.retention.holds.RecordWrites(ctx, tx, chs); err != nil {
				return err
			}
		}
		return sink.hookMany(ctx, tx, chs)
	}
	keys, fields, err := openSealing(ctx, cfg, db)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.keys, a.fields = keys, fields
	storeFields := a.fields
	if os.Getenv(benchUnsealedEnv) == "1" {
		// The benchmark's reference run only (scripts/bench.sh: sealing's
		// cost on HTTP ingest); never set in a deployment.
		log.Warn("BENCHMARK ONLY: personal fields are written in clear (" + benchUnsealedEnv + ")")
		storeFields = nil
	}
	a.store = sqlstore.New(db, sqlstore.Options{Policy: policy, OnChange: onChange, OnChanges: onChanges, Notify: kick, BeforeCaseUpdate: recordHolds, Fields: storeFields})
	a.metrics.MustRegister(churnCollector{a.audit.PendingChurn(), a.store.FeedChurn()})
	a.metrics.MustRegister(contactBatchMetrics(a.store)...)
	if err := errors.Join(a.store.Prepare(ctx), a.audit.Prepare(ctx), retention.Prepare(ctx, db), keys.Prepare(ctx)); err != nil {
		a.Close()
		return nil, err
	}

	a.svc = cases.NewService(a.store, nil, cases.WithCaseManagers(auth.ManagesCases))
	a.tokens = auth.NewTokens(db)
	att, blobs, blobKind, err := openAttachmentsWith(ctx, cfg, db, keys)
	if err != nil {
		a.Close()
		return nil, err
	}

	a.attachments = att
	if a.indexer, err = startIndexer(ctx, cfg, a.store, log, a.metrics, a.guard, true); err != nil {
		a.Close()
		return nil, err
	}

	a.closers = append(a.closers, a.indexer.Close)
	dkey, err := digestKey(cfg)
	if err != nil {
		a.Close()
		return nil, err
	}
	lh := legalHolder(ctx, blobs, log)
	a.retention = newRetentionParts(a.guard, db, policy, schedules, a.indexer, a.store, blobs, lh, sink, dkey, a.fields)
	a.flags = newFlagMirror(db, a.retention.holds, lh, sink)
	bp, bkeys, err := newBackupParts(cfg, db, blobs, sink.hook, log, a.guard, a.replicas.CheckBackups)
	if err != nil {
		a.Close()
		return nil, err
	}

	a.backup = bp
	if a.exports, err = newExports(cfg, db, att, blobs, a.fields, a.retention.holds, sink, a.guard.Go); err != nil {
		a.Close()
		return nil, err
	}

	deps := api.Deps{
		Cases: a.svc, Tokens: a.tokens, Metrics: a.metrics, Log: log,
		Audit: sink, AuditTrail: a.audit, AuditTx: sink.hook, Attachments: att,
		// customer: and GET /customers?q= find customers by name through
		// the index, by e-mail and phone through the keyed hashes
		Search: api.CustomerSearch{Searcher: a.indexer, Names: a.indexer,
			Lookup: func(ctx context.Context, email, phone string) ([]cases.Customer, error) {
				return a.store.FindCustomers(ctx, sqlstore.CustomerLookup{Email: email, Phone: phone})
			}},
		SavedSearches: savedsearch.New(db),
		// The rebuild outlives the request but not the process: it runs
		// under the command's context, which SIGTERM cancels.
		Reindex: func(context.Context) error {
			return a.indexer.StartReindex(ctx, engineFactory{cfg, a.guard}.build, nil)
		},
		Retention: &api.RetentionDeps{Schedules: a.retention.schedules, Holds: a.retention.holds, Explainer: a.retention.explainer,
			Sweeper: a.retention.sweeper, Deleter: a.retention.deleter, AuditTx: sink.hook, Flags: a.flags,
			Recompute: func(ctx context.Context) {
				a.guard.Go("retention.recompute", func() {
					if _, err := retention.Recompute(ctx, db, policy, retention.RecomputeOptions{}); err != nil {
						log.Error("retention recompute failed", "err", err)
					}
				})
			}},
		// Runs started through the API end with the server: Shutdown
		// (on SIGTERM) cancels them (an interrupted run is never listed).
		Exports: a.exports,
		Privacy: &api.PrivacyDeps{
			Eraser: newEraser(db, a.retention.deleteHolds, keys, fields, blobs, sink, dkey, a.indexer.Kick, bp.svc, faultPoint(log)),
			FindCustomers: func(ctx context.Context, email, phone string) ([]cases.Customer, error) {
				return a.store.FindCustomers(ctx, sqlstore.CustomerLookup{Email: email, Phone: phone})
			},
			Consents: a.retention.consents,
			Exporter: export.NewSubjectAccess(export.SubjectOptions{DB: db, Attachments: att, Explain: a.retention.explainer, Fields: fields}),
		},
		Backups: &api.BackupDeps{Service: bp.svc, Identity: bkeys.Identity, Ping: bp.target.Ping},
		Checks: []api.Check{{Name: "database", Probe: func(ctx context.Context) (any, error) {
			return map[string]any{"engine": string(db.Dialect)}, db.Ping(ctx)
		}}, {Name: "index", Degraded: true, Probe: indexProbe(a.indexer)}, {Name: "blobs", Probe: func(ctx context.Context) (any, error) {
			return map[string]any{"backend": blobKind}, blobs.Ping(ctx)
		}}, {Name: "background", Degraded: true, Probe: panicProbe(a.guard)},
			// Erased customers whose key is still in the backups' key
			// escrow (the repository was unreachable at the erasure).
			{Name: "key_escrow", Degraded: true, Probe: escrowProbe(db)},
			{Name: "legal_hold_flags", Degraded: true, Probe: a.flags.Readiness},
			{Name: "audit_sequencer", Degraded: true, Probe: sequencerProbe(a.audit)},
			{Name: "backups", Degraded: true, Probe: backupsProbe(a.replicas)},
			{Name: "reseal", Degraded: true, Probe: resealProbe(a)}},
	}
	if cfg.Console.Enabled {
		ops := web.OpsDeps{Settings: consoleSettings(cfg),
			RestoreCase: consoleCaseRestorer(db, bp.svc, blobs, bkeys, master, a.retention.holds.CoveringCase, sink.hook)}
		if err := a.buildConsole(cfg, &deps, sink, ops); err != nil {
			a.Close()
			return nil, err
		}
	}
	a.server = api.New(api.Config{JSONBodyLimit: int64(cfg.JSONBodyLimit), AttachmentLimit: int64(cfg.AttachmentLimit), Version: version}, deps)
	return a, nil
}

// buildConsole builds the web console on the API's services and mounts it
// through deps (api.Deps.Console); Close ends the runs it started.
func (a *app) buildConsole(cfg *config, deps *api.Deps, sink auditSink, ops web.OpsDeps) error {
	if cfg.Console.Idle <= 0 || cfg.Console.Absolute <= 0 {
		return usagef("--console-session-idle and --console-session-max must be positive")
	}
	a.sessions = auth.NewSessions(a.db, auth.SessionTimeouts{Idle: cfg.Console.Idle, Absolute: cfg.Console.Absolute}, nil)
	oidcCfg, err := consoleOIDC(cfg.Console.OIDC)
	if err != nil {
		return err
	}
	con, err := web.New(web.Config{SecureCookies: cfg.Console.SecureCookies, Version: version, OIDC: oidcCfg}, web.Deps{
		API:       *deps,
		Users:     auth.NewUsers(a.db, auth.DefaultArgon2, nil),
		Sessions:  a.sessions,
		UserAudit: sink.hook,
		JobTicks:  a.ticks.Last,
		// "#17" in the search box opens case 17.
		CaseByNumber: a.store.CaseIDByNumber,
		Ops:          ops,
	})
	if err != nil {
		return err
	}
	a.closers = append(a.closers, func() error { con.Close(); return nil })
	deps.Console = con.Mount
	return nil
}

// panicProbe is the readiness check of background work: degraded while a
// job's last run panicked (recovered; see package bg), until it next runs
// cleanly.
func panicProbe(g *bg.Guard) func(ctx context.Context) (any, error) {
	return func(context.Context) (any, error) {
		failed := g.Failed()
		if len(failed) == 0 {
			return nil, nil
		}
		jobs := make(map[string]string, len(failed))
		var errs []error
		for _, pe := range failed {
			jobs[pe.Job] = fmt.Sprintf("panicked at %s: %v", pe.At.UTC().Format(time.RFC3339), pe.Value)
			errs = append(errs, pe)
		}
		return jobs, errors.Join(errs...)
	}
}

// backupsOf says where this replica's backups go, for the replica
// registry.
func backupsOf(cfg *config) cluster.Backups {
	b := cfg.Backup
	repo := "local:" + b.Dir
	if b.S3.Endpoint != "" {
		repo = "s3:" + b.S3.Endpoint + "/" + b.S3.Bucket + "/" + b.Prefix
	}
	return cluster.Backups{Repo: repo, Recipients: b.Recipients}
}

// backupsProbe is the readiness check of backups across replicas:
// degraded while other replicas are live and this replica's backups would
// not go to the repository and recipients they share (the backup is then
// refused: cluster.Registry.CheckBackups).
func backupsProbe(r *cluster.Registry) func(ctx context.Context) (any, error) {
	return func(ctx context.Context) (any, error) {
		others, err := r.Others(ctx)
		if err != nil {
			return nil, err
		}
		return map[string]any{"other_replicas": len(others)}, r.CheckBackups(ctx)
	}
}

// heartbeat registers this replica and renews its row until the returned
// function is called (after the server drained), which removes it.
func (a *app) heartbeat(ctx context.Context) (stop func(), err error) {
	// A first beat that fails (a full disk, a database blip) must not keep
	// the server from serving reads: the loop below retries it, and until
	// it lands the other replicas merely do not count this one.
	if err := a.replicas.Beat(ctx); err != nil {
		a.log.Warn("replica heartbeat failed; retrying every interval", "err", err)
	} else if err := a.replicas.CheckBackups(ctx); err != nil {
		a.log.Error("backups refused on this replica until configured for several replicas", "err", err)
	}

	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	a.guard.Go("replica.heartbeat", func() {
		defer close(done)
		t := time.NewTicker(a.replicas.Interval())
		defer t.Stop()
		for {
			select {
			case <-bctx.Done():
				return
			case <-t.C:
				if err := a.replicas.Beat(bctx); err != nil && bctx.Err() == nil {
					a.log.Warn("replica heartbeat failed", "err", err)
				}
			}
		}
	})
	return func() {
		cancel()
		<-done
		lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer lcancel()
		if err := a.replicas.Leave(lctx); err != nil {
			a.log.Warn("replica leave failed", "err", err)
		}
	}, nil
}

func (a *app) Close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	return errors.Join(errs...)
}

// benchUnsealedEnv, set to 1, makes serve's store write personal fields in
// clear: the reference of the benchmark of sealing's cost on HTTP ingest
// (scripts/bench.sh), measured in alternation with sealed runs. Hidden: no
// setting, flag or help names it.
const benchUnsealedEnv = "CASEVAULT_BENCH_UNSEALED"
