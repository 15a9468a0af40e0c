package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/casevault/casevault/sqlstore"
)

type reindexOptions struct{ url, token string }

func newReindexCmd(cfg *config) *cobra.Command {
	var opts reindexOptions
	cmd := &cobra.Command{
		Use:   "reindex",
		Short: "Rebuild the search index into a new versioned index and switch to it",
		Long: "With --url, asks a running server to rebuild (it keeps answering from the old index meanwhile).\n" +
			"Without it, rebuilds offline; the server must be stopped (Bleve's index is locked while it runs).",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.url != "" {
				return runRemoteReindex(cmd.Context(), opts, cmd.OutOrStdout())
			}
			return runReindex(cmd.Context(), cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&opts.url, "url", "", "base URL of a running server (e.g. http://127.0.0.1:8080)")
	cmd.Flags().StringVar(&opts.token, "token", "", "admin token for --url")
	return cfg.flags(cmd, useDB|useSearch|useLog)
}

// runRemoteReindex asks a running server to rebuild its index.
func runRemoteReindex(ctx context.Context, opts reindexOptions, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimRight(opts.url, "/")+"/api/v1/search/reindex", nil)
	if err != nil {
		return usagef("--url: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+opts.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reindex: %w", err)
	}
	defer res.Body.Close()

	var body map[string]any
	_ = json.NewDecoder(res.Body).Decode(&body)
	if res.StatusCode != http.StatusAccepted {
		return fmt.Errorf("reindex: server answered %d: %v", res.StatusCode, body["detail"])
	}
	fmt.Fprintln(out, "reindex started on the server; follow it in GET /api/v1/search/status")
	return nil
}

// runReindex rebuilds the index offline.
func runReindex(ctx context.Context, cfg *config, out, logw io.Writer) error {
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		fields, err := storeFields(ctx, cfg, env.db)
		if err != nil {
			return err
		}
		store := sqlstore.New(env.db, sqlstore.Options{Fields: fields})
		ix, err := startIndexer(ctx, cfg, store, newLogger(cfg, logw), prometheus.NewRegistry(), nil, false)
		if err != nil {
			return fmt.Errorf("%w (is the server running? then use --url)", err)
		}
		defer ix.Close()

		start := time.Now()
		if err := ix.Reindex(ctx, engineFactory{cfg: cfg}.build); err != nil {
			return err
		}
		st, _ := ix.Status(ctx)
		fmt.Fprintf(out, "rebuilt %s: %d documents in %s\n", st.Index, st.Documents, time.Since(start).Round(time.Millisecond))
		return env.record(ctx, "search.reindex", "index", st.Index, map[string]any{"documents": st.Documents})
	})
}
