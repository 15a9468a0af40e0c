package audit

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/casevault/casevault/sqldb"
)

// List limits.
const (
	DefaultListLimit = 50
	MaxListLimit     = 1000
)

// Filter narrows List and Export. Empty fields match everything.
type Filter struct {
	// Actor matches the actor id or the actor name exactly.
	Actor string
	// Action matches exactly, or as a prefix when it ends in "*" ("case.*").
	Action     string
	TargetType string
	TargetID   string
	Outcome    string
	// From is inclusive, To exclusive.
	From, To time.Time
	// Cursor continues a List from the next value it returned; Limit is the
	// page size (default DefaultListLimit, at most MaxListLimit). Export
	// ignores both.
	Cursor string
	Limit  int
}

// ParseTarget splits the API's target parameter, "TYPE" or "TYPE:ID".
func ParseTarget(s string) (targetType, targetID string) {
	t, id, _ := strings.Cut(s, ":")
	return t, id
}

// FilterError is a bad filter, cursor or limit; it names the parameter
// (the API answers 422 naming it) and matches ErrInvalid.
type FilterError struct {
	Field   string
	Message string
}

func (e *FilterError) Error() string { return "audit: invalid " + e.Field + ": " + e.Message }
func (e *FilterError) Unwrap() error { return ErrInvalid }

const selectEvents = `SELECT seq, at, actor_id, actor_name, role, action, target_type, target_id,
 request_id, client_ip, outcome, detail, prev_hash, hash FROM audit_events`

// byTimeIndex reads audit_events down its time index (SQLite's INDEXED
// BY), for an actor in a time range whose actor is busy (busyActor).
const byTimeIndex = ` INDEXED BY audit_events_at`

// busyEvents is the number of events from which an actor or an action
// prefix counts as busy (busyActor, exportQuery).
const busyEvents = 10_000

// busyActor reports whether a list or export of f reads the time index,
// keeping the actor's events of the range, rather than the actor's own
// indexes (gathering the actor's events and sorting them by time). Only
// SQLite asks: it keeps no statistics, and for
// an actor in a time range it always took the actor's indexes, so a page
// of an hour of one agent of 17 cost 234 ms at 1,000,000 events, 558
// times the unfiltered page (BenchmarkListPage), growing with the agent's
// whole history. Down the time index a page costs what the range holds
// until the page is full, and stops there. That is worse only for an
// actor with few events, whom the actor's indexes serve best: so it
// counts the actor's events, up to l.busy, from the two actor
// indexes alone (covering: for 10,000, 2-13 times reading a page's keys),
// and takes the time index from there. PostgreSQL's planner chooses from
// its statistics (a page 1.85 times the unfiltered one). Only for an
// actor and a time range alone: an action, a target or an outcome has an
// index of its own, which SQLite may rightly prefer to both.
func (l *Log) busyActor(ctx context.Context, q sqldb.RowQuerier, f Filter) (bool, error) {
	others := f.Action != "" || f.TargetType != "" || f.TargetID != "" || f.Outcome != ""
	if f.Actor == "" || !f.timed() || others || l.db.Dialect != sqldb.SQLite {
		return false, nil
	}

	var n int
	err := q.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM audit_events WHERE actor_id = ? LIMIT ?))
 + (SELECT COUNT(*) FROM (SELECT 1 FROM audit_events WHERE actor_name = ? LIMIT ?))`, f.Actor, l.busy, f.Actor, l.busy).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("audit: count the actor's events: %w", err)
	}
	return n >= l.busy, nil
}

// reads is how a list or an export of a filter reads the trail, where the
// filter alone does not say (Log.reads decides).
type reads struct {
	// timeIndex: an actor in a time range, down the time index.
	timeIndex bool
	// byActions: an action prefix as the actions it matches, each read
	// down its own index (none: the page is empty).
	byActions bool
	actions   []string
}

// maxPrefixActions bounds the reads of a prefix's page: with more actions
// it matches, the page is read as before, down the primary key.
const maxPrefixActions = 32

// prefixActions reports, for a List or an Export of f, whether its action prefix is read
// as the actions it matches, and which. An action prefix (case.*) was
// read down the primary key until a page had gathered: quick for a prefix
// of many events, but one of few (hold.*, backup.*: what a legal team
// looks for) or of none read the whole trail for every page, 0.4 s at
// 1,000,000 events on SQLite and growing with the trail
// (BenchmarkListPage). The actions the trail holds are few (one per
// kind of operation), and a loose scan of audit_events_action, one
// probe per distinct action, finds them whatever the trail's size; each
// matching action is then a read down (action, seq) stopping at the page,
// and the reads are merged as an actor's by id and by name are: at most
// a page per action. Byte comparison in Go, as the filter's substr does
// in SQL: the database's collation need not keep a prefix's actions
// together. Only for a prefix with neither an actor nor a time bound,
// whose own index reads serve those (and an export only for a prefix of
// few events: see Export).
func (l *Log) prefixActions(ctx context.Context, q sqldb.Querier, f Filter) (reads, error) {
	p, ok := strings.CutSuffix(f.Action, "*")
	if !ok || p == "" || f.Actor != "" || f.timed() {
		return reads{}, nil
	}

	all, err := sqldb.Collect(ctx, q, `WITH RECURSIVE a(action) AS (
 SELECT MIN(action) FROM audit_events
 UNION ALL
 SELECT (SELECT MIN(e.action) FROM audit_events e WHERE e.action > a.action) FROM a WHERE a.action IS NOT NULL)
