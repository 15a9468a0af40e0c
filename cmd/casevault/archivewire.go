package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/archive/s3"
	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/sqldb"
)

// openBlobs returns the attachment blob store: S3 when an endpoint is
// configured, else the local disk under the data dir.
func openBlobs(ctx context.Context, cfg *config) (archive.Blobs, string, error) {
	if cfg.S3Endpoint == "" {
		st, err := local.New(filepath.Join(cfg.DataDir, "blobs"))
		if err != nil {
			return nil, "", fmt.Errorf("local blobs: %w", err)
		}
		return st, "local", nil
	}
	st, err := s3.New(ctx, s3.Config{Endpoint: cfg.S3Endpoint, Bucket: cfg.S3Bucket, AccessKey: cfg.S3AccessKey,
		SecretKey: cfg.S3SecretKey, Region: cfg.S3Region, TLS: cfg.S3TLS, ObjectLock: cfg.S3ObjectLock, Timeout: cfg.S3Timeout})
	if err != nil {
		return nil, "", fmt.Errorf("s3 %s/%s: %w", cfg.S3Endpoint, cfg.S3Bucket, err)
	}
	return st, "s3", nil
}

// openAttachments builds the attachment service with its keyring.
func openAttachments(ctx context.Context, cfg *config, db *sqldb.DB) (*archive.Attachments, archive.Blobs, string, error) {
	master, err := archive.LoadOrCreateMasterKey(cfg.DataDir, cfg.MasterKeyHex)
	if err != nil {
		return nil, nil, "", fmt.Errorf("master key: %w", err)
	}
	keys, err := archive.NewKeyring(db, master, archive.KeyringOptions{})
	if err != nil {
		return nil, nil, "", err
	}
	blobs, kind, err := openBlobs(ctx, cfg)
	if err != nil {
		return nil, nil, "", err
	}
	return archive.NewAttachments(db, blobs, keys, archive.AttachmentOptions{MaxSize: cfg.AttachmentLimit}), blobs, kind, nil
}

func isBlobUnavailable(err error) bool { return errors.Is(err, archive.ErrUnavailable) }

func attachmentsCmd(cfg *config) *cobra.Command {
	ac := &cobra.Command{Use: "attachments", Short: "Attachment storage maintenance"}
	var dryRun, asJSON bool
	var grace time.Duration
	rec := &cobra.Command{
		Use:   "reconcile",
		Short: "Remove blobs without a row (older than --grace) and report rows whose blob is missing",
		Args:  cobra.NoArgs,
		RunE: withCLI(cfg, func(ctx context.Context, cmd *cobra.Command, env *cliEnv) error {
			att, _, _, err := openAttachments(ctx, cfg, env.db)
			if err != nil {
				return err
			}
			rep, err := att.Reconcile(ctx, grace, dryRun)
			if err != nil {
				return err
			}
			if err := env.log.Record(ctx, audit.FromChange(cliChange("attachments.reconcile", "attachments", "", map[string]any{
				"dry_run": dryRun, "orphans": len(rep.OrphanBlobsRemoved), "missing": len(rep.MissingBlobs)}), audit.OutcomeOK)); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(rep)
			}
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %d orphan blobs, %d aborted uploads; %d attachments have no blob\n",
				verb, len(rep.OrphanBlobsRemoved), len(rep.AbortedUploads), len(rep.MissingBlobs))
			for _, id := range rep.MissingBlobs {
				fmt.Fprintln(cmd.OutOrStdout(), "missing blob for attachment", id)
			}
			return nil
		}),
	}
	rec.Flags().BoolVar(&dryRun, "dry-run", false, "report only")
	rec.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	rec.Flags().DurationVar(&grace, "grace", time.Hour, "leave blobs younger than this alone (an upload may be committing)")
	ac.AddCommand(rec)
	return ac
}
