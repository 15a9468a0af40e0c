package backup

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/casevault/casevault/sqldb"
)

// parseInt reads what strconv.ParseInt reads, and refuses the rest.
func TestParseInt(t *testing.T) {
	for _, s := range []string{"0", "7", "-7", "255", "256", "1733050000000000", "-1733050000000000",
		strconv.FormatInt(math.MaxInt64, 10), strconv.FormatInt(math.MinInt64, 10),
		"9223372036854775808", "-9223372036854775809", "99999999999999999999", "-", "", "1-2"} {
		want, err := strconv.ParseInt(s, 10, 64)
		got, ok := parseInt([]byte(s))
		if ok != (err == nil) || ok && got != want {
			t.Errorf("parseInt(%q) = %d, %v; strconv: %d, %v", s, got, ok, want, err)
		}
	}
}

// A canonical line decodes to its values: strings cut from one copy of
// the line (escaped ones decoded), integers, booleans as SQLite's 0/1 and
// null; rows decoded one after another do not share argument slices.
func TestArgsReaderParse(t *testing.T) {
	tb := table{Name: "t", Columns: []string{"id", "n", "b", "s", "e", "z"}, Bools: []string{"b"}}
	lines := `{"id":"a1","n":-42,"b":true,"s":"héllo 你好","e":"q\"\u00e9","z":null}` + "\n" +
		`{"id":"a2","n":1733050000000000,"b":false,"s":"","e":"\n","z":null}` + "\n"
	ar := newArgsReader(strings.NewReader(lines), tb, sqldb.SQLite)
	first, err := ar.next()
	if err != nil {
		t.Fatal(err)
	}
	second, err := ar.next()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		got, want []any
	}{
		{first, []any{"a1", int64(-42), int64(1), "héllo 你好", "q\"é", nil}},
		{second, []any{"a2", int64(1733050000000000), int64(0), "", "\n", nil}},
	} {
		if len(c.got) != len(c.want) {
			t.Fatalf("got %v, want %v", c.got, c.want)
		}
		for i := range c.want {
			if c.got[i] != c.want[i] {
				t.Errorf("column %s: got %#v, want %#v", tb.Columns[i], c.got[i], c.want[i])
			}
		}
	}
}
