package main

import (
	"bytes"
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestBootstrapAdminOnceUnderRaces: replicas starting at once on an empty
// database create one admin token between them (issue 20 §16: 5 of 6
// races created two), and only the replica that created it prints it.
func TestBootstrapAdminOnceUnderRaces(t *testing.T) {
	const replicas = 6
	ctx := context.Background()
	noAudit := func(context.Context, *sql.Tx, cases.Change) error { return nil }
	for _, d := range sqldbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			cfg := sqldbtest.Config(t, d)
			var wg sync.WaitGroup
			start := make(chan struct{})
			outs := make([]bytes.Buffer, replicas)
			for i := range replicas {
				db, err := sqldb.Open(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				dir := t.TempDir()
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					if err := bootstrapAdmin(ctx, db, auth.NewTokens(db), noAudit, dir, &outs[i]); err != nil {
						t.Error(err)
					}
				}()
			}
			close(start)
			wg.Wait()

			check, err := sqldb.Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer check.Close()
			toks, err := auth.NewTokens(check).List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			printed := 0
			for i := range outs {
				if strings.Contains(outs[i].String(), "Created the first admin token") {
					printed++
				}
			}
			if len(toks) != 1 || printed != 1 {
				t.Fatalf("%d replicas starting at once made %d admin tokens and %d printed one, want 1 and 1", replicas, len(toks), printed)
			}
		})
	}
}
