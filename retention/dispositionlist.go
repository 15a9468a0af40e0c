package retention

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/casevault/casevault/sqldb"
)

// DispositionRecord is one row of the disposition records: what a sweep,
// a deletion or a consent withdrawal destroyed, when and under which rule.
// The destroyed content is not kept, only its keyed digest.
type DispositionRecord struct {
	ID            string     `json:"id"`
	RunID         string     `json:"run_id"`
	Action        string     `json:"action"`
	Rule          string     `json:"rule"`
	CaseID        string     `json:"case_id"`
	ContactID     string     `json:"contact_id,omitempty"`
	CustomerID    string     `json:"customer_id"`
	Purposes      string     `json:"purposes"`
	At            time.Time  `json:"at"`
	ContentSHA256 string     `json:"content_sha256,omitempty"`
	BlobsGoneAt   *time.Time `json:"blobs_gone_at,omitempty"`
	ReversedAt    *time.Time `json:"reversed_at,omitempty"`
}

// DispositionFilter narrows the disposition records; empty fields match
// all. From and To bound At (To exclusive).
type DispositionFilter struct {
	Action, Rule, RunID, CaseID, CustomerID string
	From, To                                time.Time
}

// Dispositions lists the disposition records newest first, limit per page,
// keyset-paged on (at, id): cursor is the previous page's next
// (ErrBadCursor for one this list did not issue).
func (e *Explainer) Dispositions(ctx context.Context, f DispositionFilter, limit int, cursor string) ([]DispositionRecord, string, error) {
	var where []string
	var args []any
	for _, c := range []struct{ col, val string }{
		{"action", f.Action}, {"rule", f.Rule}, {"run_id", f.RunID}, {"case_id", f.CaseID}, {"customer_id", f.CustomerID},
	} {
		if c.val != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.val)
		}
	}
	if !f.From.IsZero() {
		where, args = append(where, "at >= ?"), append(args, sqldb.Micros(f.From))
	}
	if !f.To.IsZero() {
		where, args = append(where, "at < ?"), append(args, sqldb.Micros(f.To))
	}
	if cursor != "" {
		at, id, err := parseDispCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		where = append(where, "(at < ? OR (at = ? AND id < ?))")
		args = append(args, at, at, id)
	}
	q := `SELECT id, run_id, action, rule, case_id, contact_id, customer_id, purposes, at, content_sha256, blobs_gone_at, reversed_at FROM dispositions`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY at DESC, id DESC LIMIT ?"
	items, more, err := sqldb.Page(ctx, e.db.Read, e.db.Rebind(q), args, limit, scanDispositionRecord)
	if err != nil {
		return nil, "", sqldb.Fail("dispositions", err)
	}
	next := ""
	if more {
		last := items[len(items)-1]
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(sqldb.Micros(last.At), 10) + ":" + last.ID))
	}
	return items, next, nil
}

func parseDispCursor(cursor string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return 0, "", fmt.Errorf("%w: %v", ErrBadCursor, err)
	}
	atText, id, ok := strings.Cut(string(b), ":")
	at, perr := strconv.ParseInt(atText, 10, 64)
	if !ok || perr != nil || id == "" {
		return 0, "", ErrBadCursor
	}
	return at, id, nil
}

func scanDispositionRecord(rows *sql.Rows) (DispositionRecord, error) {
	var d DispositionRecord
	var at int64
	var gone, reversed sql.NullInt64
	if err := rows.Scan(&d.ID, &d.RunID, &d.Action, &d.Rule, &d.CaseID, &d.ContactID, &d.CustomerID, &d.Purposes, &at, &d.ContentSHA256, &gone, &reversed); err != nil {
		return d, err
	}
	d.At = time.UnixMicro(at).UTC()
	for _, p := range []struct {
		v   sql.NullInt64
		dst **time.Time
	}{{gone, &d.BlobsGoneAt}, {reversed, &d.ReversedAt}} {
		if p.v.Valid {
			t := time.UnixMicro(p.v.Int64).UTC()
			*p.dst = &t
		}
	}
	return d, nil
}

// DispositionActions are the actions a disposition record names (the
// page's filter choices).
func DispositionActions() []string {
	return []string{ItemDelete, ItemAnonymize, ItemRedact, ItemDeleteCase, ItemDeleteCustomer, ItemEraseCustomer, ItemConsentWithdraw, ItemDropPurpose}
}
