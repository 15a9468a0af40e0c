package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// tombstones are the records a restore must re-apply so that it never
// rolls back what happened after the backup: dispositions (retention,
// manual deletion), destroyed customer keys (erasure by crypto-shredding),
// and the security state: token revocations, legal holds as last placed or
// released, and retention schedule versions.
type tombstones struct {
	sources []string
	disps   map[string]map[string]any // by disposition id
	keys    map[string]int64          // customer id → destroyed_at
	// Security state.
	revoked   map[string]int64          // token id → revoked_at
	holds     map[string]map[string]any // hold id → newest row
	schedules map[int64]map[string]any  // version → row
}

func newTombstones() *tombstones {
	return &tombstones{disps: map[string]map[string]any{}, keys: map[string]int64{},
		revoked: map[string]int64{}, holds: map[string]map[string]any{}, schedules: map[int64]map[string]any{}}
}

// securityTables are read from every later source besides the tombstones.
var securityTables = []string{"tokens", "legal_holds", "retention_schedules"}

func (ts *tombstones) addRows(t table, rows []map[string]any) {
	for _, row := range rows {
		switch t.Name {
		case "dispositions":
			ts.disps[asString(row["id"])] = row
		case "customer_keys":
			if at, ok := row["destroyed_at"].(int64); ok {
				if old, seen := ts.keys[asString(row["customer_id"])]; !seen || at < old {
					ts.keys[asString(row["customer_id"])] = at
				}
			}
		case "tokens":
			if at, ok := row["revoked_at"].(int64); ok {
				if old, seen := ts.revoked[asString(row["id"])]; !seen || at < old {
					ts.revoked[asString(row["id"])] = at
				}
			}
		case "legal_holds":
			// Sources are added oldest first: the last one seen is the
			// hold's newest state (placed, released, reinstated).
			ts.holds[asString(row["id"])] = row
		case "retention_schedules":
			ts.schedules[asInt(row["version"])] = row
		}
	}
}

// readRows returns t's rows (optionally filtered) from a live database.
func readRows(ctx context.Context, db *sqldb.DB, t table, where string, args ...any) ([]map[string]any, error) {
	var buf bytes.Buffer
	if _, err := dumpTable(ctx, db.Read, t, db.Rebind(where), args, &buf, nil); err != nil {
		return nil, err
	}
	return parseRows(&buf, t, nil)
}

// parseRows decodes a table dump, keeping the rows keep accepts (all when
// keep is nil): a caller after a few rows never holds the whole table.
func parseRows(r io.Reader, t table, keep func(map[string]any) bool) ([]map[string]any, error) {
	rr := newRowReader(r, t)
	var out []map[string]any
	for {
		row, err := rr.next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if keep == nil || keep(row) {
			out = append(out, row)
		}
	}
}

// backupRows reads t's rows that keep accepts from a backup (nil when the
// backup lacks the table).
func (r *Repo) backupRows(ctx context.Context, m Manifest, t table, id age.Identity, keep func(map[string]any) bool) ([]map[string]any, error) {
	te, ok := m.table(t.Name)
	if !ok {
		return nil, nil
	}
	rc, err := r.openTable(ctx, te, id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// The whole table is read even for a few rows, so that its digest is
	// checked against the signed manifest: a file swapped in the
	// repository never supplies a row.
	h := sha256.New()
	rows, err := parseRows(io.TeeReader(rc, h), t, func(row map[string]any) bool { return keep == nil || keep(row) })
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrDamaged, te.Name, err)
	}
	if _, err := io.Copy(h, rc); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrDamaged, te.Name, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != te.PlainSHA256 {
		return nil, fmt.Errorf("%w: table %s: digest %s, the manifest says %s", ErrDamaged, t.Name, sum, te.PlainSHA256)
	}
	return rows, nil
}

