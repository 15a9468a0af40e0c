package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/sqldb"
)

// The outbox is the change feed (see search/feed.go). On SQLite writes are
// serialized, so seq is the position; on PostgreSQL a row gets its position
// from the sequencer once no transaction older than its own is in flight.

// feedBatch bounds the rows the sequencer numbers and the pruner deletes in
// one transaction.
const feedBatch = 10000

// pos is the column holding a row's feed position.
func (s *Store) pos() string {
	if s.db.Dialect == sqldb.Postgres {
		return "pos"
	}
	return "seq"
}

// The reads of the feed by position (on PostgreSQL through the partial
// index outbox_pos, whose predicate pos > ? implies: TestFeedPositionPlans).
func (s *Store) qFeedRead() string {
	p := s.pos()
	return s.q(`SELECT ` + p + `, case_id, contact_id, customer_id, created_at FROM outbox WHERE ` + p + ` > ? ORDER BY ` + p + ` LIMIT ?`)
}

func (s *Store) qFeedOldest() string {
	p := s.pos()
	return s.q(`SELECT created_at FROM outbox WHERE ` + p + ` > ? AND ` + p + ` <= ? ORDER BY ` + p + ` LIMIT 1`)
}

func (s *Store) qFeedPrune() string {
	p := s.pos()
	return s.q(`DELETE FROM outbox WHERE ` + p + ` > ? AND ` + p + ` <= ?`)
}

// ReadFeed returns up to limit changes above position after, in order. On
// PostgreSQL it first numbers the rows whose transactions are settled,
// unless another replica is numbering them right now: its indexer does not
// queue behind that transaction's commit (it reads what is numbered, and
// its next read, at the latest a poll later, numbers what is left).
func (s *Store) ReadFeed(ctx context.Context, after int64, limit int) ([]search.OutboxEntry, error) {
	if err := s.sequence(ctx, false); err != nil {
		return nil, err
	}

	out, err := sqldb.Collect(ctx, s.db.Read, s.qFeedRead(), []any{after, limit},
		func(rows *sql.Rows) (search.OutboxEntry, error) {
			var e search.OutboxEntry
			var created int64
			var contact, customer sql.NullString
			err := rows.Scan(&e.Seq, &e.CaseID, &contact, &customer, &created)
			e.ContactID, e.CustomerID, e.CreatedAt = contact.String, customer.String, sqldb.FromMicros(created)
			return e, err
		})
	if err != nil {
		return nil, s.fail("feed", err)
	}
	return out, nil
}

// sequence gives feed positions, on PostgreSQL, to every committed row
// without one (nothing to do on SQLite, where seq is the position). A
// BIGSERIAL alone commits out of order (seq 5 after seq 6), and a cursor
// already at 6 would skip 5 for ever; numbered after commit, above the
// head, in one step serialized by the feed_state row lock, a row can never
// appear below a cursor. No horizon of in-flight transactions is needed,
// so a long transaction elsewhere on the server holds nothing back.
// With wait false it returns at once when another transaction holds that
// lock.
func (s *Store) sequence(ctx context.Context, wait bool) error {
	if s.db.Dialect != sqldb.Postgres {
		return nil
	}

	for {
		var waiting bool
		if err := s.db.Read.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM outbox WHERE pos IS NULL)`).Scan(&waiting); err != nil {
			return s.fail("feed sequence", err)
		}
		if !waiting {
			return nil
		}

		n, err := s.numberRows(ctx, wait)
		if errors.Is(err, errFeedBusy) {
			return nil
		}
		if err != nil {
			return err
		}
		// each numbered row's unnumbered version is dead, and
		// outbox_unsequenced, which the look above and the numbering
		// read from its old end, keeps pointing at it until a vacuum
		s.feedChurn.Add(n)
		if n < feedBatch {
			// a failed vacuum slows the feed, never stops it: its error
			// is in FeedChurn's figures
			_, _ = s.feedChurn.Vacuum(ctx)
			return nil
		}
	}
}

// FeedChurn is the vacuuming of the outbox (its figures for metrics).
func (s *Store) FeedChurn() *sqldb.Churn { return s.feedChurn }

// errFeedBusy: another transaction holds the feed_state row (numberRows
// without wait).
var errFeedBusy = errors.New("the feed is being numbered elsewhere")

// numberRows numbers up to feedBatch committed rows in one transaction.
// Each statement reads a fresh snapshot (READ COMMITTED), taken after the
// lock is held, so it sees every number a previous sequencer gave. With
// wait false it fails with errFeedBusy instead of waiting for the lock
// (two replicas' indexers numbering at once: one waited for the other's
// commit, the only Lock waits left with two replicas under load, issue 19
// §2).
func (s *Store) numberRows(ctx context.Context, wait bool) (int64, error) {
	tx, err := s.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return 0, s.fail("feed sequence", err)
	}
	defer func() { _ = tx.Rollback() }()

	lock := `SELECT head FROM feed_state WHERE id = 1 FOR UPDATE`
	if !wait {
		lock += ` SKIP LOCKED`
	}
	var head int64
	err = tx.QueryRowContext(ctx, lock).Scan(&head)
	if !wait && errors.Is(err, sql.ErrNoRows) {
		return 0, errFeedBusy
	}
	if err != nil {
		return 0, s.fail("feed sequence", err)
	}
	res, err := tx.ExecContext(ctx, `WITH next AS (
  SELECT seq, row_number() OVER (ORDER BY seq) AS rn FROM outbox
  WHERE pos IS NULL ORDER BY seq LIMIT $1)
UPDATE outbox o SET pos = $2 + next.rn FROM next WHERE o.seq = next.seq`, feedBatch, head)
	if err != nil {
		return 0, s.fail("feed sequence", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.fail("feed sequence", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE feed_state SET head = head + $1 WHERE id = 1`, n); err != nil {
		return 0, s.fail("feed sequence", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, s.fail("feed sequence", err)
	}
	return n, nil
}

