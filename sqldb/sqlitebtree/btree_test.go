package sqlitebtree_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/casevault/casevault/sqldb/sqlitebtree"

	_ "modernc.org/sqlite"
)

func open(t *testing.T, pragmas ...string) *sql.DB {
	t.Helper()
	dsn := "file:" + filepath.Join(t.TempDir(), "t.db") + "?_pragma=journal_mode(WAL)"
	for _, p := range pragmas {
		dsn += "&_pragma=" + p
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// render writes a row as text, the same way for both readers, so that a
// difference in type or value shows.
func render(buf *bytes.Buffer, vals []any) {
	for i, v := range vals {
		if i > 0 {
			buf.WriteByte('|')
		}
		switch x := v.(type) {
		case nil:
			buf.WriteString("NULL")
		case int64:
			fmt.Fprintf(buf, "i%d", x)
		case float64:
			fmt.Fprintf(buf, "f%v", x)
		case string:
			fmt.Fprintf(buf, "t%q", x)
		case []byte:
			fmt.Fprintf(buf, "b%x", x)
		default:
			fmt.Fprintf(buf, "?%T", x)
		}
	}
	buf.WriteByte('\n')
}

// viaSQL is what the page reader must reproduce: the rows of the query,
// in its order, with the driver's types.
func viaSQL(t *testing.T, q interface {
	Query(string, ...any) (*sql.Rows, error)
}, table string, cols []string, order string) string {
	t.Helper()
	rs, err := q.Query("SELECT " + strings.Join(cols, ", ") + " FROM " + table + " ORDER BY " + order)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var buf bytes.Buffer
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rs.Next() {
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		render(&buf, vals)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func viaPages(t *testing.T, tx *sql.Tx, table, order string) (string, []string) {
	t.Helper()
	ctx := context.Background()
	tb, err := sqlitebtree.Open(ctx, tx, table, order)
	if err != nil {
		t.Fatalf("open %s: %v", table, err)
	}
	var buf bytes.Buffer
	err = tb.Scan(ctx, func(vals []sqlitebtree.Value) error {
		row := make([]any, len(vals))
		for i, v := range vals {
			switch v.Type {
			case sqlitebtree.Null:
			case sqlitebtree.Integer:
				row[i] = v.Int
			case sqlitebtree.Float:
				row[i] = v.Float
			case sqlitebtree.Text:
				row[i] = string(v.Bytes)
			case sqlitebtree.Blob:
				row[i] = append([]byte{}, v.Bytes...)
			}
		}
		render(&buf, row)
		return nil
	})
	if err != nil {
		t.Fatalf("scan %s: %v", table, err)
	}
	return buf.String(), tb.Columns()
}

func randText(r *rand.Rand, n int) string {
	const alphabet = "abcXYZ 09\"\\\n\t\x01é中文😀'"
	rs := []rune(alphabet)
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteRune(rs[r.IntN(len(rs))])
	}
	return b.String()
}

// TestScanMatchesSQL fills tables of every shape the reader takes with
// rows of every storage class and size (overflow pages included, in the
// table and in the index), in an order unlike the key's, deletes some,
// adds columns after the fact, and checks the page reader returns exactly
// what SELECT ... ORDER BY does, in the same snapshot.
func TestScanMatchesSQL(t *testing.T) {
	cases := []struct {
		name     string
		pragmas  []string
		rows     int
		maxText  int
		maxKey   int
		order    string
		create   string
		addLater []string
	}{
		{name: "text key, small rows, deep tree", rows: 30000, maxText: 200, maxKey: 40, order: "id",
			create: `CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, f REAL, s TEXT, b BLOB, z TEXT)`},
		{name: "text key, overflow rows and keys", rows: 600, maxText: 20000, maxKey: 3000, order: "id",
			create:   `CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, f REAL, s TEXT, b BLOB, z TEXT)`,
			addLater: []string{`ALTER TABLE t ADD COLUMN a1 TEXT`, `ALTER TABLE t ADD COLUMN a2 TEXT NOT NULL DEFAULT 'it''s'`, `ALTER TABLE t ADD COLUMN a3 INTEGER NOT NULL DEFAULT -7`}},
		{name: "integer key (rowid alias)", rows: 20000, maxText: 300, maxKey: 0, order: "id",
			create:   `CREATE TABLE t (s TEXT, id INTEGER PRIMARY KEY, n INTEGER, f REAL, b BLOB, z TEXT)`,
			addLater: []string{`ALTER TABLE t ADD COLUMN a1 INTEGER`}},
		{name: "text key, 512-byte pages", pragmas: []string{"page_size(512)"}, rows: 3000, maxText: 1500, maxKey: 300, order: "id",
			create: `CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, f REAL, s TEXT, b BLOB, z TEXT)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := open(t, tc.pragmas...)
			exec(t, db, tc.create)
			r := rand.New(rand.NewPCG(1, uint64(len(tc.name))))
			intKey := tc.maxKey == 0
			ins := func(lo, hi int) {
				tx, err := db.Begin()
				if err != nil {
					t.Fatal(err)
				}
				for i := lo; i < hi; i++ {
					var id any = fmt.Sprintf("%0*x-%s", 8, r.Uint32(), randText(r, r.IntN(tc.maxKey+1)))
					if intKey {
						id = r.Int64N(1<<40) - 1<<39
					}
					// Every integer width and both stored constants 0 and 1.
					n := []any{nil, int64(0), int64(1), int64(-1), int64(127), int64(-32768), int64(1 << 23), int64(-1 << 31), int64(1 << 47), int64(-1 << 63), r.Int64()}[r.IntN(11)]
					f := []any{nil, 0.5, -1e300, r.Float64()}[r.IntN(4)]
					s := randText(r, r.IntN(tc.maxText+1))
					var b any
					if r.IntN(3) > 0 {
						bb := make([]byte, r.IntN(tc.maxText+1))
						for j := range bb {
							bb[j] = byte(r.Uint32())
						}
						b = bb
					}
					z := []any{nil, "", "x"}[r.IntN(3)]
					if _, err := tx.Exec(`INSERT OR IGNORE INTO t (id, n, f, s, b, z) VALUES (?, ?, ?, ?, ?, ?)`, id, n, f, s, b, z); err != nil {
						t.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			ins(0, tc.rows/2)
			exec(t, db, `DELETE FROM t WHERE rowid % 7 = 3`)
			for _, a := range tc.addLater {
				exec(t, db, a)
			}
			ins(tc.rows/2, tc.rows)

			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			got, cols := viaPages(t, tx, "t", tc.order)
			want := viaSQL(t, tx, "t", cols, tc.order)
			if got != want {
				t.Fatalf("page reader and SQL differ (%d vs %d bytes): first difference at byte %d", len(got), len(want), firstDiff(got, want))
			}
			if n := strings.Count(want, "\n"); n < tc.rows/2 {
				t.Fatalf("only %d rows compared", n)
			}
		})
	}
}

func firstDiff(a, b string) int {
	for i := 0; i < min(len(a), len(b)); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestScanReadsItsSnapshot: rows committed by another connection after the
// read transaction began are not read, as SQL in the same transaction
// would not read them; the pages come from the snapshot, WAL included.
func TestScanReadsItsSnapshot(t *testing.T) {
	dir := t.TempDir()
	dsn := "file:" + filepath.Join(dir, "t.db") + "?_pragma=journal_mode(WAL)"
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	exec(t, w, `CREATE TABLE t (id TEXT PRIMARY KEY, s TEXT)`)
	for i := 0; i < 2000; i++ {
		exec(t, w, `INSERT INTO t VALUES (?, ?)`, fmt.Sprintf("k%05d", i), strings.Repeat("x", i%500))
	}
	rd, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	tx, err := rd.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	want := viaSQL(t, tx, "t", []string{"id", "s"}, "id") // pins the snapshot

	exec(t, w, `UPDATE t SET s = 'changed' WHERE id < 'k01000'`)
	exec(t, w, `DELETE FROM t WHERE id >= 'k01500'`)
	for i := 0; i < 500; i++ {
		exec(t, w, `INSERT INTO t VALUES (?, 'new')`, fmt.Sprintf("a%05d", i))
	}

	got, _ := viaPages(t, tx, "t", "id")
	if got != want {
		t.Fatalf("the page reader saw writes committed after the snapshot (first difference at byte %d)", firstDiff(got, want))
	}
}

// TestOpenRefusesShapesItCannotRead: each is refused before a row is read,
// with ErrUnsupported, so the caller can use a query instead.
func TestOpenRefusesShapesItCannotRead(t *testing.T) {
	cases := []struct {
		name, create, order string
	}{
		{"without rowid", `CREATE TABLE t (id TEXT PRIMARY KEY, s TEXT) WITHOUT ROWID`, "id"},
		{"order by two columns", `CREATE TABLE t (a TEXT, b TEXT, PRIMARY KEY (a, b))`, "a, b"},
		{"order by a non-key column", `CREATE TABLE t (id TEXT PRIMARY KEY, s TEXT)`, "s"},
		{"no primary key", `CREATE TABLE t (id TEXT, s TEXT)`, "id"},
		{"unknown column", `CREATE TABLE t (id TEXT PRIMARY KEY)`, "nope"},
		{"generated column", `CREATE TABLE t (id TEXT PRIMARY KEY, s TEXT, g TEXT GENERATED ALWAYS AS (upper(s)))`, "id"},
		{"key in another collation", `CREATE TABLE t (id TEXT PRIMARY KEY COLLATE NOCASE, s TEXT)`, "id"},
		{"default it cannot evaluate", `CREATE TABLE t (id TEXT PRIMARY KEY, s TEXT DEFAULT (lower('X')))`, "id"},
		{"text default in an integer column", `CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER DEFAULT '5')`, "id"},
		{"integer key descending (an index of its own)", `CREATE TABLE t (id INTEGER PRIMARY KEY DESC, s TEXT)`, "id"},
		{"missing table", ``, "id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := open(t)
			if tc.create != "" {
				exec(t, db, tc.create)
			}
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			_, err = sqlitebtree.Open(context.Background(), tx, "t", tc.order)
			if !errors.Is(err, sqlitebtree.ErrUnsupported) {
				t.Fatalf("Open = %v, want ErrUnsupported", err)
			}
		})
	}
}

// TestScanStopsOnCallbackError: the callback's error ends the scan and is
// returned as it was.
func TestScanStopsOnCallbackError(t *testing.T) {
	db := open(t)
	exec(t, db, `CREATE TABLE t (id TEXT PRIMARY KEY)`)
	for i := 0; i < 100; i++ {
		exec(t, db, `INSERT INTO t VALUES (?)`, fmt.Sprint(i))
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	tb, err := sqlitebtree.Open(context.Background(), tx, "t", "id")
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	n := 0
	err = tb.Scan(context.Background(), func([]sqlitebtree.Value) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 10 {
		t.Fatalf("Scan = %v after %d rows, want stop after 10", err, n)
	}
}
