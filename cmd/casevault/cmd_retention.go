package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/sqlstore"
)

type retentionRunOptions struct{ dryRun, json bool }

func newRetentionCmd(cfg *config) *cobra.Command {
	return parent(&cobra.Command{Use: "retention", Short: "Retention sweeps and the retention schedule"},
		newRetentionRunCmd(cfg), newRetentionScheduleCmd(cfg))
}

func newRetentionRunCmd(cfg *config) *cobra.Command {
	var opts retentionRunOptions
	cmd := &cobra.Command{
		Use:   "run [--dry-run]",
		Short: "Run one retention sweep now (the server's own runs are scheduled by --retention-schedule)",
		Long: `Run one retention sweep now, under the retention schedule stored in the
database (the one GET /api/v1/retention/schedule shows). It never changes
the schedule; --dry-run changes nothing at all.

While a legal hold with a query scope is in force, the sweep needs the
search index to tell what the hold covers: it opens the configured engine
(Meilisearch, or the embedded index under <data-dir>/index, which a running
server holds), and refuses with exit code 13 when it cannot. Sweep through
the server then (POST /api/v1/retention/runs).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRetention(cmd.Context(), cfg, opts, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "report what would happen, change nothing")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print the report as JSON")
	return cfg.flags(cmd, useDB|useBlobs|useSearch|useLog)
}

func newRetentionScheduleCmd(cfg *config) *cobra.Command {
	apply := &cobra.Command{
		Use:   "apply FILE",
		Short: "Store a JSON retention schedule file as the next version (audited; nothing when it equals the schedule in force)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return applySchedule(cmd.Context(), cfg, a[0], cmd.OutOrStdout())
		},
	}
	return parent(&cobra.Command{Use: "schedule", Short: "The retention schedule"}, cfg.flags(apply, useDB|useLog))
}

// applySchedule stores the file as the schedule in force, audited as the
// CLI's schedule change, and brings the stored dates in line with it.
func applySchedule(ctx context.Context, cfg *config, path string, out io.Writer) error {
	sc, err := readScheduleFile(path)
	if err != nil {
		return err
	}
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		policy := retention.NewPolicy(retention.DefaultSchedule())
		schedules := retention.NewSchedules(env.db, policy)
		stored, applied, err := schedules.ApplyFile(ctx, sc, path, cases.CLIActor(), auditSink{log: env.log}.hook)
		if err != nil {
			return err
		}
		if !applied {
			fmt.Fprintf(out, "unchanged: %s is the schedule in force (version %d)\n", path, stored.Version)
			return nil
		}

		res, err := retention.Recompute(ctx, env.db, policy, retention.RecomputeOptions{})
		if err != nil {
			return fmt.Errorf("schedule stored as version %d; recomputing the stored dates failed (the next sweep finishes it): %w", stored.Version, err)
		}
		fmt.Fprintf(out, "applied %s as version %d; %d of %d retention dates changed\n", path, stored.Version, res.Changed, res.Examined)
		return nil
	})
}

// errQueryHoldsNeedIndex is a CLI sweep refused: query holds in force and
// no index to evaluate them with.
var errQueryHoldsNeedIndex = errors.New("legal holds with a query scope are in force and the search index cannot be opened here")

func runRetention(ctx context.Context, cfg *config, opts retentionRunOptions, out io.Writer) error {
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		policy := retention.NewPolicy(retention.DefaultSchedule())
		schedules := retention.NewSchedules(env.db, policy)
		_, blobs, _, err := openAttachments(ctx, cfg, env.db)
		if err != nil {
			return err
		}

		fields, err := storeFields(ctx, cfg, env.db)
		if err != nil {
			return err
		}
		store := sqlstore.New(env.db, sqlstore.Options{Policy: policy, Fields: fields})
		ix, err := queryHoldIndex(ctx, cfg, env, store, opts)
		if err != nil {
			return err
		}
		if ix != nil {
			defer ix.Close()
		}

		dkey, err := digestKey(cfg)
		if err != nil {
			return err
		}
		rp := newRetentionParts(nil, env.db, policy, schedules, ix, store, blobs, legalHolder(ctx, blobs, slog.Default()), auditSink{log: env.log}, dkey, fields)
		rep, err := rp.sweeper.Run(ctx, retention.RunOptions{DryRun: opts.dryRun})
		if err != nil {
			return err
		}
		if err := env.record(ctx, "retention.run", "retention_run", rep.ID, map[string]any{
			"dry_run": opts.dryRun, "status": rep.Status, "deleted": rep.Deleted, "anonymized": rep.Anonymized, "redacted": rep.Redacted}); err != nil {
			return err
		}

		if opts.json {
			return json.NewEncoder(out).Encode(rep)
		}
		fmt.Fprintf(out, "%s (dry run: %v): examined %d, deleted %d, anonymized %d, redacted %d, cases deleted %d, held %d, errors %d\n",
			rep.Status, rep.DryRun, rep.Examined, rep.Deleted, rep.Anonymized, rep.Redacted, rep.CasesDeleted, rep.SkippedHeld, rep.Errors)
		return nil
	})
}

// queryHoldIndex opens the search index when a query hold is in force, so
// that the sweep evaluates it exactly as the server's does (the same engine,
// the same matcher, deferred while the outbox holds changes the index has
// not applied). Without query holds it returns nil: nothing needs it. When
// the index cannot be opened (a running server holds the embedded one) the
// sweep is refused, audited (outcome failed, "refused"), with exit code 13: judging a query hold
// without its index either holds everything or nothing, both wrong.
func queryHoldIndex(ctx context.Context, cfg *config, env *cliEnv, store *sqlstore.Store, opts retentionRunOptions) (*search.Indexer, error) {
	n, err := retention.NewHolds(env.db, nil).QueryHoldsInForce(ctx)
	if err != nil || n == 0 {
		return nil, err
	}

	ix, openErr := openHoldIndex(ctx, cfg, store)
	if openErr == nil {
		return ix, nil
	}
	err = fmt.Errorf("%w (%d such holds; %v): a sweep here could not tell what they cover. "+
		"Run it through the server (POST /api/v1/retention/runs), or stop the server that holds the index", errQueryHoldsNeedIndex, n, openErr)
	ch := cliChange("retention.run", "retention_run", "", map[string]any{"dry_run": opts.dryRun, "refused": errQueryHoldsNeedIndex.Error(), "query_holds": n})
	if rerr := env.log.Record(ctx, audit.FromChange(ch, audit.OutcomeFailed)); rerr != nil {
		return nil, errors.Join(err, rerr)
	}
	return nil, exitCodeError{code: exitRefused, err: err}
}

// openHoldIndex opens the configured index for evaluating query holds. It
// never creates one: a new, empty or outdated index answers "not covered"
// for everything, and one created here would later be trusted by the
// server as if it had been filled.
func openHoldIndex(ctx context.Context, cfg *config, store *sqlstore.Store) (*search.Indexer, error) {
	if cfg.MeiliURL == "" {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "index")); err != nil {
			return nil, fmt.Errorf("no embedded index here: %w", err)
		}
	}
	ix, err := startIndexer(ctx, cfg, store, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), nil, false)
	if err != nil {
		return nil, err
	}
	if needsRebuild(ix.Engine()) {
		ix.Close()
		return nil, errors.New("the index is new or built with an older mapping, so it does not hold every case yet")
	}
	return ix, nil
}
