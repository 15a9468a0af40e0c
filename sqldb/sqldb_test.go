package sqldb_test

import (
	"context"
	"strings"
	"testing"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

func TestMigrateIsIdempotent(t *testing.T) {
	for _, d := range sqldbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			db := sqldbtest.Open(t, d)
			ctx := context.Background()
			v1, err := db.Version(ctx)
			if err != nil || v1 < 1 {
				t.Fatalf("version after first migrate = %d, %v", v1, err)
			}
			if err := db.Migrate(ctx); err != nil {
				t.Fatalf("second migrate: %v", err)
			}
			v2, _ := db.Version(ctx)
			if v2 != v1 {
				t.Fatalf("version changed on re-run: %d -> %d", v1, v2)
			}
		})
	}
}

func TestRebind(t *testing.T) {
	cases := []struct {
		d    sqldb.Dialect
		in   string
		want string
	}{
		{sqldb.SQLite, "a = ? AND b = ?", "a = ? AND b = ?"},
		{sqldb.Postgres, "a = ? AND b = ?", "a = $1 AND b = $2"},
		{sqldb.Postgres, "no params", "no params"},
	}
	for _, c := range cases {
		if got := sqldb.Rebind(c.d, c.in); got != c.want {
			t.Errorf("Rebind(%s, %q) = %q, want %q", c.d, c.in, got, c.want)
		}
	}
}

func TestRejectsNonPostgresURL(t *testing.T) {
	_, err := sqldb.Open(context.Background(), sqldb.Config{URL: "mysql://root:secret@x/db"})
	if err == nil {
		t.Fatal("want error for mysql URL")
	}
	if got := err.Error(); strings.Contains(got, "secret") {
		t.Fatalf("error leaks password: %s", got)
	}
}