// collectTombstones gathers the tombstones of every backup newer than m and
// of the live databases.
func (r *Repo) collectTombstones(ctx context.Context, m Manifest, opts RestoreOptions) (*tombstones, error) {
	ts := newTombstones()
	disp, _ := tableByName("dispositions")
	keys, _ := tableByName("customer_keys")
	var sec []table
	for _, name := range securityTables {
		t, _ := tableByName(name)
		sec = append(sec, t)
	}
	all, bad, err := r.List(ctx)
	if err != nil {
		return nil, err
	}

	for _, d := range bad {
		// An older backup holds no later tombstones; a newer one that
		// cannot be read or authenticated might, so the restore stops
		// rather than bring back what it deleted.
		// IDs sort by start second; within one second the order is unknown.
		// A name that is no backup id was never written by a run.
		if validID(d.ID) && d.ID[:len(idTime)] >= m.ID[:len(idTime)] {
			return nil, fmt.Errorf("%w: manifest of later backup %s (its tombstones are needed): %s; if it is no genuine backup, move it out of the repository", ErrDamaged, d.ID, d.Error)
		}
	}

	for _, n := range all {
		if n.ID == m.ID || !n.SnapshotAt.After(m.SnapshotAt) || !sameInstance(n, m) {
			continue
		}
		for _, t := range append([]table{disp, keys}, sec...) {
			rows, err := r.backupRows(ctx, n, t, opts.Identity, nil)
			if err != nil {
				return nil, fmt.Errorf("tombstones of backup %s: %w", n.ID, err)
			}
			ts.addRows(t, rows)
		}
		ts.sources = append(ts.sources, "backup "+n.ID)
	}

	for i, db := range opts.Live {
		rows, err := readRows(ctx, db, disp, "")
		if err != nil {
			return nil, fmt.Errorf("tombstones of the live database: %w", err)
		}
		ts.addRows(disp, rows)
		rows, err = readRows(ctx, db, keys, "destroyed_at IS NOT NULL")
		if err != nil {
			return nil, fmt.Errorf("tombstones of the live database: %w", err)
		}
		ts.addRows(keys, rows)
		for _, t := range sec {
			if rows, err = readRows(ctx, db, t, ""); err != nil {
				return nil, fmt.Errorf("security state of the live database: %w", err)
			}
			ts.addRows(t, rows)
		}
		ts.sources = append(ts.sources, fmt.Sprintf("live database %d", i+1))
	}

	return ts, nil
}

// sameInstance: a repository may hold backups of several instances; only
// the restored instance's own later backups know what it destroyed since.
// Backups made before instance ids existed match anything.
func sameInstance(a, b Manifest) bool {
	return a.Source.Instance == "" || b.Source.Instance == "" || a.Source.Instance == b.Source.Instance
}