// FeedHead returns the highest position given so far.
func (s *Store) FeedHead(ctx context.Context) (int64, error) {
	return s.head(ctx, s.db.Read)
}

func (s *Store) head(ctx context.Context, q sqldb.RowQuerier) (int64, error) {
	query := `SELECT head FROM feed_state WHERE id = 1`
	if s.db.Dialect != sqldb.Postgres {
		query = `SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0)`
	}
	var h int64
	if err := q.QueryRowContext(ctx, query).Scan(&h); err != nil {
		return 0, s.fail("feed head", err)
	}
	return h, nil
}

// SettledHead returns the feed head once every change committed before the
// call has a position: what a sweep must see its index reach before it
// trusts the index with query holds. (FeedHead alone may leave out rows
// committed but not yet numbered on PostgreSQL.)
func (s *Store) SettledHead(ctx context.Context) (int64, error) {
	if err := s.sequence(ctx, true); err != nil {
		return 0, err
	}
	return s.FeedHead(ctx)
}

// ClaimConsumer registers the consumer or renews it, and takes or keeps its
// lease for c.Owner when the lease is free, expired or already c.Owner's.
// A new consumer starts at 0 while nothing was ever pruned, else at -1
// (must rebuild); so does one whose rows were pruned past while it was away.
//
// A cheap look comes first, without a transaction: a replica that does not
// hold a shared index's lease asks again after each of its writes (its
// indexer is kicked), and taking the feed_state lock for that put a
// transaction of every such write on the row the feed's numbering locks
// (issue 19 §2). A lease seen live and another's is not taken; any other
// answer is decided again under the lock.
func (s *Store) ClaimConsumer(ctx context.Context, c search.Claim) (search.Consumer, bool, error) {
	now, until := sqldb.Micros(c.Now), sqldb.Micros(c.Now.Add(c.TTL))
	out, found, err := s.readConsumer(ctx, s.db.Read, c.ID)
	if err != nil {
		return out.Consumer, false, s.fail("feed claim", err)
	}
	if found && out.Owner != "" && out.Owner != c.Owner && out.leaseUntil >= now {
		return out.Consumer, false, nil
	}

	var held bool
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		var pruned int64
		// the feed_state lock orders registrations with pruning: a consumer
		// registered at 0 cannot lose rows to a prune that did not see it
		if err := tx.QueryRowContext(ctx, `SELECT pruned_through FROM feed_state WHERE id = 1`+s.forUpdate()).Scan(&pruned); err != nil {
			return err
		}

		var found bool
		var err error
		if out, found, err = s.readConsumer(ctx, tx, c.ID); err != nil {
			return err
		}
		if !found {
			out.Consumer = search.Consumer{ID: c.ID, Kind: c.Kind, Owner: c.Owner, SeenAt: c.Now}
			if pruned > 0 || c.MustRebuild {
				out.Position = -1
			}
			held = true
			_, err = tx.ExecContext(ctx, s.q(`INSERT INTO feed_consumers (id, kind, position, owner, lease_until, registered_at, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
				c.ID, c.Kind, out.Position, c.Owner, until, now, now)
			return err
		}

		held = out.Owner == "" || out.Owner == c.Owner || out.leaseUntil < now
		if !held {
			return nil
		}
		if out.Position < pruned || c.MustRebuild {
			out.Position = -1
		}
		out.Owner, out.SeenAt, out.Expired, out.Kind = c.Owner, c.Now, false, c.Kind
		_, err = tx.ExecContext(ctx, s.q(`UPDATE feed_consumers SET kind = ?, position = ?, owner = ?, lease_until = ?, seen_at = ?, expired_at = NULL WHERE id = ?`),
			c.Kind, out.Position, c.Owner, until, now, c.ID)
		return err
	})
	if err != nil {
		return out.Consumer, false, s.fail("feed claim", err)
	}
	return out.Consumer, held, nil
}

// storedConsumer is a feed_consumers row: the consumer and its lease.
type storedConsumer struct {
	search.Consumer
	leaseUntil int64
}

// readConsumer reads consumer id's row; found is false when there is none.
func (s *Store) readConsumer(ctx context.Context, q sqldb.RowQuerier, id string) (out storedConsumer, found bool, err error) {
	var owner sql.NullString
	var seen int64
	var expired sql.NullInt64
	err = q.QueryRowContext(ctx, s.q(`SELECT kind, position, owner, lease_until, seen_at, expired_at FROM feed_consumers WHERE id = ?`), id).
		Scan(&out.Kind, &out.Position, &owner, &out.leaseUntil, &seen, &expired)
	if errors.Is(err, sql.ErrNoRows) {
		return out, false, nil
	}
	if err != nil {
		return out, false, err
	}
	out.ID, out.Owner, out.SeenAt, out.Expired = id, owner.String, sqldb.FromMicros(seen), expired.Valid
	return out, true, nil
}

// AdvanceConsumer moves the consumer's cursor forward to pos (never back);
// search.ErrLeaseLost when owner no longer holds it.
func (s *Store) AdvanceConsumer(ctx context.Context, id, owner string, pos int64, now time.Time) error {
	res, err := s.db.Write.ExecContext(ctx, s.q(`UPDATE feed_consumers SET position = CASE WHEN position > ? THEN position ELSE ? END, seen_at = ? WHERE id = ? AND owner = ?`),
		pos, pos, sqldb.Micros(now), id, owner)
	if err != nil {
		return s.fail("feed advance", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return s.fail("feed advance", err)
	} else if n == 0 {
		return fmt.Errorf("consumer %s: %w", id, search.ErrLeaseLost)
	}
	return nil
}

// ReleaseConsumer gives the lease up (a clean shutdown), so another
// replica can take a shared index over at once.
func (s *Store) ReleaseConsumer(ctx context.Context, id, owner string) error {
	_, err := s.db.Write.ExecContext(ctx, s.q(`UPDATE feed_consumers SET lease_until = 0 WHERE id = ? AND owner = ?`), id, owner)
	return s.fail("feed release", err)
}

// FeedStatus reports the head and every consumer's position and lag.
func (s *Store) FeedStatus(ctx context.Context, now time.Time) (search.FeedStatus, error) {
	var st search.FeedStatus
	head, err := s.FeedHead(ctx)
	if err != nil {
		return st, err
	}
	st.Head = head
	if err := s.db.Read.QueryRowContext(ctx, `SELECT pruned_through FROM feed_state WHERE id = 1`).Scan(&st.PrunedThrough); err != nil {
		return st, s.fail("feed status", err)
	}

	st.Consumers, err = sqldb.Collect(ctx, s.db.Read, `SELECT id, kind, position, owner, lease_until, seen_at, expired_at FROM feed_consumers ORDER BY id`, nil,
		func(rows *sql.Rows) (search.Consumer, error) {
			var c search.Consumer
			var owner sql.NullString
			var lease, seen int64
			var expired sql.NullInt64
			err := rows.Scan(&c.ID, &c.Kind, &c.Position, &owner, &lease, &seen, &expired)
			c.Owner, c.SeenAt, c.Expired = owner.String, sqldb.FromMicros(seen), expired.Valid
			if lease > 0 {
				t := sqldb.FromMicros(lease)
				c.LeaseUntil = &t
			}
			return c, err
		})
	if err != nil {
		return st, s.fail("feed status", err)
	}

	for i, c := range st.Consumers {
		from := c.Position
		c.MustRebuild = c.Position < 0
		if c.MustRebuild {
			from = st.PrunedThrough
			c.Pending = head
		} else {
			c.Pending = max(head-c.Position, 0)
		}
		var oldest int64
		err := s.db.Read.QueryRowContext(ctx, s.qFeedOldest(), from, head).Scan(&oldest)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return st, s.fail("feed status", err)
		default:
			c.LagSeconds = max(now.Sub(sqldb.FromMicros(oldest)).Seconds(), 0)
		}
		st.Consumers[i] = c
	}
	return st, nil
}

// PruneFeed expires the consumers not seen since expireBefore (they must
// rebuild when they return) and deletes the rows every remaining consumer
// has passed, at most feedBatch of them. It returns how many rows went and
// which consumers expired.
func (s *Store) PruneFeed(ctx context.Context, now, expireBefore time.Time) (int64, []string, error) {
	var deleted int64
	var expired []string
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		deleted, expired = 0, nil
		var pruned int64
		if err := tx.QueryRowContext(ctx, `SELECT pruned_through FROM feed_state WHERE id = 1`+s.forUpdate()).Scan(&pruned); err != nil {
			return err
		}

		ids, err := sqldb.Collect(ctx, tx, s.q(`SELECT id FROM feed_consumers WHERE expired_at IS NULL AND seen_at < ?`), []any{sqldb.Micros(expireBefore)},
			func(rows *sql.Rows) (string, error) {
				var id string
				return id, rows.Scan(&id)
			})
		if err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE feed_consumers SET expired_at = ?, position = -1, owner = NULL, lease_until = 0 WHERE id = ?`), sqldb.Micros(now), id); err != nil {
				return err
			}
		}
		expired = ids

		var low sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MIN(position) FROM feed_consumers WHERE expired_at IS NULL`).Scan(&low); err != nil {
			return err
		}
		if !low.Valid || low.Int64 <= pruned {
			return nil // no consumer (keep everything for the first), or one behind
		}

		upto := min(low.Int64, pruned+feedBatch)
		res, err := tx.ExecContext(ctx, s.qFeedPrune(), pruned, upto)
		if err != nil {
			return err
		}
		if deleted, err = res.RowsAffected(); err != nil {
			return err
		}

		_, err = tx.ExecContext(ctx, s.q(`UPDATE feed_state SET pruned_through = ? WHERE id = 1`), upto)
		return err
	})
	if err != nil {
		return 0, nil, s.fail("feed prune", err)
	}
	s.feedChurn.Add(deleted)
	return deleted, expired, nil
}

// ListCaseIDs pages through every case ID in order, for a full reindex.
func (s *Store) ListCaseIDs(ctx context.Context, after string, limit int) ([]string, error) {
	out, err := sqldb.Collect(ctx, s.db.Read, s.q(`SELECT id FROM cases WHERE id > ? ORDER BY id LIMIT ?`), []any{after, limit},
		func(rows *sql.Rows) (string, error) {
			var id string
			return id, rows.Scan(&id)
		})
	if err != nil {
		return nil, s.fail("case ids", err)
	}
	return out, nil
}

// LoadCaseDocs loads the current state of the given cases for indexing; a
// case that no longer exists is absent from the result (the indexer deletes it).
func (s *Store) LoadCaseDocs(ctx context.Context, caseIDs []string) (map[string]search.CaseDoc, error) {
	out := make(map[string]search.CaseDoc, len(caseIDs))
	for start := 0; start < len(caseIDs); start += 200 {
		chunk := caseIDs[start:min(start+200, len(caseIDs))]
		if err := s.loadCaseRows(ctx, chunk, out); err != nil {
			return nil, err
		}
		// Only the indexed columns, in index order (case_id, occurred_at,
		// id): the list of cases is walked case by case with no sort.
		cond, args := sqldb.AnyOf(s.db.Dialect, "case_id", chunk)
		err := s.loadContactRows(ctx, cond+` ORDER BY case_id, occurred_at, id`, args, nil, out)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// LoadContactDocs loads the current state of the given cases (keys) with
// only the named contacts of each, for the indexer to add them without
// reading the rest of the case. A case that no longer exists is absent; a
// contact that no longer exists, or is not the given case's, is left out.
func (s *Store) LoadContactDocs(ctx context.Context, contacts map[string][]string) (map[string]search.CaseDoc, error) {
	caseIDs := make([]string, 0, len(contacts))
	var ids []string
	wanted := make(map[string]string) // contact ID -> case ID
	for caseID, cs := range contacts {
		caseIDs = append(caseIDs, caseID)
		ids = append(ids, cs...)
		for _, id := range cs {
			wanted[id] = caseID
		}
	}
	keep := func(caseID, id string) bool { return wanted[id] == caseID }
	out := make(map[string]search.CaseDoc, len(caseIDs))
	for start := 0; start < len(caseIDs); start += 200 {
		if err := s.loadCaseRows(ctx, caseIDs[start:min(start+200, len(caseIDs))], out); err != nil {
			return nil, err
		}
	}
	for start := 0; start < len(ids); start += 200 {
		chunk := ids[start:min(start+200, len(ids))]
		cond, args := sqldb.AnyOf(s.db.Dialect, "id", chunk)
		if err := s.loadContactRows(ctx, cond, args, keep, out); err != nil {
			return nil, err
		}
	}
	for id, d := range out {
		// the rows come back in id order; the engine wants occurrence order
		slices.SortStableFunc(d.Contacts, func(a, b search.ContactDoc) int { return a.OccurredAt.Compare(b.OccurredAt) })
		out[id] = d
	}
	return out, nil
}

// loadCaseRows adds the case fields of the given cases to out.
func (s *Store) loadCaseRows(ctx context.Context, ids []string, out map[string]search.CaseDoc) error {
	o := s.fields.opener(ctx)
	cond, args := sqldb.AnyOf(s.db.Dialect, "id", ids)
	cs, err := sqldb.Collect(ctx, s.db.Read, s.q(`SELECT `+caseCols+` FROM cases WHERE `+cond), args,
		func(rows *sql.Rows) (cases.Case, error) { return scanCase(o, rows) })
	if err != nil {
		return s.fail("load cases", err)
	}

	// The customers' names, opened: the index is where names are
	// searched (they are sealed in the database).
	custIDs := make([]string, 0, len(cs))
	for _, c := range cs {
		if !slices.Contains(custIDs, c.CustomerID) {
			custIDs = append(custIDs, c.CustomerID)
		}
	}
	names := make(map[string]string, len(custIDs))
	custs, err := sqldb.CollectIn(ctx, s.db, s.db.Read, `SELECT `+customerCols+` FROM customers WHERE %s`, "id", custIDs,
		func(rows *sql.Rows) (cases.Customer, error) { return scanCustomer(o, rows) })
	if err != nil {
		return s.fail("load customers", err)
	}
	for _, c := range custs {
		names[c.ID] = c.Name
	}

	for _, c := range cs {
		out[c.ID] = search.CaseDoc{
			CaseID: c.ID, Number: c.Number, CustomerID: c.CustomerID, CustomerName: names[c.CustomerID], Subject: c.Subject,
			Status: string(c.Status), Priority: string(c.Priority), Channel: string(c.Channel),
			Assignee: c.Assignee, Tags: c.Tags, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		}
	}
	return nil
}

// loadContactRows appends the contacts matching where to their cases in
// out, skipping contacts whose case is not there or that keep (when set)
// refuses. Only the indexed columns are read, and no JSON but the purposes
// is decoded.
func (s *Store) loadContactRows(ctx context.Context, where string, args []any, keep func(caseID, id string) bool, out map[string]search.CaseDoc) error {
	// Anonymized contacts identify nobody and are never found: a search by
	// customer or text must not bring them back.
	o := s.fields.opener(ctx)
	rows, err := s.db.Read.QueryContext(ctx, s.q(`SELECT id, case_id, customer_id, channel, direction, author, body, occurred_at, purposes FROM contacts WHERE anonymized_at IS NULL AND `+where), args...)
	if err != nil {
		return s.fail("load contacts", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c search.ContactDoc
		var caseID, customerID, ps string
		var occurred int64
		if err := rows.Scan(&c.ID, &caseID, &customerID, &c.Channel, &c.Direction, &c.Author, &c.Body, &occurred, &ps); err != nil {
			return s.fail("load contacts", err)
		}
		d, ok := out[caseID]
		if !ok || (keep != nil && !keep(caseID, c.ID)) {
			continue
		}
		if err := openContact(o, customerID, c.ID, &c.Author, &c.Body, &sql.NullString{}, &sql.NullString{}); err != nil {
			return s.fail("load contacts", err)
		}
		if err := json.Unmarshal([]byte(ps), &c.Purposes); err != nil {
			return s.fail("load contacts", fmt.Errorf("contact %s purposes: %w: %w", c.ID, sqldb.ErrBadRow, err))
		}
		c.OccurredAt = sqldb.FromMicros(occurred)
		d.Contacts = append(d.Contacts, c)
		out[caseID] = d
	}
	if err := rows.Err(); err != nil {
		return s.fail("load contacts", err)
	}
	return nil
}
