// Command casevault is the one binary: the server and every operator tool.
//
// Layout (after restic's cmd/restic): one cmd_*.go file per command, each
// subcommand a constructor plus a runX function; app.go builds the server,
// jobs.go holds its cron jobs, exit.go maps every error to an exit code,
// report.go prints progress and results, options.go is the settings table.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

var version = "dev"

func main() {
	privateFiles()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns its exit code.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := interrupted(ctx, root.ExecuteContext(ctx))
	if err != nil {
		fmt.Fprintln(stderr, "casevault:", err)
	}
	return exitCode(err)
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	cfg := newConfig()
	root := &cobra.Command{
		Use:           "casevault",
		Short:         "Customer-service interaction and case archive",
		Long:          "Customer-service interaction and case archive.\n\n" + exitHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.load(cmd.Flags()); err != nil {
				return usageError{err}
			}
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	// Every flag parsing error (unknown flag, missing value, a value of the
	// wrong type) is a usage error.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	return parent(root, newServeCmd(cfg), newMigrateCmd(cfg), newTokenCmd(cfg), newUserCmd(cfg), newAuditCmd(cfg), newAttachmentsCmd(cfg),
		newReindexCmd(cfg), newRetentionCmd(cfg), newHoldCmd(cfg), newCustomerCmd(cfg), newExportCmd(cfg), newBackupCmd(cfg), newConfigCmd(cfg), newHealthcheckCmd(cfg))
}

// newLogger builds the slog logger: JSON in production, text on a terminal.
func newLogger(cfg *config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	format := cfg.LogFormat
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
