package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// configCmd prints the settings table (the README's configuration table is
// generated with it, so the two cannot disagree).
func configCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print every setting: flag, environment variable, default",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			fmt.Fprintln(w, "| flag | environment | default | meaning |")
			fmt.Fprintln(w, "|---|---|---|---|")
			for _, s := range settings() {
				def := "`" + s.def + "`"
				if s.def == "" {
					def = "(empty)"
				}
				fmt.Fprintf(w, "| `--%s` | `%s` | %s | %s |\n", s.flag, s.env, def, s.help)
			}
			return nil
		},
	}
}
