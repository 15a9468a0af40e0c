package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestConcurrentWriters simulates replicas: separate pools on one database
// (one schema on PostgreSQL, one file on SQLite), each appending through
// Record (batched) and AppendTx (inside a change) at once.
func TestConcurrentWriters(t *testing.T) {
	const replicas, perReplica, workers = 4, 200, 4
	for _, d := range sqldbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			cfg := sqldbtest.Config(t, d)
			var dbs []*sqldb.DB
			var logs []*audit.Log
			for range replicas {
				db, err := sqldb.Open(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				l := audit.New(db)
				t.Cleanup(func() { _ = l.Close(ctx) })
				if len(logs)%2 == 0 { // half the replicas with prepared statements
					if err := l.Prepare(ctx); err != nil {
						t.Fatal(err)
					}
				}
				dbs, logs = append(dbs, db), append(logs, l)
			}
			var wg sync.WaitGroup
			errs := make(chan error, replicas*workers)
			for r := range replicas {
				for w := range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range perReplica / workers {
							ev := sample(i)
							ev.ActorID = fmt.Sprintf("replica-%d", r)
							ev.RequestID = fmt.Sprintf("%d-%d-%d", r, w, i)
							var err error
							switch i % 3 {
							case 0:
								err = logs[r].Record(ctx, ev)
							case 1:
								err = dbs[r].InTx(ctx, func(tx *sql.Tx) error {
									_, err := audit.AppendTx(ctx, tx, d, ev)
									return err
								})
							case 2:
								err = dbs[r].InTx(ctx, func(tx *sql.Tx) error {
									_, err := logs[r].AppendTx(ctx, tx, ev)
									return err
								})
							}
							if err != nil {
								errs <- err
								return
							}
						}
					}()
				}
			}
			// Verify while appends go on: it reads one snapshot, so it must
			// never see a half-appended chain.
			verifyDone := make(chan struct{})
			stopVerify := make(chan struct{})
			go func() {
				defer close(verifyDone)
				for {
					select {
					case <-stopVerify:
						return
					default:
					}
					res, err := logs[1].Verify(ctx)
					if err != nil || !res.OK {
						t.Errorf("verify during appends: %+v %v", res, err)
						return
					}
				}
			}()
			wg.Wait()
			close(stopVerify)
			<-verifyDone
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			verifyOK(t, logs[0], replicas*perReplica)
			rows, err := dbs[0].Read.QueryContext(ctx, `SELECT actor_id, COUNT(*), COUNT(DISTINCT request_id) FROM audit_events GROUP BY actor_id`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			seen := 0
			for rows.Next() {
				var actor string
				var n, distinct int
				if err := rows.Scan(&actor, &n, &distinct); err != nil {
					t.Fatal(err)
				}
				if n != perReplica || distinct != perReplica {
					t.Errorf("%s: %d events (%d distinct), want %d", actor, n, distinct, perReplica)
				}
				seen++
			}
			if seen != replicas {
				t.Fatalf("%d replicas in the trail, want %d", seen, replicas)
			}
		})
	}
}

// Every Record that returned nil is committed; Close drains and then
// refuses.
func TestRecordDurableAndClose(t *testing.T) {
	for _, d := range sqldbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			cfg := sqldbtest.Config(t, d)
			db, err := sqldb.Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			l := audit.New(db, audit.WithMaxBatch(16))
			const n = 100
			var wg sync.WaitGroup
			var mu sync.Mutex
			acked := 0
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := l.Record(ctx, sample(i)); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					acked++
					mu.Unlock()
				}()
			}
			wg.Wait()
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(ctx); err != nil {
				t.Fatalf("second close: %v", err)
			}
			if err := l.Record(ctx, sample(1)); !errors.Is(err, audit.ErrClosed) {
				t.Fatalf("record after close: %v", err)
			}
			db.Close()
			// A fresh connection sees every acknowledged event.
			db2, err := sqldb.Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer db2.Close()
			if got := count(t, db2); got != int64(acked) || acked != n {
				t.Fatalf("%d events stored, %d acknowledged, %d sent", got, acked, n)
			}
			l2 := audit.New(db2)
			defer l2.Close(ctx)
			verifyOK(t, l2, n)
		})
	}
}

