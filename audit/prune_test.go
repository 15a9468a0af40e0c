package audit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestPruneRefusesAnEditedBoundaryEvent: an event edited with its hash
// recomputed still chains to the events before it, so only its link into
// the first kept event (or the head) shows the edit. Prune used to delete
// it, after which verify blamed the next, untouched event and every later
// prune refused for ever (issue 21 §11). Nothing may be pruned.
func TestPruneRefusesAnEditedBoundaryEvent(t *testing.T) {
	tests := []struct {
		name   string
		edited int64
		cutoff time.Time
		// firstBad is the event verify blames: the first that no longer
		// links to the edited one, or the head.
		firstBad int64
	}{
		{"the last event before the cut-off", 6, base.Add(5*time.Hour + time.Minute), 7},
		{"the head, everything due", 10, base.Add(48 * time.Hour), 10},
	}
	for _, d := range sqldbtest.Dialects {
		for _, tc := range tests {
			t.Run(string(d)+"/"+tc.name, func(t *testing.T) {
				ctx := context.Background()
				db, l := newLog(t, d)
				recordN(t, l, 0, 10)

				ev := getRaw(t, db, tc.edited)
				ev.ActorID = "someone-else"
				ev.Hash = ev.ComputeHash()
				putRaw(t, db, tc.edited, ev)

				n, err := l.Prune(ctx, tc.cutoff)
				if !errors.Is(err, audit.ErrTampered) || n != 0 {
					t.Fatalf("prune over an edited event: removed %d, err %v; want ErrTampered", n, err)
				}
				if got := count(t, db); got != 10 {
					t.Fatalf("%d events left, want all 10", got)
				}
				res, err := l.Verify(ctx)
				if err != nil || res.OK || res.FirstBad == nil || *res.FirstBad != tc.firstBad {
					t.Fatalf("verify after the refused prune: %+v %v; want first bad %d", res, err, tc.firstBad)
				}
			})
		}
	}
}

// TestPruneKeepsPreservedEvents: events the keep predicate names (those
// about an active legal hold and what it covers, issue 21 §12) are never
// pruned: the prune stops before the first of them, so the chain stays one
// chain, and goes on once they are no longer preserved.
func TestPruneKeepsPreservedEvents(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		held := true
		keep := func(time.Time) (string, []any) {
			if !held {
				return "", nil
			}
			return "target_id = ?", []any{"case-3"}
		}
		l := logOn(t, db, audit.WithKeep(keep))
		recordN(t, l, 0, 10) // event i+1 is about case-(i%5): event 4 is about case-3

		n, err := l.Prune(ctx, base.Add(8*time.Hour+time.Minute))
		if err != nil || n != 3 {
			t.Fatalf("prune with event 4 preserved: removed %d, %v; want 3 (events 1-3)", n, err)
		}
		if ev := getRaw(t, db, 4); ev.TargetID != "case-3" {
			t.Fatalf("event 4 is %v", ev)
		}
		verifyOK(t, l, 8) // 7 recorded events left and the prune's own

		held = false
		n, err = l.Prune(ctx, base.Add(8*time.Hour+time.Minute))
		if err != nil || n != 6 {
			t.Fatalf("prune once released: removed %d, %v; want 6 (events 4-9)", n, err)
		}
		verifyOK(t, l, 3) // event 10 and the two prune events
	})
}
