package backup

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/casevault/casevault/sqldb"
)

// A table's fingerprint is a digest of how the source database stores it,
// read in the backup's snapshot without reading its rows (issue 17 §4: a
// no-change incremental re-read and re-hashed every row). When a table's
// fingerprint equals the one an earlier backup of the same instance
// recorded, that backup's entry (rows, digests, chunk objects) describes
// the table exactly and is listed again: the table is not dumped. Every
// backup still lists all of its chunks, so each restores on its own.
//
// It must change whenever the dump could (a missed change would be a
// backup that silently restores old rows), so it covers the storage
// itself rather than a counter someone must remember to bump:
//
//   - SQLite: every page of the table's b-tree (interior, leaf and
//     overflow pages, from dbstat, their bytes from sqlite_dbpage) with
//     its page number, and the table's CREATE statement (a default of a
//     column added later is not in the rows). Any insert, update or delete
//     rewrites a page of the tree; a page rewritten with equal content
//     (or a VACUUM) only costs a dump. Indexes are not covered: the dump
//     never reads them for content.
//   - PostgreSQL: every visible row version's (ctid, xmin): an insert or
//     update makes a new version with a new transaction id, a delete
//     removes one (xmin keeps its raw value when a row is frozen). Only
//     while the cluster's 64-bit transaction counter is below 2^32: until
//     then no 32-bit xmin was ever given to two transactions, so one
//     (ctid, xmin) is one row version; after a wraparound every table is
//     dumped, as before.
//
// Both also cover the column list the dump selects and fpVersion, so a
// binary that dumps differently never reuses an older binary's entry; and
// only backups of the same instance, engine and schema version are
// candidates (reusable in run.go).
const fpVersion = "casevault-fp/1"

// fingerprint returns t's fingerprint in q's snapshot ("" when the engine
// offers none: the table is then always dumped).
func fingerprint(ctx context.Context, q querier, d sqldb.Dialect, t table) (string, error) {
	h := sha256.New()
	h.Write([]byte(fpVersion + "\x00" + t.Name + "\x00" + strings.Join(t.Columns, ",") + "\x00" + t.Order + "\x00"))
	switch d {
	case sqldb.SQLite:
		if err := sqliteFingerprint(ctx, q, t, h.Write); err != nil {
			return "", err
		}
		return "sqlite:" + hex.EncodeToString(h.Sum(nil)), nil
	case sqldb.Postgres:
		var xmax uint64
		var rows int64
		var agg *string
		// xmin and ctid are system columns of every heap row; the md5 of
		// their ordered list is computed by the server, so no row leaves it.
		qs := `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint, COUNT(*), md5(string_agg(ctid::text || ':' || xmin::text, ',' ORDER BY ctid)) FROM ` + t.Name
		if err := scanOne(ctx, q, qs, &xmax, &rows, &agg); err != nil {
			return "", fmt.Errorf("fingerprint %s: %w", t.Name, err)
		}
		if xmax >= 1<<32 {
			return "", nil
		}
		h.Write([]byte(strconv.FormatInt(rows, 10) + "\x00"))
		if agg != nil {
			h.Write([]byte(*agg))
		}
		return "postgres:" + hex.EncodeToString(h.Sum(nil)), nil
	}
	return "", nil
}

// sqliteFingerprint feeds the table's CREATE statement and its b-tree's
// pages (number and bytes) to write.
func sqliteFingerprint(ctx context.Context, q querier, t table, write func([]byte) (int, error)) error {
	rs, err := q.QueryContext(ctx, `SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?`, t.Name)
	if err != nil {
		return fmt.Errorf("fingerprint %s: %w", t.Name, err)
	}
	for rs.Next() {
		var s string
		if err := rs.Scan(&s); err != nil {
			rs.Close()
			return fmt.Errorf("fingerprint %s: %w", t.Name, err)
		}
		write([]byte(s + "\x00"))
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return fmt.Errorf("fingerprint %s: %w", t.Name, err)
	}

	// dbstat walks the tree in a fixed order (root, then children by
	// position); the pages are read through the connection's pager, so
	// they are the snapshot's, not the file's current ones.
	rs, err = q.QueryContext(ctx, `SELECT s.pageno, p.data FROM dbstat AS s JOIN sqlite_dbpage AS p ON p.pgno = s.pageno WHERE s.name = ?`, t.Name)
	if err != nil {
		return fmt.Errorf("fingerprint %s: %w", t.Name, err)
	}
	defer rs.Close()
	var pgno int64
	// RawBytes: the page is hashed in place, not copied out of the driver
	// again (the fingerprint reads the whole database).
	var data sql.RawBytes
	var num [8]byte
	for rs.Next() {
		if err := rs.Scan(&pgno, &data); err != nil {
			return fmt.Errorf("fingerprint %s: %w", t.Name, err)
		}
		binary.BigEndian.PutUint64(num[:], uint64(pgno))
		write(num[:])
		write(data)
	}
	if err := rs.Err(); err != nil {
		return fmt.Errorf("fingerprint %s: %w", t.Name, err)
	}
	return nil
}

// skipsByFingerprint says whether t may be listed from an earlier backup
// when its fingerprint is unchanged. customer_keys is always dumped: what
// its dump holds may be derived from more than its rows (key escrow wraps
// the keys for the backup), and it is small.
func skipsByFingerprint(t table) bool { return t.Name != "customer_keys" }

// scanOne scans the one row q returns.
func scanOne(ctx context.Context, q querier, qs string, dest ...any) error {
	rs, err := q.QueryContext(ctx, qs)
	if err != nil {
		return err
	}
	defer rs.Close()
	if !rs.Next() {
		if err := rs.Err(); err != nil {
			return err
		}
		return fmt.Errorf("no row")
	}
	if err := rs.Scan(dest...); err != nil {
		return err
	}
	return rs.Close()
}
