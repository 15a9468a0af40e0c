package backup

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/casevault/casevault/sqldb"
)

// errNoCopy: the target's driver connection is not pgx's (restore falls
// back to INSERTs).
var errNoCopy = errors.New("not a pgx connection")

// restoreTablesCopy is restoreTables on PostgreSQL through COPY (pgx's
// binary CopyFrom) in one transaction of one pgx connection: multi-row
// INSERTs made the server parse and plan every batch and bind every value
// as a parameter (issue 17 §4). The rows, the digests checked and the
// commit after before() are the same as restoreTables'.
func (r *Repo) restoreTablesCopy(ctx context.Context, m Manifest, opts RestoreOptions, notEscrowed *[]string, before func() error, progress func(int64)) error {
	conn, err := opts.Target.Write.Conn(ctx)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pc, ok := sqldb.PgxConn(dc)
		if !ok {
			return errNoCopy
		}
		tx, err := pc.Begin(ctx)
		if err != nil {
			return fmt.Errorf("restore: begin: %w", err)
		}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		load := func(ctx context.Context, t table, batches <-chan [][]any, advance func(int64)) (int64, error) {
			n, err := tx.CopyFrom(ctx, pgx.Identifier{t.Name}, t.Columns, &batchSource{batches: batches, advance: advance})
			if err != nil {
				return n, fmt.Errorf("restore %s: %w", t.Name, err)
			}
			return n, nil
		}
		for _, t := range tables {
			te, ok := m.table(t.Name)
			if !ok {
				continue // an older backup: the table keeps what migrations put there
			}
			if t.Singleton {
				if _, err := tx.Exec(ctx, "DELETE FROM "+t.Name); err != nil {
					return fmt.Errorf("restore %s: %w", t.Name, err)
				}
			}
			if err := r.restoreTable(ctx, load, t, te, opts, progress); err != nil {
				return err
			}
		}
		progress(0)
		gone, err := r.fillEscrowWith(ctx, m, opts.Identity, opts.EscrowWorkers,
			func() ([]string, error) {
				rows, err := tx.Query(ctx, escrowListQuery)
				if err != nil {
					return nil, err
				}
				return pgx.CollectRows(rows, pgx.RowTo[string])
			},
			func(customerID, wrapped string) error {
				_, err := tx.Exec(ctx, escrowSetQuery, wrapped, customerID)
				return err
			})
		if err != nil {
			return err
		}
		*notEscrowed = gone
		if err := before(); err != nil {
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("restore: commit: %w", err)
		}
		return nil
	})
}

// batchSource is a pgx.CopyFromSource over restoreTable's batches.
type batchSource struct {
	batches <-chan [][]any
	advance func(int64)
	cur     [][]any
	i       int
}

func (s *batchSource) Next() bool {
	for s.i >= len(s.cur) {
		b, ok := <-s.batches
		if !ok {
			return false
		}
		s.cur, s.i = b, 0
		s.advance(int64(len(b)))
	}
	s.i++
	return true
}

func (s *batchSource) Values() ([]any, error) { return s.cur[s.i-1], nil }

func (s *batchSource) Err() error { return nil }
