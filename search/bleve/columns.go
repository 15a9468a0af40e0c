package bleve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/blevesearch/bleve/v2/index/scorch"
	index "github.com/blevesearch/bleve_index_api"
)

// Search groups every matching contact by case and counts facets over all
// of them, so it needs a few doc values of each match. Read through Bleve,
// those sit in snappy-compressed chunks of a thousand documents: a broad
// query touches nearly every chunk of every field and so decompressed the
// whole column again on every query (half the CPU time of the slow tail).
// Segments never change once written, so each segment's columns are decoded
// once into plain arrays (under 100 bytes per document) and kept while the
// segment is part of the index, like Lucene's field caches.

// column holds one multi-valued keyword field of a segment: the values of
// document d are dict[ords[offs[d]:offs[d+1]]].
type column struct {
	dict []string
	offs []uint32
	ords []uint32
}

func (c *column) values(d uint32) []uint32 { return c.ords[c.offs[d]:c.offs[d+1]] }

// first returns document d's first value ord, or -1.
func (c *column) first(d uint32) int {
	if c.offs[d] == c.offs[d+1] {
		return -1
	}
	return int(c.ords[c.offs[d]])
}

type columnBuilder struct {
	col column
	ids map[string]uint32
	cur []uint32 // ords of the current document
}

func (b *columnBuilder) add(v []byte) {
	o, ok := b.ids[string(v)]
	if !ok {
		o = uint32(len(b.col.dict))
		b.col.dict = append(b.col.dict, string(v))
		b.ids[string(v)] = o
	}
	b.cur = append(b.cur, o)
}

func (b *columnBuilder) endDoc() {
	b.col.ords = append(b.col.ords, b.cur...)
	b.col.offs = append(b.col.offs, uint32(len(b.col.ords)))
	b.cur = b.cur[:0]
}

// segColumns are the doc values search needs, for every document of one
// segment (deleted ones included: they never match).
type segColumns struct {
	n                                                   int
	caseID, status, channel, purp, tags, prio, assignee column
	sortAt, updatedAt                                   []int64
	contact                                             []bool // a contact document (sortAt is its occurred_at), not a case-only one

	bitsOnce sync.Once
	bits     map[string][]*roaring.Bitmap // per keyword field, per value ord: its documents (columnBits)

	decoded decodedCache // broad terms' postings, decoded (postings.go)
}

var columnFields = []string{fCaseID, fStatus, fChannel, fPurposes, fTags, fPriority, fAssignee, fSortAt, fUpdatedAt, fContact}

// col returns the keyword column of a field, nil for fields not decoded.
func (sc *segColumns) col(field string) *column {
	switch field {
	case fCaseID:
		return &sc.caseID
	case fStatus:
		return &sc.status
	case fChannel:
		return &sc.channel
	case fPurposes:
		return &sc.purp
	case fTags:
		return &sc.tags
	case fPriority:
		return &sc.prio
	case fAssignee:
		return &sc.assignee
	}
	return nil
}

// columnField reports whether a keyword field is decoded and small enough
// (few distinct values) to be filtered on columns.
func columnField(field string) bool {
	switch field {
	case fStatus, fChannel, fPurposes, fTags, fPriority, fAssignee:
		return true
	}
	return false
}

