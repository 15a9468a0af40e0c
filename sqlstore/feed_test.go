package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/search/bleve"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
	"github.com/casevault/casevault/testkit"
)

// replicaIndex is one replica's embedded index fed from the shared store.
func replicaIndex(t *testing.T, st *sqlstore.Store, name string) *search.Indexer {
	t.Helper()
	eng, err := bleve.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ix := search.NewIndexer(st, eng, nil, search.Options{PollInterval: 20 * time.Millisecond, Settle: -1, BatchSize: 7, Consumer: name})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s Run: %v", name, err)
		}
		_ = ix.Close()
	})
	return ix
}

func hits(t *testing.T, ix *search.Indexer, word string) int64 {
	t.Helper()
	res, err := ix.Search(t.Context(), search.Query{Words: []string{word}, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	return res.Total
}

// Several replicas' embedded indexes on one store each see every change:
// the outbox is a feed every consumer reads in full, not a queue whose rows
// go to whichever replica drains them first (issue 20 §3, §4).
func TestEveryIndexSeesEveryChange(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		st := sqlstore.New(db, sqlstore.Options{})
		svc := cases.NewService(st, nil)
		ixs := []*search.Indexer{replicaIndex(t, st, "a"), replicaIndex(t, st, "b"), replicaIndex(t, st, "c")}

		_, cs := seed(t, svc)
		var caseIDs []string
		for i := range 30 {
			addContact(t, svc, cs.ID, fmt.Sprint("walrus number ", i))
			subj, ch := fmt.Sprint("narwhal ", i), cases.ChannelWeb
			c, err := svc.CreateCase(ctx, cases.NewCase{CustomerID: &cs.CustomerID, Subject: &subj, Channel: &ch}, cases.Actor{})
			if err != nil {
				t.Fatal(err)
			}
			caseIDs = append(caseIDs, c.ID)
		}
		for i, ix := range ixs {
			testkit.Eventually(t, 15*time.Second, fmt.Sprint("replica ", i, " finds all 30 new cases"), func() bool { return hits(t, ix, "narwhal") == 30 })
			testkit.Eventually(t, 15*time.Second, fmt.Sprint("replica ", i, " finds the case with the 30 contacts"), func() bool { return hits(t, ix, "walrus") == 1 })
		}

		// A case deleted (as retention does: rows gone, one outbox row)
		// disappears from every index.
		gone := caseIDs[3]
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, db.Rebind(`DELETE FROM cases WHERE id = ?`), gone); err != nil {
				return err
			}
			return sqlstore.Enqueue(ctx, db, tx, gone)
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, ix := range ixs {
			testkit.Eventually(t, 15*time.Second, fmt.Sprint("replica ", i, " forgets the deleted case"), func() bool { return hits(t, ix, "narwhal") == 29 })
		}
	})
}

func enqueue(t *testing.T, db *sqldb.DB, tx *sql.Tx, caseID string) {
	t.Helper()
	if err := sqlstore.Enqueue(t.Context(), db, tx, caseID); err != nil {
		t.Fatal(err)
	}
}

