package backup

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqlitebtree"
)

// snapshotTx opens the read transaction every table is dumped from, so the
// backup is one consistent state while writers go on: on SQLite a WAL read
// transaction (it sees the database as of its first read), on PostgreSQL a
// REPEATABLE READ snapshot.
func snapshotTx(ctx context.Context, db *sqldb.DB) (*sql.Tx, error) {
	opts := &sql.TxOptions{ReadOnly: true}
	if db.Dialect == sqldb.Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := db.Read.BeginTx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return tx, nil
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// dumpTable writes t's rows as canonical NDJSON: columns in table order,
// booleans as true/false whatever the engine, integers as numbers, text as
// JSON strings. Equal content gives equal bytes on either engine, which is
// what lets a restore prove itself by digest. each sees every row.
func dumpTable(ctx context.Context, q querier, t table, where string, args []any, w io.Writer, each func(row []any) error) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	n, err := dumpRows(ctx, q, t, where, args, func(line []byte, vals []any) error {
		if _, err := bw.Write(line); err != nil {
			return err
		}
		if each != nil {
			return each(vals)
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// dumpRows hands every row of t to row as one canonical NDJSON line (with
// its newline) and its scanned values; both are only valid during the call.
func dumpRows(ctx context.Context, q querier, t table, where string, args []any, row func(line []byte, vals []any) error) (int64, error) {
	query := "SELECT " + strings.Join(t.selectColumns(), ", ") + " FROM " + t.Name
	if where != "" {
		query += " WHERE " + where
	}

	query += " ORDER BY " + t.Order
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("dump %s: %w", t.Name, err)
	}
	defer rows.Close()
	vals := make([]any, len(t.Columns))
	ptrs := make([]any, len(t.Columns))
	for i := range vals {
		ptrs[i] = &vals[i]
	}

	bools := make([]bool, len(t.Columns))
	for i, c := range t.Columns {
		bools[i] = t.isBool(c)
	}

	keys := columnKeys(t)

	var n int64
	buf := make([]byte, 0, 4096)
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, fmt.Errorf("dump %s: %w", t.Name, err)
		}
		buf = append(buf[:0], '{')
		for i, c := range t.Columns {
			buf = append(buf, keys[i]...)
			if buf, err = appendValue(buf, vals[i], bools[i]); err != nil {
				return n, fmt.Errorf("dump %s.%s: %w", t.Name, c, err)
			}
		}
		buf = append(buf, '}', '\n')
		if err := row(buf, vals); err != nil {
			return n, err
		}
		n++
	}

	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("dump %s: %w", t.Name, err)
	}

	return n, nil
}

// rowSource hands every row of a table, in the dump's order, to row: its
// canonical line, its key (the first column: chunk boundaries) and its
// scanned values (nil when read from pages); all only valid during the
// call. It returns how many rows it handed on.
type rowSource func(ctx context.Context, row func(line []byte, key any, vals []any) error) (int64, error)

// queryRows reads t through a query (either engine).
func queryRows(q querier, t table) rowSource {
	return func(ctx context.Context, row func(line []byte, key any, vals []any) error) (int64, error) {
		return dumpRows(ctx, q, t, "", nil, func(line []byte, vals []any) error {
			return row(line, vals[0], vals)
		})
	}
}

// pageRows reads t from its SQLite b-tree pages in q's snapshot
// (sqlitebtree): the same lines as queryRows, byte for byte
// (TestPageDumpMatchesQueryDump), at a fraction of the CPU. An error
// wrapping sqlitebtree.ErrUnsupported means t must be read by a query.
func pageRows(ctx context.Context, q sqlitebtree.Querier, t table) (rowSource, error) {
	tb, err := sqlitebtree.Open(ctx, q, t.Name, t.Order)
	if err != nil {
		return nil, err
	}

	// Where each dumped column is in the record; -1: written as null
	// (the escrowed column).
	pos := make([]int, len(t.Columns))
	for i, c := range t.Columns {
		pos[i] = -1
		if c == t.Escrowed {
			continue
		}
		for j, rc := range tb.Columns() {
			if rc == c {
				pos[i] = j
			}
		}
		if pos[i] < 0 {
			return nil, fmt.Errorf("dump %s: no column %s: %w", t.Name, c, sqlitebtree.ErrUnsupported)
		}
	}
	bools := make([]bool, len(t.Columns))
	for i, c := range t.Columns {
		bools[i] = t.isBool(c)
	}
	keys := columnKeys(t)

	return func(ctx context.Context, row func(line []byte, key any, vals []any) error) (int64, error) {
		var n int64
		buf := make([]byte, 0, 4096)
		err := tb.Scan(ctx, func(vals []sqlitebtree.Value) error {
			buf = append(buf[:0], '{')
			var key any
			for i, p := range pos {
				buf = append(buf, keys[i]...)
				if p < 0 {
					buf = append(buf, "null"...)
					continue
				}
				v := vals[p]
				switch v.Type {
				case sqlitebtree.Null:
					buf = append(buf, "null"...)
				case sqlitebtree.Integer:
					if bools[i] {
						buf = strconv.AppendBool(buf, v.Int != 0)
					} else {
						buf = strconv.AppendInt(buf, v.Int, 10)
					}
				case sqlitebtree.Text, sqlitebtree.Blob:
					// A view of the page's bytes, not a copy: it is quoted
					// into buf at once and not kept.
					buf = appendJSONString(buf, unsafe.String(unsafe.SliceData(v.Bytes), len(v.Bytes)))
				default:
					return fmt.Errorf("dump %s.%s: unsupported column type float64", t.Name, t.Columns[i])
				}
				if i == 0 {
					key = keyOf(v)
				}
			}
			buf = append(buf, '}', '\n')
			n++
			return row(buf, key, nil)
		})
		return n, err
	}, nil
}

