package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

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

// hookMany appends many changes under one head lock (retention sweeps).
func (a auditSink) hookMany(ctx context.Context, tx *sql.Tx, chs []cases.Change) error {
	evs := make([]audit.Event, len(chs))
	for i, ch := range chs {
		evs[i] = audit.FromChange(ch, audit.OutcomeOK)
	}
	_, err := a.log.AppendManyTx(ctx, tx, evs)
	return err
}

// systemChange is the audit change of a scheduled job.
func systemChange(action, targetType, targetID string, detail map[string]any) cases.Change {
	return cases.Change{Actor: cases.SystemActor(), Action: action, TargetType: targetType, TargetID: targetID, Detail: detail}
}

// cliChange is the audit change of an operator command.
func cliChange(action, targetType, targetID string, detail map[string]any) cases.Change {
	return cases.Change{Actor: cases.CLIActor(), Action: action, TargetType: targetType, TargetID: targetID, Detail: detail}
}

// openDB opens (creating and migrating) the configured database.
func openDB(ctx context.Context, cfg *config) (*sqldb.DB, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	// MkdirAll leaves a pre-created directory's mode alone (say 0755 from
	// a provisioning script): nobody else may list the data.
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	dc := sqldb.Config{URL: cfg.DatabaseURL, Path: filepath.Join(cfg.DataDir, "casevault.db"), Synchronous: cfg.SQLiteSync}
	return sqldb.Open(ctx, dc)
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

func (e *cliEnv) Close() {
	_ = e.log.Close(context.Background())
	_ = e.db.Close()
}

// record appends an operator command's audit event.
func (e *cliEnv) record(ctx context.Context, action, targetType, targetID string, detail map[string]any) error {
	return e.log.Record(ctx, audit.FromChange(cliChange(action, targetType, targetID, detail), audit.OutcomeOK))
}

// withEnv runs fn with the database and audit log open, and closes both.
func withEnv(ctx context.Context, cfg *config, fn func(env *cliEnv) error, opts ...audit.Option) error {
	env, err := openCLI(ctx, cfg, opts...)
	if err != nil {
		return err
	}
	defer env.Close()
	return fn(env)
}