func TestRecordContextCancelled(t *testing.T) {
	_, l := newLog(t, sqldb.SQLite)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Record(ctx, sample(1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("record with a cancelled context: %v", err)
	}
}

func TestPrune(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		now := base.Add(30 * 24 * time.Hour)
		l := logOn(t, db, audit.WithClock(func() time.Time { return now }), audit.WithRetention(10*24*time.Hour))
		audit.SetPruneStep(l, 3) // several steps per prune
		for i := range 20 {      // one a day
			ev := sample(i)
			ev.Time = base.Add(time.Duration(i) * 24 * time.Hour)
			if err := l.Record(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		// An old-dated event after newer ones stays: only a prefix goes.
		late := sample(50)
		late.Time = base
		if err := l.Record(ctx, late); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Prune(ctx, time.Time{}); !errors.Is(err, audit.ErrInvalid) {
			t.Fatalf("prune without cut-off: %v", err)
		}

		removed, err := l.Prune(ctx, base.Add(7*24*time.Hour+time.Hour))
		if err != nil || removed != 8 {
			t.Fatalf("prune: removed %d, %v; want 8", removed, err)
		}
		// 12 kept + 1 late + one prune event per step (8 in steps of 3).
		res := verifyOK(t, l, 13+3)
		if res.CheckpointSeq != 8 {
			t.Fatalf("checkpoint %d, want 8", res.CheckpointSeq)
		}
		if again, err := l.Prune(ctx, base.Add(7*24*time.Hour+time.Hour)); err != nil || again != 0 {
			t.Fatalf("second prune: %d %v", again, err)
		}
		verifyOK(t, l, 16)
		recordN(t, l, 100, 3)
		verifyOK(t, l, 19)

		// PruneExpired: retention 10 days before now (day 30) removes days
		// 8..19, the late event (dated day 0), then stops at the first
		// prune event (dated now).
		removed, err = l.PruneExpired(ctx)
		if err != nil || removed != 13 {
			t.Fatalf("prune expired: %d %v, want 13", removed, err)
		}
		res = verifyOK(t, l, 3+3+5)
		if res.CheckpointSeq != 21 {
			t.Fatalf("checkpoint %d, want 21", res.CheckpointSeq)
		}
		if n := count(t, db); n != 11 {
			t.Fatalf("%d rows left", n)
		}
	})
}

func TestPruneRefusesTamperedEvents(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		l := logOn(t, db)
		recordN(t, l, 0, 10)
		exec(t, db, `UPDATE audit_events SET actor_id = 'x' WHERE seq = 3`)
		_, err := l.Prune(ctx, base.Add(5*time.Hour+time.Minute))
		if !errors.Is(err, audit.ErrTampered) {
			t.Fatalf("prune over a tampered event: %v", err)
		}
		if n := count(t, db); n != 10 {
			t.Fatalf("%d events left, want all 10", n)
		}
		res, err := l.Verify(ctx)
		if err != nil || res.OK || *res.FirstBad != 3 {
			t.Fatalf("verify after refused prune: %+v %v", res, err)
		}
	})
}

