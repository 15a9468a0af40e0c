package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
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

// TestCustomerDocumentsFollowTheFeed (issue 16 §2): a customer without a
// case is in the index by name from their creation; a rename replaces the
// name; deletion by the customer_profile rule (DeleteCustomerProfile) and
// erasure (DeleteCustomer) take it out; a rebuild writes every customer.
// Each step goes through the outbox, in the write's transaction.
func TestCustomerDocumentsFollowTheFeed(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		st := sqlstore.New(db, sqlstore.Options{})
		svc := cases.NewService(st, nil)
		ix := replicaIndex(t, st, "customers")
		actor := cases.Actor{}
		mk := func(name string) string {
			c, err := svc.CreateCustomer(ctx, cases.NewCustomer{Name: &name}, actor)
			if err != nil {
				t.Fatal(err)
			}
			return c.ID
		}
		wil, bert, ida := mk("Wilhelmina Caseless"), mk("Bertram Profile"), mk("Ida Erased")
		byName := func(name string, want ...string) {
			t.Helper()
			testkit.Eventually(t, 10*time.Second, fmt.Sprintf("customers named %s to be %v", name, want), func() bool {
				got, err := ix.CustomerIDsByName(ctx, name, 0, 10)
				return err == nil && (slices.Equal(got, want) || len(got) == 0 && len(want) == 0)
			})
		}
		byName("Wilhelmina", wil)
		byName("Bertram", bert)
		byName("Ida", ida)

		renamed := "Wilhelmina Renamed"
		if _, err := svc.UpdateCustomer(ctx, wil, cases.CustomerPatch{Name: &renamed}, actor); err != nil {
			t.Fatal(err)
		}
		byName("Renamed", wil)
		byName("Caseless")

		if err := db.InTx(ctx, func(tx *sql.Tx) error {
			n, err := sqlstore.DeleteCustomerProfile(ctx, db, tx, bert)
			if err == nil && n != 1 {
				err = fmt.Errorf("deleted %d profiles", n)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		byName("Bertram")

		if err := db.InTx(ctx, func(tx *sql.Tx) error { return sqlstore.DeleteCustomer(ctx, db, tx, ida) }); err != nil {
			t.Fatal(err)
		}
		byName("Ida")

		// a rebuild lists every customer
		dir := t.TempDir()
		if err := ix.Reindex(ctx, func(ctx context.Context) (search.Engine, error) { return bleve.Build(ctx, dir) }); err != nil {
			t.Fatal(err)
		}
		byName("Wilhelmina", wil)
		byName("Bertram")
	})
}
