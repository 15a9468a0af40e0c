package bleve

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/token/porter"
	"github.com/blevesearch/bleve/v2/document"
	index "github.com/blevesearch/bleve_index_api"

	"github.com/casevault/casevault/search"
)

// TestTextFieldIndexesWhatOneFieldPerTextDid: a textField over several
// texts gives zap the token frequencies that one Bleve field per text
// gave it once zap merged them (analysis.TokenFrequency for each text at
// its array position, then TokenFrequencies.MergeAll in the order the
// fields were added): the same terms, frequencies and locations in the
// same order, and the same analysed length. So the index holds exactly
// what it held before the fields were merged.
func TestTextFieldIndexesWhatOneFieldPerTextDid(t *testing.T) {
	e := openInternal(t)

	type text struct {
		pos uint64
		s   string
	}
	for _, tt := range []struct {
		name  string
		texts []text
	}{
		{"subject, name and body", []text{{0, "Refund for order 1234"}, {2, "Ada Lovelace"}, {1, "I was charged twice for my order; please refund the order."}}},
		{"a term in every text", []text{{0, "order order"}, {2, "Order"}, {1, "order again, ORDER"}}},
		{"CJK and Latin", []text{{0, "退款 refund"}, {2, "王小明"}, {1, "我的订单被重复扣款了，请帮我退款。 refunded refunds"}}},
		{"body only", []text{{1, "the parcel was late and the courier left it at the wrong door"}}},
		{"name only", []text{{2, "Zoë Ångström"}}},
		{"no tokens in one text", []text{{0, "!!!"}, {1, "damaged damaged screen"}}},
	} {
		dt := newDocText(e.text, e.stems)
		for _, x := range tt.texts {
			dt.add(x.pos, x.s)
		}
		sides := []struct {
			name string
			side textSide
			opts index.FieldIndexingOptions
		}{
			{"stemmed", sideStem, index.IndexField},
			{"latin", sideLatin, optText},
			{"cjk", sideCJK, optText},
			{"unscored", sideLatin, optText | index.SkipFreqNorm},
		}
		// all three analysed before any is checked, the stemmed first: they
		// share the texts' tokens, and the stemmer must not rewrite the
		// others' terms
		fields := make([]*textField, len(sides))
		for i, side := range sides {
			fields[i] = dt.field("f", side.side, side.opts)
			fields[i].Analyze()
		}

		for i, side := range sides {
			f := fields[i]
			var want index.TokenFrequencies
			wantLen := 0
			for _, x := range tt.texts {
				toks := oneSide(e.text.Analyze([]byte(x.s)), side.side)
				wantLen += len(toks)
				tf := analysis.TokenFrequency(toks, []uint64{x.pos}, side.opts)
				if want == nil {
					want = tf
				} else {
					want.MergeAll("f", tf)
				}
			}

			if got := f.AnalyzedLength(); got != wantLen {
				t.Errorf("%s, %s: analysed length %d, want %d", tt.name, side.name, got, wantLen)
			}
			if got, w := describe(f.AnalyzedTokenFrequencies()), describe(want); got != w {
				t.Errorf("%s, %s: token frequencies\n%s\nwant\n%s", tt.name, side.name, got, w)
			}
		}
	}
}

// oneSide is what one Bleve TextField per text indexed on each side: the
// analyser's non-CJK tokens, its CJK bigrams, or copies of the non-CJK
// tokens Porter-stemmed.
func oneSide(toks analysis.TokenStream, side textSide) analysis.TokenStream {
	var out analysis.TokenStream
	for _, t := range toks {
		if hasCJKBytes(t.Term) != (side == sideCJK) {
			continue
		}
		c := *t
		out = append(out, &c)
	}
	if side == sideStem {
		out = porter.NewPorterStemmer().Filter(out)
	}
	return out
}