// replay applies the tombstones the target does not have yet, in the order
// they happened, in one transaction with the audit event ch.
func replay(ctx context.Context, db *sqldb.DB, ts *tombstones, hook cases.TxHook, ch cases.Change) (ReplayReport, error) {
	var rep ReplayReport
	disp, _ := tableByName("dispositions")
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		rep = ReplayReport{}
		have := map[string]bool{}
		rows, err := tx.QueryContext(ctx, `SELECT id FROM dispositions`)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("replay: %w", err)
			}
			have[id] = true
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		var todo []map[string]any
		for id, row := range ts.disps {
			switch {
			case !have[id]:
				todo = append(todo, row)
			case row["reversed_at"] != nil:
				// Undone since the backup: the target has the record (and,
				// from a backup taken between disposal and undo, not the
				// data); the mark is carried so nothing replays it later.
				res, err := tx.ExecContext(ctx, db.Rebind(`UPDATE dispositions SET reversed_at = ?, reversed_by = ? WHERE id = ? AND reversed_at IS NULL`), row["reversed_at"], row["reversed_by"], id)
				if err != nil {
					return fmt.Errorf("replay reversal: %w", err)
				}
				if n, _ := res.RowsAffected(); n > 0 {
					rep.Reversed++
				}
			}
		}
		sort.Slice(todo, func(i, j int) bool {
			a, b := asInt(todo[i]["at"]), asInt(todo[j]["at"])
			if a != b {
				return a < b
			}
			return asString(todo[i]["id"]) < asString(todo[j]["id"])
		})
		ins := newInserter(db.Dialect, tx, disp)
		for _, row := range todo {
			if row["reversed_at"] != nil {
				// Undone (backup restore --undo-run): recorded, not applied.
				rep.Reversed++
				if err := ins.add(ctx, disp.args(db.Dialect, row)); err != nil {
					return err
				}
				continue
			}
			if err := applyDisposition(ctx, db, tx, row, &rep); err != nil {
				return err
			}
			if err := ins.add(ctx, disp.args(db.Dialect, row)); err != nil {
				return err
			}
			rep.Dispositions++
		}
		if err := ins.flush(ctx); err != nil {
			return err
		}
		ids := make([]string, 0, len(ts.keys))
		for id := range ts.keys {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			res, err := tx.ExecContext(ctx, db.Rebind(`UPDATE customer_keys SET wrapped_key = NULL, destroyed_at = ? WHERE customer_id = ? AND destroyed_at IS NULL`), ts.keys[id], id)
			if err != nil {
				return fmt.Errorf("replay key destruction: %w", err)
			}
			n, _ := res.RowsAffected()
			if n == 0 {
				var exists int
				if err := tx.QueryRowContext(ctx, db.Rebind(`SELECT COUNT(*) FROM customer_keys WHERE customer_id = ?`), id).Scan(&exists); err != nil {
					return fmt.Errorf("replay key destruction: %w", err)
				}
				if exists == 0 {
					// Erased before it ever had a key here: the row still
					// stops a new key from being made for the customer.
					if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO customer_keys (customer_id, wrapped_key, created_at, destroyed_at) VALUES (?, NULL, ?, ?)`), id, ts.keys[id], ts.keys[id]); err != nil {
						return fmt.Errorf("replay key destruction: %w", err)
					}
					n = 1
				}
			}
			rep.KeysDestroyed += int(n)
		}
		if rep.Security, err = replaySecurity(ctx, db, tx, ts); err != nil {
			return err
		}
		if hook != nil {
			if ch.Detail == nil {
				ch.Detail = map[string]any{}
			}
			ch.Detail["tombstones"] = rep.Dispositions
			ch.Detail["keys_destroyed"] = rep.KeysDestroyed
			ch.Detail["tokens_revoked"] = len(rep.Security.TokensRevoked)
			ch.Detail["holds_placed"] = len(rep.Security.HoldsPlaced)
			ch.Detail["holds_updated"] = len(rep.Security.HoldsUpdated)
			ch.Detail["schedule_versions"] = len(rep.Security.ScheduleVersions)
			return hook(ctx, tx, ch)
		}
		return nil
	})
	return rep, err
}

// Disposition actions (retention.Item*; repeated here so the backup
// package does not depend on the sweeper).
const (
	actDelete     = "delete"
	actAnonymize  = "anonymize"
	actRedact     = "redact"
	actDeleteCase = "delete_case"
	// an erasure's record of the customer (retention.ItemEraseCustomer):
	// whatever of theirs the restored copy still has goes, profile too
	actEraseCustomer = "erase_customer"
	// a customer profile deleted by the customer_profile rule
	actDeleteCustomer = "delete_customer"
	// a consent withdrawal (retention.ItemConsentWithdraw): detail names
	// the consent, which the restored customer must not give again
	actConsentWithdraw = "consent_withdraw"
	// a purpose a withdrawal dropped from one contact
	// (retention.ItemDropPurpose): detail is {"purpose", "retain_until"}
	actDropPurpose = "drop_purpose"
)

// consentColumns are the customer columns a consent_withdraw record may
// name (detail); anything else is refused, never put into SQL.
var consentColumns = map[string]string{
	"location":        "consent_location",
	"marketing":       "consent_marketing",
	"personalization": "consent_personalization",
}

// redactColumn names the column that held a redacted category.
func applyDisposition(ctx context.Context, db *sqldb.DB, tx *sql.Tx, row map[string]any, rep *ReplayReport) error {
	contact, caseID := asString(row["contact_id"]), asString(row["case_id"])
	exec := func(q string, args ...any) (int64, error) {
		res, err := tx.ExecContext(ctx, db.Rebind(q), args...)
		if err != nil {
			return 0, fmt.Errorf("replay %s of %s%s: %w", row["action"], contact, caseID, err)
		}
		return res.RowsAffected()
	}

	// dropAttachments deletes the attachment rows whose col is id and
	// queues their blobs for removal after the commit.
	dropAttachments := func(col, id string) error {
		keys, err := sqldb.Collect(ctx, tx, db.Rebind(`SELECT blob_key FROM attachments WHERE `+col+` = ?`), []any{id}, func(rows *sql.Rows) (string, error) {
			var k string
			return k, rows.Scan(&k)
		})
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		rep.blobsToRemove = append(rep.blobsToRemove, keys...)
		rep.BlobsRemoved += len(keys)
		_, err = exec(`DELETE FROM attachments WHERE `+col+` = ?`, id)
		return err
	}

	wrap := func(n int64, err error) (int64, error) {
		if err != nil {
			return 0, fmt.Errorf("replay %s of %s%s: %w", row["action"], contact, caseID, err)
		}
		return n, nil
	}

	switch asString(row["action"]) {
	case actDelete:
		if err := dropAttachments("contact_id", contact); err != nil {
			return err
		}
		n, err := wrap(sqlstore.DeleteContacts(ctx, db, tx, []string{contact}))
		rep.Deleted += int(n)
		return err
	case actAnonymize:
		if err := dropAttachments("contact_id", contact); err != nil {
			return err
		}
		n, err := wrap(sqlstore.AnonymizeContacts(ctx, db, tx, sqldb.FromMicros(asInt(row["at"])), []string{contact}))
		rep.Anonymized += int(n)
		return err
	case actRedact:
		n, err := wrap(sqlstore.RedactContacts(ctx, db, tx, asString(row["detail"]), []string{contact}))
		rep.Redacted += int(n)
		return err
	case actDeleteCase:
		if err := dropAttachments("case_id", caseID); err != nil {
			return err
		}
		n, err := wrap(sqlstore.DeleteCase(ctx, db, tx, caseID))
		rep.CasesDeleted += int(n)
		return err
	case actEraseCustomer:
		customerID := asString(row["customer_id"])
		set, err := sqlstore.ReadErasure(ctx, db, tx, nil, customerID)
		if errors.Is(err, cases.ErrNotFound) {
			return nil // not in this copy
		}
		if err != nil {
			return fmt.Errorf("replay erasure of %s: %w", customerID, err)
		}
		for _, a := range set.Attachments {
			rep.blobsToRemove = append(rep.blobsToRemove, a.BlobKey)
		}
		rep.BlobsRemoved += len(set.Attachments)
		if err := sqlstore.DeleteCustomer(ctx, db, tx, customerID); err != nil {
			return fmt.Errorf("replay erasure of %s: %w", customerID, err)
		}
		rep.CasesDeleted += len(set.Cases)
		rep.Deleted += len(set.Contacts)
		return nil
	case actDeleteCustomer:
		n, err := wrap(sqlstore.DeleteCustomerProfile(ctx, db, tx, asString(row["customer_id"])))
		rep.ProfilesDeleted += int(n)
		return err
	case actConsentWithdraw:
		col, ok := consentColumns[asString(row["detail"])]
		if !ok {
			return fmt.Errorf("replay: withdrawal of unknown consent %q", asString(row["detail"]))
		}
		// Only a customer state older than the withdrawal is rolled
		// forward; a restored row changed since (impossible for a record
		// the backup lacked, but cheap to respect) is its own truth. A
		// consent given again after the withdrawal is in no tombstone:
		// the restored customer keeps it withdrawn (the safe side).
		n, err := exec(`UPDATE customers SET `+col+` = ? WHERE id = ? AND `+col+` = ? AND updated_at < ?`, false, asString(row["customer_id"]), true, asInt(row["at"]))
		rep.ConsentsWithdrawn += int(n)
		return err
	case actDropPurpose:
		var det struct {
			Purpose     string `json:"purpose"`
			RetainUntil *int64 `json:"retain_until"`
		}
		if err := json.Unmarshal([]byte(asString(row["detail"])), &det); err != nil || det.Purpose == "" {
			return fmt.Errorf("replay %s of %s: bad detail %q: %v", actDropPurpose, contact, asString(row["detail"]), err)
		}
		var stored string
		err := tx.QueryRowContext(ctx, db.Rebind(`SELECT purposes FROM contacts WHERE id = ?`), contact).Scan(&stored)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // not in this copy
		}
		if err != nil {
			return fmt.Errorf("replay %s of %s: %w", actDropPurpose, contact, err)
		}
		var ps []cases.Purpose
		if err := json.Unmarshal([]byte(stored), &ps); err != nil {
			return fmt.Errorf("replay %s of %s: purposes: %w", actDropPurpose, contact, err)
		}
		left := slices.DeleteFunc(slices.Clone(ps), func(p cases.Purpose) bool { return string(p) == det.Purpose })
		if len(left) == len(ps) {
			return nil // dropped already
		}
		if len(left) == 0 {
			// The withdrawal deleted a contact whose only purpose it was
			// (its own delete record); one left with none here has no
			// basis either.
			if err := dropAttachments("contact_id", contact); err != nil {
				return err
			}
			n, err := wrap(sqlstore.DeleteContacts(ctx, db, tx, []string{contact}))
			rep.Deleted += int(n)
			return err
		}
		var until *time.Time
		if det.RetainUntil != nil {
			t := sqldb.FromMicros(*det.RetainUntil)
			until = &t
		}
		if err := sqlstore.SetPurposes(ctx, db, tx, contact, left, until); err != nil {
			return fmt.Errorf("replay %s: %w", actDropPurpose, err)
		}
		rep.PurposesDropped++
		return nil
	default:
		return fmt.Errorf("replay: unknown disposition action %q (a newer casevault wrote it?)", strings.TrimSpace(asString(row["action"])))
	}
}
