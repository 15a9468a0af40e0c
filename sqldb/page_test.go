package sqldb_test

import (
	"context"
	"database/sql"
	"slices"
	"testing"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

func TestPage(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := db.Write.ExecContext(ctx, `CREATE TABLE page_t (id INTEGER PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 5; i++ {
			if _, err := db.Write.ExecContext(ctx, db.Rebind(`INSERT INTO page_t (id) VALUES (?)`), i); err != nil {
				t.Fatal(err)
			}
		}
		scan := func(rows *sql.Rows) (int, error) {
			var id int
			return id, rows.Scan(&id)
		}
		q := db.Rebind(`SELECT id FROM page_t WHERE id > ? ORDER BY id LIMIT ?`)

		for _, tc := range []struct {
			after, limit int
			want         []int
			more         bool
		}{
			{0, 2, []int{1, 2}, true},
			{2, 3, []int{3, 4, 5}, false},
			{3, 2, []int{4, 5}, false},
			{5, 2, []int{}, false},
		} {
			args := make([]any, 1, 4)
			args[0] = tc.after
			got, more, err := sqldb.Page(ctx, db.Read, q, args, tc.limit, scan)
			if err != nil || more != tc.more || got == nil || !slices.Equal(got, tc.want) {
				t.Errorf("after %d limit %d: %v more=%v err=%v, want %v more=%v", tc.after, tc.limit, got, more, err, tc.want, tc.more)
			}
			if spare := args[:2][1]; spare != nil {
				t.Errorf("Page wrote %v into the spare capacity of the caller's arguments", spare)
			}
		}
	})
}
