package bleve

import (
	"sync"
	"unsafe"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/token/porter"
	index "github.com/blevesearch/bleve_index_api"
)

// docText is the free text of one document: the texts it holds (a case's
// subject, a contact's body, a customer's name), each at its array
// position, analysed once for all the fields that index them (textField).
//
// Each text field of a document is one Bleve field over all the texts.
// It was one field per text, and zap merged the three token maps of each
// field name back into one for every document it built (MergeAll), which
// also grew the small subject's map one body term at a time: 5% of
// serve's CPU under ingest on PostgreSQL (issue 19). Bleve analyses a
// document's fields in one goroutine; the mutex only makes that
// assumption safe.
type docText struct {
	a     analysis.Analyzer
	stems *stems
	mu    sync.Mutex
	parts []textPart
	done  bool
}

type textPart struct {
	pos  []uint64
	text []byte
	// the analyser's tokens of text, split once: CJK bigrams and the others
	latin, cjk analysis.TokenStream
}

func newDocText(a analysis.Analyzer, st *stems) *docText { return &docText{a: a, stems: st} }

// add puts a text at array position pos (in the order of the calls, which
// is the order of a term's locations in the index). An empty text adds
// nothing.
func (t *docText) add(pos uint64, s string) {
	if s != "" {
		t.parts = append(t.parts, textPart{pos: []uint64{pos}, text: []byte(s)})
	}
}

func (t *docText) empty() bool { return len(t.parts) == 0 }

// analysed returns the texts with their tokens, analysing and splitting
// them the first time.
func (t *docText) analysed() []textPart {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.done {
		for i := range t.parts {
			p := &t.parts[i]
			for _, tok := range t.a.Analyze(p.text) {
				if hasCJKBytes(tok.Term) {
					p.cjk = append(p.cjk, tok)
				} else {
					p.latin = append(p.latin, tok)
				}
			}
		}
		t.done = true
	}
	return t.parts
}

// textSide is which of the analyser's tokens a text field indexes.
type textSide int

const (
	// sideLatin: the non-CJK tokens.
	sideLatin textSide = iota
	// sideCJK: the CJK bigrams. They get their own field so that the fuzzy
	// automata of Latin words walk a small dictionary: with a few thousand
	// Han characters in use the bigrams outnumber every other term many
	// times.
	sideCJK
	// sideStem: the non-CJK tokens Porter-stemmed, as Bleve's English
	// analyzer does, in a field of their own so that the CJK bigrams and
	// the unstemmed words (typos, phrases, highlighting) stay as they were.
	sideStem
)

// tokens are this side's tokens of an analysed text. The stemmed side's
// are copies of the Latin side's with their terms' stems.
func (s textSide) tokens(p textPart, st *stems) analysis.TokenStream {
	switch s {
	case sideCJK:
		return p.cjk
	case sideStem:
		out := make(analysis.TokenStream, len(p.latin))
		all := make([]analysis.Token, len(p.latin))
		for i, t := range p.latin {
			all[i] = *t
			all[i].Term = st.of(t.Term)
			out[i] = &all[i]
		}
		return out
	}
	return p.latin
}

// stems memoises the Porter stems of the terms an engine indexes. A
// support archive's words recur from contact to contact, and stemming one
// (runes out, runes back) was a tenth of a contact document's analysis.
// It holds at most maxStems terms; past that, new terms are stemmed each
// time. Only indexed terms enter it: a query's words are looked up, so
// what searchers type cannot fill it. A stem it returns is shared and
// never written to.
type stems struct {
	mu sync.RWMutex
	m  map[string][]byte
}

const maxStems = 1 << 16

func newStems() *stems { return &stems{m: make(map[string][]byte)} }

// of is an indexed term's stem, memoised.
func (s *stems) of(term []byte) []byte {
	st, known := s.lookup(term)
	if !known {
		s.mu.Lock()
		if len(s.m) < maxStems {
			s.m[string(term)] = st
		}
		s.mu.Unlock()
	}
	return st
}

// lookup is term's stem, from the memo when it holds it (known).
func (s *stems) lookup(term []byte) (st []byte, known bool) {
	s.mu.RLock()
	st, known = s.m[string(term)]
	s.mu.RUnlock()
	if known {
		return st, true
	}

	c := append([]byte(nil), term...) // the stemmer rewrites its token's term
	return porter.NewPorterStemmer().Filter(analysis.TokenStream{{Term: c}})[0].Term, false
}

// textField is one indexed field of a document over all its docText's
// texts: one side of their tokens, each located at its text's array
// position. It indexes exactly what one Bleve TextField per text did.
type textField struct {
	name   string
	opts   index.FieldIndexingOptions
	side   textSide
	text   *docText
	length int
	freqs  index.TokenFrequencies
}

func (t *docText) field(name string, side textSide, opts index.FieldIndexingOptions) *textField {
	return &textField{name: name, opts: opts, side: side, text: t}
}

func (f *textField) Name() string { return f.name }

// ArrayPositions is nil: each location carries its text's position.
func (f *textField) ArrayPositions() []uint64 { return nil }

func (f *textField) Options() index.FieldIndexingOptions { return f.opts }