// keyOf is a page value as the chunk boundary sees a scanned one: text as
// a string, a blob as bytes, an integer as int64.
func keyOf(v sqlitebtree.Value) any {
	switch v.Type {
	case sqlitebtree.Integer:
		return v.Int
	case sqlitebtree.Text:
		return unsafe.String(unsafe.SliceData(v.Bytes), len(v.Bytes))
	case sqlitebtree.Blob:
		return v.Bytes
	}
	return nil
}

// columnKeys are t's column names quoted once, each with its comma and
// colon, not once per row.
func columnKeys(t table) [][]byte {
	keys := make([][]byte, len(t.Columns))
	for i, c := range t.Columns {
		if i > 0 {
			keys[i] = append(keys[i], ',')
		}
		keys[i] = append(appendJSONString(keys[i], c), ':')
	}
	return keys
}

func appendValue(buf []byte, v any, isBool bool) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...), nil
	case int64:
		if isBool {
			return strconv.AppendBool(buf, x != 0), nil
		}
		return strconv.AppendInt(buf, x, 10), nil
	case int32:
		return appendValue(buf, int64(x), isBool)
	case bool:
		if isBool {
			return strconv.AppendBool(buf, x), nil
		}
		if x {
			return append(buf, '1'), nil
		}
		return append(buf, '0'), nil
	case string:
		return appendJSONString(buf, x), nil
	case []byte:
		return appendJSONString(buf, string(x)), nil
	default:
		return nil, fmt.Errorf("unsupported column type %T", v)
	}
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as JSON. Unlike encoding/json it does not
// escape <, > and &: the output is data, never HTML, and stays byte-exact.
// Invalid UTF-8 becomes \ufffd, byte by byte, as the encoder would. Runs
// of bytes that need no escape are copied whole: once s is known to be
// valid UTF-8, its multi-byte runes need no decoding either (decoding
// every rune of Chinese text was a tenth of a full backup's CPU).
func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	valid := utf8.ValidString(s)
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && (c < utf8.RuneSelf || valid) {
			i++
			continue
		}
		buf = append(buf, s[start:i]...)
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				buf = append(buf, `\ufffd`...)
			} else {
				buf = append(buf, s[i:i+size]...)
			}
			i += size
		}
		start = i
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// rowReader decodes a table dump back into rows.
type rowReader struct {
	dec *json.Decoder
	t   table
}

func newRowReader(r io.Reader, t table) *rowReader {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	return &rowReader{dec: dec, t: t}
}

// next returns the next row as column → value (int64, string, bool or
// nil), or io.EOF.
func (rr *rowReader) next() (map[string]any, error) {
	var m map[string]any
	if err := rr.dec.Decode(&m); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrDamaged, rr.t.Name, err)
	}
	for k, v := range m {
		if n, ok := v.(json.Number); ok {
			i, err := n.Int64()
			if err != nil {
				return nil, fmt.Errorf("%w: %s.%s: %w", ErrDamaged, rr.t.Name, k, err)
			}
			m[k] = i
		}
	}
	return m, nil
}

// args orders a row's values for an INSERT of t.Columns on dialect d.
func (t table) args(d sqldb.Dialect, row map[string]any) []any {
	out := make([]any, len(t.Columns))
	for i, c := range t.Columns {
		v := row[c]
		if b, ok := v.(bool); ok && d == sqldb.SQLite {
			if b {
				v = int64(1)
			} else {
				v = int64(0)
			}
		}
		out[i] = v
	}
	return out
}
