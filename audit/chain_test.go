package audit_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

func TestAppendAndVerify(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		d := db.Dialect
		ctx := context.Background()
		l := logOn(t, db)
		verifyOK(t, l, 0)
		recordN(t, l, 0, 5)
		var stored []audit.Event
		for i := 5; i < 10; i++ {
			err := db.InTx(ctx, func(tx *sql.Tx) error {
				ev, err := audit.AppendTx(ctx, tx, d, sample(i))
				stored = append(stored, ev)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		res := verifyOK(t, l, 10)
		if res.HeadSeq != 10 || res.HeadHash != stored[4].Hash {
			t.Fatalf("head %d %s, want 10 %s", res.HeadSeq, res.HeadHash, stored[4].Hash)
		}
		first := getRaw(t, db, 1)
		if first.PrevHash != audit.GenesisHash {
			t.Fatalf("first prev hash %s", first.PrevHash)
		}
		for i, ev := range stored {
			got := getRaw(t, db, int64(6+i))
			if got.Seq != ev.Seq || got.Hash != ev.Hash || got.PrevHash != ev.PrevHash || !got.Time.Equal(ev.Time) {
				t.Fatalf("returned event %+v differs from stored %+v", ev, got)
			}
			if got.Hash != got.ComputeHash() {
				t.Fatalf("event %d: stored hash is not the hash of its content", got.Seq)
			}
		}
	})
}

// TestCanonicalEncoding rebuilds the documented encoding independently.
func TestCanonicalEncoding(t *testing.T) {
	ev := audit.Event{Seq: 7, Time: time.UnixMicro(1_700_000_000_123_456), ActorID: "t1", ActorName: "Ann",
		Role: "agent", Action: "case.read", TargetType: "case", TargetID: "c9", RequestID: "r", ClientIP: "::1",
		Outcome: "ok", Detail: json.RawMessage(`{"a":1}`), PrevHash: audit.GenesisHash}
	var b []byte
	b = append(b, "casevault.audit.v1\n"...)
	b = binary.BigEndian.AppendUint64(b, 7)
	b = binary.BigEndian.AppendUint64(b, 1_700_000_000_123_456)
	for _, s := range []string{"t1", "Ann", "agent", "case.read", "case", "c9", "r", "::1", "ok", `{"a":1}`, audit.GenesisHash} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	sum := sha256.Sum256(b)
	if got, want := ev.ComputeHash(), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("hash %s, want %s", got, want)
	}
	// Every field is covered, and moving bytes between fields changes it.
	mutations := map[string]func(e *audit.Event){
		"seq":         func(e *audit.Event) { e.Seq++ },
		"time":        func(e *audit.Event) { e.Time = e.Time.Add(time.Microsecond) },
		"actor_id":    func(e *audit.Event) { e.ActorID += "x" },
		"actor_name":  func(e *audit.Event) { e.ActorName = "ann" },
		"role":        func(e *audit.Event) { e.Role = "legal" },
		"action":      func(e *audit.Event) { e.Action = "case.update" },
		"target_type": func(e *audit.Event) { e.TargetType = "contact" },
		"target_id":   func(e *audit.Event) { e.TargetID = "c8" },
		"request_id":  func(e *audit.Event) { e.RequestID = "" },
		"client_ip":   func(e *audit.Event) { e.ClientIP = "::2" },
		"outcome":     func(e *audit.Event) { e.Outcome = "denied" },
		"detail":      func(e *audit.Event) { e.Detail = json.RawMessage(`{"a":2}`) },
		"prev_hash":   func(e *audit.Event) { e.PrevHash = strings.Repeat("1", 64) },
		"boundary":    func(e *audit.Event) { e.ActorID, e.ActorName = "t1A", "nn" },
	}
	for name, m := range mutations {
		e := ev
		m(&e)
		if e.ComputeHash() == ev.ComputeHash() {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
	e := ev
	e.Hash = "anything"
	if e.ComputeHash() != ev.ComputeHash() {
		t.Error("the hash field must not be hashed")
	}
}

func TestDetailIsCanonical(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		l := logOn(t, db)
		for _, detail := range []string{`{"b":1,"a":{"y":2,"x":[3,"<"]}}`, " {\n \"a\" : {\"x\":[3,\"<\"], \"y\":2}, \"b\":1 }\n"} {
			ev := sample(1)
			ev.Detail = json.RawMessage(detail)
			if err := l.Record(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
		}
		a, b := getRaw(t, db, 1), getRaw(t, db, 2)
		if string(a.Detail) != string(b.Detail) {
			t.Fatalf("same detail stored differently: %s vs %s", a.Detail, b.Detail)
		}
		var back map[string]any
		if err := json.Unmarshal(a.Detail, &back); err != nil || back["b"] != float64(1) {
			t.Fatalf("stored detail %s does not parse back: %v", a.Detail, err)
		}
		verifyOK(t, l, 2)
	})
}

func TestBadEvents(t *testing.T) {
	db, l := newLog(t, sqldb.SQLite)
	ctx := context.Background()
	cases := []struct {
		name string
		mod  func(e *audit.Event)
		want error
	}{
		{"no action", func(e *audit.Event) { e.Action = "" }, audit.ErrInvalid},
		{"action with spaces", func(e *audit.Event) { e.Action = "case read" }, audit.ErrInvalid},
		{"upper-case action", func(e *audit.Event) { e.Action = "Case.Read" }, audit.ErrInvalid},
		{"reserved action", func(e *audit.Event) { e.Action = audit.ActionPrune }, audit.ErrInvalid},
		{"no outcome", func(e *audit.Event) { e.Outcome = "" }, audit.ErrInvalid},
		{"unknown outcome", func(e *audit.Event) { e.Outcome = "maybe" }, audit.ErrInvalid},
		{"detail not JSON", func(e *audit.Event) { e.Detail = json.RawMessage(`{"a":`) }, audit.ErrInvalid},
		{"detail array", func(e *audit.Event) { e.Detail = json.RawMessage(`[1,2]`) }, audit.ErrInvalid},
		{"detail string", func(e *audit.Event) { e.Detail = json.RawMessage(`"x"`) }, audit.ErrInvalid},
		{"detail trailing data", func(e *audit.Event) { e.Detail = json.RawMessage(`{} {}`) }, audit.ErrInvalid},
		{"token in detail", func(e *audit.Event) { e.Detail = json.RawMessage(`{"token":"cv_abc"}`) }, audit.ErrSecret},
		{"password nested", func(e *audit.Event) { e.Detail = json.RawMessage(`{"x":[{"NewPassword":"p"}]}`) }, audit.ErrSecret},
		{"client secret", func(e *audit.Event) { e.Detail = json.RawMessage(`{"client_secret":"s"}`) }, audit.ErrSecret},
		{"message body", func(e *audit.Event) { e.Detail = json.RawMessage(`{"body":"hello"}`) }, audit.ErrSecret},
		{"bearer token", func(e *audit.Event) { e.Detail = json.RawMessage(`{"auth":{"access_token":"x"}}`) }, audit.ErrSecret},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := sample(1)
			c.mod(&ev)
			if err := l.Record(ctx, ev); !errors.Is(err, c.want) {
				t.Errorf("Record: %v, want %v", err, c.want)
			}
			err := db.InTx(ctx, func(tx *sql.Tx) error {
				_, err := audit.AppendTx(ctx, tx, db.Dialect, ev)
				return err
			})
			if !errors.Is(err, c.want) {
				t.Errorf("AppendTx: %v, want %v", err, c.want)
			}
		})
	}
	if n := count(t, db); n != 0 {
		t.Fatalf("%d bad events stored", n)
	}
	// Ids and counts named after secrets are fine.
	ev := sample(1)
	ev.Detail = json.RawMessage(`{"token_id":"t1","token_name":"ci","body_bytes":12,"q":"refund card"}`)
	if err := l.Record(ctx, ev); err != nil {
		t.Fatalf("allowed detail rejected: %v", err)
	}
}

