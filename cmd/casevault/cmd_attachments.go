package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/retention"
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
		Short: "Remove blobs without a row (older than --grace), report rows whose blob is missing, and converge the S3 legal-hold flags on the holds",
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
		att, blobs, _, err := openAttachments(ctx, cfg, env.db)
		if err != nil {
			return err
		}
		rep, err := att.Reconcile(ctx, opts.grace, opts.dryRun)
		if err != nil {
			return err
		}

		// The legal-hold flags too: a full pass (a dry run only reports the
		// holds whose mirroring is pending).
		flags := newFlagMirror(env.db, retention.NewHolds(env.db, nil), legalHolder(ctx, blobs, nil), auditSink{log: env.log})
		var frep retention.FlagReport
		var ferr error
		if opts.dryRun {
			frep, ferr = flags.Pending(ctx)
		} else {
			frep, ferr = flags.Reconcile(ctx, retention.ReconcileOptions{Full: true})
		}

		detail := map[string]any{"dry_run": opts.dryRun, "orphans": len(rep.OrphanBlobsRemoved), "leftover_versions": len(rep.LeftoverVersionsRemoved), "missing": len(rep.MissingBlobs)}
		if frep.Available {
			detail["flags_set"], detail["flags_cleared"], detail["flags_restored"], detail["holds_pending"] = frep.Set, frep.Cleared, frep.Restored, len(frep.Pending)
		}
		if err := env.record(ctx, "attachments.reconcile", "attachments", "", detail); err != nil {
			return errors.Join(ferr, err)
		}

		if opts.json {
			if err := json.NewEncoder(out).Encode(struct {
				archive.Report
				LegalHoldFlags retention.FlagReport `json:"legal_hold_flags"`
			}{rep, frep}); err != nil {
				return err
			}
			return ferr
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
		switch {
		case ferr != nil:
			fmt.Fprintf(out, "legal-hold flags: %v\n", ferr)
		case !frep.Available:
			fmt.Fprintln(out, "legal-hold flags: unavailable (the blob store has no object lock)")
		case opts.dryRun:
			fmt.Fprintf(out, "legal-hold flags: %d holds pending\n", len(frep.Pending))
		default:
			fmt.Fprintf(out, "legal-hold flags: set %d, cleared %d, read back %d (%d set again); %d holds pending\n",
				frep.Set, frep.Cleared, frep.Verified, frep.Restored, len(frep.Pending))
		}
		for _, id := range frep.Pending {
			fmt.Fprintln(out, "mirroring pending for hold", id)
		}
		return ferr
	})
}
