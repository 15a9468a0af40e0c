package backup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// notReversed keeps the dispositions an undo has not reversed: only those
// still say that something is gone.
const notReversed = " AND reversed_at IS NULL"

// Undo errors.
var (
	// ErrUnconfirmed: an undo was asked for without its confirmation; the
	// report says what it would bring back.
	ErrUnconfirmed = errors.New("undo needs confirmation (--yes)")
	// ErrNotBefore: the backup was taken after the disposal it should undo,
	// so it does not hold what was removed.
	ErrNotBefore = errors.New("backup was not taken before the disposal")
)

// UndoOptions says which disposal to undo, in which running instance.
type UndoOptions struct {
	DB       *sqldb.DB
	Blobs    archive.Blobs
	Identity age.Identity
	// RunID undoes what that retention run deleted; CaseID undoes the
	// deletion of that case (by retention or by request). Exactly one.
	RunID, CaseID string
	// Confirm applies the undo; without it Undo only reports what it would
	// do and returns ErrUnconfirmed.
	Confirm bool
	// HeldBy names the active holds covering a case (see CaseRestoreOptions).
	HeldBy func(ctx context.Context, caseID, customerID string) ([]string, error)
	// Rewrap: see CaseRestoreOptions.
	Rewrap   func(customerID, wrapped string) (string, error)
	Actor    cases.Actor
	OnChange cases.TxHook
	Now      func() time.Time
}

// UndoItem is one disposition an undo reverses, or keeps with the reason.
type UndoItem struct {
	Disposition string `json:"disposition"`
	Action      string `json:"action"`
	Case        string `json:"case"`
	Contact     string `json:"contact,omitempty"`
	At          string `json:"at"`
	Kept        string `json:"kept_because,omitempty"`

	customer string
	at       int64
}

// UndoReport is what an undo did (or, unconfirmed, would do).
type UndoReport struct {
	Backup      string     `json:"backup"`
	Run         string     `json:"run,omitempty"`
	Case        string     `json:"case,omitempty"`
	Applied     bool       `json:"applied"`
	Reversed    []UndoItem `json:"reversed"`
	Kept        []UndoItem `json:"kept"`
	Cases       int        `json:"cases_restored"`
	Contacts    int        `json:"contacts_restored"`
	Attachments int        `json:"attachments_restored"`
	Blobs       int        `json:"blobs_restored"`
}

