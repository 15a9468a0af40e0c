package audit_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

func TestAppendManyTxKeepsOneChain(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		log := audit.New(db)
		defer log.Close(ctx)
		if err := log.Record(ctx, audit.Event{ActorName: "t", Role: "admin", Action: "case.read", TargetType: "case", TargetID: "1", Outcome: audit.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
		var got []audit.Event
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			evs := make([]audit.Event, 50)
			for i := range evs {
				evs[i] = audit.Event{ActorName: "sweeper", Role: "system", Action: "retention.delete", TargetType: "contact", TargetID: string(rune('a' + i%26)), Outcome: audit.OutcomeOK}
			}
			var err error
			got, err = log.AppendManyTx(ctx, tx, evs)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 50 || got[0].Seq != 2 || got[49].Seq != 51 || got[1].PrevHash != got[0].Hash {
			t.Fatalf("appended %d, seqs %d..%d", len(got), got[0].Seq, got[len(got)-1].Seq)
		}
		res, err := log.Verify(ctx)
		if err != nil || !res.OK || res.Events != 51 {
			t.Fatalf("verify: %+v %v", res, err)
		}
		// A rolled-back batch leaves nothing.
		_ = db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := log.AppendManyTx(ctx, tx, []audit.Event{{ActorName: "x", Role: "system", Action: "retention.delete", TargetType: "contact", TargetID: "z", Outcome: audit.OutcomeOK}}); err != nil {
				return err
			}
			return sql.ErrTxDone
		})
		if res, _ := log.Verify(ctx); !res.OK || res.Events != 51 {
			t.Fatalf("after rollback: %+v", res)
		}
	})
}
