package backup_test

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/sqldb"
)

// TestPageDumpMatchesQueryDump: on SQLite a backup reads its tables from
// their b-tree pages; every table's dump that way must be the query's,
// byte for byte and key for key (chunk boundaries), or a restore would
// fail its digests. The archive holds what the services write plus rows
// that stress the reader: a body spilling over overflow pages, text that
// is not UTF-8, control characters, nulls, booleans, the escrowed column.
func TestPageDumpMatchesQueryDump(t *testing.T) {
	in := newInstance(t, sqldb.SQLite)
	ctx := context.Background()
	caseIDs := in.seed(20, 60)
	c := in.contact(caseIDs[0], strings.Repeat("长文本 long body ", 3000))
	in.attach(c, 100)
	for _, q := range []string{
		`UPDATE contacts SET body = CAST(X'6f6bff80fe2022' AS TEXT), location = NULL WHERE id = (SELECT MIN(id) FROM contacts)`,
		`UPDATE contacts SET body = 'ctl ' || char(1) || char(31) || char(127) || ' "q" \ ' || char(10) WHERE id = (SELECT MAX(id) FROM contacts)`,
		`UPDATE customers SET consent_marketing = 1, consent_personalization = 0 WHERE id = (SELECT MIN(id) FROM customers)`,
		`DELETE FROM contacts WHERE id IN (SELECT id FROM contacts ORDER BY id LIMIT 5 OFFSET 100) AND id NOT IN (SELECT contact_id FROM attachments)`,
	} {
		if _, err := in.db.Write.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	var byQuery []string
	compared := map[string]int{}
	for name := range backup.Tables() {
		query, pages, qk, pk, err := backup.DumpTwoWays(ctx, in.db, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if pages == nil {
			byQuery = append(byQuery, name)
			continue
		}
		if !bytes.Equal(pages, query) {
			t.Errorf("%s: the page dump differs from the query dump at byte %d:\npages %.200q\nquery %.200q", name, diffAt(pages, query), pages[diffAt(pages, query):], query[diffAt(pages, query):])
		}
		if strings.Join(pk, "\n") != strings.Join(qk, "\n") {
			t.Errorf("%s: the chunk keys differ", name)
		}
		compared[name] = len(qk)
	}
	sort.Strings(byQuery)

	// Only the tables ordered by two columns are left to the query.
	if got, want := strings.Join(byQuery, ","), "hold_items,user_identities"; got != want {
		t.Errorf("tables read by query: %s, want %s", got, want)
	}
	// Text keys (contacts: 1,200 rows, several tree levels), integer keys
	// (audit_events), booleans (customers) and the escrowed column
	// (customer_keys) were all compared on rows.
	for name, least := range map[string]int{"contacts": 1000, "audit_events": 1000, "customers": 20, "customer_keys": 20} {
		if compared[name] < least {
			t.Errorf("only %d rows of %s compared", compared[name], name)
		}
	}
}

func diffAt(a, b []byte) int {
	for i := 0; i < min(len(a), len(b)); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