// Header-borne fields are cleaned, not rejected: a strange request id must
// not make auditing (and so the request) fail, and PostgreSQL TEXT takes
// neither NUL nor invalid UTF-8.
func TestHostileFieldsAreCleaned(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		l := logOn(t, db)
		ev := sample(1)
		ev.RequestID = "r\x00\xffé"
		ev.ClientIP = strings.Repeat("é", audit.MaxFieldBytes) // 2 bytes each
		ev.Detail = json.RawMessage(`{"q":"bad \u0000 nul"}`)
		if err := l.Record(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		got := getRaw(t, db, 1)
		if got.RequestID != "r\uFFFD\uFFFDé" {
			t.Errorf("request id stored as %q", got.RequestID)
		}
		if len(got.ClientIP) > audit.MaxFieldBytes || !strings.HasPrefix(strings.Repeat("é", audit.MaxFieldBytes), got.ClientIP) {
			t.Errorf("client ip not cut at a rune boundary within %d bytes: %d bytes", audit.MaxFieldBytes, len(got.ClientIP))
		}
		verifyOK(t, l, 1)
	})
}

func TestRollbackLeavesNoEvent(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		d := db.Dialect
		ctx := context.Background()
		l := logOn(t, db)
		boom := errors.New("boom")
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO counters(name, value) VALUES ('x', 1)`); err != nil {
				return err
			}
			if _, err := audit.AppendTx(ctx, tx, d, sample(1)); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if n := count(t, db); n != 0 {
			t.Fatalf("%d events after rollback", n)
		}
		res := verifyOK(t, l, 0)
		if res.HeadSeq != 0 || res.HeadHash != audit.GenesisHash {
			t.Fatalf("head moved by a rolled back append: %+v", res)
		}

		// Change: a failing change leaves nothing but an error event.
		ev := sample(2)
		ev.Outcome = ""
		err = l.Change(ctx, ev, func(tx *sql.Tx, ev *audit.Event) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO counters(name, value) VALUES ('y', 1)`); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Change: %v", err)
		}
		var n int
		if err := db.Write.QueryRowContext(ctx, `SELECT COUNT(*) FROM counters WHERE name IN ('x', 'y')`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("rolled back rows present: %d %v", n, err)
		}
		if got := getRaw(t, db, 1); got.Outcome != audit.OutcomeError || got.Action != ev.Action {
			t.Fatalf("failed change recorded as %+v", got)
		}
		// A successful change commits with its event, which fn completed.
		err = l.Change(ctx, sample(3), func(tx *sql.Tx, ev *audit.Event) error {
			ev.TargetID = "created-42"
			_, err := tx.ExecContext(ctx, `INSERT INTO counters(name, value) VALUES ('z', 1)`)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := getRaw(t, db, 2); got.Outcome != audit.OutcomeOK || got.TargetID != "created-42" {
			t.Fatalf("change recorded as %+v", got)
		}
		verifyOK(t, l, 2)
	})
}