SELECT action FROM a WHERE action IS NOT NULL`, nil, func(rows *sql.Rows) (string, error) {
		var a string
		err := rows.Scan(&a)
		return a, err
	})
	if err != nil {
		return reads{}, fmt.Errorf("audit: the trail's actions: %w", err)
	}

	r := reads{byActions: true}
	for _, a := range all {
		if strings.HasPrefix(a, p) {
			r.actions = append(r.actions, a)
		}
	}
	if len(r.actions) > maxPrefixActions {
		return reads{}, nil
	}
	return r, nil
}

// byActionsQuery is the events of each of actions matching conds, each
// read in order, merged in order; order's placeholders (a LIMIT) take
// orderArgs. No action: a query of no rows.
func byActionsQuery(from string, conds []string, args []any, actions []string, order string, orderArgs ...any) (string, []any) {
	if len(actions) == 0 {
		return from + " WHERE 1 = 0" + order, orderArgs
	}

	where := whereOf(append([]string{"action = ?"}, conds...))
	parts := make([]string, len(actions))
	var all []any
	for i, a := range actions {
		parts[i] = "SELECT * FROM (" + from + where + order + ") AS by_" + strconv.Itoa(i)
		all = append(append(append(all, a), args...), orderArgs...)
	}
	return strings.Join(parts, " UNION ALL ") + order, append(all, orderArgs...)
}

// trailReader reads the trail: a read transaction, or the read pool.
type trailReader interface {
	sqldb.Querier
	sqldb.RowQuerier
}

// reads decides how a list or an export of f reads the trail: an action
// prefix as the actions it matches (prefixActions), an actor in a time
// range down the time index (busyActor).
func (l *Log) reads(ctx context.Context, q trailReader, f Filter) (reads, error) {
	r, err := l.prefixActions(ctx, q, f)
	if err != nil {
		return reads{}, err
	}
	if r.timeIndex, err = l.busyActor(ctx, q, f); err != nil {
		return reads{}, err
	}
	return r, nil
}

// from is the table of a read, named with its index where r names one.
func (r reads) from() string {
	if r.timeIndex {
		return selectEvents + byTimeIndex
	}
	return selectEvents
}

// conds is f's conditions in each read of r but the cursor's: by action,
// the prefix is in each read's own action instead.
func (f Filter) conds(r reads) ([]string, []any, error) {
	if r.byActions {
		f.Action = ""
	}
	return f.others()
}

// fewEvents reports whether actions hold fewer than l.busy events, counted
// from their index's entries alone.
func (l *Log) fewEvents(ctx context.Context, actions []string) (bool, error) {
	cond, args := sqldb.AnyOf(l.db.Dialect, "action", actions)
	var n int
	err := l.db.Read.QueryRowContext(ctx, l.db.Rebind(`SELECT COUNT(*) FROM (SELECT 1 FROM audit_events WHERE `+cond+` LIMIT ?) AS c`), append(args, l.busy)...).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("audit: count the actions' events: %w", err)
	}
	return n < l.busy, nil
}

func (f Filter) where() (string, []any, error) {
	conds, args, err := f.others()
	if err != nil {
		return "", nil, err
	}
	if f.Actor != "" {
		conds = append([]string{"(actor_id = ? OR actor_name = ?)"}, conds...)
		args = append([]any{f.Actor, f.Actor}, args...)
	}
	return whereOf(conds), args, nil
}

// others is every condition of f but the actor's.
func (f Filter) others() ([]string, []any, error) {
	var conds []string
	var args []any
	if f.Action != "" {
		if p, ok := strings.CutSuffix(f.Action, "*"); ok {
			if p != "" {
				// substr instead of LIKE or a range: no wildcards to escape, and
				// the same byte comparison on both engines whatever the collation.
				conds = append(conds, "substr(action, 1, ?) = ?")
				args = append(args, len(p), p)
			}
		} else {
			conds = append(conds, "action = ?")
			args = append(args, f.Action)
		}
	}

	if f.TargetType != "" {
		conds = append(conds, "target_type = ?")
		args = append(args, f.TargetType)
	}

	if f.TargetID != "" {
		conds = append(conds, "target_id = ?")
		args = append(args, f.TargetID)
	}

	if f.Outcome != "" {
		if !validOutcome(f.Outcome) {
			return nil, nil, &FilterError{Field: "outcome", Message: "must be ok, denied, error or failed"}
		}
		conds = append(conds, "outcome = ?")
		args = append(args, f.Outcome)
		if f.Outcome != OutcomeOK {
			// implies the predicate of audit_events_not_ok (in its words:
			// SQLite proves no implication from the bound outcome)
			conds = append(conds, "outcome <> 'ok'")
		}
	}

	if !f.From.IsZero() {
		conds = append(conds, "at >= ?")
		args = append(args, f.From.UnixMicro())
	}

	if !f.To.IsZero() {
		conds = append(conds, "at < ?")
		args = append(args, f.To.UnixMicro())
	}

	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		return nil, nil, &FilterError{Field: "to", Message: "the time range ends before it starts"}
	}

	return conds, args, nil
}

// chainQuery is List's read of the chain: the events matching f after
// the position at (none: from the newest), newest first, at most limit.
// An actor matches by id or by name, and one OR of the two lets neither
// database read an index in order: SQLite gathered every event of the
// actor and sorted them before the LIMIT (0.5 s a page at 1,000,000
// events, BenchmarkListPage). Two reads, each down its own index in order
// and stopping at limit, then merged, read at most 2×limit rows; the
// second leaves out what the first has (actor_id equal too). r says what
// the filter alone does not (Log.reads).
func (f Filter) chainQuery(at position, limit int, r reads) (string, []any, error) {
	conds, args, err := f.conds(r)
	if err != nil {
		return "", nil, err
	}
	from := r.from()
	switch {
	case at.seq > 0 && f.timed():
		conds, args = append(conds, "(at, seq) <= (?, ?)"), append(args, at.at, at.seq)
	case at.seq > 0:
		conds, args = append(conds, "seq < ?"), append(args, at.seq)
	}
	order := " ORDER BY " + f.order(" DESC") + " LIMIT ?"

	if r.byActions {
		q, all := byActionsQuery(from, conds, args, r.actions, order, limit)
		return q, all, nil
	}

	if f.Actor == "" {
		return from + whereOf(conds) + order, append(args, limit), nil
	}

	byID := append([]string{"actor_id = ?"}, conds...)
	byName := append([]string{"actor_name = ?", "actor_id <> ?"}, conds...)
	q := "SELECT * FROM (" + from + whereOf(byID) + order + ") AS by_id UNION ALL " +
		"SELECT * FROM (" + from + whereOf(byName) + order + ") AS by_name" + order
	all := append(append([]any{f.Actor}, args...), limit)
	all = append(append(append(all, f.Actor, f.Actor), args...), limit, limit)
	return q, all, nil
}

// timed reports whether f bounds the events' time.
func (f Filter) timed() bool { return !f.From.IsZero() || !f.To.IsZero() }

// order is the chain's order for f in direction dir (" DESC": a List,
// newest first; "": an Export, oldest first): by seq, or by time (ties by
// seq) when f bounds the time. A time range read in seq
// order could not stop at the page: both databases either read the
// primary key down from the newest event, past every event after the
// range, or gathered the whole range and sorted it (a page of the
// oldest two thirds of 1,000,000 events: 87 ms on SQLite, 51 ms on
// PostgreSQL, BenchmarkListPage). audit_events_at holds the events in
// time order, and on both engines with seq after at (SQLite keys every
// index entry by the rowid, which seq is; PostgreSQL sorts the ties of
// one microsecond). The chain's order and time order part only where an
// event was sequenced after a later one.
func (f Filter) order(dir string) string {
	if f.timed() {
		return "at" + dir + ", seq" + dir
	}
	return "seq" + dir
}

func whereOf(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// Cursors: "a1.<seq>" continues below a sequenced event, "t1.<at>.<seq>"
// at a sequenced event of a list in time order (the first event of the
// next page), "p1.<id>" below a pending one (pending events come first:
// they are the newest).
const (
	cursorPrefix        = "a1."
	timeCursorPrefix    = "t1."
	pendingCursorPrefix = "p1."
)

// position is where a cursor continues: below seq in the chain's order, at
// (at, seq) in time order (timed), or below a pending id.
type position struct {
	seq, at int64
	timed   bool
	pending string
}

func encodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(seq, 10)))
}

func encodeTimeCursor(at, seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(timeCursorPrefix + strconv.FormatInt(at, 10) + "." + strconv.FormatInt(seq, 10)))
}

func encodePendingCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pendingCursorPrefix + id))
}

// decodeCursor returns the position a cursor continues from.
func decodeCursor(c string) (position, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		if s, ok := strings.CutPrefix(string(b), cursorPrefix); ok {
			if seq, err := strconv.ParseInt(s, 10, 64); err == nil && seq > 0 {
				return position{seq: seq}, nil
			}
		}
		if s, ok := strings.CutPrefix(string(b), timeCursorPrefix); ok {
			a, q, _ := strings.Cut(s, ".")
			at, errAt := strconv.ParseInt(a, 10, 64)
			seq, errSeq := strconv.ParseInt(q, 10, 64)
			if errAt == nil && errSeq == nil && seq > 0 {
				return position{seq: seq, at: at, timed: true}, nil
			}
		}
		if id, ok := strings.CutPrefix(string(b), pendingCursorPrefix); ok && id != "" && len(id) <= 64 {
			return position{pending: id}, nil
		}
	}
	return position{}, &FilterError{Field: "cursor", Message: "malformed cursor"}
}

// List returns events newest first, at most f.Limit, and the cursor of the
// next page ("" on the last page). Events not yet sequenced (WithSequencer)
// come first, marked Pending, newest first; then the chain, by seq, or by
// time when f bounds the time (order). Pages stay stable while events are
// appended: a cursor continues from the event it stopped at. A page is
// read in one snapshot; an event sequenced between two pages may be
// listed twice, pending and then sequenced, but none is ever skipped.
func (l *Log) List(ctx context.Context, f Filter) ([]Event, string, error) {
	limit := f.Limit
	switch {
	case limit == 0:
		limit = DefaultListLimit
	case limit < 0 || limit > MaxListLimit:
		return nil, "", &FilterError{Field: "limit", Message: fmt.Sprintf("must be 1 to %d", MaxListLimit)}
	}

	where, args, err := f.where()
	if err != nil {
		return nil, "", err
	}

	var at position
	if f.Cursor != "" {
		if at, err = decodeCursor(f.Cursor); err != nil {
			return nil, "", err
		}
		if at.seq > 0 && at.timed != f.timed() {
			// a page of another order: continuing from it would skip or
			// repeat events
			return nil, "", &FilterError{Field: "cursor", Message: "the cursor belongs to a list in another order (a list with from or to is ordered by time)"}
		}
	}

	// One snapshot for both tables: an event the sequencer moves meanwhile
	// is seen in one of them, not in both or neither.
	var opts *sql.TxOptions // SQLite: a read transaction is one snapshot
	if l.db.Dialect == sqldb.Postgres {
		opts = &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
	}
	tx, err := l.db.Read.BeginTx(ctx, opts)
	if err != nil {
		return nil, "", sqldb.Fail("audit: list", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only

	var out []Event
	if at.seq == 0 {
		pw, pargs := where, args
		if at.pending != "" {
			pw, pargs = andWhere(pw, "id < ?"), append(slices.Clone(pargs), at.pending)
		}
		pending, ids, err := l.listPending(ctx, tx, pw, append(pargs, limit+1))
		if err != nil {
			return nil, "", err
		}
		if len(pending) > limit {
			return pending[:limit], encodePendingCursor(ids[limit-1]), nil
		}
		out = pending
	}

	rest := limit - len(out)
	r, err := l.reads(ctx, tx, f)
	if err != nil {
		return nil, "", err
	}
	q, qargs, err := f.chainQuery(at, rest+1, r)
	if err != nil {
		return nil, "", err
	}
	rows, err := tx.QueryContext(ctx, l.db.Rebind(q), qargs...)
	if err != nil {
		return nil, "", fmt.Errorf("audit: list: %w", err)
	}
	defer rows.Close()
	n := 0
	next := ""
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return nil, "", fmt.Errorf("audit: list: %w", err)
		}
		if n++; n > rest {
			// ev is the first event of the next page.
			next = encodeCursor(ev.Seq + 1)
			if f.timed() {
				next = encodeTimeCursor(ev.Time.UnixMicro(), ev.Seq)
			}
			break
		}
		out = append(out, ev)
	}

	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("audit: list: %w", err)
	}

	return out, next, nil
}

func andWhere(where, cond string) string {
	if where == "" {
		return " WHERE " + cond
	}
	return where + " AND " + cond
}

// listPending reads pending events matching where (its last argument is
// the LIMIT), newest first, with their ids.
func (l *Log) listPending(ctx context.Context, tx *sql.Tx, where string, args []any) ([]Event, []string, error) {
	rows, err := tx.QueryContext(ctx, l.db.Rebind(selectPending+where+" ORDER BY id DESC LIMIT ?"), args...)
	if err != nil {
		return nil, nil, fmt.Errorf("audit: list pending: %w", err)
	}
	defer rows.Close()
	var out []Event
	var ids []string
	for rows.Next() {
		id, ev, err := scanPending(rows)
		if err != nil {
			return nil, nil, fmt.Errorf("audit: list pending: %w", err)
		}
		out, ids = append(out, ev), append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("audit: list pending: %w", err)
	}
	return out, ids, nil
}

// Export writes the sequenced events that match f as NDJSON (one Event per
// line, the same JSON as List), oldest first, streaming; events not yet
// sequenced are not part of the chain and wait for the next export. Each line carries seq,
// prev_hash and hash, so an unfiltered export can be checked offline with
// Event.ComputeHash.
//
// Oldest first is by seq, or by time (ties by seq) when f bounds the time,
// as List orders (Filter.order). In seq order a time range could not stop
// at its end: SQLite read the primary key through the whole trail for an
// hour at either end of it, 18-22 times the cost per event of exporting
// everything (BenchmarkExportRange, 1,000,000 events). An action prefix
// of fewer than l.busy events is read as List reads it, each action down
// its index, merged (Log.prefixActions): with the prefix as a filter, the
// primary key was read through the whole trail for them. A busier prefix
// keeps the filter: each action's events would be sorted before the
// merge, and the trail streams through once.
func (l *Log) Export(ctx context.Context, w io.Writer, f Filter) error {
	q, args, err := l.exportQuery(ctx, f)
	if err != nil {
		return err
	}

	rows, err := l.db.Read.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("audit: export: %w", err)
	}
	defer rows.Close()
	bw := bufio.NewWriterSize(w, 64*1024)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
		if err := enc.Encode(ev); err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit: export: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("audit: export: %w", err)
	}
	return nil
}

func scanEvent(rows *sql.Rows) (Event, error) {
	var ev Event
	var at int64
	var detail string
	err := rows.Scan(&ev.Seq, &at, &ev.ActorID, &ev.ActorName, &ev.Role, &ev.Action, &ev.TargetType, &ev.TargetID,
		&ev.RequestID, &ev.ClientIP, &ev.Outcome, &detail, &ev.PrevHash, &ev.Hash)
	if err != nil {
		return Event{}, err
	}
	ev.Time = time.UnixMicro(at).UTC()
	ev.Detail = json.RawMessage(detail)
	return ev, nil
}

// exportQuery is Export's read of the trail for f (rebound), in its order:
// List's reads, but a prefix of l.busy events or more streams the trail
// through the filter.
func (l *Log) exportQuery(ctx context.Context, f Filter) (string, []any, error) {
	r, err := l.reads(ctx, l.db.Read, f)
	if err != nil {
		return "", nil, err
	}
	if len(r.actions) > 0 {
		few, err := l.fewEvents(ctx, r.actions)
		if err != nil {
			return "", nil, err
		}
		if !few {
			r.byActions, r.actions = false, nil
		}
	}

	order := " ORDER BY " + f.order("")
	if r.byActions {
		conds, args, err := f.conds(r)
		if err != nil {
			return "", nil, err
		}
		q, args := byActionsQuery(r.from(), conds, args, r.actions, order)
		return l.db.Rebind(q), args, nil
	}
	where, args, err := f.where()
	if err != nil {
		return "", nil, err
	}
	return l.db.Rebind(r.from() + where + order), args, nil
}

// VerifyExport checks an unfiltered NDJSON export offline: consecutive seq,
// each line linked to the one before (the first line's prev_hash is taken
// as given: genesis, or a checkpoint), and each hash matching its content.
// It streams; lines may be long (MaxDetailBytes of detail).
func VerifyExport(r io.Reader) (VerifyResult, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4*MaxDetailBytes+64*MaxFieldBytes)
	res := VerifyResult{OK: true}
	var prev string
	var next int64
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			res.fail(next, "line %d is not an event: %v", res.Events+1, err)
			return res, nil
		}
		res.Events++
		switch {
		case res.Events > 1 && ev.Seq != next:
			res.fail(min(ev.Seq, next), "event %d follows event %d", ev.Seq, next-1)
		case res.Events > 1 && ev.PrevHash != prev:
			res.fail(ev.Seq, "event %d does not link to the event before it", ev.Seq)
		case ev.ComputeHash() != ev.Hash:
			res.fail(ev.Seq, "event %d was altered (its hash does not match its content)", ev.Seq)
		}
		if !res.OK {
			return res, nil
		}
		if res.Events == 1 {
			res.CheckpointSeq = ev.Seq - 1
		}
		prev, next = ev.Hash, ev.Seq+1
		res.HeadSeq, res.HeadHash = ev.Seq, ev.Hash
	}

	if err := sc.Err(); err != nil {
		return VerifyResult{}, fmt.Errorf("audit: verify export: %w", err)
	}

	return res, nil
}