// Undo brings back, from backup id taken before it, what a retention run
// or a case deletion removed, and marks those dispositions reversed (a
// restore then never replays them). What is final stays gone: erasures (the
// customer's data key is destroyed), anything an active legal hold covers
// (its matter's record is frozen while the hold is in force), and
// anonymizations and redactions (their contacts are still there, minimized).
func (r *Repo) Undo(ctx context.Context, id string, opts UndoOptions) (UndoReport, error) {
	rep := UndoReport{Backup: id, Run: opts.RunID, Case: opts.CaseID}
	if (opts.RunID == "") == (opts.CaseID == "") {
		return rep, errors.New("undo: give a retention run or a case")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m, err := r.Manifest(ctx, id)
	if err != nil {
		return rep, err
	}
	if opts.Identity == nil {
		return rep, ErrNoKey
	}

	items, err := disposalOf(ctx, opts.DB, opts.RunID, opts.CaseID)
	if err != nil {
		return rep, err
	}

	// The backup must predate the disposal: it then holds the data and not
	// the dispositions (clocks may differ, records do not).
	byID := map[string]UndoItem{}
	for _, it := range items {
		byID[it.Disposition] = it
	}
	disp, _ := tableByName("dispositions")
	later, err := r.backupRows(ctx, m, disp, opts.Identity, func(row map[string]any) bool { _, ok := byID[asString(row["id"])]; return ok })
	if err != nil {
		return rep, err
	}
	if len(later) > 0 {
		it := byID[asString(later[0]["id"])]
		return rep, fmt.Errorf("%w: backup %s (snapshot %s) was taken after disposition %s (%s): it does not hold what was removed; use a backup taken before it",
			ErrNotBefore, id, m.SnapshotAt.UTC().Format(time.RFC3339), it.Disposition, it.At)
	}

	if err := keepFinal(ctx, opts, items); err != nil {
		return rep, err
	}
	caseIDs := map[string]bool{}
	for _, it := range items {
		if it.Kept == "" {
			rep.Reversed = append(rep.Reversed, it)
			caseIDs[it.Case] = true
		} else {
			rep.Kept = append(rep.Kept, it)
		}
	}
	if len(rep.Reversed) == 0 {
		return rep, fmt.Errorf("%w: nothing of it can be undone: %s", ErrDeleted, rep.Kept[0].Kept)
	}
	if !opts.Confirm {
		return rep, ErrUnconfirmed
	}

	ids := sortedKeys(caseIDs)
	crs, err := readCases(ctx, r, m, ids, CaseRestoreOptions{DB: opts.DB, Blobs: opts.Blobs, Identity: opts.Identity, Actor: opts.Actor, Rewrap: opts.Rewrap})
	if err != nil {
		return rep, err
	}

	err = opts.DB.InTx(ctx, func(tx *sql.Tx) error {
		rep.Cases, rep.Contacts, rep.Attachments = 0, 0, 0
		if err := markReversed(ctx, opts.DB, tx, rep.Reversed, id, opts); err != nil {
			return err
		}
		for _, cid := range ids {
			cr, ok := crs[cid]
			if !ok {
				continue // not in the backup: nothing to bring back
			}
			if err := cr.apply(ctx, tx); err != nil {
				return err
			}
			if cr.rep.CaseRestored {
				rep.Cases++
			}
			rep.Contacts += cr.rep.Contacts
			rep.Attachments += cr.rep.Attachments
		}
		if opts.OnChange == nil {
			return nil
		}
		target, kind := opts.RunID, "retention_run"
		if opts.CaseID != "" {
			target, kind = opts.CaseID, "case"
		}
		return opts.OnChange(ctx, tx, cases.Change{Actor: opts.Actor, Action: "backup.undo_disposal", TargetType: kind, TargetID: target,
			Detail: map[string]any{"backup": id, "dispositions_reversed": len(rep.Reversed), "kept_final": len(rep.Kept),
				"cases": rep.Cases, "contacts": rep.Contacts, "attachments": rep.Attachments}})
	})
	if err != nil {
		return rep, err
	}
	rep.Applied = true

	// Blobs after commit, as for a single case: a rerun repairs a failure.
	for _, cid := range ids {
		if cr, ok := crs[cid]; ok {
			if err := cr.putBlobs(ctx); err != nil {
				return rep, err
			}
			rep.Blobs += cr.rep.Blobs
		}
	}
	return rep, nil
}

// disposalOf lists the unreversed dispositions of a retention run, or of
// the act that deleted a case: the case's own record and its contacts'
// deleted by the same run (or, by request, at the same moment).
func disposalOf(ctx context.Context, db *sqldb.DB, runID, caseID string) ([]UndoItem, error) {
	scan := func(rows *sql.Rows) (UndoItem, error) {
		var it UndoItem
		err := rows.Scan(&it.Disposition, &it.Action, &it.Case, &it.Contact, &it.customer, &it.at)
		it.At = time.UnixMicro(it.at).UTC().Format(time.RFC3339)
		return it, err
	}
	const cols = `SELECT id, action, case_id, contact_id, customer_id, at FROM dispositions WHERE `

	if runID != "" {
		items, err := sqldb.Collect(ctx, db.Read, db.Rebind(cols+`run_id = ?`+notReversed+` ORDER BY at, id`), []any{runID}, scan)
		if err != nil {
			return nil, fmt.Errorf("undo: %w", err)
		}
		if len(items) == 0 {
			return nil, fmt.Errorf("%w: retention run %s disposed of nothing that is not undone already", ErrNotFound, runID)
		}
		return items, nil
	}

	var run string
	var at int64
	err := db.Read.QueryRowContext(ctx, db.Rebind(`SELECT run_id, at FROM dispositions WHERE case_id = ? AND action = '`+actDeleteCase+`'`+notReversed), caseID).Scan(&run, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: case %s was not deleted (or its deletion is undone already)", ErrNotFound, caseID)
	}
	if err != nil {
		return nil, fmt.Errorf("undo: %w", err)
	}
	q, args := cols+`case_id = ? AND run_id = ?`, []any{caseID, run}
	if run == "" {
		q, args = q+` AND at = ?`, append(args, at)
	}
	items, err := sqldb.Collect(ctx, db.Read, db.Rebind(q+notReversed+` ORDER BY at, id`), args, scan)
	if err != nil {
		return nil, fmt.Errorf("undo: %w", err)
	}
	return items, nil
}

// keepFinal marks the items that stay final with the reason.
func keepFinal(ctx context.Context, opts UndoOptions, items []UndoItem) error {
	erased := map[string]bool{}
	held := map[string][]string{}
	for i := range items {
		it := &items[i]
		if it.Action != actDelete && it.Action != actDeleteCase {
			it.Kept = it.Action + ": the contact is still there, minimized; only deletions are undone"
			continue
		}

		gone, seen := erased[it.customer]
		if !seen {
			var destroyed sql.NullInt64
			err := opts.DB.Read.QueryRowContext(ctx, opts.DB.Rebind(`SELECT destroyed_at FROM customer_keys WHERE customer_id = ?`), it.customer).Scan(&destroyed)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("undo: %w", err)
			}
			gone, erased[it.customer] = destroyed.Valid, destroyed.Valid
		}
		if gone {
			it.Kept = "customer " + it.customer + " was erased (data key destroyed): erasure is final"
			continue
		}

		if opts.HeldBy == nil {
			continue
		}
		hs, seen := held[it.Case]
		if !seen {
			var err error
			if hs, err = opts.HeldBy(ctx, it.Case, it.customer); err != nil {
				return fmt.Errorf("undo: holds: %w", err)
			}
			held[it.Case] = hs
		}
		if len(hs) > 0 {
			it.Kept = "covered by active legal hold " + strings.Join(hs, ", ") + ": its record stays as the hold found it"
		}
	}
	return nil
}

// markReversed marks the reversed dispositions; one reversed meanwhile by
// another undo fails the transaction rather than restore twice.
func markReversed(ctx context.Context, db *sqldb.DB, tx *sql.Tx, items []UndoItem, backupID string, opts UndoOptions) error {
	ids := make([]string, 0, len(items))
	for _, it := range items {
		ids = append(ids, it.Disposition)
	}
	sort.Strings(ids)
	by := opts.Actor.Name + " from backup " + backupID
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(len(ids), start+500)]
		inCond, inArgs := sqldb.AnyOf(db.Dialect, "id", chunk)
		args := append([]any{opts.Now().UnixMicro(), by}, inArgs...)
		res, err := tx.ExecContext(ctx, db.Rebind(`UPDATE dispositions SET reversed_at = ?, reversed_by = ? WHERE reversed_at IS NULL AND `+inCond), args...)
		if err != nil {
			return fmt.Errorf("undo: %w", err)
		}
		if n, _ := res.RowsAffected(); int(n) != len(chunk) {
			return fmt.Errorf("undo: %d of %d dispositions were reversed meanwhile by another undo; nothing was changed", len(chunk)-int(n), len(chunk))
		}
	}
	return nil
}
