package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/casevault/casevault/archive/backup"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// The customer commands carry out data-subject requests without a token:
// erasure (issue 15 §1), as DELETE /api/v1/customers/{id} does.

type customerEraseOptions struct {
	reason string
	force  bool
	json   bool
}

func newCustomerCmd(cfg *config) *cobra.Command {
	return parent(&cobra.Command{Use: "customer", Short: "Data-subject requests about one customer (erasure, the access export) and re-sealing legacy rows"},
		newCustomerEraseCmd(cfg), newCustomerExportCmd(cfg), newCustomerResealCmd(cfg))
}

func newCustomerEraseCmd(cfg *config) *cobra.Command {
	var opts customerEraseOptions
	cmd := &cobra.Command{
		Use:   "erase CUSTOMER_ID --reason TEXT [--force] [--json]",
		Short: "Erase a customer: cases, contacts, attachments, profile and data key (exit 13 when held, erased already, or with open cases without --force)",
		Long: `Erases a customer in one transaction: their cases, contacts, attachment rows
and profile are deleted, their data key is destroyed (so every backup copy of
their sealed fields and files is unreadable), the index is told, and a
disposition record and an audit event are written. Blobs are removed after
the commit. Refused (exit 13) when a legal hold covers any of their data,
when they were erased already, or when a case of theirs is open and --force
is not given.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return runCustomerErase(cmd.Context(), cfg, a[0], opts, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&opts.reason, "reason", "", "why the customer is erased (audited; required)")
	cmd.Flags().BoolVar(&opts.force, "force", false, "erase even with open cases (they are deleted too)")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print what was erased as JSON")
	return cfg.flags(cmd, useDB|useBlobs|useBackup)
}

func runCustomerErase(ctx context.Context, cfg *config, id string, opts customerEraseOptions, out io.Writer) error {
	if strings.TrimSpace(opts.reason) == "" {
		return usagef("--reason is required")
	}
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		eraser, err := newCLIEraser(ctx, cfg, env)
		if err != nil {
			return err
		}
		res, err := eraser.Erase(ctx, retention.EraseRequest{CustomerID: id, Reason: strings.TrimSpace(opts.reason), Force: opts.force}, cases.CLIActor())
		var held *retention.HeldError
		switch {
		case errors.As(err, &held), errors.Is(err, retention.ErrOpenCases), errors.Is(err, cases.ErrErased):
			return exitCodeError{exitRefused, err}
		case err != nil:
			return err
		}

		if opts.json {
			return json.NewEncoder(out).Encode(res)
		}
		fmt.Fprintf(out, "customer %s erased: %d case(s), %d contact(s), %d attachment(s); disposition %s\n",
			res.CustomerID, len(res.Cases), res.Contacts, res.Attachments, res.DispositionID)
		if res.EscrowPending {
			fmt.Fprintln(out, "their data key is still in the backups' key escrow (repository unreachable): the next backup run removes it")
		}
		return nil
	})
}

// newCLIEraser is the eraser of the CLI: holds judged by what they
// recorded (no index here), blobs purged after commit.
func newCLIEraser(ctx context.Context, cfg *config, env *cliEnv) (*retention.Eraser, error) {
	keys, fields, err := openSealing(ctx, cfg, env.db)
	if err != nil {
		return nil, err
	}
	_, blobs, _, err := openAttachmentsWith(ctx, cfg, env.db, keys)
	if err != nil {
		return nil, err
	}
	dkey, err := digestKey(cfg)
	if err != nil {
		return nil, err
	}
	// The backup repository, to purge the key escrow entry; when it cannot
	// be opened the deletion stays pending for the next backup run.
	var escrow retention.EscrowPurger
	// (the erase output says so).
	if repo, _, _, err := openBackupRepo(cfg, false, false); err == nil {
		escrow = backup.New(env.db, repo, backup.Options{})
	}
	return newEraser(env.db, retention.NewHolds(env.db, nil), keys, fields, blobs, auditSink{log: env.log}, dkey, nil, escrow, faultPoint(slog.Default())), nil
}

// newEraser builds the eraser the server and the CLI use; fault is the
// fault injection of the kill -9 tests (faultPoint; nil outside them).
func newEraser(db *sqldb.DB, holds *retention.Holds, keys retention.KeyShredder, fields *sqlstore.Fields, blobs retention.BlobRemover, sink auditSink, dkey []byte, notify func(),
	escrow retention.EscrowPurger, fault func(string)) *retention.Eraser {
	return retention.NewEraser(db, retention.EraserOptions{Holds: holds, Keys: keys, Fields: fields, OnChange: sink.hook,
		Blobs: blobs, DigestKey: dkey, Notify: notify, Escrow: escrow, Fault: fault})
}