// TestListFiltersAndPages: every filter lists each matching event once,
// newest first (by seq, or by time when it bounds the time), at every page
// size, and Export writes the same events oldest first in the same order.
func TestListFiltersAndPages(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		l := logOn(t, db)
		const n = 30
		evs := recordN(t, l, 0, n) // evs[i] has seq i+1
		denied := sample(n)
		denied.Outcome, denied.Action, denied.ActorID, denied.ActorName = audit.OutcomeDenied, audit.ActionAuthFailed, "", ""
		if err := l.Record(ctx, denied); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, denied)
		// an actor name that is another actor's id, and an event that is
		// that actor's by id and by name, listed once
		for _, who := range [][2]string{{"tok-9", "tok-1"}, {"tok-1", "tok-1"}} {
			ev := sample(len(evs))
			ev.ActorID, ev.ActorName, ev.TargetType, ev.TargetID = who[0], who[1], "customer", "cust-"+who[0]
			if err := l.Record(ctx, ev); err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev)
		}
		// events sequenced after later ones (a transaction that committed
		// late, a replica's clock behind), one of them at the very time
		// of another: time order and the chain's part here
		for _, at := range []time.Duration{6 * time.Hour, 6*time.Hour + 30*time.Minute, 11 * time.Hour} {
			ev := sample(len(evs))
			ev.Time = base.Add(at)
			if err := l.Record(ctx, ev); err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev)
		}

		cases := []struct {
			name string
			f    audit.Filter
			keep func(e audit.Event) bool
		}{
			{"all", audit.Filter{}, func(audit.Event) bool { return true }},
			{"actor id", audit.Filter{Actor: "tok-1"}, func(e audit.Event) bool { return e.ActorID == "tok-1" || e.ActorName == "tok-1" }},
			{"actor name", audit.Filter{Actor: "agent 2"}, func(e audit.Event) bool { return e.ActorName == "agent 2" }},
			{"action", audit.Filter{Action: audit.ActionSearch}, func(e audit.Event) bool { return e.Action == audit.ActionSearch }},
			{"action prefix", audit.Filter{Action: "case.*"}, func(e audit.Event) bool {
				return e.Action == audit.ActionCaseRead || e.Action == audit.ActionCaseUpdate
			}},
			{"prefix with underscore wildcard", audit.Filter{Action: "case_*"}, func(audit.Event) bool { return false }},
			{"target", audit.Filter{TargetType: "case", TargetID: "case-3"}, func(e audit.Event) bool { return e.TargetID == "case-3" }},
			{"target type", audit.Filter{TargetType: "customer"}, func(e audit.Event) bool { return e.TargetType == "customer" }},
			{"target id", audit.Filter{TargetID: "cust-tok-9"}, func(e audit.Event) bool { return e.TargetID == "cust-tok-9" }},
			{"actor and target type", audit.Filter{Actor: "tok-1", TargetType: "case"}, func(e audit.Event) bool {
				return (e.ActorID == "tok-1" || e.ActorName == "tok-1") && e.TargetType == "case"
			}},
			{"outcome", audit.Filter{Outcome: audit.OutcomeDenied}, func(e audit.Event) bool { return e.Outcome == audit.OutcomeDenied }},
			{"time range", audit.Filter{From: base.Add(5 * time.Hour), To: base.Add(12 * time.Hour)}, func(e audit.Event) bool {
				return !e.Time.Before(base.Add(5*time.Hour)) && e.Time.Before(base.Add(12*time.Hour))
			}},
			{"from", audit.Filter{From: base.Add(10 * time.Hour)}, func(e audit.Event) bool { return !e.Time.Before(base.Add(10 * time.Hour)) }},
			{"to", audit.Filter{To: base.Add(12 * time.Hour)}, func(e audit.Event) bool { return e.Time.Before(base.Add(12 * time.Hour)) }},
			{"actor in a time range", audit.Filter{Actor: "tok-1", From: base.Add(4 * time.Hour), To: base.Add(20 * time.Hour)}, func(e audit.Event) bool {
				return (e.ActorID == "tok-1" || e.ActorName == "tok-1") && !e.Time.Before(base.Add(4*time.Hour)) && e.Time.Before(base.Add(20*time.Hour))
			}},
			{"combined", audit.Filter{Actor: "tok-0", Action: "case.*", From: base.Add(3 * time.Hour)}, func(e audit.Event) bool {
				return e.ActorID == "tok-0" && (e.Action == audit.ActionCaseRead || e.Action == audit.ActionCaseUpdate) && !e.Time.Before(base.Add(3*time.Hour))
			}},
			{"nothing", audit.Filter{Actor: "nobody"}, func(audit.Event) bool { return false }},
		}
		// every actor and prefix busy (from one event): on SQLite an actor
		// in a time range is read down the time index instead of the
		// actor's, and an export by prefix reads the primary key
		for _, busy := range []int{0, 1} {
			if busy > 0 {
				audit.SetBusy(l, busy)
			}
			for _, c := range cases {
				t.Run(fmt.Sprintf("%s busy from %d", c.name, busy), func(t *testing.T) {
					// newest first: by seq, or by time (ties by seq) when the
					// filter bounds the time
					var want []int64
					for i := len(evs) - 1; i >= 0; i-- {
						if c.keep(evs[i]) {
							want = append(want, int64(i+1))
						}
					}
					if !c.f.From.IsZero() || !c.f.To.IsZero() {
						bySeq := slices.Clone(want)
						slices.SortStableFunc(want, func(a, b int64) int { return evs[b-1].Time.Compare(evs[a-1].Time) })
						if slices.Equal(want, bySeq) {
							t.Fatal("the case's events are in the same order by time and by seq: it cannot tell the orders apart")
						}
					}
					for _, limit := range []int{1, 7, 1000} {
						f := c.f
						f.Limit = limit
						var got []int64
						for pages := 0; ; pages++ {
							if pages > len(evs)+2 {
								t.Fatal("pagination does not end")
							}
							items, next, err := l.List(ctx, f)
							if err != nil {
								t.Fatal(err)
							}
							if len(items) > limit {
								t.Fatalf("%d items, limit %d", len(items), limit)
							}
							for _, e := range items {
								got = append(got, e.Seq)
								if e.Hash != e.ComputeHash() {
									t.Fatalf("listed event %d does not hash to its hash", e.Seq)
								}
							}
							if next == "" {
								break
							}
							f.Cursor = next
						}
						if !slices.Equal(got, want) {
							t.Fatalf("limit %d: got %v, want %v", limit, got, want)
						}
					}

					// Export: the same events, oldest first in the same order
					var buf bytes.Buffer
					if err := l.Export(ctx, &buf, c.f); err != nil {
						t.Fatal(err)
					}
					var exported []int64
					for dec := json.NewDecoder(&buf); ; {
						var e audit.Event
						if err := dec.Decode(&e); errors.Is(err, io.EOF) {
							break
						} else if err != nil {
							t.Fatal(err)
						}
						exported = append(exported, e.Seq)
					}
					oldestFirst := slices.Clone(want)
					slices.Reverse(oldestFirst)
					if !slices.Equal(exported, oldestFirst) {
						t.Fatalf("export: got %v, want %v", exported, oldestFirst)
					}
				})
			}
		}

		// a cursor of one order used in a list of the other
		_, byTime, err := l.List(ctx, audit.Filter{From: base, Limit: 2})
		if err != nil || byTime == "" {
			t.Fatalf("a page in time order: cursor %q, %v", byTime, err)
		}
		_, bySeq, err := l.List(ctx, audit.Filter{Limit: 2})
		if err != nil || bySeq == "" {
			t.Fatalf("a page in seq order: cursor %q, %v", bySeq, err)
		}
		bad := []audit.Filter{
			{Limit: -1}, {Limit: audit.MaxListLimit + 1}, {Cursor: "nope"}, {Cursor: "YTEuMA"}, // "a1.0"
			{Cursor: "dDEuMTAuMA"}, {Cursor: "dDEuMTA"}, {Cursor: "dDEueC4z"}, // "t1.10.0", "t1.10", "t1.x.3"
			{Cursor: byTime}, {Cursor: bySeq, To: base.Add(50 * time.Hour)},
			{Outcome: "maybe"}, {From: base.Add(time.Hour), To: base},
		}
		for _, f := range bad {
			if _, _, err := l.List(ctx, f); !errors.Is(err, audit.ErrInvalid) {
				t.Errorf("List(%+v): %v, want ErrInvalid", f, err)
			}
		}
	})
}

