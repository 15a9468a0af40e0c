// Command casevault is the one binary: the server and every operator tool.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Exit codes, documented in the README (modelled on restic's).
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// exitUnavailable: a backend (database, S3) could not be reached. (3 is
	// restic's "incomplete backup", see backupwire.go.)
	exitUnavailable = 14
)

var version = "dev"

func main() {
	privateFiles()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "casevault:", err)
	var ue usageError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case ctx.Err() != nil:
		return exitInterrupt
	case backupExitCode(err) != 0:
		return backupExitCode(err)
	case isUnavailable(err):
		return exitUnavailable
	}
	if strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag") ||
		strings.Contains(err.Error(), "required flag") {
		return exitUsage
	}
	return exitError
}

type usageError struct{ error }

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	cfg := &config{}
	root := &cobra.Command{
		Use:           "casevault",
		Short:         "Customer-service interaction and case archive",
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
	addFlags(root, cfg)
	root.AddCommand(serveCmd(cfg), migrateCmd(cfg), tokenCmd(cfg), auditCmd(cfg), attachmentsCmd(cfg), reindexCmd(cfg), retentionCmd(cfg), backupCmd(cfg), configCmd())
	return root
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
