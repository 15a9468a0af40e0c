package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newBackupDiffCmd(cfg *config, opts *backupOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Compare two backups (A, B: ids or latest): rows per table and attachment blobs added and removed",
		Args:  args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			rep := newReporter(cmd, opts.json)
			return rep.fail(runBackupDiff(cmd.Context(), cfg, a[0], a[1], opts.allowUnsigned, rep))
		},
	}
	cmd.Flags().BoolVar(&opts.allowUnsigned, "allow-unsigned", false, unsignedHelp)
	return cfg.flags(cmd, useBackup)
}

func runBackupDiff(ctx context.Context, cfg *config, a, b string, allowUnsigned bool, rep *reporter) error {
	repo, _, _, err := openBackupRepo(cfg, allowUnsigned, false)
	if err != nil {
		return err
	}
	if a, err = repo.Resolve(ctx, a); err != nil {
		return err
	}
	if b, err = repo.Resolve(ctx, b); err != nil {
		return err
	}
	d, err := repo.Diff(ctx, a, b)
	if err != nil {
		return err
	}
	return rep.done(d, func(w io.Writer) {
		fmt.Fprintf(w, "backup %s → %s\n", d.From, d.To)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TABLE\tROWS A\tROWS B\tDELTA\tCHANGED")
		for _, t := range d.Tables {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%+d\t%v\n", t.Name, t.RowsA, t.RowsB, t.Delta, t.Changed)
		}
		tw.Flush()
		fmt.Fprintf(w, "attachment blobs: %d added (%s), %d removed (%s)\n", d.BlobsAdded, humanBytes(d.BlobBytesAdded), d.BlobsRemoved, humanBytes(d.BlobBytesRemoved))
	})
}