// buildColumns decodes the segment that starts at global document number
// offset and holds n documents.
func buildColumns(ctx context.Context, r index.IndexReader, offset uint64, n int) (*segColumns, error) {
	dv, err := r.DocValueReader(columnFields)
	if err != nil {
		return nil, fmt.Errorf("bleve: %w", err)
	}

	bs := make([]*columnBuilder, 7)
	for i := range bs {
		bs[i] = &columnBuilder{ids: make(map[string]uint32), col: column{offs: make([]uint32, 1, n+1)}}
	}

	bs[0].col.ords = make([]uint32, 0, n) // one case per document
	sc := &segColumns{n: n, sortAt: make([]int64, n), updatedAt: make([]int64, n), contact: make([]bool, n)}
	var d int
	visit := func(field string, term []byte) {
		switch field {
		case fCaseID:
			bs[0].add(term)
		case fStatus:
			bs[1].add(term)
		case fChannel:
			bs[2].add(term)
		case fPurposes:
			bs[3].add(term)
		case fTags:
			bs[4].add(term)
		case fPriority:
			bs[5].add(term)
		case fAssignee:
			bs[6].add(term)
		case fContact:
			sc.contact[d] = true
		case fSortAt:
			sc.sortAt[d] = parseSortKey(term)
		case fUpdatedAt:
			sc.updatedAt[d] = parseSortKey(term)
		}
	}

	id := index.NewIndexInternalID(nil, 0)
	for d = 0; d < n; d++ {
		if d%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		id.SetValue(offset + uint64(d))
		if err := dv.VisitDocValues(id, visit); err != nil {
			return nil, fmt.Errorf("bleve: doc values: %w", err)
		}
		for _, b := range bs {
			b.endDoc()
		}
	}

	sc.caseID, sc.status, sc.channel, sc.purp, sc.tags = bs[0].col, bs[1].col, bs[2].col, bs[3].col, bs[4].col
	sc.prio, sc.assignee = bs[5].col, bs[6].col
	sc.columnBits(fStatus) // with the columns, so that warming builds them too
	return sc, nil
}

// columnCache keeps the decoded columns of the segments in use, by scorch
// segment ID (a segment's documents never change under its ID; deletions
// are the snapshot's business and deleted documents never match).
type columnCache struct {
	mu    sync.Mutex
	segs  map[uint64]*cachedColumns
	cases caseNumbers
	// decodedSize is the bytes of decoded postings the segments keep
	// (decodedBudget bounds it)
	decodedSize atomic.Int64
}

// cachedColumns is one segment's entry. Building and forgetting are
// separate: a query on an older snapshot may forget an entry a newer query
// claimed and has not built yet (scorch keeps both snapshots alive), and
// that build must still happen (the Once once also served forgetting, as
// Do(func(){}), which handed the newer query nil columns; its search
// crashed).
type cachedColumns struct {
	once sync.Once // the build
	mu   sync.Mutex
	cols *segColumns // written in the build, under mu
	err  error
	// gone: forgotten (out of the cache); columns built after it keep
	// no decoded postings, which would never leave the budget
	gone bool
}

// get returns the segment's columns, building them on the first call;
// concurrent callers wait for that build and share its result.
func (e *cachedColumns) get(build func() (*segColumns, error)) (*segColumns, error) {
	e.once.Do(func() {
		cols, err := build()

		e.mu.Lock()
		defer e.mu.Unlock()
		e.cols, e.err = cols, err
		if e.gone && cols != nil {
			cols.decoded.drop()
		}
	})

	// written only inside Do, which returned: no lock needed
	return e.cols, e.err
}

// forget is called when the segment left the cache: its decoded postings
// leave the budget (their bytes are returned). A build still running or
// yet to come is neither waited for nor prevented: a new segment's
// columns hold no decoded postings until searches decode them.
func (e *cachedColumns) forget() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()

	e.gone = true
	if e.cols == nil {
		return 0
	}
	return e.cols.decoded.drop()
}

// snapshotColumns is one query's view: the columns and first global
// document number of each segment of its snapshot.
type snapshotColumns struct {
	snap    *scorch.IndexSnapshot
	cols    []*segColumns
	offsets []uint64 // len(cols)+1; offsets[i] is segment i's first document
	segIDs  []uint64

	numbers  *caseNumbers
	numsOnce sync.Once
	nums     [][]int32 // per segment, per case ord: the case's number (caseNums)
	ncases   int
}

// caseNums numbers the cases of every segment of the snapshot alike (see
// caseNumbers): nums[i][o] is the number of case ord o of segment i, below n.
func (sv *snapshotColumns) caseNums() (nums [][]int32, n int) {
	sv.numsOnce.Do(func() { sv.nums, sv.ncases = sv.numbers.forSnapshot(sv) })
	return sv.nums, sv.ncases
}

