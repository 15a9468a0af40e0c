package export

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"io"
	"strconv"
	"time"

	"github.com/casevault/casevault/retention"
)

// generateFiles prepares the package's generated files (records, load
// file, audit events, summary), each deflated in memory, and completes sum
// with the count of audit events. It runs while the natives are written.
func (s *Service) generateFiles(ctx context.Context, e Export, sel selection, snap *snapshot, sum *Summary) ([]*prepared, error) {
	// The load file's row of a contact carries the digest of its record's
	// line.
	lineSums := make([][sha256.Size]byte, len(snap.contacts))
	contacts, err := deflated(ContactsFile, func(w io.Writer) error {
		var line bytes.Buffer
		enc := json.NewEncoder(&line)
		for i, c := range snap.contacts {
			if i%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			rec := record{ControlNumber: controlNumber(i), Why: c.why, Contact: c, Attachments: snap.attachments[c.ID]}
			if k := snap.cases[c.CaseID]; k != nil {
				rec.Case = *k
			}
			if u := snap.customers[c.CustomerID]; u != nil {
				rec.Customer = *u
			}
			if rec.Attachments == nil {
				rec.Attachments = []attachmentRec{}
			}
			line.Reset()
			if err := enc.Encode(rec); err != nil {
				return err
			}
			b := line.Bytes()
			lineSums[i] = sha256.Sum256(b[:len(b)-1]) // without the newline
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	load, err := deflated(LoadFile, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		_ = cw.Write(LoadFileHeader)
		row := make([]string, len(LoadFileHeader))
		for i, c := range snap.contacts {
			cust, kase := "", ""
			if u := snap.customers[c.CustomerID]; u != nil {
				cust = u.Name
			}
			if k := snap.cases[c.CaseID]; k != nil {
				kase = strconv.FormatInt(k.Number, 10)
			}
			row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7] = controlNumber(i), cust, kase, c.OccurredAt, c.Channel, c.Author, ContactsFile, hex.EncodeToString(lineSums[i][:])
			if err := cw.Write(row); err != nil {
				return err
			}
			for _, a := range snap.attachments[c.ID] {
				row[0], row[6], row[7] = a.ControlNumber, a.Path, a.SHA256
				if err := cw.Write(row); err != nil {
					return err
				}
			}
		}
		cw.Flush()
		return cw.Error()
	})
	if err != nil {
		return nil, err
	}

	events, err := s.readAudit(ctx, snap)
	if err != nil {
		return nil, err
	}
	sum.AuditEvents = len(events)
	auditFile, err := deflated(AuditFile, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, ev := range events {
			if err := enc.Encode(ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	page := summaryPage{Export: e, Summary: sum, Hold: sel.hold, Scope: describeScope(sel, snap), Why: sel.why}
	summary, err := deflated(SummaryFile, func(w io.Writer) error { return summaryHTML.Execute(w, page) })
	if err != nil {
		return nil, err
	}
	return []*prepared{contacts, load, auditFile, summary}, nil
}

// scopeView is the scope as summary.html shows it: the same parts as the
// hold's scope (GET /holds/{id}), the cases and customers named as well as
// numbered where the package has them.
type scopeView struct {
	Cases     []namedID
	Customers []namedID
	Query     string
	From, To  string
}

type namedID struct{ ID, Name string }

func describeScope(sel selection, snap *snapshot) scopeView {
	v := scopeView{Query: sel.scope.Query}
	for _, id := range sel.scope.CaseIDs {
		n := namedID{ID: id}
		if k := snap.cases[id]; k != nil {
			n.Name = "#" + strconv.FormatInt(k.Number, 10)
		}
		v.Cases = append(v.Cases, n)
	}
	for _, id := range sel.scope.CustomerIDs {
		n := namedID{ID: id}
		if u := snap.customers[id]; u != nil {
			n.Name = u.Name
		}
		v.Customers = append(v.Customers, n)
	}
	if sel.scope.From != nil {
		v.From = sel.scope.From.UTC().Format(time.RFC3339)
	}
	if sel.scope.To != nil {
		v.To = sel.scope.To.UTC().Format(time.RFC3339)
	}
	return v
}

type summaryPage struct {
	Export  Export
	Summary *Summary
	Hold    *retention.Hold
	Scope   scopeView
	Why     string
}

// summaryHTML is escaped by html/template: names, ids and the query are
// data.
var summaryHTML = template.Must(template.New("summary").Funcs(template.FuncMap{"ts": func(t time.Time) string { return t.UTC().Format(time.RFC3339) }}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Export {{.Export.ID}}</title></head>
<body>
<h1>E-discovery export {{.Export.ID}}</h1>
<table>
<tr><th>Legal hold</th><td>{{.Export.HoldID}}</td></tr>
<tr><th>Created</th><td>{{ts .Export.CreatedAt}} by {{.Export.CreatedBy}}</td></tr>
<tr><th>Contacts</th><td>{{.Summary.Contacts}}</td></tr>
<tr><th>Cases</th><td>{{.Summary.Cases}}</td></tr>
<tr><th>Custodians</th><td>{{.Summary.Custodians}}</td></tr>
<tr><th>Attachments</th><td>{{.Summary.Attachments}} ({{.Summary.Bytes}} bytes)</td></tr>
<tr><th>Audit events</th><td>{{.Summary.AuditEvents}}</td></tr>
</table>
<h2>What selected the items</h2>
{{with .Hold}}<p>Legal hold {{.ID}}, matter {{.Matter}}: {{.Reason}}. Placed {{ts .PlacedAt}} by {{.PlacedBy}}{{if .ReleasedAt}}; released {{ts .ReleasedAt}} by {{.ReleasedBy}}{{if .ReleaseReason}} ({{.ReleaseReason}}){{end}}{{end}}.</p>
{{else}}<p>An ad-hoc scope (no hold): the items it matched when the export ran.</p>
{{end}}<table id="scope">
<tr><th>Cases (case_ids)</th><td>{{range .Scope.Cases}}<span>{{.ID}}{{if .Name}} ({{.Name}}){{end}}</span> {{else}}any{{end}}</td></tr>
<tr><th>Customers (customer_ids)</th><td>{{range .Scope.Customers}}<span>{{.ID}}{{if .Name}} ({{.Name}}){{end}}</span> {{else}}any{{end}}</td></tr>
<tr><th>Query</th><td>{{if .Scope.Query}}<code>{{.Scope.Query}}</code>{{else}}none{{end}}</td></tr>
<tr><th>Date range (occurred_at, from ≤ t &lt; to)</th><td>{{if or .Scope.From .Scope.To}}{{if .Scope.From}}from {{.Scope.From}}{{end}}{{if .Scope.To}} to {{.Scope.To}}{{end}}{{else}}any{{end}}</td></tr>
<tr><th>Why (every item matched)</th><td>{{.Why}}</td></tr>
</table>
{{if .Summary.ErasedCustomers}}<h2>Not exported: erased customers</h2>
<p>These customers were covered by the hold but have been erased (their data key is destroyed); none of their content is in this package.</p>
<ul>{{range .Summary.ErasedCustomers}}<li>{{.}}</li>{{end}}</ul>{{end}}
<p>Files: contacts.ndjson (one record per contact), natives/ (attachments), loadfile.csv, audit_events.ndjson, manifest.json (SHA-256 of every file, and the scope).</p>
</body></html>
`))