func commitOne(t *testing.T, db *sqldb.DB, caseID string) {
	t.Helper()
	if err := db.InTx(t.Context(), func(tx *sql.Tx) error { return sqlstore.Enqueue(t.Context(), db, tx, caseID) }); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, st *sqlstore.Store, after int64) []search.OutboxEntry {
	t.Helper()
	es, err := st.ReadFeed(t.Context(), after, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// feedOfOne is a PostgreSQL store whose feed holds one numbered change, of
// case caseID, and that change.
func feedOfOne(t *testing.T, caseID string) (*sqldb.DB, *sqlstore.Store, search.OutboxEntry) {
	t.Helper()
	db := sqldbtest.Open(t, sqldb.Postgres)
	st := sqlstore.New(db, sqlstore.Options{})
	commitOne(t, db, caseID)
	es := readAll(t, st, 0)
	if len(es) != 1 || es[0].CaseID != caseID {
		t.Fatalf("feed = %+v", es)
	}
	return db, st, es[0]
}

// A row whose transaction commits after a later one's never appears below
// a cursor that has passed the later one: positions follow commit order
// (on PostgreSQL, a BIGSERIAL does not).
func TestFeedNeverSkipsALateCommit(t *testing.T) {
	db, st, first := feedOfOne(t, "first")
	ctx := t.Context()
	cursor := first.Seq

	// "late" takes its seq first and commits last
	slow, err := db.Write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = slow.Rollback() }()
	enqueue(t, db, slow, "late")
	commitOne(t, db, "early")
	es := readAll(t, st, cursor)
	if len(es) != 1 || es[0].CaseID != "early" {
		t.Fatalf("feed while the late transaction is in flight = %+v, want early", es)
	}
	cursor = es[0].Seq

	if err := slow.Commit(); err != nil {
		t.Fatal(err)
	}
	head, err := st.SettledHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	es = readAll(t, st, cursor)
	if len(es) != 1 || es[0].CaseID != "late" || es[0].Seq != head {
		t.Fatalf("feed after the late commit = %+v, want late above the cursor %d at the head %d", es, cursor, head)
	}
}

// TestFeedReadDoesNotQueueBehindANumbering: while another transaction
// holds the feed's numbering lock (another replica's indexer numbering,
// a claim, a prune), an indexer's read returns at once with what is
// numbered instead of waiting for that commit (issue 19 §2: the only Lock
// waits left with two replicas under load); SettledHead, which promises
// every committed change a position, still waits, and then numbers it.
func TestFeedReadDoesNotQueueBehindANumbering(t *testing.T) {
	db, st, numbered := feedOfOne(t, "numbered")
	ctx := t.Context()
	commitOne(t, db, "committed during the numbering")

	lock := sqldbtest.Hold(t, db, `SELECT head FROM feed_state WHERE id = 1 FOR UPDATE`)

	quick, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	es, err := st.ReadFeed(quick, 0, 1000)
	if err != nil {
		t.Fatalf("the read waited for the numbering lock: %v", err)
	}
	if len(es) != 1 || es[0] != numbered {
		t.Fatalf("feed while another transaction numbers = %+v, want what was numbered", es)
	}

	settled := make(chan error, 1)
	go func() {
		_, err := st.SettledHead(ctx)
		settled <- err
	}()
	sqldbtest.BlockedBy(t, db, lock.PID, settled)
	if err := lock.Tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-settled; err != nil {
		t.Fatal(err)
	}
	if es := readAll(t, st, numbered.Seq); len(es) != 1 || es[0].CaseID != "committed during the numbering" {
		t.Fatalf("feed after SettledHead = %+v", es)
	}
}

// Rows go only once every registered consumer has passed them; a consumer
// that registers after rows went, or that was away so long it expired,
// must rebuild (position -1) and holds pruning back until it has.
func TestFeedConsumersAndPruning(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := t.Context()
		st := sqlstore.New(db, sqlstore.Options{})
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		claim := func(id, owner string, at time.Time) (search.Consumer, bool) {
			t.Helper()
			c, held, err := st.ClaimConsumer(ctx, search.Claim{ID: id, Kind: search.ConsumerEmbedded, Owner: owner, TTL: time.Minute, Now: at})
			if err != nil {
				t.Fatal(err)
			}
			return c, held
		}
		prune := func(at time.Time) (int64, []string) {
			t.Helper()
			n, expired, err := st.PruneFeed(ctx, at, at.Add(-24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			return n, expired
		}
		for i := range 5 {
			commitOne(t, db, fmt.Sprint("c", i))
		}
		head, err := st.SettledHead(ctx)
		if err != nil {
			t.Fatal(err)
		}

		if n, _ := prune(now); n != 0 {
			t.Fatalf("pruned %d rows with no consumer registered", n)
		}
		if c, held := claim("a", "a", now); !held || c.Position != 0 {
			t.Fatalf("new consumer a = %+v held %v, want position 0", c, held)
		}
		claim("b", "b", now)
		if err := st.AdvanceConsumer(ctx, "a", "a", head, now); err != nil {
			t.Fatal(err)
		}
		if n, _ := prune(now); n != 0 {
			t.Fatalf("pruned %d rows consumer b has not read", n)
		}
		if err := st.AdvanceConsumer(ctx, "b", "b", 2, now); err != nil {
			t.Fatal(err)
		}
		if n, _ := prune(now); n != 2 {
			t.Fatalf("pruned %d rows, want the 2 both passed", n)
		}
		if es := readAll(t, st, 0); len(es) != 3 {
			t.Fatalf("%d rows left, want 3", len(es))
		}

		// lease: another owner cannot write a consumer it does not hold
		if _, held := claim("b", "intruder", now); held {
			t.Fatal("a second owner took a live lease")
		}
		if err := st.AdvanceConsumer(ctx, "b", "intruder", head, now); !errors.Is(err, search.ErrLeaseLost) {
			t.Fatalf("advance by a non-owner: %v, want ErrLeaseLost", err)
		}
		if c, held := claim("b", "intruder", now.Add(2*time.Minute)); !held || c.Position != 2 {
			t.Fatalf("after the lease expired: %+v held %v, want the lease at position 2", c, held)
		}

		if c, _ := claim("late", "late", now); c.Position != -1 {
			t.Fatalf("consumer registered after pruning at %d, want -1 (must rebuild)", c.Position)
		}
		fs, err := st.FeedStatus(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		if fs.Head != head || len(fs.Consumers) != 3 || fs.Consumers[0].Pending != 0 || fs.Consumers[1].Pending != head-2 || !fs.Consumers[2].MustRebuild {
			t.Fatalf("feed status %+v", fs)
		}

		// "a" and "b" are seen again later; "late" never returns, expires,
		// and stops holding rows back
		later := now.Add(48 * time.Hour)
		claim("a", "a", later)
		claim("b", "intruder", later)
		if err := st.AdvanceConsumer(ctx, "b", "intruder", head, later); err != nil {
			t.Fatal(err)
		}
		if n, expired := prune(later); n != 3 || len(expired) != 1 || expired[0] != "late" {
			t.Fatalf("prune = %d %v, want 3 rows and late expired", n, expired)
		}
		if c, _ := claim("late", "late", later); c.Position != -1 {
			t.Fatalf("expired consumer back at %d, want -1 (must rebuild)", c.Position)
		}
	})
}

// A replica that does not hold a shared index's lease asks for it after
// every write it makes (its indexer is kicked): that ask must not take the
// feed_state row lock or a write transaction while the lease is another's
// and live. It did: each write of the second replica on one Meilisearch
// put a transaction on the row the feed's numbering locks (issue 19 §2).
func TestClaimOfALiveLeaseTakesNoLock(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := t.Context()
		st := sqlstore.New(db, sqlstore.Options{})
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		claim := func(ctx context.Context, owner string, at time.Time) (search.Consumer, bool, error) {
			return st.ClaimConsumer(ctx, search.Claim{ID: "shared", Kind: search.ConsumerShared, Owner: owner, TTL: time.Minute, Now: at})
		}
		if _, held, err := claim(ctx, "a", now); err != nil || !held {
			t.Fatalf("first claim: held %v, %v", held, err)
		}

		// another transaction holds the write lock: the feed_state row on
		// PostgreSQL, the database on SQLite
		lock, err := db.Write.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Rollback()
		if _, err := lock.ExecContext(ctx, `UPDATE feed_state SET pruned_through = pruned_through WHERE id = 1`); err != nil {
			t.Fatal(err)
		}

		wait, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		c, held, err := claim(wait, "b", now.Add(10*time.Second))
		if err != nil {
			t.Fatalf("claim of a live lease waited for the write lock: %v", err)
		}
		if held || c.Owner != "a" || c.Kind != search.ConsumerShared || c.Position != 0 {
			t.Fatalf("claim of a's live lease by b = %+v held %v, want a's, not held", c, held)
		}
		if err := lock.Rollback(); err != nil {
			t.Fatal(err)
		}

		// expired, the lease is taken under the lock as before
		if c, held, err := claim(ctx, "b", now.Add(2*time.Minute)); err != nil || !held || c.Owner != "b" {
			t.Fatalf("claim of an expired lease = %+v held %v, %v", c, held, err)
		}
		if _, held, err := claim(ctx, "a", now.Add(2*time.Minute)); err != nil || held {
			t.Fatalf("a took b's new lease back: held %v, %v", held, err)
		}
	})
}

