package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/export"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// newExports builds the export service over the attachment store: the
// server's (through the API) and the export command's.
func newExports(cfg *config, db *sqldb.DB, atts *archive.Attachments, blobs archive.Blobs, fields *sqlstore.Fields, holds *retention.Holds, hook auditSink, goFn func(string, func())) (*export.Service, error) {
	master, err := archive.LoadOrCreateMasterKey(cfg.DataDir, cfg.MasterKeyHex)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	key, err := export.Key(master)
	if err != nil {
		return nil, err
	}
	return export.New(export.Options{DB: db, Blobs: blobs, Attachments: atts, Fields: fields, Holds: holds, Key: key,
		AuditTx: hook.hook, TTL: cfg.ExportTTL.d, Go: goFn}), nil
}

type exportOptions struct {
	hold, out string
	json      bool
}

func newExportCmd(cfg *config) *cobra.Command {
	var opts exportOptions
	cmd := &cobra.Command{
		Use:   "export --hold ID --out FILE",
		Short: "Write the e-discovery package (ZIP) of a legal hold to a file",
		Long: `Builds the package of what the hold covers against the data directory (or
--database-url), as POST /api/v1/exports does, writes it to FILE and removes
the stored copy. Creating and downloading it are audited as the CLI actor.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.hold == "" || opts.out == "" {
				return usagef("--hold and --out are required")
			}
			r := newReporter(cmd, opts.json)
			return r.fail(runExport(cmd.Context(), cfg, opts, r))
		},
	}
	cmd.Flags().StringVar(&opts.hold, "hold", "", "legal hold ID")
	cmd.Flags().StringVar(&opts.out, "out", "", "file to write the ZIP to (replaced only once complete)")
	cmd.Flags().BoolVar(&opts.json, "json", false, "progress and result as JSON lines")
	return cfg.flags(cmd, useDB|useBlobs)
}

func runExport(ctx context.Context, cfg *config, opts exportOptions, r *reporter) error {
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		atts, blobs, _, err := openAttachments(ctx, cfg, env.db)
		if err != nil {
			return err
		}
		fields, err := storeFields(ctx, cfg, env.db)
		if err != nil {
			return err
		}
		svc, err := newExports(cfg, env.db, atts, blobs, fields, retention.NewHolds(env.db, nil), auditSink{log: env.log}, nil)
		if err != nil {
			return err
		}

		actor := cases.CLIActor()
		e, err := svc.Create(ctx, export.Input{HoldID: opts.hold}, actor)
		if err != nil {
			return err
		}
		err = svc.Run(ctx, e.ID, func(p export.Progress) {
			r.progress(backup.Progress{Phase: "export", Done: p.ItemsDone, Total: p.ItemsTotal, Unit: "items"})
		})
		if err != nil {
			return err
		}
		if e, err = svc.Get(ctx, e.ID); err != nil {
			return err
		}

		if err := writeExport(ctx, svc, e, opts.out); err != nil {
			return err
		}
		if err := svc.RecordDownload(ctx, e.ID, actor, map[string]any{"file": filepath.Base(opts.out), "size": e.Size, "sha256": e.SHA256}); err != nil {
			return err
		}
		// The file is the copy legal asked for; the stored one would only
		// wait for its expiry.
		if err := svc.Delete(ctx, e.ID, actor); err != nil {
			return err
		}
		return r.done(e, func(w io.Writer) {
			s := e.Summary
			fmt.Fprintf(w, "export %s of hold %s: %s (%s, sha256 %s)\n", e.ID, e.HoldID, opts.out, humanBytes(e.Size), e.SHA256)
			fmt.Fprintf(w, "%d contacts, %d cases, %d custodians, %d attachments, %d audit events\n", s.Contacts, s.Cases, s.Custodians, s.Attachments, s.AuditEvents)
			if len(s.ErasedCustomers) > 0 {
				fmt.Fprintf(w, "not exported (erased customers): %v\n", s.ErasedCustomers)
			}
		})
	})
}

// writeExport decrypts the package into out through a temporary file in
// the same directory, renamed once whole.
func writeExport(ctx context.Context, svc *export.Service, e export.Export, out string) error {
	rc, err := svc.OpenRange(ctx, e, 0, e.Size)
	if err != nil {
		return err
	}
	defer rc.Close()
	return writeWhole(out, ".export-*.zip", func(w io.Writer) error {
		_, err := io.Copy(w, rc)
		return err
	})
}

// writeWhole writes out through fn into a temporary file (named by
// pattern) in the same directory, synced and renamed once whole: a
// failure never leaves a partial file under out's name.
func writeWhole(out, pattern string, fn func(w io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(out), pattern)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := fn(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}
