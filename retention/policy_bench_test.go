package retention_test

import (
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
)

// BenchmarkStampWithStoredSchedule: the cost of reading the schedule in
// force inside every contact write (issue 20 §1) against the reference,
// a store stamping with a fixed in-memory schedule, measured in the same
// run on the same database. Compare the two ns/op as a ratio.
func BenchmarkStampWithStoredSchedule(b *testing.B) {
	for _, d := range sqldbtest.Dialects {
		db := sqldbtest.Open(b, d)
		stored := retention.NewPolicy(retention.DefaultSchedule())
		sched := retention.NewSchedules(db, stored)
		sc := retention.DefaultSchedule()
		sc.Purposes[4].Keep, _ = retention.ParseDuration("400d")
		if _, err := sched.Put(b.Context(), sc, cases.Actor{}, nil); err != nil {
			b.Fatal(err)
		}
		for _, v := range []struct {
			name   string
			policy cases.RetentionPolicy
		}{{"reference-fixed", sc.Policy()}, {"stored", stored}} {
			b.Run(string(d)+"/"+v.name, func(b *testing.B) {
				benchCreateContacts(b, db, sqlstore.New(db, sqlstore.Options{Policy: v.policy}))
			})
		}
	}
}

func benchCreateContacts(b *testing.B, db *sqldb.DB, st *sqlstore.Store) {
	ctx := b.Context()
	cust := cases.Customer{ID: cases.NewID(), Name: "bench", CreatedAt: base, UpdatedAt: base}
	if err := st.CreateCustomer(ctx, cust, cases.Change{Action: "customer.create"}); err != nil {
		b.Fatal(err)
	}
	cs := cases.Case{ID: cases.NewID(), CustomerID: cust.ID, Subject: "s", Status: cases.StatusOpen, Priority: cases.PriorityNormal,
		Channel: cases.ChannelEmail, CreatedAt: base, UpdatedAt: base}
	if err := st.CreateCase(ctx, &cs, cases.Change{Action: "case.create"}); err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	b.ResetTimer()
	for b.Loop() {
		c := cases.Contact{ID: cases.NewID(), CaseID: cs.ID, CustomerID: cust.ID, Channel: cases.ChannelChat, Direction: cases.DirectionInbound,
			Author: "a", Body: "b", OccurredAt: now, CreatedAt: now, Purposes: []cases.Purpose{cases.PurposeNotification},
			Categories: []cases.Category{cases.CategorySupportContent}}
		if err := st.CreateContact(ctx, &c, cases.Change{Action: "contact.create"}); err != nil {
			b.Fatal(err)
		}
	}
}