// TestBusyActor: on SQLite, an actor in a time range is read from the
// actor's indexes until the actor has busyActor events, by id and by name
// together; without a time bound, with another filter, and on PostgreSQL,
// always.
func TestBusyActor(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		l := logOn(t, db)
		audit.SetBusy(l, 4)
		recordN(t, l, 0, 9) // tok-0, tok-1, tok-2: 3 events each
		ev := sample(9)
		ev.ActorID, ev.ActorName = "tok-9", "tok-1" // a fourth for tok-1, by name
		if err := l.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}

		sqlite := db.Dialect == sqldb.SQLite
		in := func(actor string) audit.Filter { return audit.Filter{Actor: actor, From: base} }
		for _, c := range []struct {
			f    audit.Filter
			busy bool
		}{
			{in("tok-0"), false},
			{in("agent 0"), false},
			{in("tok-1"), sqlite},
			{audit.Filter{Actor: "tok-1", To: base.Add(100 * time.Hour)}, sqlite},
			{audit.Filter{Actor: "tok-1"}, false},
			{audit.Filter{Actor: "tok-1", From: base, TargetType: "case", TargetID: "case-1"}, false},
			{audit.Filter{Actor: "tok-1", From: base, Action: audit.ActionCaseRead}, false},
			{audit.Filter{Actor: "tok-1", From: base, Outcome: audit.OutcomeOK}, false},
			{in("nobody"), false},
		} {
			got, err := audit.BusyActor(l, ctx, db.Read, c.f)
			if err != nil || got != c.busy {
				t.Errorf("%+v: busy %v (%v), want %v", c.f, got, err, c.busy)
			}
		}
	})
}