type tamperCase struct {
	name   string
	pruned bool // events 1..4 pruned first; the prune event is seq 11
	mutate func(t *testing.T, db *sqldb.DB)
	want   int64
}

func tamperCases() []tamperCase {
	edit := func(seq int64, set string, args ...any) func(t *testing.T, db *sqldb.DB) {
		return func(t *testing.T, db *sqldb.DB) {
			exec(t, db, `UPDATE audit_events SET `+set+` WHERE seq = ?`, append(args, seq)...)
		}
	}
	del := func(seqs ...int64) func(t *testing.T, db *sqldb.DB) {
		return func(t *testing.T, db *sqldb.DB) {
			for _, s := range seqs {
				exec(t, db, `DELETE FROM audit_events WHERE seq = ?`, s)
			}
		}
	}
	return []tamperCase{
		{"edit actor of 4", false, edit(4, "actor_name = ?", "someone else"), 4},
		{"edit detail of 1 (same JSON, other bytes)", false, edit(1, "detail = ?", `{"hits": 0, "i": 0}`), 1},
		{"edit time of last", false, edit(10, "at = at + 1"), 10},
		{"edit outcome of 7", false, edit(7, "outcome = ?", "denied"), 7},
		{"edit prev_hash of 6", false, edit(6, "prev_hash = ?", strings.Repeat("a", 64)), 6},
		{"edit hash of 3", false, edit(3, "hash = ?", strings.Repeat("b", 64)), 3},
		{"rewrite 5 with a recomputed hash", false, func(t *testing.T, db *sqldb.DB) {
			ev := getRaw(t, db, 5)
			ev.ClientIP = "203.0.113.9"
			ev.Hash = ev.ComputeHash()
			putRaw(t, db, 5, ev)
		}, 6},
		{"delete 5", false, del(5), 5},
		{"delete first", false, del(1), 1},
		{"delete last", false, del(10), 10},
		{"delete 9 and 10", false, del(9, 10), 9},
		{"delete all", false, func(t *testing.T, db *sqldb.DB) { exec(t, db, `DELETE FROM audit_events`) }, 1},
		{"insert valid event after the head", false, func(t *testing.T, db *sqldb.DB) {
			ev := sample(99)
			ev.Time = time.UnixMicro(ev.Time.UnixMicro()).UTC()
			ev.Detail = json.RawMessage(`{}`)
			ev.Seq, ev.PrevHash = 11, getRaw(t, db, 10).Hash
			ev.Hash = ev.ComputeHash()
			insertRaw(t, db, ev)
		}, 11},
		{"insert event 0", false, func(t *testing.T, db *sqldb.DB) {
			ev := getRaw(t, db, 1)
			ev.Seq = 0
			insertRaw(t, db, ev)
		}, 0},
		{"insert valid event in the middle, renumbering", false, func(t *testing.T, db *sqldb.DB) {
			var moved []audit.Event
			for s := int64(7); s <= 10; s++ {
				moved = append(moved, getRaw(t, db, s))
			}
			exec(t, db, `DELETE FROM audit_events WHERE seq >= 7`)
			forged := sample(77)
			forged.Time = time.UnixMicro(forged.Time.UnixMicro()).UTC()
			forged.Detail = json.RawMessage(`{}`)
			forged.Seq, forged.PrevHash = 7, getRaw(t, db, 6).Hash
			forged.Hash = forged.ComputeHash()
			insertRaw(t, db, forged)
			for _, ev := range moved {
				ev.Seq++
				insertRaw(t, db, ev)
			}
			exec(t, db, `UPDATE audit_head SET seq = 11, hash = ? WHERE id = 1`, moved[3].Hash)
		}, 8},
		{"swap contents of 3 and 7", false, func(t *testing.T, db *sqldb.DB) {
			a, b := getRaw(t, db, 3), getRaw(t, db, 7)
			putRaw(t, db, 3, b)
			putRaw(t, db, 7, a)
		}, 3},
		{"reorder 3 and 4", false, func(t *testing.T, db *sqldb.DB) {
			exec(t, db, `UPDATE audit_events SET seq = -3 WHERE seq = 3`)
			exec(t, db, `UPDATE audit_events SET seq = 3 WHERE seq = 4`)
			exec(t, db, `UPDATE audit_events SET seq = 4 WHERE seq = -3`)
		}, 3},
		{"edit head hash", false, func(t *testing.T, db *sqldb.DB) {
			exec(t, db, `UPDATE audit_head SET hash = ? WHERE id = 1`, strings.Repeat("c", 64))
		}, 10},
		{"head beyond the last event", false, func(t *testing.T, db *sqldb.DB) {
			exec(t, db, `UPDATE audit_head SET seq = 12 WHERE id = 1`)
		}, 11},
		{"forged checkpoint without a prune", false, func(t *testing.T, db *sqldb.DB) {
			h := getRaw(t, db, 2).Hash
			exec(t, db, `DELETE FROM audit_events WHERE seq <= 2`)
			exec(t, db, `UPDATE audit_head SET checkpoint_seq = 2, checkpoint_hash = ? WHERE id = 1`, h)
		}, 3},

		{"pruned: edit checkpoint hash", true, func(t *testing.T, db *sqldb.DB) {
			exec(t, db, `UPDATE audit_head SET checkpoint_hash = ? WHERE id = 1`, strings.Repeat("d", 64))
		}, 5},
		{"pruned: edit checkpoint seq", true, func(t *testing.T, db *sqldb.DB) {
			exec(t, db, `UPDATE audit_head SET checkpoint_seq = 3 WHERE id = 1`)
		}, 4},
		{"pruned: delete 5 and move the checkpoint over it", true, func(t *testing.T, db *sqldb.DB) {
			h := getRaw(t, db, 5).Hash
			exec(t, db, `DELETE FROM audit_events WHERE seq = 5`)
			exec(t, db, `UPDATE audit_head SET checkpoint_seq = 5, checkpoint_hash = ? WHERE id = 1`, h)
		}, 6},
		{"pruned: ...and edit the prune event to match", true, func(t *testing.T, db *sqldb.DB) {
			h := getRaw(t, db, 5).Hash
			exec(t, db, `DELETE FROM audit_events WHERE seq = 5`)
			exec(t, db, `UPDATE audit_head SET checkpoint_seq = 5, checkpoint_hash = ? WHERE id = 1`, h)
			exec(t, db, `UPDATE audit_events SET detail = ? WHERE seq = 11`,
				fmt.Sprintf(`{"before":"x","checkpoint_hash":%q,"checkpoint_seq":5,"removed":5}`, h))
		}, 11},
		{"pruned: re-insert a pruned event", true, func(t *testing.T, db *sqldb.DB) {
			ev := getRaw(t, db, 5)
			ev.Seq = 2
			insertRaw(t, db, ev)
		}, 2},
		{"pruned: delete first remaining", true, del(5), 5},
		{"pruned: edit the prune event", true, edit(11, "actor_id = ?", "tok-0"), 11},
	}
}