// describe prints token frequencies in term order, each location with
// its array positions (a location's Field, which MergeAll sets to the
// field's own name, names the same field as an empty one to zap).
func describe(tfs index.TokenFrequencies) string {
	terms := make([]string, 0, len(tfs))
	for term := range tfs {
		terms = append(terms, term)
	}
	slices.Sort(terms)
	var b strings.Builder
	for _, term := range terms {
		tf := tfs[term]
		fmt.Fprintf(&b, "%q %q x%d:", term, tf.Term, tf.Frequency())
		for _, l := range tf.Locations {
			fmt.Fprintf(&b, " %v@%d[%d,%d)", l.ArrayPositions, l.Position, l.Start, l.End)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// TestPhrasesStayInsideOneText: a document's texts share its text fields,
// but a phrase matches inside one of them only (each location keeps its
// text's array position), on the Latin side (a CJK phrase is its bigrams, and
// the bigrams across two texts are never indexed).
func TestPhrasesStayInsideOneText(t *testing.T) {
	ctx := t.Context()
	e := openInternal(t)

	at := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	err := e.Index(ctx, []search.CaseDoc{{CaseID: "c1", Number: 1, Subject: "alpha beta 退款", CustomerName: "omega psi", Status: "open", CreatedAt: at, UpdatedAt: at,
		Contacts: []search.ContactDoc{{ID: "k1", Channel: "chat", Body: "gamma delta 订单", OccurredAt: at}}}})
	if err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		phrase string
		hits   int64
	}{
		{"alpha beta", 1},  // in the subject
		{"gamma delta", 1}, // in the body
		{"omega psi", 1},   // in the name
		{"alpha delta", 0}, // positions 1 and 2, but of two texts
		{"gamma beta", 0},
		{"omega delta", 0},
		{"退款", 1},
	} {
		res, err := e.Search(ctx, search.Query{Phrases: []string{tt.phrase}, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if res.Total != tt.hits {
			t.Errorf("phrase %q: %d hits, want %d", tt.phrase, res.Total, tt.hits)
		}
	}
}

// TestKeywordFieldsIndexWhatTheMappingsAnalyserDid: a document's keyword
// fields are built without an analyser; each must still give zap the
// token frequencies the keyword fields' analyser in the mapping gives the
// same value, one token long (whole values; tags and purposes one field
// each).
func TestKeywordFieldsIndexWhatTheMappingsAnalyserDid(t *testing.T) {
	e := openInternal(t)

	at := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	c := search.CaseDoc{CaseID: "c1", Number: 42, Subject: "Refund", CustomerID: "cus-1", CustomerName: "Ada", Status: "open", Priority: "high",
		Assignee: "Agent Smith", Tags: []string{"VIP", "billing"}, CreatedAt: at, UpdatedAt: at,
		Contacts: []search.ContactDoc{{ID: "k1", Channel: "chat", Body: "twice charged", OccurredAt: at, Purposes: []string{"customer_service", "billing"}}}}
	docs := e.caseDocuments(c, docHashes(c), true, nil)
	if len(docs) != 1 {
		t.Fatalf("%d documents, want 1", len(docs))
	}

	kw := e.m.AnalyzerNamed(e.m.FieldMappingForPath(fStatus).Analyzer)
	if kw == nil {
		t.Fatal("the mapping's keyword fields name no analyser")
	}
	seen := map[string]int{}
	docs[0].VisitFields(func(f index.Field) {
		switch f.Name() {
		case fText, fTextCJK, fTextEN:
			return
		}
		if _, ok := f.(*keywordField); !ok {
			t.Errorf("%s is a %T, not a keywordField", f.Name(), f)
		}
		seen[f.Name()]++
		f.Analyze()
		want := analysis.TokenFrequency(kw.Analyze(f.Value()), nil, f.Options())
		if got, w := describe(f.AnalyzedTokenFrequencies()), describe(want); got != w {
			t.Errorf("%s: token frequencies\n%s\nwant\n%s", f.Name(), got, w)
		}
		if got := f.AnalyzedLength(); got != 1 {
			t.Errorf("%s: analysed length %d, want 1", f.Name(), got)
		}
	})
	for name, n := range map[string]int{fCaseID: 1, fStatus: 1, fTags: 2, fPurposes: 2, fAssignee: 1, fSortAt: 1, fHash: 1} {
		if seen[name] != n {
			t.Errorf("%s: %d fields, want %d", name, seen[name], n)
		}
	}
}

// TestKeywordFieldIsBlevesTextFieldWithoutAnalyser: a keywordField gives
// zap what Bleve's TextField without an analyser gives it for the same
// value and options: value, type, sizes, length and token frequencies
// (with locations when term vectors are asked for, none counted when
// frequencies are skipped), before and after analysis.
func TestKeywordFieldIsBlevesTextFieldWithoutAnalyser(t *testing.T) {
	for _, tt := range []struct {
		value string
		opts  index.FieldIndexingOptions
	}{
		{"open", optKeyword},
		{"0190f5b2-7c1e-7aa1-9c1e-000000000042", optKeyword | index.StoreField},
		{"Refund twice", optStored},
		{"42", optStored | index.IndexField},
		{"1", index.IndexField},
		{"vip", optKeyword | index.IncludeTermVectors},
		{"billing", optKeyword | index.SkipFreqNorm},
		{"订单", optKeyword | index.IncludeTermVectors | index.SkipFreqNorm},
	} {
		got := newKeywordField("f", tt.value, tt.opts)
		want := document.NewTextFieldCustom("f", nil, []byte(tt.value), tt.opts, nil)
		for _, step := range []string{"before analysis", "after analysis"} {
			if step == "after analysis" {
				got.Analyze()
				want.Analyze()
			}
			if string(got.Value()) != string(want.Value()) || got.EncodedFieldType() != want.EncodedFieldType() ||
				got.NumPlainTextBytes() != want.NumPlainTextBytes() || got.AnalyzedLength() != want.AnalyzedLength() ||
				got.Options() != want.Options() || !slices.Equal(got.ArrayPositions(), want.ArrayPositions()) || got.Name() != want.Name() {
				t.Errorf("%q %v %s: value %q type %c bytes %d length %d, want %q %c %d %d", tt.value, tt.opts, step,
					got.Value(), got.EncodedFieldType(), got.NumPlainTextBytes(), got.AnalyzedLength(),
					want.Value(), want.EncodedFieldType(), want.NumPlainTextBytes(), want.AnalyzedLength())
			}
			if g, w := describe(got.AnalyzedTokenFrequencies()), describe(want.AnalyzedTokenFrequencies()); g != w {
				t.Errorf("%q %v %s: token frequencies\n%s\nwant\n%s", tt.value, tt.opts, step, g, w)
			}
		}
	}
}

// TestStemsMemo: a memoised stem is the Porter stemmer's, the term asked
// for is left as it was, the memo stops growing at maxStems while still
// stemming every term, and a lookup (a query's) adds nothing to it.
func TestStemsMemo(t *testing.T) {
	st := newStems()
	for _, tt := range []struct{ term, want string }{
		{"refunded", "refund"},
		{"refunds", "refund"},
		{"charged", "charg"},
		{"charged", "charg"}, // from the memo
		{"happy", "happi"},
		{"order", "order"},
	} {
		term := []byte(tt.term)
		if got := string(st.of(term)); got != tt.want {
			t.Errorf("stem of %q: %q, want %q", tt.term, got, tt.want)
		}
		if string(term) != tt.term {
			t.Errorf("stemming %q rewrote it to %q", tt.term, term)
		}
	}

	for i := len(st.m); i < maxStems+10; i++ {
		st.of(fmt.Appendf(nil, "word%dings", i))
	}
	if len(st.m) != maxStems {
		t.Errorf("memo holds %d terms, want at most %d", len(st.m), maxStems)
	}
	if got := string(st.of([]byte("runnings"))); got != "run" {
		t.Errorf("stem of a term past the bound: %q, want %q", got, "run")
	}

	// a query's words are stemmed alike but never enter the memo
	q := newStems()
	if got, known := q.lookup([]byte("refunded")); string(got) != "refund" || known {
		t.Errorf("lookup of a new word: %q (known %v), want %q, not known", got, known, "refund")
	}
	if len(q.m) != 0 {
		t.Errorf("a lookup left %d terms in the memo, want 0", len(q.m))
	}
}
