package backup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// CaseRestoreOptions says how one case goes back into a running instance.
type CaseRestoreOptions struct {
	DB       *sqldb.DB
	Blobs    archive.Blobs
	Identity age.Identity
	// Overwrite replaces the live case row with the backup's; without it
	// only what is missing is added. Contacts are immutable, so they are
	// only ever added.
	Overwrite bool
	// HeldBy names the active holds covering the case (nil: no holds).
	HeldBy func(ctx context.Context, caseID, customerID string) ([]string, error)
	Actor  cases.Actor
	// OnChange audits the restore in the instance's transaction.
	OnChange cases.TxHook
}

// CaseRestoreReport is what a single-case restore did.
type CaseRestoreReport struct {
	Backup           string `json:"backup"`
	Case             string `json:"case"`
	CaseRestored     bool   `json:"case_restored"`
	CaseOverwritten  bool   `json:"case_overwritten"`
	CustomerRestored bool   `json:"customer_restored"`
	KeyRestored      bool   `json:"customer_key_restored"`
	Contacts         int    `json:"contacts_restored"`
	ContactsPresent  int    `json:"contacts_already_present"`
	ContactsDeleted  int    `json:"contacts_skipped_deleted"`
	Attachments      int    `json:"attachments_restored"`
	AttachmentsGone  int    `json:"attachments_skipped_erased"`
	Blobs            int    `json:"blobs_restored"`
}

