package retention

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// expiryPhase deletes or anonymizes contacts past retain_until, and deletes
// the cases it leaves without contacts.
type expiryPhase struct{ now time.Time }

func (p expiryPhase) selectAfter(ctx context.Context, db *sqldb.DB, q sqldb.Querier, key int64, id string, n int) ([]sqlstore.DueContact, error) {
	return sqlstore.ExpiringContacts(ctx, db, q, sqldb.Micros(p.now), key, id, n)
}

// expiryDecision is what expiry decided for a batch.
type expiryDecision struct {
	items []Item
	dels  []string          // contacts to delete
	anons []string          // contacts to anonymize
	cases []string          // cases the deleted and anonymized contacts leave
	rules map[string]string // case id → the rule that emptied it (a deletion's first)
}

func (p expiryPhase) apply(ctx context.Context, b *batch, cands []candidate) ([]Item, error) {
	ids := make([]string, len(cands))
	for i, c := range cands {
		ids[i] = c.id
	}
	live, err := readContacts(ctx, b.db, b.reader(), ids, b.fields)
	if err != nil {
		return nil, err
	}

	dec, err := p.decide(ctx, b, cands, live)
	if err != nil {
		return nil, err
	}

	gone, err := emptyCases(ctx, b, dec.cases, append(slices.Clone(dec.dels), dec.anons...), live)
	if err != nil {
		return nil, err
	}
	items := dec.items
	for _, id := range gone {
		items = append(items, Item{CaseID: id, Action: ItemDeleteCase, Rule: dec.rules[id]})
	}
	if b.dryRun {
		return items, nil
	}

	if err := p.destroy(ctx, b, dec, live); err != nil {
		return nil, err
	}
	if err := deleteCases(ctx, b, gone, dec.rules); err != nil {
		return nil, err
	}
	return items, nil
}

// decide re-decides each candidate on the schedule in force and the case as
// it is now, never on a stored date that a schedule change or a reopen made
// stale; a contact whose time has not come is rescheduled (not in a dry run).
func (p expiryPhase) decide(ctx context.Context, b *batch, cands []candidate, live map[string]liveContact) (expiryDecision, error) {
	dec := expiryDecision{rules: map[string]string{}}
	// The schedule as this batch's transaction sees it (which a schedule
	// change cannot pass: both lock retention_state), not the one the
	// sweep started with or this process loaded.
	sc, err := b.schedule(ctx)
	if err != nil {
		return dec, err
	}
	for _, c := range cands {
		lc, ok := live[c.id]
		if !ok {
			continue // already gone: another run finished it
		}

		until, rule := sc.RetainUntil(lc.Purposes, lc.OccurredAt, lc.CaseClosedAt)
		if lc.Anonymized {
			until = nil
		}
		if until == nil || until.After(b.now) {
			if !b.dryRun {
				if err := sqlstore.SetRetainUntil(ctx, b.db, b.tx, c.id, until); err != nil {
					return dec, sqldb.Fail("reschedule", err)
				}
			}
			dec.items = append(dec.items, Item{ContactID: c.id, CaseID: lc.CaseID, Action: ItemReschedule, Rule: string(rule.Purpose)})
			continue
		}

		it := Item{ContactID: c.id, CaseID: lc.CaseID, Action: ItemDelete, Rule: string(rule.Purpose)}
		if rule.Action == ActionAnonymize {
			it.Action = ItemAnonymize
			// The report (kept with the run) must not tie the contact to
			// the person's case either: it names the statistics case.
			it.CaseID = sqlstore.AnonymousCase(b.now, lc.Channel)
			dec.anons = append(dec.anons, c.id)
			if _, ok := dec.rules[lc.CaseID]; !ok {
				dec.rules[lc.CaseID] = it.Rule
			}
		} else {
			dec.dels = append(dec.dels, c.id)
			dec.rules[lc.CaseID] = it.Rule
		}
		// Anonymizing moves the contact out of the case as deleting does:
		// either may leave the case empty.
		if !slices.Contains(dec.cases, lc.CaseID) {
			dec.cases = append(dec.cases, lc.CaseID)
		}
		dec.items = append(dec.items, it)
	}
	return dec, nil
}

// destroy records a disposition for each deleted or anonymized contact and
// then deletes or strips it, with its attachments.
func (p expiryPhase) destroy(ctx context.Context, b *batch, dec expiryDecision, live map[string]liveContact) error {
	both := append(slices.Clone(dec.dels), dec.anons...)
	atts, err := attachmentsOf(ctx, b.db, b.tx, both)
	if err != nil {
		return err
	}
	for _, it := range dec.items {
		if it.Action != ItemDelete && it.Action != ItemAnonymize {
			continue
		}
		lc := live[it.ContactID]
		d := contactDisposition(it.ContactID, lc, it.Action, it.Rule, b.now, destroyedContact(lc, atts[it.ContactID]))
		d.blobs = blobKeys(atts[it.ContactID])
		if it.Action == ItemAnonymize {
			// The record must not tie the contact, which stays, back to
			// its customer or case: it names the pseudonym and the
			// statistics case the contact now has.
			d.customerID = sqlstore.AnonymousCustomer(b.now)
			d.caseID = sqlstore.AnonymousCase(b.now, lc.Channel)
		}
		b.dispose(d)
		// The contact leaves the person's case: re-index that case too,
		// so the index drops it there.
		b.work.touch(lc.CaseID)
	}

	if _, err := sqldb.ExecIn(ctx, b.db, b.tx, `DELETE FROM attachments WHERE `, "contact_id", both); err != nil {
		return sqldb.Fail("delete attachments", err)
	}
	if _, err := sqlstore.DeleteContacts(ctx, b.db, b.tx, dec.dels); err != nil {
		return sqldb.Fail("delete contacts", err)
	}
	if _, err := sqlstore.AnonymizeContacts(ctx, b.db, b.tx, b.now, dec.anons); err != nil {
		return sqldb.Fail("anonymize", err)
	}
	return nil
}

