package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/sqldb"
)

func newServeCmd(cfg *config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP API (SQLite, Bleve and local blobs unless configured otherwise)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	return cfg.flags(cmd, useAll)
}

// runServe runs the server until ctx is cancelled (SIGTERM), then drains
// in-flight requests for at most --shutdown-timeout.
func runServe(ctx context.Context, cfg *config, out, logw io.Writer) error {
	log := newLogger(cfg, logw)
	cfg.Runtime.apply(log)
	return serve(ctx, cfg, log, out, serveHooks{})
}

// serveHooks are what the disaster-recovery drill changes when it runs
// serve in process on its scratch copy (cmd_drill.go): the same start-up
// (master key check, migrations, audit, indexer) on a listener it already
// holds, without the scheduled jobs (a retention sweep or a backup of the
// scratch copy would change what the drill checks, or write backups).
type serveHooks struct {
	ln     net.Listener // nil: listen on cfg.Listen
	noCron bool
	// ready, when set, is called once the server accepts connections.
	ready func(*app)
}

// serve builds the app and serves until ctx is cancelled.
func serve(ctx context.Context, cfg *config, log *slog.Logger, out io.Writer, h serveHooks) error {
	// The port is taken before anything else: a port in use fails at once,
	// before migrations touch the data, and --listen :0 gets a port that
	// nothing can take between its choice and its use (the address served
	// is the one logged below).
	ln := h.ln
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("listen %s: %w", cfg.Listen, err)
		}
	}
	defer ln.Close()

	a, err := buildApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	// Runs after every stop below has cancelled its work, before the store
	// and index close: nothing started here may still write into the data
	// directory once serve returns (the drill removes its copy next).
	defer func() {
		wctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := a.guard.Wait(wctx); err != nil {
			log.Warn("stopping with background work unfinished", "err", err)
		}
	}()

	leave, err := a.heartbeat(ctx)
	if err != nil {
		return err
	}
	defer leave()

	if err := bootstrapAdmin(ctx, a.db, a.tokens, auditSink{log: a.audit}.hook, cfg.DataDir, out); err != nil {
		return err
	}
	defer recoverInterruptedRuns(ctx, a, log)()
	defer a.runIndexer(ctx)()
	defer a.runReseal(ctx)()

	if !h.noCron {
		cron, err := jobs{ctx: ctx, a: a}.schedule()
		if err != nil {
			return err
		}
		cron.Start()
		defer func() { <-cron.Stop().Done() }()
	}

	errc := make(chan error, 1)
	if cfg.PprofListen != "" {
		bound, stop, err := servePprof(cfg.PprofListen, errc)
		if err != nil {
			return err
		}
		defer stop()
		log.Warn("profiler listening (unauthenticated)", "addr", bound)
	}
	addr := ln.Addr().String()
	go func() { errc <- a.server.Serve(ln) }()
	log.Info("casevault listening", "addr", addr, "database", string(a.db.Dialect), "data_dir", cfg.DataDir, "version", version)
	if h.ready != nil {
		h.ready(a)
	}
	select {
	case err := <-errc:
		return fmt.Errorf("listen %s: %w", addr, err)
	case <-ctx.Done():
	}

	log.Info("shutting down: draining in-flight requests", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := a.server.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped cleanly")
	return nil
}

// runIndexer starts the indexer loop, and a rebuild when the index is new
// or outdated. The indexer outlives the request context: the returned
// function stops it (after the HTTP server has drained).
func (a *app) runIndexer(ctx context.Context) (stop func()) {
	ixCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	a.guard.Go("indexer", func() {
		defer close(done)
		if err := a.indexer.Run(ixCtx); err != nil {
			a.log.Error("indexer stopped", "err", err)
		}
	})
	if needsRebuild(a.indexer.Engine()) {
		a.guard.Go("search.reindex", func() {
			a.log.Info("search index missing or built with an older mapping: rebuilding from the store while the current one answers")
			// the indexer may have started one already (its feed cursor was pruned past)
			if err := a.indexer.Reindex(ixCtx, engineFactory{a.cfg, a.guard}.build); err != nil && !errors.Is(err, search.ErrReindexRunning) {
				a.log.Error("automatic reindex failed", "err", err)
			}
		})
	}
	return func() { cancel(); <-done }
}

// errBootstrapped: another replica created the first admin token first.
var errBootstrapped = errors.New("the first admin token exists")

// bootstrapLockKey is the PostgreSQL advisory lock class of the admin
// bootstrap (per schema, like the others: 7345001 migrations, 7345006
// sweeps).
const bootstrapLockKey = 7345018

// bootstrapAdmin creates the first admin token on an empty database, prints
// it once and writes it to <data-dir>/admin.token (0600). Replicas starting
// at once all see no token: the check that no other token exists runs in
// the creating transaction, after a lock every bootstrap takes (SQLite's
// write transactions are exclusive already), so exactly one of them
// commits a token and the others roll theirs back.
func bootstrapAdmin(ctx context.Context, db *sqldb.DB, tokens *auth.Tokens, hook func(context.Context, *sql.Tx, cases.Change) error, dataDir string, out io.Writer) error {
	n, err := tokens.Count(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}

	path := filepath.Join(dataDir, "admin.token")
	tok, secret, err := tokens.Create(ctx, "admin", auth.RoleAdmin, func(ctx context.Context, tx *sql.Tx, tok auth.Token) error {
		if db.Dialect == sqldb.Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, bootstrapLockKey); err != nil {
				return fmt.Errorf("bootstrap lock: %w", err)
			}
		}
		// A new statement: under the lock it sees every token committed
		// by a bootstrap that held it before.
		var others int
		if err := tx.QueryRowContext(ctx, db.Rebind(`SELECT COUNT(*) FROM tokens WHERE id <> ?`), tok.ID).Scan(&others); err != nil {
			return fmt.Errorf("count tokens: %w", err)
		}
		if others > 0 {
			return errBootstrapped
		}
		return hook(ctx, tx, cases.Change{Actor: cases.SystemActor(), Action: "token.bootstrap", TargetType: "token", TargetID: tok.ID})
	})
	if errors.Is(err, errBootstrapped) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := writeSecretFile(path, []byte(secret+"\n")); err != nil {
		return err
	}
	fmt.Fprintf(out, "Created the first admin token (id %s). It is shown once and saved to %s:\n%s\n", tok.ID, path, secret)
	return nil
}

// writeSecretFile writes a file only its owner can read, atomically.
func writeSecretFile(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// recoverInterruptedRuns marks the retention and backup runs a crashed
// process left "running" as interrupted, at start-up. The backup side runs
// in the background: a run killed moments ago still holds its lease, and is
// only known dead once that lease expires unrenewed. The returned function
// waits for it (call it after ctx is cancelled).
func recoverInterruptedRuns(ctx context.Context, a *app, log *slog.Logger) (wait func()) {
	if n, err := a.retention.sweeper.RecoverRuns(ctx); err != nil {
		log.Error("marking interrupted retention runs failed", "err", err)
	} else if n > 0 {
		log.Warn("retention runs left running by a stopped process marked interrupted", "runs", n)
	}
	// Marks the exports whose run's lease expired, then expires packages.
	jobs{ctx: ctx, a: a}.exportExpiry()
	done := make(chan struct{})
	a.guard.Go("backup.recover_runs", func() {
		defer close(done)
		n, err := a.backup.svc.RecoverRuns(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("marking interrupted backup runs failed", "err", err)
		case n > 0:
			log.Warn("backup runs left running by a stopped process marked interrupted", "runs", n)
		}
	})
	return func() { <-done }
}