// TestPrefixActions: an action prefix alone is read as the actions of the
// trail it matches byte for byte (none: an empty page), unless it matches
// more than 32; with an actor or a time bound, as a filter.
func TestPrefixActions(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		l := logOn(t, db)
		recordN(t, l, 0, 8) // case.read, case.update, search, contact.read
		for i, a := range []string{"casex.read", "case_read", "case-read"} {
			ev := sample(8 + i)
			ev.Action = a
			if err := l.Record(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 33 {
			ev := sample(20 + i)
			ev.Action = fmt.Sprintf("many.a%02d", i)
			if err := l.Record(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}

		for _, c := range []struct {
			f       audit.Filter
			by      bool
			actions []string
		}{
			{audit.Filter{Action: "case.*"}, true, []string{audit.ActionCaseRead, audit.ActionCaseUpdate}},
			{audit.Filter{Action: "case*"}, true, []string{"case-read", audit.ActionCaseRead, audit.ActionCaseUpdate, "case_read", "casex.read"}},
			{audit.Filter{Action: "case.*", TargetType: "case"}, true, []string{audit.ActionCaseRead, audit.ActionCaseUpdate}},
			{audit.Filter{Action: "hold.*"}, true, nil},
			{audit.Filter{Action: "many.a0*"}, true, []string{"many.a00", "many.a01", "many.a02", "many.a03", "many.a04", "many.a05", "many.a06", "many.a07", "many.a08", "many.a09"}},
			{audit.Filter{Action: "many.*"}, false, nil},
			{audit.Filter{Action: "*"}, false, nil},
			{audit.Filter{Action: audit.ActionSearch}, false, nil},
			{audit.Filter{Action: "case.*", Actor: "tok-1"}, false, nil},
			{audit.Filter{Action: "case.*", From: base}, false, nil},
		} {
			by, actions, err := audit.PrefixActions(ctx, l, db.Read, c.f)
			slices.Sort(actions)
			if err != nil || by != c.by || !slices.Equal(actions, c.actions) {
				t.Errorf("%+v: by actions %v %q (%v), want %v %q", c.f, by, actions, err, c.by, c.actions)
			}
		}
	})
}

// TestListReadsAnIndexInOrder: each page of List reads indexes in its
// order (seq, or time with a time bound) and stops at the page, however
// long the trail. A filter whose events the database first gathers and
// sorts (an actor matched by id or by name in one OR; a target type under
// (target_type, target_id, seq)) took 0.2 s a page at 50,000 events of one
// agent on SQLite, and grows with the trail; a time range read in seq
// order, 87 ms at 1,000,000 events.
func TestListReadsAnIndexInOrder(t *testing.T) {
	cases := []struct {
		name    string
		f       audit.Filter
		indexes []string
		// busy: the actor's events are many (SQLite only, where List
		// counts them; PostgreSQL's planner chooses from its statistics)
		busy bool
		// actions: an action prefix read as these actions
		// (Log.prefixActions)
		actions []string
	}{
		{"from", audit.Filter{From: base}, []string{"audit_events_at"}, false, nil},
		{"to", audit.Filter{To: base.Add(time.Hour)}, []string{"audit_events_at"}, false, nil},
		{"time range", audit.Filter{From: base, To: base.Add(time.Hour)}, []string{"audit_events_at"}, false, nil},
		{"actor", audit.Filter{Actor: "tok-1"}, []string{"audit_events_actor_id", "audit_events_actor_name"}, false, nil},
		{"action", audit.Filter{Action: audit.ActionCaseRead}, []string{"audit_events_action"}, false, nil},
		{"target type", audit.Filter{TargetType: "case"}, []string{"audit_events_target_type"}, false, nil},
		{"target", audit.Filter{TargetType: "case", TargetID: "case-3"}, []string{"audit_events_target_id"}, false, nil},
		{"outcome denied", audit.Filter{Outcome: audit.OutcomeDenied}, []string{"audit_events_not_ok"}, false, nil},
		{"action prefix", audit.Filter{Action: "case.*"}, []string{"audit_events_action"}, false, []string{audit.ActionCaseRead, audit.ActionCaseUpdate}},
		// each branch down either index in order; both planners take the
		// target type's
		{"action prefix of one action and a target type", audit.Filter{Action: "hold.*", TargetType: "hold"}, []string{"audit_events_target_type"}, false, []string{audit.ActionHoldCreate}},
		{"busy actor in a time range", audit.Filter{Actor: "tok-1", From: base, To: base.Add(time.Hour)}, []string{"audit_events_at"}, true, nil},
	}
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		for _, c := range cases {
			if c.busy && db.Dialect != sqldb.SQLite {
				continue
			}
			for _, below := range []int64{0, 100} { // the first page, and one after a cursor
				t.Run(fmt.Sprintf("%s below %d", c.name, below), func(t *testing.T) {
					q, args, err := audit.ChainQuery(c.f, below, base.Add(time.Minute).UnixMicro(), audit.DefaultListLimit+1, c.busy, c.actions)
					if err != nil {
						t.Fatal(err)
					}
					plan := listPlan(t, db, q, args)
					reads := func(l, ix string) bool {
						return strings.HasSuffix(l, "INDEX "+ix) || strings.Contains(l, "INDEX "+ix+" ") || strings.Contains(l, "using "+ix+" ")
					}
					for _, ix := range c.indexes {
						if !slices.ContainsFunc(plan, func(l string) bool { return reads(l, ix) }) {
							t.Fatalf("plan %q does not read %s", plan, ix)
						}
					}
					for i, l := range plan {
						sorted := strings.Contains(l, "TEMP B-TREE") && (i == 0 || !strings.HasPrefix(plan[i-1], "SCAN by_"))
						// a whole scan only of a partial index, which holds the matches alone
						scan := strings.HasPrefix(l, "SCAN audit_events") && !slices.ContainsFunc(c.indexes, func(ix string) bool { return reads(l, ix) })
						if sorted || scan || strings.HasPrefix(l, "Sort  (") || strings.Contains(l, "Seq Scan") {
							t.Fatalf("plan %q: %q gathers or sorts before the page's limit", plan, l)
						}
					}
				})
			}
		}
	})
}

