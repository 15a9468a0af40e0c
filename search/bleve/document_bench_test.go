package bleve

import (
	"testing"
	"time"

	index "github.com/blevesearch/bleve_index_api"

	"github.com/casevault/casevault/search"
)

// BenchmarkContactDocument builds one contact document as AddContacts
// does and analyses every indexed field of it, as Bleve's analysis
// workers do before zap builds a segment: the part of indexing a contact
// that is casevault's own code (caseDocuments, docText, textField, the
// stem memo) around Bleve's analyser, for the wrk ingest body.
func BenchmarkContactDocument(b *testing.B) {
	e := openInternal(b)
	at := time.Unix(1700000000, 0)
	c := search.CaseDoc{CaseID: "c1", Number: 1, CustomerID: "cust", CustomerName: "Bench Customer", Subject: "bench case 1", Status: "open", Priority: "normal", Channel: "chat", CreatedAt: at, UpdatedAt: at}
	c.Contacts = []search.ContactDoc{{ID: "k", Channel: "chat", Direction: "inbound", Author: "bench",
		Body: "Hello, I was charged twice for my order last week and would like a refund. 我的订单被重复扣款了，请帮我退款。", OccurredAt: at, Purposes: []string{"customer_service"}}}
	h := docHashes(c)
	// The reference, in the same run: Bleve's analyser (the mapping's,
	// not the engine's cheaper equivalent, fastWidth) over the same texts
	// once (subject, name, body); the document's figure over it is what
	// the fields around the analysis cost.
	bleves := e.m.AnalyzerNamed(textAnalyzer)
	b.Run("analyser", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, t := range []string{c.Subject, c.CustomerName, c.Contacts[0].Body} {
				bleves.Analyze([]byte(t))
			}
		}
	})
	b.Run("document", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, d := range e.caseDocuments(c, h, true, nil) {
				d.VisitFields(func(f index.Field) {
					if f.Options().IsIndexed() {
						f.Analyze()
					}
				})
			}
		}
	})
}
