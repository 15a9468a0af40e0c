package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/sqldb"
)

// Exit codes, documented in the README and in `casevault backup --help`
// (modelled on restic's).
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitIncomplete  = 3   // backup written, but some attachment blobs were gone
	exitDamaged     = 4   // verify found problems, or the backup is damaged
	exitNoRepo      = 10  // no repository at the target, or no such backup
	exitLocked      = 11  // another backup run holds the lease
	exitKey         = 12  // backup identity or master key missing or wrong
	exitRefused     = 13  // restore target not empty, data held or deleted; a CLI sweep without the index its query holds need; an erasure refused
	exitUnavailable = 14  // a backend (database, S3) could not be reached
	exitMasterKey   = 15  // the master key is missing or not the database's
	exitInterrupt   = 130 // SIGINT or SIGTERM
)

const exitHelp = `Exit codes:
  0    success
  1    error
  2    usage error (unknown command or flag, missing or bad argument or setting), or an undo
       (restore --undo-run) without --yes: it printed what it would bring back
  3    backup written but incomplete: attachment blobs deleted meanwhile (listed in the manifest's "missing")
  4    verify or a drill found problems, a restored table's digest differs, or the backup is damaged,
       unsigned (written before casevault signed backups; see --allow-unsigned) or its
       manifest's signature does not verify (altered, or signed with another master key)
  10   no backup repository at the target, or no such backup (or case in it)
  11   another backup run holds the lock (one run at a time across replicas)
  12   backup identity (private key) missing or wrong, or no master key to authenticate backups
  13   refused: restore target not empty, case held by a legal hold, or deleted since (an undo
       needs --yes), an undo from a backup taken after the disposal, or of what is final
       (erasure, data under an active legal hold); or a
       retention sweep while legal holds with a query scope are in force and the search
       index cannot be opened (a running server holds it: sweep through the server); or an
       erasure of a held customer, one erased already, or one with open cases without --force
  14   a backend (database, S3) could not be reached
  15   the master key is missing or is not the one the database's data keys are wrapped under
       (every replica and every restore must use the instance's master key)
  130  interrupted (SIGINT, SIGTERM)`

// usageError is a command line the command cannot run: exit 2.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// usagef is a usageError with a formatted message.
func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitCodeError carries a chosen exit code with an error message: results
// that are not failures of a call (a backup that is incomplete, a verify
// that found problems).
type exitCodeError struct {
	code int
	err  error
}

func (e exitCodeError) Error() string { return e.err.Error() }
func (e exitCodeError) Unwrap() error { return e.err }

// interruptedError is the error of a command whose context a signal
// cancelled, whatever the error it returned.
type interruptedError struct{ error }

func (e interruptedError) Unwrap() error { return e.error }

// interrupted marks err as the result of an interruption when ctx was
// cancelled.
func interrupted(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return interruptedError{err}
	}
	return err
}

// exitCode is the one mapping from a command's error to its exit code.
func exitCode(err error) int {
	var (
		ue usageError
		ec exitCodeError
		ie interruptedError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ie), errors.Is(err, context.Canceled):
		return exitInterrupt
	case errors.As(err, &ec):
		return ec.code
	case errors.Is(err, backup.ErrLocked):
		return exitLocked
	case errors.Is(err, backup.ErrNoKey), errors.Is(err, backup.ErrWrongKey), errors.Is(err, backup.ErrNoSigningKey):
		return exitKey
	case errors.Is(err, backup.ErrTargetInUse), errors.Is(err, backup.ErrHeld), errors.Is(err, backup.ErrDeleted), errors.Is(err, backup.ErrNotBefore):
		return exitRefused
	case errors.Is(err, backup.ErrDamaged):
		return exitDamaged
	case errors.Is(err, backup.ErrNoRepository), errors.Is(err, backup.ErrNotFound):
		return exitNoRepo
	case errors.Is(err, archive.ErrWrongMasterKey), errors.Is(err, archive.ErrNoMasterKey):
		return exitMasterKey
	case errors.Is(err, sqldb.ErrUnavailable), errors.Is(err, archive.ErrUnavailable):
		return exitUnavailable
	}
	return exitError
}

// args wraps a cobra argument check so that its failure is a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// noArgs refuses positional arguments (exit 2).
var noArgs = args(cobra.NoArgs)

// parent makes cmd a command that only holds subcommands: a mistyped
// subcommand is a usage error naming the closest ones (cobra prints help
// and exits 0 for a command without Run), and so is a missing one.
func parent(cmd *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	// A parent has no flags of its own: flags meant for the subcommand
	// must not hide that the subcommand is mistyped.
	cmd.FParseErrWhitelist.UnknownFlags = true
	cmd.SuggestionsMinimumDistance = 2
	cmd.Args = func(cmd *cobra.Command, a []string) error {
		if len(a) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", a[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(a[0]); len(s) > 0 {
			msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
		}
		return usageError{errors.New(msg + "\n\nRun '" + cmd.CommandPath() + " --help' for usage.")}
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cmd.SetOut(cmd.ErrOrStderr())
		_ = cmd.Help()
		return usagef("%s needs a subcommand", cmd.CommandPath())
	}
	cmd.AddCommand(subs...)
	return cmd
}