// caseNumbers gives every case ID in the index's segments one number, kept
// per segment: a case's documents can lie in several segments (a new
// contact is written beside the older ones), and counting distinct cases
// across segments (collector.countFacet) then takes a bit per number
// instead of a map of case IDs per query. A segment is numbered once, when
// a search first needs it; case IDs of segments merged away are forgotten
// when the numbers outgrow the live segments' IDs twice over.
type caseNumbers struct {
	mu   sync.Mutex
	ids  map[string]int32
	segs map[uint64][]int32 // per segment ID, per case ord
}

// forSnapshot returns the numbers of sv's segments and how many there are.
// The slices returned are never changed afterwards.
func (cn *caseNumbers) forSnapshot(sv *snapshotColumns) ([][]int32, int) {
	cn.mu.Lock()
	defer cn.mu.Unlock()

	live := 0
	for _, sc := range sv.cols {
		live += len(sc.caseID.dict)
	}
	if cn.ids == nil || len(cn.ids) > 2*live+1024 {
		cn.ids, cn.segs = make(map[string]int32, live), make(map[uint64][]int32)
	}
	out := make([][]int32, len(sv.cols))
	for i, id := range sv.segIDs {
		nums, ok := cn.segs[id]
		if !ok {
			dict := sv.cols[i].caseID.dict
			nums = make([]int32, len(dict))
			for o, caseID := range dict {
				n, ok := cn.ids[caseID]
				if !ok {
					n = int32(len(cn.ids))
					cn.ids[caseID] = n
				}
				nums[o] = n
			}
			cn.segs[id] = nums
		}
		out[i] = nums
	}
	if len(cn.segs) > len(sv.segIDs) {
		keep := make(map[uint64]bool, len(sv.segIDs))
		for _, id := range sv.segIDs {
			keep[id] = true
		}
		for id := range cn.segs {
			if !keep[id] {
				delete(cn.segs, id)
			}
		}
	}
	return out, len(cn.ids)
}

// forReader returns the columns of every segment of r, decoding the ones
// not seen before, and forgets segments that are no longer in r when the
// cache holds more than r has (r is normally the newest snapshot).
func (c *columnCache) forReader(ctx context.Context, r index.IndexReader) (*snapshotColumns, error) {
	snap, ok := r.(*scorch.IndexSnapshot)
	if !ok {
		return nil, fmt.Errorf("bleve: reader %T is not a scorch snapshot", r)
	}

	sv, entries := c.claim(snap)

	return c.build(ctx, r, sv, entries)
}

// claim takes the cache entries of snap's segments (new ones empty) and
// forgets the cached segments snap does not have. Another query may forget
// an entry claimed here before it is built (its snapshot lacks the
// segment): the build below still happens, uncached for the next query.
func (c *columnCache) claim(snap *scorch.IndexSnapshot) (*snapshotColumns, []*cachedColumns) {
	segs := snap.Segments()
	sv := &snapshotColumns{snap: snap, cols: make([]*segColumns, len(segs)), offsets: make([]uint64, len(segs)+1),
		segIDs: make([]uint64, len(segs)), numbers: &c.cases}
	entries := make([]*cachedColumns, len(segs))
	var gone []*cachedColumns
	c.mu.Lock()
	if c.segs == nil {
		c.segs = make(map[uint64]*cachedColumns)
	}

	for i, ss := range segs {
		// scorch numbers documents across segments by the segments' full
		// counts, deleted documents included
		sv.offsets[i+1] = sv.offsets[i] + ss.Segment().Count()
		sv.segIDs[i] = ss.Id()
		e := c.segs[ss.Id()]
		if e == nil {
			e = &cachedColumns{}
			c.segs[ss.Id()] = e
		}
		entries[i] = e
	}

	if len(c.segs) > len(segs) {
		live := make(map[uint64]bool, len(segs))
		for _, ss := range segs {
			live[ss.Id()] = true
		}
		for id, e := range c.segs {
			if !live[id] {
				gone = append(gone, e)
				delete(c.segs, id)
			}
		}
	}

	c.mu.Unlock()
	for _, e := range gone {
		c.decodedSize.Add(-e.forget())
	}

	return sv, entries
}

