package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/casevault/casevault/auth"
)

// The user commands manage the web console's users (people; API tokens
// stay for machines), through the same auth.Users calls as the console's
// admin pages and audited under the same action names. Passwords are read
// from standard input (one line), never from a flag: a flag would sit in
// the shell history and the process list.
func newUserCmd(cfg *config) *cobra.Command {
	return parent(&cobra.Command{Use: "user", Short: "Add, list, disable web console users and set their passwords"},
		newUserAddCmd(cfg), newUserListCmd(cfg), newUserPasswdCmd(cfg), newUserDisableCmd(cfg))
}

// readPassword reads the password line from in.
func readPassword(in io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", usagef("give the password on standard input (one line)")
	}
	return pw, nil
}

func newUserAddCmd(cfg *config) *cobra.Command {
	var name, role string
	cmd := &cobra.Command{
		Use:   "add --name NAME --role ROLE < password",
		Short: "Add a console user; the password is read from standard input",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUserAdd(cmd.Context(), cfg, name, role, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the user name people sign in with (required)")
	cmd.Flags().StringVar(&role, "role", "", "agent, supervisor, legal, backup or admin (required)")
	return cfg.flags(cmd, useDB)
}

func runUserAdd(ctx context.Context, cfg *config, name, role string, in io.Reader, out io.Writer) error {
	if name == "" || role == "" {
		return usagef("--name and --role are required")
	}
	r, err := auth.ParseRole(role)
	if err != nil {
		return usageError{err}
	}
	pw, err := readPassword(in)
	if err != nil {
		return err
	}
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		sink := auditSink{log: env.log}
		u, err := auth.NewUsers(env.db, auth.DefaultArgon2, nil).Create(ctx, name, r, pw, func(ctx context.Context, tx *sql.Tx, u auth.User) error {
			return sink.hook(ctx, tx, cliChange("user.create", "user", u.ID, map[string]any{"name": u.Name, "role": string(u.Role)}))
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "user %s (%s, role %s) added\n", u.ID, u.Name, u.Role)
		return nil
	})
}

func newUserListCmd(cfg *config) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the console users (never their password hashes)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUserList(cmd.Context(), cfg, asJSON, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the users as JSON")
	return cfg.flags(cmd, useDB)
}

func runUserList(ctx context.Context, cfg *config, asJSON bool, out io.Writer) error {
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		users, err := auth.NewUsers(env.db, auth.DefaultArgon2, nil).List(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return json.NewEncoder(out).Encode(map[string]any{"items": users})
		}
		tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tDISABLED")
		for _, u := range users {
			disabled := "-"
			if u.DisabledAt != nil {
				disabled = u.DisabledAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.ID, u.Name, u.Role, u.CreatedAt.Format(time.RFC3339), disabled)
		}
		return tw.Flush()
	})
}

func newUserPasswdCmd(cfg *config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "passwd NAME < password",
		Short: "Set a user's password (from standard input), end the lockout and their sessions",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return runUserChange(cmd.Context(), cfg, a[0], "passwd", cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	return cfg.flags(cmd, useDB)
}

func newUserDisableCmd(cfg *config) *cobra.Command {
	var enable bool
	cmd := &cobra.Command{
		Use:   "disable NAME",
		Short: "Disable a user and end their sessions (--enable undoes it)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			op := "disable"
			if enable {
				op = "enable"
			}
			return runUserChange(cmd.Context(), cfg, a[0], op, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&enable, "enable", false, "enable the user again")
	return cfg.flags(cmd, useDB)
}

func runUserChange(ctx context.Context, cfg *config, name, op string, in io.Reader, out io.Writer) error {
	var pw string
	if op == "passwd" {
		var err error
		if pw, err = readPassword(in); err != nil {
			return err
		}
	}
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		users := auth.NewUsers(env.db, auth.DefaultArgon2, nil)
		sessions := auth.NewSessions(env.db, auth.SessionTimeouts{}, nil)
		u, err := users.ByName(ctx, name)
		if errors.Is(err, auth.ErrNoUser) {
			return fmt.Errorf("no user named %q: %w", name, err)
		}
		if err != nil {
			return err
		}
		sink := auditSink{log: env.log}
		action := "user." + op
		if op == "passwd" {
			action = "user.password"
		}
		hook := func(ctx context.Context, tx *sql.Tx) error {
			if op != "enable" {
				if err := sessions.EndAllTx(ctx, tx, u.ID); err != nil {
					return err
				}
			}
			return sink.hook(ctx, tx, cliChange(action, "user", u.ID, nil))
		}
		switch op {
		case "passwd":
			err = users.SetPassword(ctx, u.ID, pw, hook)
		default:
			err = users.SetDisabled(ctx, u.ID, op == "disable", hook)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "user %s: %s done\n", u.Name, op)
		return nil
	})
}
