package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newConfigCmd(cfg *config) *cobra.Command {
	var defaults bool
	cmd := &cobra.Command{
		Use:   "config [--defaults] [flags]",
		Short: "Print the effective settings (flags, environment, defaults; secrets only as set or unset)",
		Long: "Prints every setting with the value a command would use and where it came from: a flag given\n" +
			"here, a CASEVAULT_* environment variable, or the default. Secret settings are shown as set or\n" +
			"unset, never their value. --defaults prints the table of flags, variables and defaults instead\n" +
			"(the README's configuration table).",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if defaults {
				return runConfigDefaults(cmd.OutOrStdout())
			}
			return runConfig(cfg, cmd, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&defaults, "defaults", false, "print the table of settings and their defaults (Markdown)")
	return cfg.flags(cmd, useAll)
}

// runConfig prints the effective value of every setting.
func runConfig(cfg *config, cmd *cobra.Command, out io.Writer) error {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE\tSOURCE")
	for _, o := range options() {
		f := cmd.Flags().Lookup(o.name)
		v := f.Value.String()
		switch {
		case o.secret && v == "":
			v = "(unset)"
		case o.secret:
			v = "(set)"
		case v == "":
			v = "(empty)"
		}
		src := cfg.source[o.name]
		if src == "env" {
			src = "env " + o.env()
		}
		fmt.Fprintf(tw, "--%s\t%s\t%s\n", o.name, v, src)
	}
	return tw.Flush()
}

// runConfigDefaults prints the settings table as the README shows it.
func runConfigDefaults(out io.Writer) error {
	fmt.Fprintln(out, "| flag | environment | default | meaning |")
	fmt.Fprintln(out, "|---|---|---|---|")
	for _, o := range options() {
		def := "`" + o.def + "`"
		if o.def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(out, "| `--%s` | `%s` | %s | %s |\n", o.name, o.env(), def, o.help)
	}
	return nil
}
