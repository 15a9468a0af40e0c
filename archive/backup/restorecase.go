package backup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
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
	// Rewrap returns a customer's data key, wrapped under the backup's
	// master key, wrapped under this instance's; it fails (wrapping
	// archive.ErrWrongMasterKey) when that cannot be done, so a key no one
	// can unwrap is never stored. nil stores keys as the backup has them.
	Rewrap func(customerID, wrapped string) (string, error)
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

	crs, err := readCases(ctx, r, m, []string{caseID}, opts)
	if err != nil {
		return rep, err
	}
	cr, ok := crs[caseID]
	if !ok {
		return rep, fmt.Errorf("%w: case %s is not in backup %s", ErrNotFound, caseID, id)
	}

	if err := cr.db.InTx(ctx, func(tx *sql.Tx) error { return cr.apply(ctx, tx) }); err != nil {
		return cr.rep, err
	}

	// Blobs after commit: a failure leaves rows whose blob is missing,
	// which the reconciler reports and a rerun of this restore repairs.
	return cr.rep, cr.putBlobs(ctx)
}

// caseRestore is one single-case restore: the backup's rows of the case,
// read first, then put back by one step per kind of row in the instance's
// transaction.
type caseRestore struct {
	repo   *Repo
	backup string
	caseID string
	opts   CaseRestoreOptions
	db     *sqldb.DB

	// From the backup.
	caseRow    map[string]any
	customerID string
	customers  []map[string]any
	keys       []map[string]any
	contacts   []map[string]any
	atts       []map[string]any
	blobOf     map[string]BlobEntry

	// Of the current transaction attempt (InTx may run apply again).
	tx       *sql.Tx
	rep      CaseRestoreReport
	dead     caseDead
	restored map[string]bool // contacts added by this restore
	blobs    []BlobEntry     // blobs of the attachments added
}

// readCases picks the rows of cases caseIDs out of backup m in one pass
// over each table (a case is a few rows of tables that may hold millions),
// and returns a restore of each case found there.
func readCases(ctx context.Context, r *Repo, m Manifest, caseIDs []string, opts CaseRestoreOptions) (map[string]*caseRestore, error) {
	want := map[string]bool{}
	for _, id := range caseIDs {
		want[id] = true
	}
	pick := func(name, col string, in map[string]bool) ([]map[string]any, error) {
		t, _ := tableByName(name)
		return r.backupRows(ctx, m, t, opts.Identity, func(row map[string]any) bool { return in[asString(row[col])] })
	}

	cs, err := pick("cases", "id", want)
	if err != nil {
		return nil, err
	}
	out := map[string]*caseRestore{}
	customers := map[string]bool{}
	byCustomer := map[string][]*caseRestore{}
	for _, row := range cs {
		c := &caseRestore{repo: r, backup: m.ID, caseID: asString(row["id"]), opts: opts, db: opts.DB, caseRow: row, customerID: asString(row["customer_id"])}
		out[c.caseID] = c
		customers[c.customerID] = true
		byCustomer[c.customerID] = append(byCustomer[c.customerID], c)
	}
	if len(out) == 0 {
		return out, nil
	}

	blobOf := map[string]BlobEntry{}
	for _, b := range m.Blobs {
		blobOf[b.Key] = b
	}

	// Each kind of row goes to the cases it belongs to.
	for _, step := range []struct {
		table, col string
		in         map[string]bool
		put        func(c *caseRestore, row map[string]any)
	}{
		{"customers", "id", customers, func(c *caseRestore, row map[string]any) { c.customers = append(c.customers, row) }},
		{"customer_keys", "customer_id", customers, func(c *caseRestore, row map[string]any) { c.keys = append(c.keys, row) }},
		{"contacts", "case_id", want, func(c *caseRestore, row map[string]any) { c.contacts = append(c.contacts, row) }},
		{"attachments", "case_id", want, func(c *caseRestore, row map[string]any) { c.atts = append(c.atts, row) }},
	} {
		rows, err := pick(step.table, step.col, step.in)
		if err != nil {
			return nil, err
		}
		if step.table == "customer_keys" {
			if err := r.fillEscrowRows(ctx, m, opts.Identity, rows, time.Now()); err != nil {
				return nil, err
			}
		}
		for _, row := range rows {
			key := asString(row[step.col])
			owners := byCustomer[key]
			if step.col == "case_id" {
				owners = []*caseRestore{out[key]}
			}
			for _, c := range owners {
				step.put(c, row)
			}
		}
	}
	for _, c := range out {
		c.blobOf = blobOf
	}
	return out, nil
}

