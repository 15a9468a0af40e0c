package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

func denied(ip, action string, i int) audit.Event {
	return audit.Event{ActorName: "anonymous", Action: action, TargetType: "route",
		TargetID: fmt.Sprintf("GET /api/v1/r%d", i%3), RequestID: fmt.Sprintf("req-%d", i), ClientIP: ip, Outcome: audit.OutcomeDenied}
}

// deniedRows returns the stored denied events and the number of denials they
// stand for (1 for a plain event, detail.count for an aggregate).
func deniedRows(t *testing.T, l *audit.Log) (rows []audit.Event, total int) {
	t.Helper()
	cursor := ""
	for {
		evs, next, err := l.List(context.Background(), audit.Filter{Outcome: audit.OutcomeDenied, Limit: 1000, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			var d struct {
				Count int `json:"count"`
			}
			if err := json.Unmarshal(ev.Detail, &d); err != nil {
				t.Fatal(err)
			}
			total += max(d.Count, 1)
		}
		rows = append(rows, evs...)
		if next == "" {
			return rows, total
		}
		cursor = next
	}
}

// A flood of denied requests cannot flood the trail: per source, action and
// window, the first is recorded at once and the rest become one aggregate
// with their count, written when the window ends and when the log closes.
func TestDeniedEventsAreAggregated(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		l := logOn(t, db, audit.WithDenialWindow(time.Hour))
		const clients, each = 8, 200
		var wg sync.WaitGroup
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					ip, action := "198.51.100.1", audit.ActionAuthFailed
					if c%2 == 1 {
						ip = "198.51.100.2"
					}
					if i%4 == 0 {
						action = audit.ActionAuthForbidden
					}
					if err := l.Record(ctx, denied(ip, action, i)); err != nil {
						t.Error(err)
						return
					}
				}
			}(c)
		}
		wg.Wait()
		// Before the window ends only the first of each key is stored.
		rows, _ := deniedRows(t, l)
		if len(rows) != 4 {
			t.Fatalf("%d rows during the window, want 4 (2 sources x 2 actions)", len(rows))
		}
		// An ok event is never aggregated.
		recordN(t, l, 0, 3)
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
		rows, total := deniedRows(t, l)
		if len(rows) != 8 || total != clients*each {
			t.Fatalf("after close: %d rows standing for %d denials, want 8 for %d", len(rows), total, clients*each)
		}
		var agg map[string]any
		for _, ev := range rows {
			if strings.Contains(string(ev.Detail), `"count"`) {
				_ = json.Unmarshal(ev.Detail, &agg)
				break
			}
		}
		if agg["routes"] == nil || agg["first"] == nil || agg["last"] == nil || agg["window"] == nil {
			t.Fatalf("aggregate detail lacks routes or times: %v", agg)
		}
		verifyOK(t, l, 8+3)
		// Closed: nothing more is accepted, counted or lost silently.
		if err := l.Record(ctx, denied("198.51.100.1", audit.ActionAuthFailed, 0)); err == nil {
			t.Fatal("Record after Close succeeded")
		}
	})
}

// Aggregates are written when their window ends, without waiting for Close.
func TestDeniedAggregateIsWrittenAtTheEndOfItsWindow(t *testing.T) {
	clock := testkit.NewClock(time.Date(2026, 11, 30, 12, 0, 10, 0, time.UTC))
	windowEnds := make(chan time.Time)
	_, l := newLog(t, "sqlite", audit.WithClock(clock.Now), audit.WithDenialWindow(time.Minute),
		audit.WithDenialTimer(func(time.Duration) <-chan time.Time { return windowEnds }))
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		if err := l.Record(ctx, denied("203.0.113.9", audit.ActionAuthFailed, i)); err != nil {
			t.Fatal(err)
		}
	}
	if rows, total := deniedRows(t, l); total != 1 {
		t.Fatalf("within the window: %d rows standing for %d denials, want only the first", len(rows), total)
	}

	clock.Advance(time.Minute)
	windowEnds <- clock.Now()

	testkit.Eventually(t, 5*time.Second, "the window's aggregate", func() bool {
		_, total := deniedRows(t, l)
		return total == 50
	})
	if rows, _ := deniedRows(t, l); len(rows) != 2 {
		t.Fatalf("%d rows for one source and window, want the first and one aggregate", len(rows))
	}
}

