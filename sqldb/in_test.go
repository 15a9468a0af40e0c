package sqldb

import (
	"reflect"
	"testing"
)

func TestPlaceholdersAndArgs(t *testing.T) {
	for n, want := range map[int]string{1: "?", 3: "?,?,?"} {
		if got := Placeholders(n); got != want {
			t.Errorf("Placeholders(%d) = %q, want %q", n, got, want)
		}
	}
	if got := Rebind(Postgres, "x IN ("+Placeholders(3)+")"); got != "x IN ($1,$2,$3)" {
		t.Errorf("rebound = %q", got)
	}
	if got := Args([]int64{4, 5}); !reflect.DeepEqual(got, []any{int64(4), int64(5)}) {
		t.Errorf("Args = %#v", got)
	}
}