// apply adds what is missing in one transaction, and records it.
func (c *caseRestore) apply(ctx context.Context, tx *sql.Tx) error {
	c.tx, c.rep, c.blobs, c.restored = tx, CaseRestoreReport{Backup: c.backup, Case: c.caseID}, nil, map[string]bool{}

	if err := c.refuseDeleted(ctx); err != nil {
		return err
	}

	// Read before putCustomer may add the key: a key restored by this
	// restore is not an erasure.
	keyGone, err := c.customerErased(ctx)
	if err != nil {
		return err
	}
	for _, k := range c.keys {
		// the escrow no longer has the key: the files would not open
		keyGone = keyGone || k["destroyed_at"] != nil
	}

	if err := c.putCustomer(ctx); err != nil {
		return err
	}

	if err := c.putCase(ctx); err != nil {
		return err
	}

	if err := c.putContacts(ctx); err != nil {
		return err
	}

	if err := c.putAttachments(ctx, keyGone); err != nil {
		return err
	}

	if err := c.reminimize(ctx); err != nil {
		return err
	}

	return c.record(ctx)
}

// refuseDeleted reads the case's live tombstones: a deleted case is never
// brought back, deleted contacts are skipped.
func (c *caseRestore) refuseDeleted(ctx context.Context) error {
	ids := make([]string, 0, len(c.contacts))
	for _, row := range c.contacts {
		ids = append(ids, asString(row["id"]))
	}
	dead, err := caseTombstones(ctx, c.db, c.tx, c.caseID, ids)
	if err != nil {
		return err
	}
	if dead.caseDeleted != "" {
		return fmt.Errorf("%w: case %s was %s; a restore never brings it back", ErrDeleted, c.caseID, dead.caseDeleted)
	}
	c.dead = dead
	return nil
}

// putCustomer adds the customer and its data key when they are missing.
func (c *caseRestore) putCustomer(ctx context.Context) error {
	if ok, err := c.exists(ctx, `SELECT COUNT(*) FROM customers WHERE id = ?`, c.customerID); err != nil {
		return err
	} else if !ok && len(c.customers) == 1 {
		if err := c.insert(ctx, "customers", c.customers[0]); err != nil {
			return err
		}
		// the index keeps a document per customer (issue 16 §2)
		if err := sqlstore.EnqueueCustomers(ctx, c.db, c.tx, c.customerID); err != nil {
			return fmt.Errorf("restore case: %w", err)
		}
		c.rep.CustomerRestored = true
	}

	if ok, err := c.exists(ctx, `SELECT COUNT(*) FROM customer_keys WHERE customer_id = ?`, c.customerID); err != nil {
		return err
	} else if !ok && len(c.keys) == 1 {
		row := c.keys[0]
		if w := asString(row["wrapped_key"]); w != "" && c.opts.Rewrap != nil {
			nw, err := c.opts.Rewrap(c.customerID, w)
			if err != nil {
				return fmt.Errorf("restore case: customer key: %w", err)
			}
			row = maps.Clone(row)
			row["wrapped_key"] = nw
		}
		if err := c.insert(ctx, "customer_keys", row); err != nil {
			return err
		}
		c.rep.KeyRestored = true
	}
	return nil
}

// putCase adds the case when it is missing, or with Overwrite replaces
// the live row (all but id and number) unless a hold covers it.
func (c *caseRestore) putCase(ctx context.Context) error {
	live, err := c.exists(ctx, `SELECT COUNT(*) FROM cases WHERE id = ?`, c.caseID)
	if err != nil {
		return err
	}

	if !live {
		if err := c.insert(ctx, "cases", c.caseRow); err != nil {
			return err
		}
		c.rep.CaseRestored = true
		return nil
	}

	if !c.opts.Overwrite {
		return nil
	}

	if c.opts.HeldBy != nil {
		held, err := c.opts.HeldBy(ctx, c.caseID, c.customerID)
		if err != nil {
			return fmt.Errorf("restore case: holds: %w", err)
		}
		if len(held) > 0 {
			return fmt.Errorf("%w: case %s is held by %s; its live state is not overwritten", ErrHeld, c.caseID, strings.Join(held, ", "))
		}
	}

	t, _ := tableByName("cases")
	vals := t.args(c.db.Dialect, c.caseRow)
	sets := make([]string, 0, len(t.Columns))
	args := make([]any, 0, len(t.Columns))
	for i, col := range t.Columns {
		if col == "id" || col == "number" {
			continue
		}
		sets = append(sets, col+" = ?")
		args = append(args, vals[i])
	}

	// FOR UPDATE first, as every change of a live case's row: a contact
	// batch in flight holds the row FOR KEY SHARE only (sqlstore's
	// createContacts), which a plain UPDATE would not wait for.
	if c.db.Dialect == sqldb.Postgres {
		if _, err := c.tx.ExecContext(ctx, `SELECT id FROM cases WHERE id = $1 FOR UPDATE`, c.caseID); err != nil {
			return fmt.Errorf("restore case: lock: %w", err)
		}
	}

	args = append(args, c.caseID)
	if _, err := c.tx.ExecContext(ctx, c.db.Rebind(`UPDATE cases SET `+strings.Join(sets, ", ")+` WHERE id = ?`), args...); err != nil {
		return fmt.Errorf("restore case: %w", err)
	}

	c.rep.CaseOverwritten = true
	return nil
}