// RestoreCase puts one case from backup id back into a running instance:
// the customer, case, contacts and attachments that are missing there. It
// never brings back what a tombstone says was destroyed (a deleted case is
// refused with ErrDeleted; deleted contacts and erased customers' files are
// skipped) and refuses to overwrite held data (ErrHeld).
func (r *Repo) RestoreCase(ctx context.Context, id, caseID string, opts CaseRestoreOptions) (CaseRestoreReport, error) {
	rep := CaseRestoreReport{Backup: id, Case: caseID}
	m, err := r.Manifest(ctx, id)
	if err != nil {
		return rep, err
	}
	if opts.Identity == nil {
		return rep, ErrNoKey
	}
	// pick keeps the rows of one table whose col is val: a case is a few
	// rows of tables that may hold millions.
	pick := func(name, col, val string) ([]map[string]any, error) {
		t, _ := tableByName(name)
		return r.backupRows(ctx, m, t, opts.Identity, func(row map[string]any) bool { return asString(row[col]) == val })
	}
	cs, err := pick("cases", "id", caseID)
	if err != nil {
		return rep, err
	}
	if len(cs) == 0 {
		return rep, fmt.Errorf("%w: case %s is not in backup %s", ErrNotFound, caseID, id)
	}
	customerID := asString(cs[0]["customer_id"])
	custs, err := pick("customers", "id", customerID)
	if err != nil {
		return rep, err
	}
	keys, err := pick("customer_keys", "customer_id", customerID)
	if err != nil {
		return rep, err
	}
	contacts, err := pick("contacts", "case_id", caseID)
	if err != nil {
		return rep, err
	}
	atts, err := pick("attachments", "case_id", caseID)
	if err != nil {
		return rep, err
	}
	blobOf := map[string]BlobEntry{}
	for _, b := range m.Blobs {
		blobOf[b.Key] = b
	}
	db := opts.DB
	var blobs []BlobEntry
	var restoredBlobs []string
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		rep = CaseRestoreReport{Backup: id, Case: caseID}
		blobs = nil
		dead, err := caseTombstones(ctx, db, tx, caseID)
		if err != nil {
			return err
		}
		if dead.caseDeleted != "" {
			return fmt.Errorf("%w: case %s was deleted (%s); a restore never brings it back", ErrDeleted, caseID, dead.caseDeleted)
		}
		var erased sql.NullInt64
		err = tx.QueryRowContext(ctx, db.Rebind(`SELECT destroyed_at FROM customer_keys WHERE customer_id = ?`), customerID).Scan(&erased)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("restore case: %w", err)
		}
		keyGone := erased.Valid
		exists := func(q string, arg string) (bool, error) {
			var n int
			if err := tx.QueryRowContext(ctx, db.Rebind(q), arg).Scan(&n); err != nil {
				return false, fmt.Errorf("restore case: %w", err)
			}
			return n > 0, nil
		}
		insert := func(name string, row map[string]any) error {
			t, _ := tableByName(name)
			in := newInserter(db.Dialect, tx, t)
			if err := in.add(ctx, t.args(db.Dialect, row)); err != nil {
				return err
			}
			return in.flush(ctx)
		}
		if ok, err := exists(`SELECT COUNT(*) FROM customers WHERE id = ?`, customerID); err != nil {
			return err
		} else if !ok && len(custs) == 1 {
			if err := insert("customers", custs[0]); err != nil {
				return err
			}
			rep.CustomerRestored = true
		}
		if ok, err := exists(`SELECT COUNT(*) FROM customer_keys WHERE customer_id = ?`, customerID); err != nil {
			return err
		} else if !ok && len(keys) == 1 {
			if err := insert("customer_keys", keys[0]); err != nil {
				return err
			}
			rep.KeyRestored = true
		}
		caseLive, err := exists(`SELECT COUNT(*) FROM cases WHERE id = ?`, caseID)
		if err != nil {
			return err
		}
		switch {
		case !caseLive:
			if err := insert("cases", cs[0]); err != nil {
				return err
			}
			rep.CaseRestored = true
		case opts.Overwrite:
			if opts.HeldBy != nil {
				held, err := opts.HeldBy(ctx, caseID, customerID)
				if err != nil {
					return fmt.Errorf("restore case: holds: %w", err)
				}
				if len(held) > 0 {
					return fmt.Errorf("%w: case %s is held by %s; its live state is not overwritten", ErrHeld, caseID, strings.Join(held, ", "))
				}
			}
			t, _ := tableByName("cases")
			sets := make([]string, 0, len(t.Columns))
			args := make([]any, 0, len(t.Columns))
			for i, c := range t.Columns {
				if c == "id" || c == "number" {
					continue
				}
				sets = append(sets, c+" = ?")
				args = append(args, t.args(db.Dialect, cs[0])[i])
			}
			args = append(args, caseID)
			if _, err := tx.ExecContext(ctx, db.Rebind(`UPDATE cases SET `+strings.Join(sets, ", ")+` WHERE id = ?`), args...); err != nil {
				return fmt.Errorf("restore case: %w", err)
			}
			rep.CaseOverwritten = true
		}
		restored := map[string]bool{}
		for _, c := range contacts {
			cid := asString(c["id"])
			if dead.contacts[cid] {
				rep.ContactsDeleted++
				continue
			}
			if ok, err := exists(`SELECT COUNT(*) FROM contacts WHERE id = ?`, cid); err != nil {
				return err
			} else if ok {
				rep.ContactsPresent++
				continue
			}
			if err := insert("contacts", c); err != nil {
				return err
			}
			restored[cid] = true
			rep.Contacts++
		}
		for _, a := range atts {
			if !restored[asString(a["contact_id"])] {
				continue // its contact was there already (with its files) or is gone
			}
			if keyGone {
				rep.AttachmentsGone++
				continue
			}
			b, ok := blobOf[asString(a["blob_key"])]
			if !ok {
				rep.AttachmentsGone++ // deleted between snapshot and copy
				continue
			}
			if err := insert("attachments", a); err != nil {
				return err
			}
			blobs = append(blobs, b)
			rep.Attachments++
		}
		if err := sqlstore.Enqueue(ctx, db, tx, caseID); err != nil {
			return fmt.Errorf("restore case: %w", err)
		}
		if opts.OnChange != nil {
			return opts.OnChange(ctx, tx, cases.Change{Actor: opts.Actor, Action: "backup.restore_case", TargetType: "case", TargetID: caseID,
				Detail: map[string]any{"backup": id, "contacts": rep.Contacts, "attachments": rep.Attachments, "overwrite": opts.Overwrite}})
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	// Blobs after commit: a failure leaves rows whose blob is missing,
	// which the reconciler reports and a rerun of this restore repairs.
	for _, b := range blobs {
		if _, err := opts.Blobs.Stat(ctx, b.Key); err == nil {
			continue
		}
		if _, err := r.restoreBlob(ctx, b, opts.Identity, opts.Blobs); err != nil {
			return rep, err
		}
		restoredBlobs = append(restoredBlobs, b.Key)
	}
	rep.Blobs = len(restoredBlobs)
	return rep, nil
}

type caseDead struct {
	caseDeleted string
	contacts    map[string]bool
}

// caseTombstones reads the live dispositions of one case.
func caseTombstones(ctx context.Context, db *sqldb.DB, tx *sql.Tx, caseID string) (caseDead, error) {
	d := caseDead{contacts: map[string]bool{}}
	rows, err := tx.QueryContext(ctx, db.Rebind(`SELECT contact_id, action, rule, at FROM dispositions WHERE case_id = ?`), caseID)
	if err != nil {
		return d, fmt.Errorf("restore case: tombstones: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var contact, action, rule string
		var at int64
		if err := rows.Scan(&contact, &action, &rule, &at); err != nil {
			return d, fmt.Errorf("restore case: tombstones: %w", err)
		}
		switch action {
		case actDeleteCase:
			d.caseDeleted = fmt.Sprintf("%s at %s", ruleName(rule), time.UnixMicro(at).UTC().Format(time.RFC3339))
		case actDelete, actAnonymize:
			// An anonymized contact is still live (emptied); a deleted one
			// must not come back.
			if action == actDelete {
				d.contacts[contact] = true
			}
		}
	}
	return d, rows.Err()
}

func ruleName(rule string) string {
	if rule == "" || rule == "manual" {
		return "by request"
	}
	return "by retention rule " + rule
}
