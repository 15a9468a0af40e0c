package backup

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/casevault/casevault/sqldb"
)

// argsReader decodes a table dump into INSERT arguments for a restore.
// Dumps are canonical (dumpRows: every column, in table order, integers,
// booleans, null and strings), so a line is parsed directly into its
// values; a line in any other shape (an older dump lacking a column) goes
// through encoding/json like rowReader. The restore profile had
// encoding/json's map per row as its largest cost after the inserts.
type argsReader struct {
	br   *bufio.Reader
	t    table
	d    sqldb.Dialect
	keys [][]byte
	long []byte
	// slab is where the rows' argument slices are cut from (one
	// allocation per restoreBatch rows instead of one per row).
	slab []any
}

func newArgsReader(r io.Reader, t table, d sqldb.Dialect) *argsReader {
	keys := make([][]byte, len(t.Columns))
	for i, c := range t.Columns {
		if i > 0 {
			keys[i] = append(keys[i], ',')
		}
		keys[i] = append(appendJSONString(keys[i], c), ':')
	}
	keys[0] = append([]byte{'{'}, keys[0]...)
	return &argsReader{br: bufio.NewReaderSize(r, 256<<10), t: t, d: d, keys: keys}
}

// next returns the next row's arguments (in t.Columns order), or io.EOF.
func (ar *argsReader) next() ([]any, error) {
	line, err := ar.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// a row longer than the buffer (a long contact body)
		ar.long = append(ar.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = ar.br.ReadSlice('\n')
			ar.long = append(ar.long, line...)
		}
		line = ar.long
	}
	if err == io.EOF && len(line) == 0 {
		return nil, io.EOF
	}
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("%w: %s: %w", ErrDamaged, ar.t.Name, err)
	}
	line = bytes.TrimSuffix(line, []byte{'\n'})
	if vals, ok := ar.parse(line); ok {
		return vals, nil
	}

	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrDamaged, ar.t.Name, err)
	}
	for k, v := range m {
		if n, ok := v.(json.Number); ok {
			i, err := n.Int64()
			if err != nil {
				return nil, fmt.Errorf("%w: %s.%s: %w", ErrDamaged, ar.t.Name, k, err)
			}
			m[k] = i
		}
	}
	return ar.t.args(ar.d, m), nil
}

// parse reads a canonical line; ok is false for anything else. The
// line's strings share one copy of the line (one allocation per row, not
// one per value).
func (ar *argsReader) parse(line []byte) ([]any, bool) {
	if len(ar.slab) < len(ar.keys) {
		ar.slab = make([]any, len(ar.keys)*restoreBatch)
	}
	out := ar.slab[:len(ar.keys):len(ar.keys)]
	var str string // line as a string, made on the first unescaped value
	p := line
	for i, k := range ar.keys {
		if !bytes.HasPrefix(p, k) {
			return nil, false
		}
		p = p[len(k):]
		if len(p) == 0 {
			return nil, false
		}
		var v any
		switch c := p[0]; {
		case c == '"':
			end, esc := stringEnd(p)
			if end < 0 {
				return nil, false
			}
			if esc {
				var s string
				if json.Unmarshal(p[:end+1], &s) != nil {
					return nil, false
				}
				v = s
			} else {
				if str == "" {
					str = string(line)
				}
				at := len(line) - len(p)
				v = str[at+1 : at+end]
			}
			p = p[end+1:]
		case c == 'n' && bytes.HasPrefix(p, []byte("null")):
			p = p[4:]
		case c == 't' && bytes.HasPrefix(p, []byte("true")):
			v, p = true, p[4:]
		case c == 'f' && bytes.HasPrefix(p, []byte("false")):
			v, p = false, p[5:]
		case c == '-' || c >= '0' && c <= '9':
			j := 1
			for j < len(p) && p[j] >= '0' && p[j] <= '9' {
				j++
			}
			n, ok := parseInt(p[:j])
			if !ok {
				return nil, false
			}
			v, p = n, p[j:]
		default:
			return nil, false
		}
		if b, ok := v.(bool); ok && ar.d == sqldb.SQLite {
			if b {
				v = int64(1)
			} else {
				v = int64(0)
			}
		}
		out[i] = v
	}
	if len(p) != 1 || p[0] != '}' {
		return nil, false
	}
	ar.slab = ar.slab[len(ar.keys):]
	return out, true
}

// parseInt parses a JSON integer (an optional minus and digits) without
// converting it to a string first; ok is false out of int64's range.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	if len(b) == 19 { // near the bounds: let strconv decide
		s := string(b)
		if neg {
			s = "-" + s
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// stringEnd finds the quote closing the JSON string p starts with, and
// whether the string holds an escape.
func stringEnd(p []byte) (int, bool) {
	esc := false
	for i := 1; i < len(p); i++ {
		switch p[i] {
		case '\\':
			esc = true
			i++
		case '"':
			return i, esc
		}
	}
	return -1, esc
}
