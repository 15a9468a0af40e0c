package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
)

type reconcileOptions struct {
	dryRun, json bool
	grace        time.Duration
}

func newAttachmentsCmd(cfg *config) *cobra.Command {
	return parent(&cobra.Command{Use: "attachments", Short: "Attachment storage maintenance"}, newReconcileCmd(cfg))
}

func newReconcileCmd(cfg *config) *cobra.Command {
	var opts reconcileOptions
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Remove blobs without a row (older than --grace) and report rows whose blob is missing",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReconcile(cmd.Context(), cfg, opts, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "report only")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print the report as JSON")
	cmd.Flags().DurationVar(&opts.grace, "grace", time.Hour, "leave blobs younger than this alone (an upload may be committing)")
	return cfg.flags(cmd, useDB|useBlobs)
}

func runReconcile(ctx context.Context, cfg *config, opts reconcileOptions, out io.Writer) error {
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		att, _, _, err := openAttachments(ctx, cfg, env.db)
		if err != nil {
			return err
		}
		rep, err := att.Reconcile(ctx, opts.grace, opts.dryRun)
		if err != nil {
			return err
		}
		if err := env.record(ctx, "attachments.reconcile", "attachments", "", map[string]any{
			"dry_run": opts.dryRun, "orphans": len(rep.OrphanBlobsRemoved), "leftover_versions": len(rep.LeftoverVersionsRemoved), "missing": len(rep.MissingBlobs)}); err != nil {
			return err
		}

		if opts.json {
			return json.NewEncoder(out).Encode(rep)
		}
		verb := "removed"
		if opts.dryRun {
			verb = "would remove"
		}
		fmt.Fprintf(out, "%s %d orphan blobs, %d keys of leftover versions, %d aborted uploads; %d attachments have no blob\n",
			verb, len(rep.OrphanBlobsRemoved), len(rep.LeftoverVersionsRemoved), len(rep.AbortedUploads), len(rep.MissingBlobs))
		for _, id := range rep.MissingBlobs {
			fmt.Fprintln(out, "missing blob for attachment", id)
		}
		return nil
	})
}
