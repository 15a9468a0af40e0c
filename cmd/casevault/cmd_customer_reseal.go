package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/casevault/casevault/cluster"
	"github.com/casevault/casevault/sqlstore"
)

// `customer reseal` runs the re-sealing pass (issue 15 §1, legacy rows;
// sqlstore/reseal.go) in the foreground with progress; serve runs the same
// pass in the background (runReseal). Both share the pass's lease, so
// while a server runs it the command is refused (exit 13) and says so.

type customerResealOptions struct {
	json      bool
	restart   bool
	batchSize int
}

func newCustomerResealCmd(cfg *config) *cobra.Command {
	var opts customerResealOptions
	cmd := &cobra.Command{
		Use:   "reseal [--json] [--restart] [--batch-size N]",
		Short: "Seal personal fields written in clear before sealing, and fill missing e-mail/phone lookup hashes (resumable; exit 13 while another process runs it)",
		Long: `Walks customers, cases, case history and contacts in batches and seals
every personal field still stored in clear (rows written before sealing
existed, or by a tool run without the master key) under the customer's
data key, and gives customers without one the keyed e-mail and phone
hashes that exact lookups use. Each batch is one transaction that also
moves the pass's cursor, so an interrupted pass resumes where it stopped.
A finished pass does nothing unless --restart starts a new one (after a
restore of an old backup, say). One process runs the pass at a time: a
server runs it in the background at start-up, and this command is refused
(exit 13) while another process holds it.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCustomerReseal(cmd.Context(), cfg, opts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print progress and the result as JSON lines")
	cmd.Flags().BoolVar(&opts.restart, "restart", false, "start a new pass when the last one finished")
	cmd.Flags().IntVar(&opts.batchSize, "batch-size", 500, "rows per transaction")
	return cfg.flags(cmd, useDB)
}

func runCustomerReseal(ctx context.Context, cfg *config, opts customerResealOptions, out, errw io.Writer) error {
	if opts.batchSize < 1 || opts.batchSize > 10000 {
		return usagef("--batch-size must be between 1 and 10000")
	}
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		fields, err := storeFields(ctx, cfg, env.db)
		if err != nil {
			return err
		}
		store := sqlstore.New(env.db, sqlstore.Options{Fields: fields})
		var last time.Time
		progress := func(st sqlstore.ResealStatus) {
			// at most one line a second, and the last one
			if now := time.Now(); now.Sub(last) >= time.Second || st.Done() {
				last = now
				if opts.json {
					_ = json.NewEncoder(out).Encode(map[string]any{"type": "progress", "progress": st})
				} else {
					fmt.Fprintf(errw, "reseal: %s: %d row(s) scanned, %d sealed, %d hashed, %d skipped\n", st.Phase, st.Scanned, st.Sealed, st.Hashed, st.Skipped)
				}
			}
		}
		st, err := store.Reseal(ctx, sqlstore.ResealOptions{Owner: "cli-" + cluster.NewReplicaID(), BatchSize: opts.batchSize, Restart: opts.restart, Progress: progress})
		if errors.Is(err, sqlstore.ErrResealBusy) {
			return exitCodeError{exitRefused, fmt.Errorf("%w (a server runs it in the background; see /readyz \"reseal\")", err)}
		}
		if err != nil {
			return err
		}
		if err := env.record(ctx, "customer.reseal", "reseal", "reseal", map[string]any{"scanned": st.Scanned, "sealed": st.Sealed, "hashed": st.Hashed, "skipped": st.Skipped, "restart": opts.restart}); err != nil {
			return err
		}
		if opts.json {
			return json.NewEncoder(out).Encode(map[string]any{"type": "result", "result": st})
		}
		fmt.Fprintf(out, "re-sealing pass done: %d row(s) scanned, %d sealed, %d given lookup hashes, %d skipped\n", st.Scanned, st.Sealed, st.Hashed, st.Skipped)
		return nil
	})
}

// runReseal runs the re-sealing pass in the background until it is done
// (at once when it was). Replicas share its lease: one that finds it held
// tries again after a lease period, so the pass goes on if its runner
// dies. Logged with counts only. The returned function stops it (a batch
// in flight rolls back; the next start resumes) and waits.
func (a *app) runReseal(parent context.Context) (stop func()) {
	if a.fields == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	a.guard.Go("reseal", func() {
		defer close(done)
		for {
			st, err := a.store.Reseal(ctx, sqlstore.ResealOptions{Owner: a.replicas.ID(), Pause: 50 * time.Millisecond})
			retry := time.Minute
			switch {
			case err == nil:
				if st.Sealed+st.Hashed+st.Skipped > 0 {
					a.log.Info("re-sealing pass done", "scanned", st.Scanned, "sealed", st.Sealed, "hashed", st.Hashed, "skipped", st.Skipped)
				}
				return
			case ctx.Err() != nil, errors.Is(err, sqlstore.ErrResealNoKeys):
				return // shutting down; or the benchmark's unsealed store
			case errors.Is(err, sqlstore.ErrResealBusy):
				retry = 30 * time.Second // the holder's lease, renewed each batch
			default:
				a.log.Error("re-sealing pass failed; retrying", "err", err, "retry_in", retry.String())
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry):
			}
		}
	})
	return func() { cancel(); <-done }
}

// resealProbe is the readiness detail of the pass (degraded only when its
// state cannot be read: clear legacy rows are no outage).
func resealProbe(a *app) func(ctx context.Context) (any, error) {
	return func(ctx context.Context) (any, error) {
		return sqlstore.ResealState(ctx, a.db)
	}
}
