package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

func newAuditCmd(cfg *config) *cobra.Command {
	return parent(&cobra.Command{Use: "audit", Short: "Verify, export and prune the audit trail"},
		newAuditVerifyCmd(cfg), newAuditExportCmd(cfg), newAuditPruneCmd(cfg))
}

func newAuditVerifyCmd(cfg *config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Walk the hash chain and report the first bad event (exit 1 if any)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAuditVerify(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	return cfg.flags(cmd, useDB)
}

func runAuditVerify(ctx context.Context, cfg *config, out io.Writer) error {
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		start := time.Now()
		res, err := env.log.Verify(ctx)
		if err != nil {
			return err
		}
		raw, _ := json.Marshal(res)
		fmt.Fprintln(out, string(raw))
		_ = env.record(ctx, "audit.verify", "audit", "", map[string]any{"ok": res.OK, "events": res.Events, "seconds": time.Since(start).Seconds()})
		if !res.OK {
			return fmt.Errorf("audit chain broken at event %d: %s", *res.FirstBad, res.Reason)
		}
		return nil
	})
}

type auditExportOptions struct{ actor, action, target, from, to string }

func newAuditExportCmd(cfg *config) *cobra.Command {
	var opts auditExportOptions
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write audit events as NDJSON to stdout, oldest first (by time when --from or --to is given)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAuditExport(cmd.Context(), cfg, opts, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&opts.actor, "actor", "", "actor id or name")
	cmd.Flags().StringVar(&opts.action, "action", "", "action, or a prefix ending in * (case.*)")
	cmd.Flags().StringVar(&opts.target, "target", "", "TYPE or TYPE:ID")
	cmd.Flags().StringVar(&opts.from, "from", "", "start (inclusive): RFC 3339 or YYYY-MM-DD (UTC midnight), as the API's from")
	cmd.Flags().StringVar(&opts.to, "to", "", "end (exclusive): RFC 3339 or YYYY-MM-DD (UTC midnight), as the API's to")
	return cfg.flags(cmd, useDB)
}

func runAuditExport(ctx context.Context, cfg *config, opts auditExportOptions, out io.Writer) error {
	f := audit.Filter{Actor: opts.actor, Action: opts.action}
	f.TargetType, f.TargetID = audit.ParseTarget(opts.target)
	var err error
	if f.From, err = parseTime("--from", opts.from); err != nil {
		return err
	}
	if f.To, err = parseTime("--to", opts.to); err != nil {
		return err
	}

	return withEnv(ctx, cfg, func(env *cliEnv) error {
		if err := env.record(ctx, "audit.export", "audit", "", map[string]any{"actor": opts.actor, "action": opts.action, "target": opts.target, "from": opts.from, "to": opts.to}); err != nil {
			return err
		}
		return env.log.Export(ctx, out, f)
	})
}

// parseTime reads a date flag as the API reads its from and to parameters
// (cases.ParseTime); a bad value is a usage error.
func parseTime(flag, v string) (time.Time, error) {
	t, err := cases.ParseTime(flag, v)
	if err != nil {
		return time.Time{}, usagef("%s %q: must be %s", flag, v, cases.TimeFormats)
	}
	return t, nil
}

func newAuditPruneCmd(cfg *config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove events older than the audit retention, keeping a checkpoint",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAuditPrune(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	return cfg.flags(cmd, useDB|useAudit)
}

func runAuditPrune(ctx context.Context, cfg *config, out io.Writer) error {
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		n, err := env.log.PruneExpired(ctx)
		if err != nil {
			recordPruneFailure(ctx, env.log, cliChange, err, cfg.AuditRetention.d.String())
			return err
		}
		fmt.Fprintf(out, "pruned %d audit events older than %s\n", n, cfg.AuditRetention.d)
		return nil
	}, audit.WithRetention(cfg.AuditRetention.d), audit.WithKeep(retention.AuditKeep))
}