func TestTamperDetected(t *testing.T) {
	for _, d := range sqldbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			for _, c := range tamperCases() {
				t.Run(c.name, func(t *testing.T) {
					ctx := context.Background()
					db, l := newLog(t, d)
					recordN(t, l, 0, 10) // seq i+1 at base + i hours
					want := int64(10)
					if c.pruned {
						n, err := l.Prune(ctx, base.Add(3*time.Hour+30*time.Minute))
						if err != nil || n != 4 {
							t.Fatalf("prune: %d %v", n, err)
						}
						want = 7 // 5..10 and the prune event
					}
					verifyOK(t, l, want)
					c.mutate(t, db)
					res, err := l.Verify(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if res.OK || res.FirstBad == nil {
						t.Fatalf("tampering not detected: %+v", res)
					}
					if *res.FirstBad != c.want {
						t.Fatalf("first bad %d (%s), want %d", *res.FirstBad, res.Reason, c.want)
					}
					if res.Reason == "" {
						t.Fatal("no reason given")
					}
					// The database/sql walk (SQLite's) agrees on PostgreSQL too.
					alt, err := audit.VerifySQL(l, ctx)
					if err != nil || alt.OK || *alt.FirstBad != c.want || alt.Reason != res.Reason {
						t.Fatalf("database/sql walk: %+v %v", alt, err)
					}
				})
			}
		})
	}
}

// Concurrent changes, half of which fail after appending their event: on
// SQLite they share commits (each in its own savepoint), on PostgreSQL they
// queue on the head lock. Only the successful ones may leave events, and the
// chain must stay whole.
func TestConcurrentChangesWithFailures(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		l := logOn(t, db)
		const n = 60
		boom := errors.New("boom")
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = db.InTx(ctx, func(tx *sql.Tx) error {
					ev := sample(i)
					ev.RequestID = fmt.Sprintf("req-%d", i)
					if _, err := l.AppendTx(ctx, tx, ev); err != nil {
						return err
					}
					if i%2 == 1 {
						return boom
					}
					return nil
				})
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if want := i%2 == 1; errors.Is(err, boom) != want || (!want && err != nil) {
				t.Fatalf("change %d: %v", i, err)
			}
		}
		verifyOK(t, l, n/2)
		var odd int
		if err := db.Read.QueryRowContext(ctx, db.Rebind(`SELECT COUNT(*) FROM audit_events WHERE request_id IN (?, ?, ?)`),
			"req-1", "req-3", "req-59").Scan(&odd); err != nil || odd != 0 {
			t.Fatalf("events of failed changes: %d %v", odd, err)
		}
	})
}
