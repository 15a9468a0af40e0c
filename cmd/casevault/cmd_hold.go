package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

// The hold commands give legal's two most urgent operations to an operator
// without a token: reading a hold's report and undoing a release within its
// grace. Without the server's search index, a query hold's report lists
// what the hold recorded (the server evaluates the cases written since).

type holdItemsOptions struct {
	custodian, cursor string
	limit             int
	all, json         bool
}

type holdReinstateOptions struct {
	reason string
	json   bool
}

func newHoldCmd(cfg *config) *cobra.Command {
	return parent(&cobra.Command{Use: "hold", Short: "Legal holds: reports and reinstatement"},
		newHoldItemsCmd(cfg), newHoldReinstateCmd(cfg))
}

func newHoldItemsCmd(cfg *config) *cobra.Command {
	var opts holdItemsOptions
	cmd := &cobra.Command{
		Use:   "items HOLD_ID [--custodian ID] [--limit N] [--cursor C | --all] [--json]",
		Short: "Print a hold's report: the cases and contacts it covers or covered, with why and since",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return runHoldItems(cmd.Context(), cfg, a[0], opts, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&opts.custodian, "custodian", "", "only this customer's items")
	cmd.Flags().IntVar(&opts.limit, "limit", 50, "items per page (1-500)")
	cmd.Flags().StringVar(&opts.cursor, "cursor", "", "the next cursor a previous page printed")
	cmd.Flags().BoolVar(&opts.all, "all", false, "print every page")
	cmd.Flags().BoolVar(&opts.json, "json", false, `print {"items":[…],"next_cursor":…} as the API does`)
	return cfg.flags(cmd, useDB)
}

func newHoldReinstateCmd(cfg *config) *cobra.Command {
	var opts holdReinstateOptions
	cmd := &cobra.Command{
		Use:   "reinstate HOLD_ID --reason TEXT [--json]",
		Short: "Undo a hold's release within its grace (exit 13 when it is not released or the grace has ended)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return runHoldReinstate(cmd.Context(), cfg, a[0], opts, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&opts.reason, "reason", "", "why the release is undone (audited; required)")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print the hold as JSON")
	return cfg.flags(cmd, useDB|useBlobs)
}

// holdPage is a report page as the API returns it.
type holdPage struct {
	Items []retention.ReportItem `json:"items"`
	Next  string                 `json:"next_cursor,omitempty"`
}

func runHoldItems(ctx context.Context, cfg *config, id string, opts holdItemsOptions, out io.Writer) error {
	if opts.limit < 1 || opts.limit > 500 {
		return usagef("--limit %d: must be 1-500", opts.limit)
	}
	if opts.all && opts.cursor != "" {
		return usagef("--all reads from the first page: give it or --cursor, not both")
	}
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		holds := retention.NewHolds(env.db, nil)
		page := holdPage{Items: []retention.ReportItem{}}
		cursor := opts.cursor
		for {
			items, next, err := holds.Items(ctx, id, retention.ItemFilter{Custodian: opts.custodian}, opts.limit, cursor)
			if errors.Is(err, retention.ErrBadCursor) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			page.Items, page.Next = append(page.Items, items...), next
			if !opts.all || next == "" {
				break
			}
			cursor = next
		}
		// Read as the API's report is: audited.
		if err := env.record(ctx, "hold.report", "hold", id, map[string]any{"items": len(page.Items), "custodian": opts.custodian}); err != nil {
			return err
		}

		if opts.json {
			return json.NewEncoder(out).Encode(page)
		}
		for _, it := range page.Items {
			fmt.Fprintln(out, itemLine(it))
		}
		if page.Next != "" {
			fmt.Fprintf(out, "next: --cursor %s\n", page.Next)
		}
		return nil
	})
}

// itemLine is one report item for a terminal.
func itemLine(it retention.ReportItem) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-7s case %s", it.Kind, it.CaseID)
	if it.ContactID != "" {
		fmt.Fprintf(&b, " contact %s", it.ContactID)
	}
	fmt.Fprintf(&b, " customer %s why %s since %s", it.CustomerID, it.Why, it.Since.Format(time.RFC3339))
	if len(it.Attachments) > 0 {
		fmt.Fprintf(&b, " attachments %d", len(it.Attachments))
	}
	if it.Disposed {
		b.WriteString(" DISPOSED")
		for _, d := range it.Disposition {
			fmt.Fprintf(&b, " %s:%s", d.Action, d.ID)
		}
	}
	return b.String()
}

func runHoldReinstate(ctx context.Context, cfg *config, id string, opts holdReinstateOptions, out io.Writer) error {
	if strings.TrimSpace(opts.reason) == "" {
		return usagef("--reason is required")
	}
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		holds := retention.NewHolds(env.db, nil)
		h, err := holds.Reinstate(ctx, id, opts.reason, cases.CLIActor(), auditSink{log: env.log}.hook)
		var ve *cases.ValidationError
		switch {
		case errors.As(err, &ve):
			return usageError{err}
		case errors.Is(err, retention.ErrNotReinstatable):
			return exitCodeError{exitRefused, err}
		case err != nil:
			return err
		}

		// As the API does: the storage flags stay through the grace, set
		// them again anyway in case one was refused.
		_, blobs, _, err := openAttachments(ctx, cfg, env.db)
		if err != nil {
			return err
		}
		if lh := legalHolder(ctx, blobs, slog.Default()); lh != nil {
			if _, err := holds.ApplyObjectLock(ctx, lh, h, true); err != nil {
				return fmt.Errorf("hold %s reinstated, but its S3 legal-hold flags: %w", id, err)
			}
		}

		if opts.json {
			return json.NewEncoder(out).Encode(h)
		}
		fmt.Fprintf(out, "hold %s (matter %s) reinstated by %s at %s\n", h.ID, h.Matter, h.ReinstatedBy, h.ReinstatedAt.Format(time.RFC3339))
		return nil
	})
}
