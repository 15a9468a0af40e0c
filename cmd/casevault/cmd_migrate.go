package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
)

func newMigrateCmd(cfg *config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending schema migrations and exit",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMigrate(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	return cfg.flags(cmd, useDB)
}

func runMigrate(ctx context.Context, cfg *config, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()

	return withEnv(ctx, cfg, func(env *cliEnv) error {
		v, err := env.db.Version(ctx)
		if err != nil {
			return err
		}
		if err := env.record(ctx, "schema.migrate", "schema", "", map[string]any{"version": v}); err != nil {
			return err
		}
		fmt.Fprintf(out, "schema at version %d (%s)\n", v, env.db.Dialect)
		return nil
	})
}
