package retention

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// disposition is the record of one act of destruction: what went (as a
// digest only), why, when, and in which run.
type disposition struct {
	id         string // set by dispose
	runID      string // "" for a manual deletion
	contactID  string // "" when the act is the case's
	caseID     string
	customerID string
	purposes   []cases.Purpose
	rule       string
	action     string // an Item action: ItemDelete, ItemRedact, ...
	detail     string // the category of a redaction
	at         time.Time
	content    any      // what was destroyed, by destroyedContact, destroyedCase or destroyedValue; only its keyed digest is stored
	digest     string   // set by dispose
	blobs      []string // the attachment blobs the act disposes of
}

// contactDisposition is the disposition of one act on a contact as read
// in the act's transaction.
func contactDisposition(contactID string, lc liveContact, action, rule string, at time.Time, content any) disposition {
	return disposition{contactID: contactID, caseID: lc.CaseID, customerID: lc.CustomerID, purposes: lc.Purposes,
		rule: rule, action: action, at: at, content: content}
}

// caseDisposition is the disposition of deleting a case.
func caseDisposition(caseID, customerID, rule string, at time.Time, subject string) disposition {
	return disposition{caseID: caseID, customerID: customerID, purposes: []cases.Purpose{},
		rule: rule, action: ItemDeleteCase, at: at, content: destroyedCase(subject)}
}

// What a disposition destroyed is kept only as an HMAC-SHA256 under the
// digest key (DigestKey: derived from the master key, never stored with
// the records). An unkeyed SHA-256 of a short value (an IP address, a user
// agent, a place) is undone by guessing; under a key nobody holding only
// the database or a backup has, the digest proves that something was
// destroyed, not what. The store, holding the key, can still settle a
// dispute against a copy someone brings. Whoever destroys a thing (a
// sweep, a manual deletion) must describe it with the same function, or
// the same content would leave different digests.

// destroyedContact describes a deleted or anonymized contact: its free
// text, location, device and its attachments' SHA-256 sums (in attachment
// order).
func destroyedContact(lc liveContact, atts []attRef) any {
	sums := make([]string, 0, len(atts))
	for _, a := range atts {
		sums = append(sums, a.sha)
	}
	return map[string]any{"author": lc.Author, "body": lc.Body, "location": lc.Location.String, "device": lc.Device.String, "attachments": sums}
}

// destroyedCase describes a deleted case.
func destroyedCase(subject string) any { return map[string]any{"subject": subject} }

// destroyedValue describes a redacted column's value.
func destroyedValue(val string) any { return val }

// DigestKey derives the key of the disposition digests from the master
// key, so that it is on every server and in no database or backup.
func DigestKey(master []byte) ([]byte, error) {
	if len(master) == 0 {
		return nil, errors.New("digest key: no master key")
	}
	return hkdf.Key(sha256.New, master, nil, "casevault/disposition-digest/v1", 32)
}