// emptyCases returns the cases of caseIDs that removing dels (deleted, or
// anonymized into a statistics case) leaves without contacts (a dry run
// counts what it would have removed so far).
func emptyCases(ctx context.Context, b *batch, caseIDs, dels []string, live map[string]liveContact) ([]string, error) {
	if len(caseIDs) == 0 {
		return nil, nil
	}
	left, err := sqlstore.CountCaseContacts(ctx, b.db, b.reader(), caseIDs)
	if err != nil {
		return nil, sqldb.Fail("case contacts", err)
	}
	for _, id := range dels {
		cs := live[id].CaseID
		left[cs]--
		if b.dryRun {
			b.dry.deleted[cs]++
		}
	}

	var out []string
	for _, cs := range caseIDs {
		n := left[cs]
		if b.dryRun {
			// The database still holds what earlier batches would have deleted.
			n = left[cs] + countOf(dels, live, cs) - b.dry.deleted[cs]
		}
		if n == 0 {
			out = append(out, cs)
		}
	}
	return out, nil
}

func countOf(dels []string, live map[string]liveContact, caseID string) int {
	n := 0
	for _, id := range dels {
		if live[id].CaseID == caseID {
			n++
		}
	}
	return n
}

// deleteCases records a disposition for each case, under the rule that
// deleted its last contacts (as the run report names it), and deletes it.
func deleteCases(ctx context.Context, b *batch, ids []string, rules map[string]string) error {
	if len(ids) == 0 {
		return nil
	}

	type caseRow struct{ id, subject, customerID string }
	inCond, inArgs := sqldb.AnyOf(b.db.Dialect, "id", ids)
	rows, err := sqldb.Collect(ctx, b.tx, b.db.Rebind(`SELECT id, subject, customer_id FROM cases WHERE `+inCond), inArgs,
		func(rows *sql.Rows) (caseRow, error) {
			var r caseRow
			return r, rows.Scan(&r.id, &r.subject, &r.customerID)
		})
	if err != nil {
		return sqldb.Fail("read cases", err)
	}
	for _, r := range rows {
		subject, err := b.fields.OpenSubject(ctx, r.customerID, r.id, r.subject)
		if err != nil {
			return fmt.Errorf("open subject: %w", err)
		}
		b.dispose(caseDisposition(r.id, r.customerID, rules[r.id], b.now, subject))
	}

	// The history goes with the case: it holds earlier subjects and tags.
	for _, q := range []struct{ sql, col string }{{`DELETE FROM case_history WHERE `, "case_id"}, {`DELETE FROM cases WHERE `, "id"}} {
		if _, err := sqldb.ExecIn(ctx, b.db, b.tx, q.sql, q.col, ids); err != nil {
			return sqldb.Fail("delete cases", err)
		}
	}
	return nil
}

// liveContact is a contact as re-read inside the act's transaction.
type liveContact = sqlstore.StoredContact

// readContacts reads the contacts ids, by id. With f, their author, body,
// location and device are opened: what is destroyed is digested in clear
// (a sealed form is random per write and would match no copy); nil f
// leaves them as stored (recompute reads no content).
func readContacts(ctx context.Context, db *sqldb.DB, q sqldb.Querier, ids []string, f *sqlstore.Fields) (map[string]liveContact, error) {
	cs, err := sqlstore.ReadStoredContacts(ctx, db, q, ids)
	if err != nil {
		return nil, sqldb.Fail("read contacts", err)
	}
	if err := f.OpenStoredContacts(ctx, cs); err != nil {
		return nil, fmt.Errorf("open contacts: %w", err)
	}

	out := make(map[string]liveContact, len(cs))
	for _, c := range cs {
		out[c.ID] = c
	}
	return out, nil
}

type attRef struct{ blobKey, sha string }

// blobKeys lists the blob keys of atts.
func blobKeys(atts []attRef) []string {
	var out []string
	for _, a := range atts {
		out = append(out, a.blobKey)
	}
	return out
}

// attachmentsOf lists the attachments of each contact, in attachment order.
func attachmentsOf(ctx context.Context, db *sqldb.DB, q sqldb.Querier, contactIDs []string) (map[string][]attRef, error) {
	out := map[string][]attRef{}
	if len(contactIDs) == 0 {
		return out, nil
	}

	type row struct {
		contactID string
		a         attRef
	}
	inCond, inArgs := sqldb.AnyOf(db.Dialect, "contact_id", contactIDs)
	rows, err := sqldb.Collect(ctx, q, db.Rebind(`SELECT contact_id, blob_key, sha256 FROM attachments WHERE `+inCond+` ORDER BY id`),
		inArgs, func(rows *sql.Rows) (row, error) {
			var r row
			return r, rows.Scan(&r.contactID, &r.a.blobKey, &r.a.sha)
		})
	if err != nil {
		return nil, sqldb.Fail("attachments", err)
	}
	for _, r := range rows {
		out[r.contactID] = append(out[r.contactID], r.a)
	}
	return out, nil
}
