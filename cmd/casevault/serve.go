package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/spf13/cobra"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

func serveCmd(cfg *config) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP API (SQLite, Bleve and local blobs unless configured otherwise)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := newLogger(cfg, cmd.ErrOrStderr())
			cfg.GC.apply(log)
			a, err := buildApp(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer a.Close()
			if err := bootstrapAdmin(ctx, a.tokens, auditSink{log: a.audit}.hook, cfg.DataDir, cmd.OutOrStdout()); err != nil {
				return err
			}
			defer recoverInterruptedRuns(ctx, a, log)()
			ixCtx, stopIndexer := context.WithCancel(context.Background())
			ixDone := make(chan struct{})
			a.guard.Go("indexer", func() {
				defer close(ixDone)
				if err := a.indexer.Run(ixCtx); err != nil {
					log.Error("indexer stopped", "err", err)
				}
			})
			defer func() { stopIndexer(); <-ixDone }()
			if needsRebuild(a.indexer.Engine()) {
				a.guard.Go("search.reindex", func() {
					log.Info("search index missing or built with an older mapping: rebuilding from the store while the current one answers")
					if err := a.indexer.Reindex(ixCtx, engineFactory{cfg, a.guard}.build); err != nil {
						log.Error("automatic reindex failed", "err", err)
					}
				})
			}
			jobs := cron.New(cron.WithLocation(time.UTC))
			if _, err := jobs.AddFunc(cfg.AuditPruneCron, a.guard.Func("cron.audit_prune", func() {
				n, err := a.audit.PruneExpired(ctx)
				if err != nil {
					log.Error("audit prune failed", "err", err)
					return
				}
				log.Info("audit pruned", "events", n, "retention", cfg.AuditRetention.String())
			})); err != nil {
				return usageError{fmt.Errorf("--audit-prune-schedule %q: %w", cfg.AuditPruneCron, err)}
			}
			if _, err := jobs.AddFunc(cfg.ReconcileCron, a.guard.Func("cron.reconcile", func() {
				rep, err := a.attachments.Reconcile(ctx, time.Hour, false)
				if err != nil {
					log.Error("attachment reconcile failed", "err", err)
					return
				}
				_ = a.audit.Record(ctx, audit.FromChange(systemChange("attachments.reconcile", "attachments", "", map[string]any{
					"orphans": len(rep.OrphanBlobsRemoved), "missing": len(rep.MissingBlobs)}), audit.OutcomeOK))
				if len(rep.MissingBlobs) > 0 {
					log.Error("attachments without a blob", "count", len(rep.MissingBlobs), "ids", rep.MissingBlobs)
				}
				log.Info("attachments reconciled", "orphans_removed", len(rep.OrphanBlobsRemoved), "missing", len(rep.MissingBlobs))
			})); err != nil {
				return usageError{fmt.Errorf("--reconcile-schedule %q: %w", cfg.ReconcileCron, err)}
			}
			if _, err := jobs.AddFunc(cfg.RetentionCron, a.guard.Func("cron.retention", func() {
				rep, err := a.retention.sweeper.Run(ctx, retention.RunOptions{})
				if err != nil {
					log.Error("retention sweep failed", "err", err)
					return
				}
				log.Info("retention sweep", "status", rep.Status, "examined", rep.Examined, "deleted", rep.Deleted,
					"anonymized", rep.Anonymized, "redacted", rep.Redacted, "held", rep.SkippedHeld, "errors", rep.Errors)
			})); err != nil {
				return usageError{fmt.Errorf("--retention-schedule %q: %w", cfg.RetentionCron, err)}
			}
			if err := addBackupJobs(ctx, jobs, cfg, a.backup, a.retention.policy, log, a.guard); err != nil {
				return err
			}
			jobs.Start()
			defer func() { <-jobs.Stop().Done() }()
			errc := make(chan error, 1)
			go func() { errc <- a.server.Listen(cfg.Listen) }()
			log.Info("casevault listening", "addr", cfg.Listen, "database", string(a.db.Dialect), "data_dir", cfg.DataDir, "version", version)
			select {
			case err := <-errc:
				return fmt.Errorf("listen %s: %w", cfg.Listen, err)
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
		},
	}
}

// bootstrapAdmin creates the first admin token on an empty database, prints
// it once and writes it to <data-dir>/admin.token (0600).
func bootstrapAdmin(ctx context.Context, tokens *auth.Tokens, hook func(context.Context, *sql.Tx, cases.Change) error, dataDir string, out interface{ Write([]byte) (int, error) }) error {
	n, err := tokens.Count(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	path := filepath.Join(dataDir, "admin.token")
	tok, secret, err := tokens.Create(ctx, "admin", auth.RoleAdmin, func(ctx context.Context, tx *sql.Tx, tok auth.Token) error {
		return hook(ctx, tx, cases.Change{Actor: cases.SystemActor(), Action: "token.bootstrap", TargetType: "token", TargetID: tok.ID})
	})
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

func migrateCmd(cfg *config) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending schema migrations and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Minute)
			defer cancel()
			env, err := openCLI(ctx, cfg)
			if err != nil {
				return err
			}
			defer env.Close()
			v, err := env.db.Version(ctx)
			if err != nil {
				return err
			}
			if err := env.log.Record(ctx, audit.FromChange(cliChange("schema.migrate", "schema", "", map[string]any{"version": v}), audit.OutcomeOK)); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "schema at version %d (%s)\n", v, env.db.Dialect)
			return nil
		},
	}
}

func tokenCmd(cfg *config) *cobra.Command {
	tc := &cobra.Command{Use: "token", Short: "Manage API tokens"}
	var name, role string
	create := &cobra.Command{
		Use:   "create --name NAME --role ROLE",
		Short: "Create a token and print it once (works whether or not the server runs)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := auth.ParseRole(role)
			if err != nil {
				return usageError{err}
			}
			ctx := cmd.Context()
			db, err := openDB(ctx, cfg)
			if err != nil {
				return err
			}
			defer db.Close()
			log := audit.New(db)
			defer log.Close(context.Background())
			sink := auditSink{log: log}
			tok, secret, err := auth.NewTokens(db).Create(ctx, name, r, func(ctx context.Context, tx *sql.Tx, tok auth.Token) error {
				return sink.hook(ctx, tx, cliChange("token.create", "token", tok.ID, map[string]any{"name": tok.Name, "role": string(tok.Role)}))
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s (%s, role %s) created; it is shown once:\n", tok.ID, tok.Name, tok.Role)
			fmt.Fprintln(cmd.OutOrStdout(), secret)
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "who or what uses the token")
	create.Flags().StringVar(&role, "role", "", "agent, supervisor, legal, backup or admin")
	_ = create.MarkFlagRequired("name")
	_ = create.MarkFlagRequired("role")
	tc.AddCommand(create)
	return tc
}