// TestExportReadsAnIndex: an export under a time range reads the time
// index in its order, and one by a prefix of few events reads each of its
// actions down the action index; neither reads the trail through. A busy
// prefix streams the trail down its primary key.
func TestExportReadsAnIndex(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		l := logOn(t, db)
		recordN(t, l, 0, 20)
		hold := sample(20)
		hold.Action = audit.ActionHoldCreate
		if err := l.Record(ctx, hold); err != nil {
			t.Fatal(err)
		}

		reads := func(plan []string, ix string) bool {
			return slices.ContainsFunc(plan, func(l string) bool {
				return strings.HasSuffix(l, "INDEX "+ix) || strings.Contains(l, "INDEX "+ix+" ") || strings.Contains(l, "using "+ix+" ")
			})
		}
		through := func(plan []string) bool { // the whole table, in no index's order of a filter
			return slices.ContainsFunc(plan, func(l string) bool {
				return l == "SCAN audit_events" || strings.Contains(l, "Seq Scan") || strings.Contains(l, "audit_events_pkey")
			})
		}
		for _, c := range []struct {
			name string
			busy int // from how many events a prefix is busy
			f    audit.Filter
			// index the plan must read; through: whether it reads
			// the whole table
			index   string
			through bool
		}{
			{"time range", 10_000, audit.Filter{From: base, To: base.Add(5 * time.Hour)}, "audit_events_at", false},
			{"prefix of few events", 10_000, audit.Filter{Action: "hold.*"}, "audit_events_action", false},
			{"prefix of two actions", 10_000, audit.Filter{Action: "case.*"}, "audit_events_action", false},
			{"busy prefix", 1, audit.Filter{Action: "hold.*"}, "", true},
		} {
			t.Run(c.name, func(t *testing.T) {
				audit.SetBusy(l, c.busy)
				q, args, err := audit.ExportQuery(l, ctx, c.f)
				if err != nil {
					t.Fatal(err)
				}
				plan := listPlan(t, db, q, args)
				if c.index != "" && !reads(plan, c.index) {
					t.Errorf("plan %q does not read %s", plan, c.index)
				}
				if through(plan) != c.through {
					t.Errorf("plan %q: reads the trail through %v, want %v", plan, !c.through, c.through)
				}
				if c.index == "audit_events_at" && slices.ContainsFunc(plan, func(l string) bool {
					return strings.Contains(l, "TEMP B-TREE") || strings.HasPrefix(l, "Sort  (")
				}) {
					t.Errorf("plan %q sorts the range", plan)
				}
			})
		}
	})
}