func (f *textField) EncodedFieldType() byte { return 't' }

// Value is nil: a text field is indexed, never stored.
func (f *textField) Value() []byte { return nil }

func (f *textField) NumPlainTextBytes() uint64 {
	var n uint64
	for _, p := range f.text.parts {
		n += uint64(len(p.text))
	}
	return n
}

func (f *textField) AnalyzedLength() int { return f.length }

func (f *textField) AnalyzedTokenFrequencies() index.TokenFrequencies { return f.freqs }

func (f *textField) Size() int {
	n := int(unsafe.Sizeof(*f)) + len(f.name)
	if f.freqs != nil {
		n += f.freqs.Size()
	}
	return n
}

// Analyze builds the field's token frequencies as analysis.TokenFrequency
// builds each text's, one map for all of them. The terms' TokenFreqs, and
// their locations, are carved from one array each, sized by a first pass
// over the tokens: allocated one by one they were most of what this
// field's analysis cost beyond the analyser itself (issue 19).
func (f *textField) Analyze() {
	parts := f.text.analysed()
	sides := make([]analysis.TokenStream, len(parts))
	n := 0
	for i, p := range parts {
		sides[i] = f.side.tokens(p, f.text.stems)
		n += len(sides[i])
	}

	freqs := make(index.TokenFrequencies, n)
	all := make([]index.TokenFreq, 0, n)
	of := make([]*index.TokenFreq, 0, n) // each token's term
	for _, toks := range sides {
		for _, tok := range toks {
			tf, ok := freqs[string(tok.Term)]
			if !ok {
				all = append(all, index.TokenFreq{Term: tok.Term})
				tf = &all[len(all)-1]
				freqs[string(tok.Term)] = tf
			}
			tf.SetFrequency(tf.Frequency() + 1)
			of = append(of, tf)
		}
	}

	if f.opts.IncludeTermVectors() {
		locate(parts, sides, all, of)
	}
	// the counts sized the locations; a field without frequencies keeps none
	if f.opts.SkipFreqNorm() {
		for i := range all {
			all[i].SetFrequency(0)
		}
	}
	f.length, f.freqs = n, freqs
}

// locate gives each term its tokens' locations, in token order; of is
// each token's term, and each term's frequency its count of tokens.
func locate(parts []textPart, sides []analysis.TokenStream, all []index.TokenFreq, of []*index.TokenFreq) {
	ptrs := make([]*index.TokenLocation, len(of))
	off := 0
	for i := range all {
		n := all[i].Frequency()
		all[i].Locations = ptrs[off : off : off+n]
		off += n
	}

	locs := make([]index.TokenLocation, 0, len(of))
	k := 0
	for i, toks := range sides {
		for _, tok := range toks {
			locs = append(locs, index.TokenLocation{ArrayPositions: parts[i].pos, Start: tok.Start, End: tok.End, Position: tok.Position})
			tf := of[k]
			tf.Locations = append(tf.Locations, &locs[len(locs)-1])
			k++
		}
	}
}

// keywordField is a keyword field: its whole value as one token at
// position 1, exactly what Bleve's TextField makes of it without an
// analyser. TextField.Analyze gets there through a token stream and
// analysis.TokenFrequency: a token, a slice, a map sized for a stream, a
// copy of the term for its key and a TokenFreq, for each of a document's
// dozen keyword fields (issue 19). Here the field holds its term's
// TokenFreq, and the map is keyed by the value's own string.
type keywordField struct {
	name  string
	key   string
	value []byte
	opts  index.FieldIndexingOptions
	tf    index.TokenFreq
	freqs index.TokenFrequencies
}

func newKeywordField(name, value string, opts index.FieldIndexingOptions) *keywordField {
	return &keywordField{name: name, key: value, value: []byte(value), opts: opts}
}

func (f *keywordField) Name() string { return f.name }

func (f *keywordField) ArrayPositions() []uint64 { return nil }

func (f *keywordField) Options() index.FieldIndexingOptions { return f.opts }

func (f *keywordField) EncodedFieldType() byte { return 't' }

func (f *keywordField) Value() []byte { return f.value }

func (f *keywordField) NumPlainTextBytes() uint64 { return uint64(len(f.value)) }

func (f *keywordField) AnalyzedLength() int {
	if f.freqs == nil {
		return 0
	}
	return 1
}

func (f *keywordField) AnalyzedTokenFrequencies() index.TokenFrequencies { return f.freqs }

func (f *keywordField) Size() int {
	n := int(unsafe.Sizeof(*f)) + len(f.name) + len(f.value)
	if f.freqs != nil {
		n += f.freqs.Size()
	}
	return n
}

// Analyze makes the one token's frequency as analysis.TokenFrequency does.
func (f *keywordField) Analyze() {
	f.tf = index.TokenFreq{Term: f.value}
	if f.opts.IncludeTermVectors() {
		f.tf.Locations = []*index.TokenLocation{{Start: 0, End: len(f.value), Position: 1}}
	}
	if !f.opts.SkipFreqNorm() {
		f.tf.SetFrequency(1)
	}
	f.freqs = index.TokenFrequencies{f.key: &f.tf}
}
