package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqlstore"
)

type retentionRunOptions struct{ dryRun, json bool }

func newRetentionCmd(cfg *config) *cobra.Command {
	return parent(&cobra.Command{Use: "retention", Short: "Retention sweeps"}, newRetentionRunCmd(cfg))
}

func newRetentionRunCmd(cfg *config) *cobra.Command {
	var opts retentionRunOptions
	cmd := &cobra.Command{
		Use:   "run [--dry-run]",
		Short: "Run one retention sweep now (the server's own runs are scheduled by --retention-schedule)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRetention(cmd.Context(), cfg, opts, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "report what would happen, change nothing")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print the report as JSON")
	return cfg.flags(cmd, useDB|useBlobs|useRetention)
}

func runRetention(ctx context.Context, cfg *config, opts retentionRunOptions, out io.Writer) error {
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		policy := retention.NewPolicy(retention.DefaultSchedule())
		schedules, err := loadRetention(ctx, cfg, env.db, policy)
		if err != nil {
			return err
		}
		_, blobs, _, err := openAttachments(ctx, cfg, env.db)
		if err != nil {
			return err
		}

		// Query holds are evaluated by the search index, which the running
		// server owns; without it every query hold counts as covering (the
		// safe side), see retention.Holds.
		store := sqlstore.New(env.db, sqlstore.Options{Policy: policy})
		dkey, err := digestKey(cfg)
		if err != nil {
			return err
		}
		rp := newRetentionParts(nil, env.db, policy, schedules, nil, store, blobs, legalHolder(ctx, blobs, slog.Default()), auditSink{log: env.log}, dkey)
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