// putContacts adds the contacts that are neither live nor deleted.
// Contacts are immutable, so a live one is never replaced.
func (c *caseRestore) putContacts(ctx context.Context) error {
	for _, row := range c.contacts {
		id := asString(row["id"])
		if c.dead.contacts[id] {
			c.rep.ContactsDeleted++
			continue
		}

		live, err := sqlstore.ContactExists(ctx, c.db, c.tx, id)
		if err != nil {
			return fmt.Errorf("restore case: %w", err)
		}
		if live {
			c.rep.ContactsPresent++
			continue
		}
		if c.dead.anonymized[id] {
			// Anonymized into a statistics case that is gone since: the
			// backup's copy still names the person.
			c.rep.ContactsDeleted++
			continue
		}

		if err := c.insert(ctx, "contacts", row); err != nil {
			return err
		}
		c.restored[id] = true
		c.rep.Contacts++
	}
	return nil
}

// reminimize applies again the redactions and purpose drops (consent
// withdrawals) recorded since the backup to the contacts this restore
// added: a restored contact never gets back a location or device that was
// minimized away, nor a purpose whose consent was withdrawn.
func (c *caseRestore) reminimize(ctx context.Context) error {
	ids := sortedKeys(c.restored)
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(len(ids), start+500)]
		inCond, inArgs := sqldb.AnyOf(c.db.Dialect, "contact_id", chunk)
		rows, err := sqldb.Collect(ctx, c.tx, c.db.Rebind(`SELECT contact_id, case_id, action, detail, at FROM dispositions WHERE action IN ('`+actRedact+`', '`+actDropPurpose+`') AND `+inCond+notReversed+` ORDER BY at, id`),
			inArgs, func(rows *sql.Rows) (map[string]any, error) {
				var contact, caseID, action, detail string
				var at int64
				err := rows.Scan(&contact, &caseID, &action, &detail, &at)
				return map[string]any{"action": action, "contact_id": contact, "case_id": caseID, "detail": detail, "at": at}, err
			})
		if err != nil {
			return fmt.Errorf("restore case: redactions: %w", err)
		}
		for _, row := range rows {
			if err := applyDisposition(ctx, c.db, c.tx, row, &ReplayReport{}); err != nil {
				return err
			}
		}
	}
	return nil
}

// customerErased reports whether the customer's data key was destroyed
// (erasure): their files stay gone.
func (c *caseRestore) customerErased(ctx context.Context) (bool, error) {
	var erased sql.NullInt64
	err := c.tx.QueryRowContext(ctx, c.db.Rebind(`SELECT destroyed_at FROM customer_keys WHERE customer_id = ?`), c.customerID).Scan(&erased)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("restore case: %w", err)
	}
	return erased.Valid, nil
}

// putAttachments adds the attachments of the contacts this restore added,
// and notes their blobs for putBlobs.
func (c *caseRestore) putAttachments(ctx context.Context, keyGone bool) error {
	for _, a := range c.atts {
		if !c.restored[asString(a["contact_id"])] {
			continue // its contact was there already (with its files) or is gone
		}
		if keyGone {
			c.rep.AttachmentsGone++
			continue
		}
		b, ok := c.blobOf[asString(a["blob_key"])]
		if !ok {
			c.rep.AttachmentsGone++ // deleted between snapshot and copy
			continue
		}

		if err := c.insert(ctx, "attachments", a); err != nil {
			return err
		}
		c.blobs = append(c.blobs, b)
		c.rep.Attachments++
	}
	return nil
}

