package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/export"
	"github.com/casevault/casevault/retention"
)

type customerExportOptions struct{ out string }

func newCustomerExportCmd(cfg *config) *cobra.Command {
	var opts customerExportOptions
	cmd := &cobra.Command{
		Use:   "export ID --out FILE",
		Short: "Write everything stored about a customer (access and portability ZIP) to a file",
		Long: `Writes the customer's access export, as GET /api/v1/customers/{id}/export
does, to FILE (replaced only once complete, mode 0600). Audited as the CLI
actor (customer.export).`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if opts.out == "" {
				return usagef("--out is required")
			}
			return runCustomerExport(cmd.Context(), cfg, a[0], opts, cmd)
		},
	}
	cmd.Flags().StringVar(&opts.out, "out", "", "file to write the ZIP to")
	return cfg.flags(cmd, useDB|useBlobs)
}

func runCustomerExport(ctx context.Context, cfg *config, id string, opts customerExportOptions, cmd *cobra.Command) error {
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		keys, fields, err := openSealing(ctx, cfg, env.db)
		if err != nil {
			return err
		}
		atts, _, _, err := openAttachmentsWith(ctx, cfg, env.db, keys)
		if err != nil {
			return err
		}
		policy := retention.NewPolicy(retention.DefaultSchedule())
		retention.NewSchedules(env.db, policy) // binds policy to the stored schedule
		holds := retention.NewHolds(env.db, nil)
		sa := export.NewSubjectAccess(export.SubjectOptions{DB: env.db, Attachments: atts, Explain: retention.NewExplainer(env.db, policy, holds), Fields: fields})
		if err := sa.Check(ctx, id); err != nil {
			return err
		}

		// Recorded before the data leaves, as the API's read audit is.
		ch := cases.Change{Actor: cases.CLIActor(), Action: "customer.export", TargetType: "customer", TargetID: id,
			Detail: map[string]any{"file": filepath.Base(opts.out)}}
		if err := env.log.Record(ctx, audit.FromChange(ch, audit.OutcomeOK)); err != nil {
			return err
		}

		if err := writeWhole(opts.out, ".customer-export-*.zip", func(w io.Writer) error { return sa.Write(ctx, w, id) }); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "customer %s exported to %s\n", id, opts.out)
		return nil
	})
}