// build fills sv with the columns of its claimed entries, building those
// not built yet.
func (c *columnCache) build(ctx context.Context, r index.IndexReader, sv *snapshotColumns, entries []*cachedColumns) (*snapshotColumns, error) {
	for i, e := range entries {
		segment := func() (*segColumns, error) {
			return buildColumns(ctx, r, sv.offsets[i], int(sv.offsets[i+1]-sv.offsets[i]))
		}
		cols, err := e.get(segment)
		if err != nil {
			// a cancelled build must not stick: drop it so the next query retries
			c.mu.Lock()
			if c.segs[sv.segIDs[i]] == e {
				delete(c.segs, sv.segIDs[i])
			}
			c.mu.Unlock()
		}
		if err != nil && ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			// the shared build ran under another query's context, which
			// ended; this query's has not: its own build, uncached
			cols, err = segment()
		}
		if err != nil {
			return nil, err
		}
		sv.cols[i] = cols
	}

	return sv, nil
}

// locate maps a global document number to its segment and local number;
// hint is the segment of the previous lookup (matches arrive in order).
func (sv *snapshotColumns) locate(num uint64, hint int) (int, uint32) {
	i := hint
	if i < 0 || i >= len(sv.cols) || num < sv.offsets[i] {
		i = 0
	}
	for i < len(sv.cols)-1 && num >= sv.offsets[i+1] {
		i++
	}
	return i, uint32(num - sv.offsets[i])
}

// docFilter is the part of a query's filter checked on columns.
type docFilter struct {
	keywords []keywordFilter
	dated    bool  // contact occurred_at in [from, to)
	from, to int64 // Unix micros
}

// without is f without its (positive) filter on field: a disjunctive
// facet's collector counts the query's matches as if that field were not
// filtered. nil when nothing is left to check.
func (f *docFilter) without(field string) *docFilter {
	if f == nil {
		return nil
	}
	out := &docFilter{dated: f.dated, from: f.from, to: f.to}
	for _, k := range f.keywords {
		if k.field != field || k.negated {
			out.keywords = append(out.keywords, k)
		}
	}
	if len(out.keywords) == 0 && !out.dated {
		return nil
	}
	return out
}

// keywordFilter holds when a document has one of the values (negated: none
// of them).
type keywordFilter struct {
	field   string
	values  []string
	negated bool
}

// segFilter is a keywordFilter resolved for one segment: its column and,
// per value ord, whether the value is wanted.
type segFilter struct {
	col     *column
	ok      []bool
	negated bool
}

// forSegment resolves the filter's values to the segment's value ords,
// reusing buf.
func (f *docFilter) forSegment(sc *segColumns, buf []segFilter) []segFilter {
	if f == nil {
		return nil
	}
	buf = slices.Grow(buf[:0], len(f.keywords))[:len(f.keywords)]
	for i, k := range f.keywords {
		c := sc.col(k.field)
		ok := slices.Grow(buf[i].ok[:0], len(c.dict))[:len(c.dict)]
		for o, v := range c.dict {
			ok[o] = slices.Contains(k.values, v)
		}
		buf[i] = segFilter{col: c, ok: ok, negated: k.negated}
	}
	return buf
}

func (f *docFilter) match(sc *segColumns, d uint32, sf []segFilter) bool {
	if f.dated && (!sc.contact[d] || sc.sortAt[d] < f.from || sc.sortAt[d] >= f.to) {
		return false
	}
	for _, k := range sf {
		hit := false
		for _, o := range k.col.values(d) {
			if k.ok[o] {
				hit = true
				break
			}
		}
		if hit == k.negated {
			return false
		}
	}
	return true
}