// record queues the case for the indexer and audits the restore.
func (c *caseRestore) record(ctx context.Context) error {
	if err := sqlstore.Enqueue(ctx, c.db, c.tx, c.caseID); err != nil {
		return fmt.Errorf("restore case: %w", err)
	}
	if c.opts.OnChange == nil {
		return nil
	}
	return c.opts.OnChange(ctx, c.tx, cases.Change{Actor: c.opts.Actor, Action: "backup.restore_case", TargetType: "case", TargetID: c.caseID,
		Detail: map[string]any{"backup": c.backup, "contacts": c.rep.Contacts, "attachments": c.rep.Attachments, "overwrite": c.opts.Overwrite}})
}

// putBlobs copies the added attachments' blobs that the instance lacks;
// the report counts them once all are there.
func (c *caseRestore) putBlobs(ctx context.Context) error {
	n := 0
	var buf []byte
	for _, b := range c.blobs {
		if _, err := c.opts.Blobs.Stat(ctx, b.Key); err == nil {
			continue
		}
		if _, err := c.repo.restoreBlob(ctx, b, c.opts.Identity, c.opts.Blobs, &buf); err != nil {
			return err
		}
		n++
	}
	c.rep.Blobs = n
	return nil
}

// exists reports whether the count query q for arg finds a row.
func (c *caseRestore) exists(ctx context.Context, q string, arg string) (bool, error) {
	var n int
	if err := c.tx.QueryRowContext(ctx, c.db.Rebind(q), arg).Scan(&n); err != nil {
		return false, fmt.Errorf("restore case: %w", err)
	}
	return n > 0, nil
}

// insert adds one backup row to table name.
func (c *caseRestore) insert(ctx context.Context, name string, row map[string]any) error {
	t, _ := tableByName(name)
	in := newInserter(c.db.Dialect, c.tx, t)
	if err := in.add(ctx, t.args(c.db.Dialect, row)); err != nil {
		return err
	}
	return in.flush(ctx)
}

type caseDead struct {
	caseDeleted string
	caseRun     string // the retention run that deleted the case ("" by request)
	contacts    map[string]bool
	anonymized  map[string]bool // contacts anonymized (moved to a statistics case)
}

// caseTombstones reads the live dispositions of one case, and the
// anonymizations of its contacts contactIDs: those name the statistics
// case the contact moved to, not this one.
func caseTombstones(ctx context.Context, db *sqldb.DB, tx *sql.Tx, caseID string, contactIDs []string) (caseDead, error) {
	d := caseDead{contacts: map[string]bool{}, anonymized: map[string]bool{}}
	for start := 0; start < len(contactIDs); start += 500 {
		chunk := contactIDs[start:min(len(contactIDs), start+500)]
		inCond, inArgs := sqldb.AnyOf(db.Dialect, "contact_id", chunk)
		anon, err := sqldb.Collect(ctx, tx, db.Rebind(`SELECT contact_id FROM dispositions WHERE action = '`+actAnonymize+`' AND `+inCond), inArgs,
			func(rows *sql.Rows) (string, error) {
				var id string
				return id, rows.Scan(&id)
			})
		if err != nil {
			return d, fmt.Errorf("restore case: tombstones: %w", err)
		}
		for _, id := range anon {
			d.anonymized[id] = true
		}
	}

	rows, err := tx.QueryContext(ctx, db.Rebind(`SELECT contact_id, action, rule, run_id, at FROM dispositions WHERE case_id = ?`+notReversed), caseID)
	if err != nil {
		return d, fmt.Errorf("restore case: tombstones: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var contact, action, rule, run string
		var at int64
		if err := rows.Scan(&contact, &action, &rule, &run, &at); err != nil {
			return d, fmt.Errorf("restore case: tombstones: %w", err)
		}
		switch action {
		case actDeleteCase:
			d.caseDeleted = fmt.Sprintf("%s at %s", deletedHow(rule, run), time.UnixMicro(at).UTC().Format(time.RFC3339))
			d.caseRun = run
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

// deletedHow says how a disposition came about: a retention run records
// its run id (and the deciding rule, when there was one); a deletion asked
// for through the API or CLI records no run (rule "manual").
func deletedHow(rule, run string) string {
	switch {
	case run == "":
		return "deleted by request"
	case rule == "" || rule == manualRule:
		return "deleted by retention run " + run
	}
	return "deleted by retention run " + run + " (rule " + rule + ")"
}

// manualRule is retention.ActionManualDelete (not imported: retention
// depends on this package).
const manualRule = "manual"