// listPlan is q's plan, a line a node. On PostgreSQL sequential and bitmap
// scans and sorts are disabled (a test table is too small for the planner
// to prefer an index otherwise), so a Sort left in the plan means no index
// gives the order. On SQLite a temporary b-tree right after a SCAN of
// by_id or by_name orders one side of the actor's merge: at most a page.
func listPlan(t *testing.T, db *sqldb.DB, q string, args []any) []string {
	t.Helper()
	var plan []string
	if db.Dialect == sqldb.Postgres {
		plan = sqldbtest.PostgresPlan(t, db, []string{"enable_seqscan = off", "enable_bitmapscan = off", "enable_sort = off"}, db.Rebind(q), args...)
	} else {
		plan = sqldbtest.QueryPlan(t, db, q, args...)
	}
	for i, l := range plan {
		plan[i] = strings.TrimLeft(l, "-> |`")
	}
	return plan
}

func TestExportNDJSON(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		l := logOn(t, db)
		in := recordN(t, l, 0, 25)
		var buf bytes.Buffer
		if err := l.Export(ctx, &buf, audit.Filter{}); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(&buf)
		prev := audit.GenesisHash
		var n int64
		for sc.Scan() {
			var e audit.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("line %d: %v", n+1, err)
			}
			n++
			// Offline verification of the export: seq order, links, hashes.
			if e.Seq != n || e.PrevHash != prev || e.ComputeHash() != e.Hash {
				t.Fatalf("line %d does not verify: %+v", n, e)
			}
			src := in[n-1]
			if e.ActorID != src.ActorID || e.Action != src.Action || e.TargetID != src.TargetID || !e.Time.Equal(src.Time) {
				t.Fatalf("line %d is %+v, recorded %+v", n, e, src)
			}
			prev = e.Hash
		}
		if n != 25 {
			t.Fatalf("%d lines, want 25", n)
		}
		buf.Reset()
		if err := l.Export(ctx, &buf, audit.Filter{Actor: "tok-2"}); err != nil {
			t.Fatal(err)
		}
		if lines := bytes.Count(buf.Bytes(), []byte("\n")); lines != 8 { // i%3==2 for i<25
			t.Fatalf("filtered export: %d lines, want 8", lines)
		}
		if err := l.Export(ctx, &buf, audit.Filter{Outcome: "bad"}); !errors.Is(err, audit.ErrInvalid) {
			t.Fatalf("export with a bad filter: %v", err)
		}
	})
}

func TestVerifyExport(t *testing.T) {
	ctx := context.Background()
	_, l := newLog(t, sqldb.SQLite)
	recordN(t, l, 0, 6)
	var buf bytes.Buffer
	if err := l.Export(ctx, &buf, audit.Filter{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines", len(lines))
	}
	join := func(ls ...string) string { return strings.Join(ls, "") }
	cases := []struct {
		name  string
		input string
		bad   int64 // 0: ok
	}{
		{"whole export", join(lines...), 0},
		{"tail from a checkpoint", join(lines[2:]...), 0},
		{"empty", "", 0},
		{"line removed", join(append(slices.Clone(lines[:3]), lines[4:]...)...), 4},
		{"lines swapped", join(lines[0], lines[2], lines[1], lines[3]), 2},
		{"field edited", join(lines[0], strings.Replace(lines[1], `"agent 1"`, `"agent 9"`, 1), lines[2]), 2},
		{"not JSON", join(lines[0], "{oops\n"), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := audit.VerifyExport(strings.NewReader(c.input))
			if err != nil {
				t.Fatal(err)
			}
			if c.name == "not JSON" {
				if res.OK {
					t.Fatal("garbage accepted")
				}
				return
			}
			if c.bad == 0 {
				if !res.OK {
					t.Fatalf("not ok: %+v", res)
				}
				return
			}
			if res.OK || *res.FirstBad != c.bad {
				t.Fatalf("got %+v (first bad %v), want first bad %d", res, deref(res.FirstBad), c.bad)
			}
		})
	}
}
