package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// healthcheckTimeout bounds the whole check: a container health check must
// answer well within its interval, even when the server hangs.
const healthcheckTimeout = 5 * time.Second

func newHealthcheckCmd(cfg *config) *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when the server on --listen is ready (GET /readyz), 1 otherwise",
		Long: `For container health checks: the image has no shell or HTTP client, so
docker-compose runs "casevault healthcheck". It asks the server this
container runs (on --listen / CASEVAULT_LISTEN; a wildcard address is asked
on loopback) for /readyz and exits 0 on 200, 1 on anything else or no answer
within 5 s, printing the status.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if url == "" {
				u, err := readyzURL(cfg.Listen)
				if err != nil {
					return usageError{err}
				}
				url = u
			}
			return runHealthcheck(cmd.Context(), url, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "readiness URL to ask instead (default: /readyz on --listen)")
	return cfg.flags(cmd, useServer)
}

// readyzURL is the readiness URL of a server listening on listen.
func readyzURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("--listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}

func runHealthcheck(ctx context.Context, url string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return usagef("--url %q: %w", url, err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))

	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: %s answered %s", url, res.Status)
	}
	fmt.Fprintln(out, "ready")
	return nil
}
