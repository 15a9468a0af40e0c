package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

var base = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func newLog(t testing.TB, d sqldb.Dialect, opts ...audit.Option) (*sqldb.DB, *audit.Log) {
	t.Helper()
	db := sqldbtest.Open(t, d)
	return db, logOn(t, db, opts...)
}

// logOn returns a log on db, closed (and its close checked) when the test
// ends.
func logOn(t testing.TB, db *sqldb.DB, opts ...audit.Option) *audit.Log {
	t.Helper()
	l := audit.New(db, opts...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.Close(ctx); err != nil {
			t.Errorf("close log: %v", err)
		}
	})
	return l
}

// sample is the i-th test event: varied actors, actions and targets, one
// hour apart.
func sample(i int) audit.Event {
	actions := []string{audit.ActionCaseRead, audit.ActionCaseUpdate, audit.ActionSearch, audit.ActionContactRead}
	d, _ := json.Marshal(map[string]any{"i": i, "hits": i * 2})
	return audit.Event{
		Time:       base.Add(time.Duration(i) * time.Hour),
		ActorID:    fmt.Sprintf("tok-%d", i%3),
		ActorName:  fmt.Sprintf("agent %d", i%3),
		Role:       "agent",
		Action:     actions[i%len(actions)],
		TargetType: "case",
		TargetID:   fmt.Sprintf("case-%d", i%5),
		RequestID:  fmt.Sprintf("req-%d", i),
		ClientIP:   "192.0.2.7",
		Outcome:    audit.OutcomeOK,
		Detail:     d,
	}
}

func recordN(t testing.TB, l *audit.Log, from, n int) []audit.Event {
	t.Helper()
	var out []audit.Event
	for i := from; i < from+n; i++ {
		ev := sample(i)
		if err := l.Record(context.Background(), ev); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		out = append(out, ev)
	}
	return out
}

func exec(t testing.TB, db *sqldb.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Write.ExecContext(context.Background(), db.Rebind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func count(t testing.TB, db *sqldb.DB) int64 {
	t.Helper()
	var n int64
	if err := db.Write.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM audit_events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

const cols = `seq, at, actor_id, actor_name, role, action, target_type, target_id, request_id, client_ip, outcome, detail, prev_hash, hash`

// getRaw reads a stored event directly.
func getRaw(t testing.TB, db *sqldb.DB, seq int64) audit.Event {
	t.Helper()
	var ev audit.Event
	var at int64
	var detail string
	err := db.Write.QueryRowContext(context.Background(), db.Rebind(`SELECT `+cols+` FROM audit_events WHERE seq = ?`), seq).
		Scan(&ev.Seq, &at, &ev.ActorID, &ev.ActorName, &ev.Role, &ev.Action, &ev.TargetType, &ev.TargetID,
			&ev.RequestID, &ev.ClientIP, &ev.Outcome, &detail, &ev.PrevHash, &ev.Hash)
	if err != nil {
		t.Fatalf("get event %d: %v", seq, err)
	}
	ev.Time = time.UnixMicro(at).UTC()
	ev.Detail = json.RawMessage(detail)
	return ev
}

func insertRaw(t testing.TB, db *sqldb.DB, ev audit.Event) {
	t.Helper()
	exec(t, db, `INSERT INTO audit_events (`+cols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ev.Seq, ev.Time.UnixMicro(), ev.ActorID, ev.ActorName, ev.Role, ev.Action, ev.TargetType, ev.TargetID,
		ev.RequestID, ev.ClientIP, ev.Outcome, string(ev.Detail), ev.PrevHash, ev.Hash)
}

// putRaw overwrites every column of row seq except seq with ev's content.
func putRaw(t testing.TB, db *sqldb.DB, seq int64, ev audit.Event) {
	t.Helper()
	exec(t, db, `UPDATE audit_events SET at = ?, actor_id = ?, actor_name = ?, role = ?, action = ?, target_type = ?,
 target_id = ?, request_id = ?, client_ip = ?, outcome = ?, detail = ?, prev_hash = ?, hash = ? WHERE seq = ?`,
		ev.Time.UnixMicro(), ev.ActorID, ev.ActorName, ev.Role, ev.Action, ev.TargetType, ev.TargetID,
		ev.RequestID, ev.ClientIP, ev.Outcome, string(ev.Detail), ev.PrevHash, ev.Hash, seq)
}

func verifyOK(t testing.TB, l *audit.Log, events int64) audit.VerifyResult {
	t.Helper()
	res, err := l.Verify(context.Background())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !res.OK || res.FirstBad != nil {
		t.Fatalf("verify: not ok: first bad %v: %s", deref(res.FirstBad), res.Reason)
	}
	if res.Events != events {
		t.Fatalf("verify: %d events, want %d", res.Events, events)
	}
	return res
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}
