package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// auditSink adapts the audit log to the API's Auditor and the store's
// change hook.
type auditSink struct {
	log *audit.Log
}

func (a auditSink) Record(ctx context.Context, ch cases.Change, outcome string) error {
	return a.log.Record(ctx, audit.FromChange(ch, outcome))
}

func (a auditSink) hook(ctx context.Context, tx *sql.Tx, ch cases.Change) error {
	_, err := a.log.AppendTx(ctx, tx, audit.FromChange(ch, audit.OutcomeOK))
	return err
}

// systemChange is the audit change of a scheduled job.
func systemChange(action, targetType, targetID string, detail map[string]any) cases.Change {
	return cases.Change{Actor: cases.SystemActor(), Action: action, TargetType: targetType, TargetID: targetID, Detail: detail}
}

// hookMany appends many changes under one head lock (retention sweeps).
func (a auditSink) hookMany(ctx context.Context, tx *sql.Tx, chs []cases.Change) error {
	evs := make([]audit.Event, len(chs))
	for i, ch := range chs {
		evs[i] = audit.FromChange(ch, audit.OutcomeOK)
	}
	_, err := a.log.AppendManyTx(ctx, tx, evs)
	return err
}

// cliChange is the audit change of an operator command.
func cliChange(action, targetType, targetID string, detail map[string]any) cases.Change {
	return cases.Change{Actor: cases.CLIActor(), Action: action, TargetType: targetType, TargetID: targetID, Detail: detail}
}

// cliEnv is what an operator command works with: the migrated database and
// the audit log its actions are recorded in.
type cliEnv struct {
	db  *sqldb.DB
	log *audit.Log
}

func openCLI(ctx context.Context, cfg *config, opts ...audit.Option) (*cliEnv, error) {
	db, err := openDB(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &cliEnv{db: db, log: audit.New(db, opts...)}, nil
}

// withCLI wraps an operator command: it opens the database and audit log,
// runs fn, and closes both.
func withCLI(cfg *config, fn func(ctx context.Context, cmd *cobra.Command, env *cliEnv) error, opts ...audit.Option) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		env, err := openCLI(ctx, cfg, opts...)
		if err != nil {
			return err
		}
		defer env.Close()
		return fn(ctx, cmd, env)
	}
}

func (e *cliEnv) Close() {
	_ = e.log.Close(context.Background())
	_ = e.db.Close()
}

func auditCmd(cfg *config) *cobra.Command {
	ac := &cobra.Command{Use: "audit", Short: "Verify, export and prune the audit trail"}
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Walk the hash chain and report the first bad event (exit 1 if any)",
		Args:  cobra.NoArgs,
		RunE: withCLI(cfg, func(ctx context.Context, cmd *cobra.Command, env *cliEnv) error {
			log := env.log
			start := time.Now()
			res, err := log.Verify(ctx)
			if err != nil {
				return err
			}
			out, _ := json.Marshal(res)
			fmt.Fprintln(cmd.OutOrStdout(), string(out))
			_ = log.Record(ctx, audit.FromChange(cliChange("audit.verify", "audit", "", map[string]any{"ok": res.OK, "events": res.Events, "seconds": time.Since(start).Seconds()}), audit.OutcomeOK))
			if !res.OK {
				return fmt.Errorf("audit chain broken at event %d: %s", *res.FirstBad, res.Reason)
			}
			return nil
		}),
	}
	var actor, action, target, from, to string
	export := &cobra.Command{
		Use:   "export",
		Short: "Write audit events as NDJSON to stdout, oldest first",
		Args:  cobra.NoArgs,
		RunE: withCLI(cfg, func(ctx context.Context, cmd *cobra.Command, env *cliEnv) error {
			log := env.log
			f := audit.Filter{Actor: actor, Action: action}
			f.TargetType, f.TargetID = audit.ParseTarget(target)
			for _, p := range []struct {
				s   string
				dst *time.Time
			}{{from, &f.From}, {to, &f.To}} {
				if p.s == "" {
					continue
				}
				t, err := time.Parse(time.RFC3339, p.s)
				if err != nil {
					return usageError{fmt.Errorf("--from/--to: %w", err)}
				}
				*p.dst = t
			}
			if err := log.Record(ctx, audit.FromChange(cliChange("audit.export", "audit", "", map[string]any{"actor": actor, "action": action, "target": target}), audit.OutcomeOK)); err != nil {
				return err
			}
			return log.Export(ctx, cmd.OutOrStdout(), f)
		}),
	}
	export.Flags().StringVar(&actor, "actor", "", "actor id or name")
	export.Flags().StringVar(&action, "action", "", "action, or a prefix ending in * (case.*)")
	export.Flags().StringVar(&target, "target", "", "TYPE or TYPE:ID")
	export.Flags().StringVar(&from, "from", "", "RFC 3339 start (inclusive)")
	export.Flags().StringVar(&to, "to", "", "RFC 3339 end (exclusive)")
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove events older than the audit retention, keeping a checkpoint",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			env, err := openCLI(ctx, cfg, audit.WithRetention(cfg.AuditRetention))
			if err != nil {
				return err
			}
			defer env.Close()
			log := env.log
			n, err := log.PruneExpired(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pruned %d audit events older than %s\n", n, cfg.AuditRetention)
			return nil
		},
	}
	ac.AddCommand(verify, export, prune)
	return ac
}
