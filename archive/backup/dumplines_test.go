package backup

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestDumpLinesMatchDumpRows: SQLite's own JSON lines (dumpLines) are
// byte for byte the Go encoder's (dumpRows) on every value the two could
// write differently: each control character, DEL, backslash sequences
// that look like escapes, bytes that are not UTF-8 (alone, truncated
// sequences, surrogates), U+2028, emoji, quotes; booleans 0, 1, 2 and
// text in a boolean column; the extreme integers; NULL. The backup's
// digests (and the restore's proof) depend on it.
func TestDumpLinesMatchDumpRows(t *testing.T) {
	ctx := context.Background()
	db := sqldbtest.Open(t, sqldb.SQLite)
	names := []string{"plain", `quote " and \ backslash`, `literal \b \f \n \\b \u0008`, "DEL \x7f", "U+2028 \u2028 emoji 📦 中文",
		"bad \xff\xfe bytes", "truncated \xe4\xb8", "surrogate \xed\xa0\x80", "tail \xc3", ""}
	for c := 0; c < 0x20; c++ {
		names = append(names, fmt.Sprintf("ctl %c end", rune(c)))
	}
	bools := []any{int64(0), int64(1), int64(2), "yes"}
	ints := []int64{0, -1, 1<<63 - 1, -1 << 63}
	for i, name := range names {
		if _, err := db.Write.ExecContext(ctx, `INSERT INTO customers (id, name, email, consent_location, consent_marketing, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			fmt.Sprintf("c%03d", i), name, name+"@x", bools[i%len(bools)], bools[(i+1)%len(bools)], ints[i%len(ints)], ints[(i+1)%len(ints)]); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"customers", "counters", "audit_head"} {
		tb, _ := tableByName(name)
		var slow, fast bytes.Buffer
		var slowKeys, fastKeys []any
		if _, err := dumpRows(ctx, db.Read, tb, "", nil, func(line []byte, vals []any) error {
			slow.Write(line)
			slowKeys = append(slowKeys, vals[0])
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		n, err := dumpLines(ctx, db.Read, db.Dialect, tb, func(line []byte, vals []any) error {
			fast.Write(line)
			fastKeys = append(fastKeys, vals[0])
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 || !bytes.Equal(fast.Bytes(), slow.Bytes()) || fmt.Sprint(fastKeys) != fmt.Sprint(slowKeys) {
			fl, sl := bytes.Split(fast.Bytes(), []byte("\n")), bytes.Split(slow.Bytes(), []byte("\n"))
			for i := range min(len(fl), len(sl)) {
				if !bytes.Equal(fl[i], sl[i]) {
					t.Fatalf("%s line %d:\nsqlite %q\ngo     %q", name, i, fl[i], sl[i])
				}
			}
			t.Fatalf("%s: %d rows; lines or keys differ (%d vs %d lines)", name, n, len(fl), len(sl))
		}
	}
}
