package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
)

// TestWritesShareNoRow is issue 19 §2 on PostgreSQL, wired as serve wires
// it (the write barrier's shared lock first, the audit event appended
// unsequenced in the transaction): while one write's transaction is held
// open after all its statements, every other kind of write must commit
// without waiting for it. A row every write touched (the case-number
// counter, the audit head) would hold them until the first one ends.
// SQLite has one writer by design, so it is not asked.
func TestWritesShareNoRow(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	db.SetPrologue(retention.ShareWriteBarrier)
	log := audit.New(db, audit.WithSequencer(0))
	t.Cleanup(func() { _ = log.Close(context.Background()) })

	held := make(chan struct{})
	release := make(chan struct{})
	st := sqlstore.New(db, sqlstore.Options{OnChange: func(ctx context.Context, tx *sql.Tx, ch cases.Change) error {
		if _, err := log.AppendTx(ctx, tx, audit.FromChange(ch, audit.OutcomeOK)); err != nil {
			return err
		}
		if ch.Detail["hold"] == true {
			close(held)
			<-release
		}
		return nil
	}})
	svc := cases.NewService(st, nil)
	cust, _ := seed(t, svc)
	ctx := context.Background()

	tests := []struct {
		name  string
		write func(ctx context.Context, hold bool) error
	}{
		{"case creation", func(ctx context.Context, hold bool) error {
			c := &cases.Case{ID: cases.NewID(), CustomerID: cust.ID, Subject: "s", Status: cases.StatusOpen, Priority: cases.PriorityNormal,
				Channel: cases.ChannelChat, CreatedAt: time.Now(), UpdatedAt: time.Now()}
			return st.CreateCase(ctx, c, cases.Change{Action: "case.create", TargetType: "case", TargetID: c.ID, Detail: map[string]any{"hold": hold}})
		}},
		{"contact on another case", func(ctx context.Context, hold bool) error {
			// each contact goes to a case of its own: two contacts of one
			// case are ordered by that case's row, by design
			other := &cases.Case{ID: cases.NewID(), CustomerID: cust.ID, Subject: "s", Status: cases.StatusOpen, Priority: cases.PriorityNormal,
				Channel: cases.ChannelChat, CreatedAt: time.Now(), UpdatedAt: time.Now()}
			if err := st.CreateCase(ctx, other, cases.Change{Action: "case.create", TargetType: "case", TargetID: other.ID}); err != nil {
				return err
			}
			c := &cases.Contact{ID: cases.NewID(), CaseID: other.ID, Channel: cases.ChannelChat, Direction: cases.DirectionInbound,
				Author: "a", Body: "b", OccurredAt: time.Now(), CreatedAt: time.Now(), Purposes: []cases.Purpose{cases.PurposeCustomerService},
				Categories: []cases.Category{cases.CategorySupportContent}}
			return st.CreateContact(ctx, c, cases.Change{Action: "contact.create", TargetType: "contact", TargetID: c.ID, Detail: map[string]any{"hold": hold}})
		}},
		{"customer creation", func(ctx context.Context, hold bool) error {
			c := cases.Customer{ID: cases.NewID(), Name: "n", CreatedAt: time.Now(), UpdatedAt: time.Now()}
			return st.CreateCustomer(ctx, c, cases.Change{Action: "customer.create", TargetType: "customer", TargetID: c.ID, Detail: map[string]any{"hold": hold}})
		}},
	}
	for _, first := range tests {
		t.Run(first.name+" held", func(t *testing.T) {
			held, release = make(chan struct{}), make(chan struct{})
			done := make(chan error, 1)
			go func() { done <- first.write(ctx, true) }()
			select {
			case <-held:
			case err := <-done:
				t.Fatalf("held write ended early: %v", err)
			}
			for _, other := range tests {
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := other.write(wctx, false)
				cancel()
				if err != nil {
					close(release)
					<-done
					t.Fatalf("%s while a %s was in flight: %v (waited on a shared row?)", other.name, first.name, err)
				}
			}
			close(release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCaseNumbersPastRestoredRows: cases inserted with their numbers (a
// backup restored, whose counters row may be behind: PostgreSQL numbers
// from a sequence and never updates it) must not be numbered again. On
// PostgreSQL the sequence's floor trigger moves it past them (migration
// 0031); on SQLite the counter never counts below the highest number.
func TestCaseNumbersPastRestoredRows(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		svc := cases.NewService(sqlstore.New(db, sqlstore.Options{}), nil)
		cust, first := seed(t, svc)
		if first.Number != 1 {
			t.Fatalf("first case number %d, want 1", first.Number)
		}
		// a restore writes rows as they were, and a stale counter
		for _, n := range []int64{40, 41} {
			if _, err := db.Write.Exec(db.Rebind(`INSERT INTO cases (id, number, customer_id, subject, status, priority, channel, created_at, updated_at) VALUES (?, ?, ?, 's', 'open', 'normal', 'chat', 0, 0)`),
				fmt.Sprint("restored-", n), n, cust.ID); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Write.Exec(`UPDATE counters SET value = 3 WHERE name = 'case_number'`); err != nil {
			t.Fatal(err)
		}
		subj, ch := "after restore", cases.ChannelChat
		cs, err := svc.CreateCase(context.Background(), cases.NewCase{CustomerID: &cust.ID, Subject: &subj, Channel: &ch}, cases.Actor{})
		if err != nil {
			t.Fatal(err)
		}
		if cs.Number != 42 {
			t.Fatalf("case number after restored cases up to 41: %d, want 42", cs.Number)
		}
	})
}

// TestBusyCaseWaitsOutsideABatch: a contact whose case is in a running
// batch waits in the queue, never inside another batch, where it would
// wait on the case's row lock and hold up every contact of that batch
// (issue 19: lock waits on case rows under wrk's 32 clients on 200 cases).
// All four batch slots are held, a contact on the held case X and eight
// on other cases queue together, then three slots are freed: the eight
// must commit while X's batch is still held, and X's second contact right
// after it. On the batcher that took the whole queue, the first freed
// slot took X's contact with the eight and all of them waited on X.
func TestBusyCaseWaitsOutsideABatch(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	holds := map[string]chan struct{}{"x": make(chan struct{}), "h": make(chan struct{})}
	held := make(chan string, 8)
	st := sqlstore.New(db, sqlstore.Options{OnChange: func(ctx context.Context, tx *sql.Tx, ch cases.Change) error {
		if h, ok := ch.Detail["hold"].(string); ok {
			held <- h
			<-holds[h]
		}
		return nil
	}, ContactBatches: 4})
	svc := cases.NewService(st, nil)
	cust, x := seed(t, svc)
	ctx := context.Background()
	newCase := func() string {
		c := &cases.Case{ID: cases.NewID(), CustomerID: cust.ID, Subject: "s", Status: cases.StatusOpen, Priority: cases.PriorityNormal,
			Channel: cases.ChannelChat, CreatedAt: time.Now(), UpdatedAt: time.Now()}
		if err := st.CreateCase(ctx, c, cases.Change{Action: "case.create", TargetType: "case", TargetID: c.ID}); err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	write := func(caseID, hold string) chan error {
		done := make(chan error, 1)
		c := &cases.Contact{ID: cases.NewID(), CaseID: caseID, Channel: cases.ChannelChat, Direction: cases.DirectionInbound,
			Author: "a", Body: "b", OccurredAt: time.Now(), CreatedAt: time.Now(), Purposes: []cases.Purpose{cases.PurposeCustomerService},
			Categories: []cases.Category{cases.CategorySupportContent}}
		detail := map[string]any{}
		if hold != "" {
			detail["hold"] = hold
		}
		go func() {
			done <- st.CreateContact(ctx, c, cases.Change{Action: "contact.create", TargetType: "contact", TargetID: c.ID, Detail: detail})
		}()
		return done
	}
	others := make([]string, 11)
	for i := range others {
		others[i] = newCase()
	}
	wait := func(what string, done chan error) {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not committed after 10 s (waiting on a busy case inside a batch?)", what)
		}
	}

	// every slot held: X's first contact and three others, one batch each
	firstX := write(x.ID, "x")
	<-held
	var holders []chan error
	for _, id := range others[:3] {
		holders = append(holders, write(id, "h"))
		<-held
	}

	secondX := write(x.ID, "")
	var rest []chan error
	for _, id := range others[3:] {
		rest = append(rest, write(id, ""))
	}
	time.Sleep(200 * time.Millisecond) // they queue: every slot is busy

	close(holds["h"])
	for i, done := range holders {
		wait(fmt.Sprint("held contact ", i), done)
	}
	for i, done := range rest {
		wait(fmt.Sprint("contact on another case ", i), done)
	}
	select {
	case err := <-secondX:
		t.Fatalf("X's second contact ended while X's first batch was held: %v", err)
	default:
	}

	close(holds["x"])
	wait("X's first contact", firstX)
	wait("X's second contact", secondX)
}

// TestOneContactBatchInFlightUntilItStalls: on a replica with two batch
// slots, a contact batch starts beside a running one only once that one
// has run for the stall, and a drain whose batch ends while a younger
// batch is in flight leaves the queue to it. Each batch costs its round
// trips and commit whatever its size, so starting the second slot at once
// halved the batches under load (issue 19); never starting it would let
// one stuck batch hold every contact write (TestWritesShareNoRow).
func TestOneContactBatchInFlightUntilItStalls(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	const stall = 2 * time.Second
	// quiet is shorter than the stall by far: nothing may commit in it
	const quiet = 300 * time.Millisecond

	holds := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{})}
	held := make(chan string, 2)
	var mu sync.Mutex
	var batches []string
	st := sqlstore.New(db, sqlstore.Options{OnChanges: func(ctx context.Context, tx *sql.Tx, chs []cases.Change) error {
		names := make([]string, len(chs))
		for i, ch := range chs {
			names[i], _ = ch.Detail["name"].(string)
		}
		mu.Lock()
		batches = append(batches, fmt.Sprint(names))
		mu.Unlock()
		for _, ch := range chs {
			if h, ok := ch.Detail["hold"].(string); ok {
				held <- h
				<-holds[h]
			}
		}
		return nil
	}, ContactBatches: 2, ContactBatchStall: stall})
	svc := cases.NewService(st, nil)
	cust, _ := seed(t, svc)
	ctx := context.Background()

	// each contact on a case of its own: no contact waits for its case
	write := func(name, hold string) chan error {
		c := &cases.Case{ID: cases.NewID(), CustomerID: cust.ID, Subject: "s", Status: cases.StatusOpen, Priority: cases.PriorityNormal,
			Channel: cases.ChannelChat, CreatedAt: time.Now(), UpdatedAt: time.Now()}
		if err := st.CreateCase(ctx, c, cases.Change{Action: "case.create", TargetType: "case", TargetID: c.ID}); err != nil {
			t.Fatal(err)
		}
		ct := &cases.Contact{ID: cases.NewID(), CaseID: c.ID, Channel: cases.ChannelChat, Direction: cases.DirectionInbound,
			Author: "a", Body: "b", OccurredAt: time.Now(), CreatedAt: time.Now(), Purposes: []cases.Purpose{cases.PurposeCustomerService},
			Categories: []cases.Category{cases.CategorySupportContent}}
		detail := map[string]any{"name": name}
		if hold != "" {
			detail["hold"] = hold
		}
		done := make(chan error, 1)
		go func() {
			done <- st.CreateContact(ctx, ct, cases.Change{Action: "contact.create", TargetType: "contact", TargetID: ct.ID, Detail: detail})
		}()
		return done
	}
	// writeQueued writes after the batches in flight have taken what was queued
	writeQueued := func(name, hold string) chan error {
		done := write(name, hold)
		time.Sleep(50 * time.Millisecond)
		return done
	}
	committed := func(what string, done chan error, within time.Duration) {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(within):
			t.Fatalf("%s: not committed after %s", what, within)
		}
	}
	waiting := func(what string, dones ...chan error) {
		t.Helper()
		time.Sleep(quiet)
		for _, done := range dones {
			select {
			case err := <-done:
				t.Fatalf("%s ended (%v) beside a batch in flight for less than the stall", what, err)
			default:
			}
		}
	}

	a := write("a", "a")
	if h := <-held; h != "a" {
		t.Fatalf("held %q first", h)
	}
	c1, c2 := writeQueued("c1", ""), writeQueued("c2", "")
	b := writeQueued("b", "b")
	waiting("a contact queued behind a young batch", c1, c2, b)
	if n := st.ContactBatchStats().Overflows; n != 0 {
		t.Fatalf("%d batches started beside a young one", n)
	}

	// a has run for the stall: the queue goes round it in a batch of its
	// own, which b holds
	select {
	case h := <-held:
		if h != "b" {
			t.Fatalf("held %q, want b", h)
		}
	case <-time.After(stall + 10*time.Second):
		t.Fatal("no batch started beside a stalled one")
	}
	if n := st.ContactBatchStats().Overflows; n != 1 {
		t.Fatalf("%d batches started beside the stalled one, want 1", n)
	}

	// a ends while b's batch is young: a's drain leaves the queue to it
	d1, d2 := writeQueued("d1", ""), writeQueued("d2", "")
	close(holds["a"])
	committed("a", a, 10*time.Second)
	waiting("a contact queued behind the younger of two batches", d1, d2)

	close(holds["b"])
	for name, done := range map[string]chan error{"c1": c1, "c2": c2, "b": b, "d1": d1, "d2": d2} {
		committed(name, done, 10*time.Second)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"[a]", "[c1 c2 b]", "[d1 d2]"}; !slices.Equal(batches, want) {
		t.Fatalf("batches %v, want %v", batches, want)
	}
}
