package sqlstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestTouchCasesPlan: a PostgreSQL contact batch finds the cases it locks
// and touches by their key, not by reading the table. Written as a join to
// its unnest, the statement was planned as two sequential scans of cases
// at around a thousand analyzed cases (every batch); from a few thousand
// the planner preferred the index anyway. The subtests grow one table, in
// order.
func TestTouchCasesPlan(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	ctx := context.Background()
	st := New(db, Options{})
	cust := cases.Customer{ID: cases.NewID(), Name: "n", CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := st.CreateCustomer(ctx, cust, cases.Change{Action: "customer.create", TargetType: "customer", TargetID: cust.ID}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		cases int
	}{
		// (a few hundred fit in a few pages, where a scan is the cheaper
		// plan)
		{"a thousand cases", 1000},
		{"thousands of cases", 5000},
		{"tens of thousands of cases", 30000},
	}
	next := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			add := tc.cases - next
			if _, err := db.Write.ExecContext(ctx, `INSERT INTO cases (id, number, customer_id, subject, status, priority, channel, created_at, updated_at)
				SELECT 'plan-' || g, 1000000 + g, $1, 's', 'open', 'normal', 'chat', 0, 0 FROM generate_series($2::int, $3::int) g`,
				cust.ID, next+1, next+add); err != nil {
				t.Fatal(err)
			}
			next += add
			if _, err := db.Write.ExecContext(ctx, `ANALYZE cases`); err != nil {
				t.Fatal(err)
			}

			ids := []string{"plan-1", "plan-7", "plan-42", "plan-99", "plan-250"}
			times := []int64{1, 2, 3, 4, 5}
			plan := strings.Join(sqldbtest.QueryPlan(t, db, qTouchCasesPG, ids, times), "\n")
			if strings.Contains(plan, "Seq Scan on cases") {
				t.Errorf("the batch touch reads the whole cases table:\n%s", plan)
			}
			if !strings.Contains(plan, "cases_pkey") {
				t.Errorf("the batch touch does not use the cases' key:\n%s", plan)
			}
		})
	}
}