// Many sources cannot grow memory without bound: past the key limit they
// share one aggregate, and every denial is still counted.
func TestDeniedSourcesAreBounded(t *testing.T) {
	_, l := newLog(t, "sqlite", audit.WithDenialWindow(time.Hour), audit.WithDenialKeys(5))
	ctx := context.Background()
	for i := 0; i < 40; i++ {
		for j := 0; j < 3; j++ {
			if err := l.Record(ctx, denied(fmt.Sprintf("192.0.2.%d", i), audit.ActionAuthFailed, j)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rows, total := deniedRows(t, l)
	if total != 120 || len(rows) > 5*2+2 {
		t.Fatalf("%d rows standing for %d denials, want at most 12 for 120", len(rows), total)
	}
}

// A detail over MaxDetailBytes is truncated, never a failed record (a long
// search URL made the search request itself a 500).
func TestOversizedDetailIsTruncated(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		l := logOn(t, db)
		ev := sample(1)
		ev.Detail = json.RawMessage(`{"q":"` + strings.Repeat("<", audit.MaxDetailBytes) + `","hits":3,"filters":"` + strings.Repeat("中", 3000) + `"}`)
		if err := l.Record(context.Background(), ev); err != nil {
			t.Fatalf("record: %v", err)
		}
		evs, _, err := l.List(context.Background(), audit.Filter{})
		if err != nil || len(evs) != 1 {
			t.Fatalf("list: %v %d", err, len(evs))
		}
		if n := len(evs[0].Detail); n > audit.MaxDetailBytes {
			t.Fatalf("stored detail is %d bytes", n)
		}
		var det map[string]any
		if err := json.Unmarshal(evs[0].Detail, &det); err != nil {
			t.Fatal(err)
		}
		if det["truncated"] != true || det["hits"] != float64(3) || !strings.HasPrefix(det["q"].(string), "<<<") || !strings.HasSuffix(det["filters"].(string), "中…") {
			t.Fatalf("truncated detail: %.300v", det)
		}
		verifyOK(t, l, 1)
	})
}

// A denial kept for its window must not share memory with the caller's
// strings: Fiber's are views of a request buffer the next request on the
// connection overwrites. Here the buffer is overwritten after every Record,
// and the aggregate must still name what was recorded.
func TestDeniedEventOutlivesTheCallersBuffer(t *testing.T) {
	clock := testkit.NewClock(time.Date(2026, 11, 30, 12, 0, 10, 0, time.UTC))
	windowEnds := make(chan time.Time)
	_, l := newLog(t, "sqlite", audit.WithClock(clock.Now), audit.WithDenialWindow(time.Minute),
		audit.WithDenialTimer(func(time.Duration) <-chan time.Time { return windowEnds }))
	ctx := context.Background()
	const ip, route = "203.0.113.9", "GET /api/v1/cases"
	buf := []byte(ip + route)
	for i := 0; i < 5; i++ {
		copy(buf, ip+route)
		ev := denied("", audit.ActionAuthFailed, i)
		ev.ClientIP, ev.TargetID = unsafe.String(&buf[0], len(ip)), unsafe.String(&buf[len(ip)], len(route))
		if err := l.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
		copy(buf, strings.Repeat("x", len(buf))) // the next request arrives
	}

	clock.Advance(time.Minute)
	windowEnds <- clock.Now()
	testkit.Eventually(t, 5*time.Second, "the window's aggregate", func() bool {
		_, total := deniedRows(t, l)
		return total == 5
	})
	rows, _ := deniedRows(t, l)
	for _, r := range rows {
		if r.ClientIP != ip || r.TargetID != route && r.TargetID != "" || strings.Contains(string(r.Detail), "xxx") {
			t.Errorf("row %+v: names the overwritten buffer, want %s and %s", r, ip, route)
		}
	}
}
