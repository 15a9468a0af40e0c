package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/casevault/casevault/auth"
)

// The token commands work whether or not the server runs, through the same
// auth.Tokens calls as the API and audited under the same action names.
func newTokenCmd(cfg *config) *cobra.Command {
	return parent(&cobra.Command{Use: "token", Short: "Create, list and revoke API tokens"},
		newTokenCreateCmd(cfg), newTokenListCmd(cfg), newTokenRevokeCmd(cfg))
}

type tokenCreateOptions struct{ name, role string }

func newTokenCreateCmd(cfg *config) *cobra.Command {
	var opts tokenCreateOptions
	cmd := &cobra.Command{
		Use:   "create --name NAME --role ROLE",
		Short: "Create a token and print it once",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTokenCreate(cmd.Context(), cfg, opts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&opts.name, "name", "", "who or what uses the token (required)")
	cmd.Flags().StringVar(&opts.role, "role", "", "agent, supervisor, legal, backup or admin (required)")
	return cfg.flags(cmd, useDB)
}

func runTokenCreate(ctx context.Context, cfg *config, opts tokenCreateOptions, out, info io.Writer) error {
	if opts.name == "" || opts.role == "" {
		return usagef("--name and --role are required")
	}
	r, err := auth.ParseRole(opts.role)
	if err != nil {
		return usageError{err}
	}

	return withEnv(ctx, cfg, func(env *cliEnv) error {
		sink := auditSink{log: env.log}
		tok, secret, err := auth.NewTokens(env.db).Create(ctx, opts.name, r, func(ctx context.Context, tx *sql.Tx, tok auth.Token) error {
			return sink.hook(ctx, tx, cliChange("token.create", "token", tok.ID, map[string]any{"name": tok.Name, "role": string(tok.Role)}))
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(info, "token %s (%s, role %s) created; it is shown once:\n", tok.ID, tok.Name, tok.Role)
		fmt.Fprintln(out, secret)
		return nil
	})
}

func newTokenListCmd(cfg *config) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the tokens, newest first (never their secrets)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTokenList(cmd.Context(), cfg, asJSON, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the tokens as JSON")
	return cfg.flags(cmd, useDB)
}

func runTokenList(ctx context.Context, cfg *config, asJSON bool, out io.Writer) error {
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		toks, err := auth.NewTokens(env.db).List(ctx)
		if err != nil {
			return err
		}
		// A read like the API's GET /tokens: recorded before it is shown.
		if err := env.record(ctx, "token.list", "token", "", map[string]any{"count": len(toks)}); err != nil {
			return err
		}

		if asJSON {
			return json.NewEncoder(out).Encode(map[string]any{"items": toks})
		}
		tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tREVOKED")
		for _, t := range toks {
			revoked := "-"
			if t.RevokedAt != nil {
				revoked = t.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, t.CreatedAt.Format(time.RFC3339), revoked)
		}
		return tw.Flush()
	})
}

func newTokenRevokeCmd(cfg *config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token: it stops working at once (revoking twice is not an error)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return runTokenRevoke(cmd.Context(), cfg, a[0], cmd.OutOrStdout())
		},
	}
	return cfg.flags(cmd, useDB)
}

func runTokenRevoke(ctx context.Context, cfg *config, id string, out io.Writer) error {
	if id == "" {
		return usagef("the token id must not be empty")
	}
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		sink := auditSink{log: env.log}
		err := auth.NewTokens(env.db).Revoke(ctx, id, func(ctx context.Context, tx *sql.Tx) error {
			return sink.hook(ctx, tx, cliChange("token.revoke", "token", id, nil))
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "token %s revoked\n", id)
		return nil
	})
}