// TestFeedVacuumsTheOutbox: every outbox row leaves dead versions on
// PostgreSQL (its unnumbered version when the feed numbers it, itself
// when pruning deletes it), which the feed's look for unnumbered rows and
// its numbering read from outbox_unsequenced's old end until a vacuum. The
// feed vacuums the outbox each time VacuumEvery of them gathered
// (PostgreSQL's own count of the table's vacuums says so). SQLite reuses
// the space itself.
func TestFeedVacuumsTheOutbox(t *testing.T) {
	const perRound, rounds = 300, 5
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := t.Context()
		if db.Dialect == sqldb.Postgres {
			if _, err := db.Write.ExecContext(ctx, `ALTER TABLE outbox SET (autovacuum_enabled = false)`); err != nil {
				t.Fatal(err)
			}
		}
		st := sqlstore.New(db, sqlstore.Options{VacuumEvery: perRound})
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		if _, _, err := st.ClaimConsumer(ctx, search.Claim{ID: "a", Kind: search.ConsumerEmbedded, Owner: "a", TTL: time.Minute, Now: now}); err != nil {
			t.Fatal(err)
		}

		var after int64
		for r := range rounds {
			ids := make([]string, perRound)
			for i := range ids {
				ids[i] = fmt.Sprint("case-", r, "-", i)
			}
			if err := db.InTx(ctx, func(tx *sql.Tx) error { return sqlstore.Enqueue(ctx, db, tx, ids...) }); err != nil {
				t.Fatal(err)
			}
			es := readAll(t, st, after)
			if len(es) != perRound {
				t.Fatalf("round %d: read %d changes, want %d", r, len(es), perRound)
			}
			after = es[len(es)-1].Seq
			if err := st.AdvanceConsumer(ctx, "a", "a", after, now); err != nil {
				t.Fatal(err)
			}
			if n, _, err := st.PruneFeed(ctx, now, now.Add(-time.Hour)); err != nil || n != perRound {
				t.Fatalf("round %d: pruned %d (%v), want %d", r, n, err, perRound)
			}
		}

		vs := st.FeedChurn().Stats()
		if db.Dialect != sqldb.Postgres {
			if vs.Vacuums != 0 {
				t.Fatalf("SQLite: %d vacuums, want none", vs.Vacuums)
			}
			return
		}
		// each round numbers and prunes perRound rows: the next round's
		// read vacuums (the first round's, after its numbering)
		if vs.Vacuums != rounds || vs.Failures != 0 || vs.Table != "outbox" {
			t.Fatalf("outbox vacuums %+v, want %d, no failure", vs, rounds)
		}
		if got := sqldbtest.VacuumCount(t, db, "outbox"); got != rounds {
			t.Fatalf("PostgreSQL counts %d vacuums of the outbox, want %d", got, rounds)
		}
	})
}
