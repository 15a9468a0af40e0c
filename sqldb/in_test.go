package sqldb

import (
	"reflect"
	"testing"
)

func TestPlaceholdersAndAnyOf(t *testing.T) {
	for n, want := range map[int]string{1: "?", 3: "?,?,?"} {
		if got := Placeholders(n); got != want {
			t.Errorf("Placeholders(%d) = %q, want %q", n, got, want)
		}
	}
	if got := Rebind(Postgres, "x IN ("+Placeholders(3)+")"); got != "x IN ($1,$2,$3)" {
		t.Errorf("rebound = %q", got)
	}
	if cond, args := AnyOf(SQLite, "x", []string{"a", "b"}); cond != "x IN (?,?)" || !reflect.DeepEqual(args, []any{"a", "b"}) {
		t.Errorf("AnyOf(SQLite) = %q, %#v", cond, args)
	}
	if cond, args := AnyOf(Postgres, "x", []string{"a", "b"}); cond != "x = ANY(?::text[])" || !reflect.DeepEqual(args, []any{[]string{"a", "b"}}) {
		t.Errorf("AnyOf(Postgres) = %q, %#v", cond, args)
	}
}