// keyedDigest is the HMAC-SHA256 of content's JSON under key; without a key
// no digest is kept at all ("").
func keyedDigest(key []byte, content any) string {
	if len(key) == 0 {
		return ""
	}
	b, _ := json.Marshal(content) // maps, strings and slices of strings: cannot fail
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

// batchWork collects what a transaction must write once its acts are
// decided: disposition rows, outbox rows, audit changes, and the blobs to
// remove after commit.
type batchWork struct {
	key     []byte   // the digest key (nil: no digests)
	cases   []string // outbox rows
	disps   []disposition
	changes []cases.Change
}

func (w *batchWork) touch(caseID string) {
	if caseID != "" && !slices.Contains(w.cases, caseID) {
		w.cases = append(w.cases, caseID)
	}
}

// dispose queues d, its audit change (auditAction by actor) and its
// case's outbox row.
func (w *batchWork) dispose(d disposition, actor cases.Actor, auditAction string) {
	d.id = cases.NewID()
	d.digest = keyedDigest(w.key, d.content)
	d.content = nil
	w.disps = append(w.disps, d)

	target, targetType := d.contactID, "contact"
	switch d.action {
	case ItemDeleteCase:
		target, targetType = d.caseID, "case"
	case ItemDeleteCustomer:
		target, targetType = d.customerID, "customer"
	}
	detail := map[string]any{"case_id": d.caseID, "rule": d.rule, "disposition_id": d.id, "run_id": d.runID}
	if d.detail != "" {
		detail["category"] = d.detail
	}
	w.changes = append(w.changes, cases.Change{Actor: actor, Action: auditAction, TargetType: targetType, TargetID: target, Detail: detail})

	w.touch(d.caseID)
}

// commit writes what w collected into tx: the disposition rows, the outbox
// rows, then the audit events through audit — last, because appending
// takes the chain head lock, held until commit.
func (w *batchWork) commit(ctx context.Context, db *sqldb.DB, tx *sql.Tx, audit func(ctx context.Context, tx *sql.Tx, chs []cases.Change) error) error {
	if err := insertDispositions(ctx, db, tx, w.disps); err != nil {
		return err
	}

	if err := sqlstore.Enqueue(ctx, db, tx, w.cases...); err != nil {
		return err
	}

	if err := audit(ctx, tx, w.changes); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

func insertDispositions(ctx context.Context, db *sqldb.DB, tx *sql.Tx, ds []disposition) error {
	const perStmt, cols = 500, 12
	for start := 0; start < len(ds); start += perStmt {
		chunk := ds[start:min(len(ds), start+perStmt)]
		args := make([]any, 0, len(chunk)*cols)
		for _, d := range chunk {
			var blobs any // NULL: the act disposed of no blob
			if len(d.blobs) > 0 {
				blobs = sqldb.JSONText(d.blobs)
			}
			args = append(args, d.id, d.runID, d.contactID, d.caseID, d.customerID, sqldb.JSONText(d.purposes),
				d.rule, d.action, d.detail, sqldb.Micros(d.at), d.digest, blobs)
		}

		q := `INSERT INTO dispositions (id, run_id, contact_id, case_id, customer_id, purposes, rule, action, detail, at, content_sha256, blob_keys) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`
		if err := db.ExecRows(ctx, tx, q, cols, args); err != nil {
			return sqldb.Fail("disposition", err)
		}
	}
	return nil
}

// purgeBlobs removes, after commit, every version of the blobs w's
// dispositions disposed of, and stamps blobs_gone_at on each disposition
// whose blobs were all verified gone. One that was not keeps a NULL
// blobs_gone_at: the next sweep tries again (finishPurges), so a record
// never claims more than was checked.
func (w *batchWork) purgeBlobs(ctx context.Context, db *sqldb.DB, blobs BlobRemover, now time.Time) {
	if blobs == nil {
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()

	var gone []string
	for _, d := range w.disps {
		if len(d.blobs) > 0 && purgeAll(pctx, blobs, d.blobs) == nil {
			gone = append(gone, d.id)
		}
	}
	_ = markGone(pctx, db, gone, now) // still NULL: finished by the next sweep
}

// purgeAll purges every key, going on past a failure; it returns the first.
func purgeAll(ctx context.Context, blobs BlobRemover, keys []string) error {
	var first error
	for _, k := range keys {
		if err := blobs.Purge(ctx, k); err != nil && first == nil {
			first = fmt.Errorf("purge %s: %w", k, err)
		}
	}
	return first
}

// markGone records that the blobs of dispositions ids are verified gone.
func markGone(ctx context.Context, db *sqldb.DB, ids []string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	inCond, inArgs := sqldb.AnyOf(db.Dialect, "id", ids)
	_, err := db.Write.ExecContext(ctx, db.Rebind(`UPDATE dispositions SET blobs_gone_at = ? WHERE blobs_gone_at IS NULL AND `+inCond),
		append([]any{sqldb.Micros(now)}, inArgs...)...)
	if err != nil {
		return sqldb.Fail("blobs gone", err)
	}
	return nil
}

// finishPurges purges the blobs of up to limit dispositions whose blobs are
// not yet verified gone (the store was down, or refused), oldest first,
// and returns how many it finished. A disposal an undo reversed is not
// pending (its attachments are back; left in, such records would fill every
// batch and starve the real leftovers behind them). A key an attachment row
// names again (a restore brought it back before replaying) is left alone:
// the record stays pending rather than destroy live data.
func finishPurges(ctx context.Context, db *sqldb.DB, blobs BlobRemover, now time.Time, limit int) (int, error) {
	type pending struct {
		id   string
		keys []string
	}
	ps, err := sqldb.Collect(ctx, db.Read, db.Rebind(`SELECT id, blob_keys FROM dispositions WHERE blob_keys IS NOT NULL AND blobs_gone_at IS NULL AND reversed_at IS NULL ORDER BY at, id LIMIT ?`), []any{limit},
		func(rows *sql.Rows) (pending, error) {
			var p pending
			var raw string
			if err := rows.Scan(&p.id, &raw); err != nil {
				return p, err
			}
			return p, json.Unmarshal([]byte(raw), &p.keys)
		})
	if err != nil {
		return 0, sqldb.Fail("pending purges", err)
	}

	var gone []string
	var purgeErr error
	for _, p := range ps {
		var live int
		inCond, inArgs := sqldb.AnyOf(db.Dialect, "blob_key", p.keys)
		err := db.Read.QueryRowContext(ctx, db.Rebind(`SELECT COUNT(*) FROM attachments WHERE `+inCond), inArgs...).Scan(&live)
		if err != nil {
			return len(gone), sqldb.Fail("pending purges", err)
		}
		if live > 0 {
			continue
		}
		if err := purgeAll(ctx, blobs, p.keys); err != nil {
			// the store is down or refuses: the rest waits for the next sweep
			purgeErr = err
			break
		}
		gone = append(gone, p.id)
	}
	if err := markGone(ctx, db, gone, now); err != nil {
		return 0, err
	}
	return len(gone), purgeErr
}
