package bleve

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/casevault/casevault/search"
)

// group is one case among the matches.
type group struct {
	caseID string
	// segment and local number of the case's first matching contact,
	// whose status and tags (case fields, alike on all its contacts) the
	// facets read from the columns: no per-case allocation
	firstSeg  int32
	firstDoc  uint32
	updatedAt int64
	score     float64 // best contact's score
	sortAt    int64   // newest (or oldest, per sort) matching contact
	best      uint64  // global document number of the best contact
	bestScore float64
	bestAt    int64
	channels  uint64 // facet bits of the matching contacts
	purposes  uint64
}

// dict gives facet values small bit numbers (enumerations stay far below 64;
// values beyond are not counted).
type dict struct {
	ids   map[string]int
	names []string
}

func (d *dict) bit(v string) uint64 {
	if i, ok := d.ids[v]; ok {
		return 1 << i
	}
	if len(d.names) >= 64 {
		return 0
	}
	if d.ids == nil {
		d.ids = make(map[string]int)
	}
	d.ids[v] = len(d.names)
	d.names = append(d.names, v)
	return 1 << (len(d.names) - 1)
}

// from maps each bit of o to the bit of the same value in d.
func (d *dict) from(o *dict) []uint64 {
	out := make([]uint64, len(o.names))
	for i, v := range o.names {
		out[i] = d.bit(v)
	}
	return out
}

// translate renumbers the bits of mask by to (from's result).
func translate(mask uint64, to []uint64) uint64 {
	var out uint64
	for mask != 0 {
		i := bits.TrailingZeros64(mask)
		out |= to[i]
		mask &^= 1 << i
	}
	return out
}

// name adds the counts of each bit (countBits) to out under its value.
func (d *dict) name(out map[string]int64, counts *[64]int64) {
	for i, v := range d.names {
		if counts[i] > 0 {
			out[v] += counts[i]
		}
	}
}

// collector groups the matching contacts of one search by case, reading
// each match's case, dates and facet values from the segment columns of
// the snapshot rather than from stored fields. Matches arrive in document
// order, so the columns of one segment are resolved once (enter) for all
// of its matches.
type collector struct {
	sortBy search.SortOrder
	facets facetSet // the facet keys this collector counts
	sv     *snapshotColumns
	filter *docFilter // nil: every match counts

	groups []group
	// groupOf finds a case's group (-1: none yet) by the case's ord in the
	// one segment, or by its number across segments (nums, see
	// caseNumbers): a map of case IDs cost a broad query on two segments
	// about a tenth of its CPU. Valid until keepUpdated drops groups.
	groupOf     []int32
	nums        [][]int32
	updatedDone bool // groups carry their case's updated_at (caseUpdated)
	chanDict    dict
	purpDict    dict

	// the segment of the current match: its columns, its resolved filter
	// and the facet bit of each of its channel and purpose values
	seg      int
	cols     *segColumns
	allowed  []segFilter
	chanBits []uint64
	purpBits []uint64

	// countOnly: the collector of a disjunctive facet view that needs
	// nothing but its own facet's counts (no updated-at window to apply to
	// its cases), so countFacet may count them without groups; counted
	// holds them once it has.
	countOnly bool
	counted   map[string]int64
}

// facetSet is a set of the facet keys: a collector of a disjunctive
// variant counts only its own key, and a match's facet bits are gathered
// only for the keys counted.
type facetSet uint8

const (
	facetStatus facetSet = 1 << iota
	facetChannel
	facetTag
	facetPurpose
	allFacets = facetStatus | facetChannel | facetTag | facetPurpose
)

// key is the facet key of a set of one key ("" otherwise).
func (s facetSet) key() string {
	switch s {
	case facetStatus:
		return "status"
	case facetChannel:
		return "channel"
	case facetTag:
		return "tag"
	case facetPurpose:
		return "purpose"
	}
	return ""
}

// facetKeySet is the set of one facet key ("status", "channel", "tag",
// "purpose").
func facetKeySet(key string) facetSet {
	switch key {
	case "status":
		return facetStatus
	case "channel":
		return facetChannel
	case "tag":
		return facetTag
	case "purpose":
		return facetPurpose
	}
	return 0
}

func newCollector(sv *snapshotColumns, df *docFilter, sortBy search.SortOrder, facets facetSet) *collector {
	return &collector{sortBy: sortBy, facets: facets, sv: sv, filter: df, seg: -1}
}

// enter makes segment i the current one.
func (c *collector) enter(i int) {
	c.seg, c.cols = i, c.sv.cols[i]
	c.numberCases()
	c.allowed = c.filter.forSegment(c.cols, c.allowed)

	c.chanBits, c.purpBits = c.chanBits[:0], c.purpBits[:0]
	if c.facets&facetChannel != 0 {
		for _, v := range c.cols.channel.dict {
			c.chanBits = append(c.chanBits, c.chanDict.bit(v))
		}
	}
	if c.facets&facetPurpose != 0 {
		for _, v := range c.cols.purp.dict {
			c.purpBits = append(c.purpBits, c.purpDict.bit(v))
		}
	}
}

// add counts one matching contact towards its case.
func (c *collector) add(m matchInfo) error {
	num := m.id.Value()
	i, d := c.sv.locate(num, c.seg)
	if i != c.seg {
		c.enter(i)
	}
	cols := c.cols
	if int(d) >= cols.n {
		return fmt.Errorf("bleve: document %d beyond its segment", num)
	}
	if c.filter != nil && !c.filter.match(cols, d, c.allowed) {
		return nil
	}

	chBits, puBits := c.contactBits(cols, d)

	sortAt := cols.sortAt[d]
	co := cols.caseID.first(d)
	if co < 0 {
		return fmt.Errorf("bleve: document %d without case", num)
	}
	k := c.caseKey(i, co)
	gi := c.groupOf[k]
	if gi < 0 {
		c.groupOf[k] = int32(len(c.groups))
		c.newGroup(cols.caseID.dict[co], m.score, num, d, sortAt, chBits, puBits)
		return nil
	}

	c.groups[gi].absorb(c.sortBy, chBits, puBits, m.score, sortAt, num, m.score, sortAt)
	return nil
}

// absorb folds into g later matches of its case, in document order: one
// contact (add), or the group another collector made of them (merge). The
// best contact stays the earliest of the best, as one walk in order keeps it.
func (g *group) absorb(s search.SortOrder, channels, purposes uint64, score float64, sortAt int64, best uint64, bestScore float64, bestAt int64) {
	g.channels |= channels
	g.purposes |= purposes
	g.score = max(g.score, score)
	if s == search.SortOldest {
		g.sortAt = min(g.sortAt, sortAt)
	} else {
		g.sortAt = max(g.sortAt, sortAt)
	}
	if better(s, bestScore, bestAt, g.bestScore, g.bestAt) {
		g.best, g.bestScore, g.bestAt = best, bestScore, bestAt
	}
}

// contactBits are the channel and purpose facet bits of document d (only
// the facets asked for), which its case's group ORs together.
func (c *collector) contactBits(cols *segColumns, d uint32) (chBits, puBits uint64) {
	if c.facets&facetChannel != 0 {
		for _, o := range cols.channel.values(d) {
			chBits |= c.chanBits[o]
		}
	}
	if c.facets&facetPurpose != 0 {
		for _, o := range cols.purp.values(d) {
			puBits |= c.purpBits[o]
		}
	}
	return chBits, puBits
}

// newGroup starts the group of a case from its first matching contact,
// document d of the current segment.
func (c *collector) newGroup(caseID string, score float64, num uint64, d uint32, sortAt int64, chBits, puBits uint64) {
	cols := c.cols
	g := group{caseID: caseID, score: score, sortAt: sortAt, bestScore: score, bestAt: sortAt, best: num,
		channels: chBits, purposes: puBits, updatedAt: cols.updatedAt[d], firstSeg: int32(c.seg), firstDoc: d}
	c.groups = append(c.groups, g)
}

// numberCases readies groupOf: cases are keyed by their ord when the
// snapshot has one segment, by their snapshot-wide number otherwise.
func (c *collector) numberCases() {
	if c.groupOf != nil {
		return
	}
	n := len(c.sv.cols[0].caseID.dict)
	if len(c.sv.cols) > 1 {
		c.nums, n = c.sv.caseNums()
	}
	c.groupOf = make([]int32, n)
	for j := range c.groupOf {
		c.groupOf[j] = -1
	}
}

// caseKey is the groupOf index of case ord co of segment i.
func (c *collector) caseKey(i, co int) int {
	if c.nums != nil {
		return int(c.nums[i][co])
	}
	return co
}

// merge adds to c the groups of o, a collector of the same query fed the
// matches that come after all of c's in document order (splitBits): c then
// holds what one collector fed every match in order would, since each
// group's first contact, best contact (the earliest of the best, as add
// keeps it) and facet bits combine in that order.
func (c *collector) merge(o *collector) {
	if len(o.groups) == 0 {
		return
	}
	c.numberCases()
	// facet bits are numbered per collector, in the order values appear
	chanBit, purpBit := c.chanDict.from(&o.chanDict), c.purpDict.from(&o.purpDict)
	for _, og := range o.groups {
		og.channels, og.purposes = translate(og.channels, chanBit), translate(og.purposes, purpBit)
		k := c.caseKey(int(og.firstSeg), c.sv.cols[og.firstSeg].caseID.first(og.firstDoc))
		gi := c.groupOf[k]
		if gi < 0 {
			c.groupOf[k] = int32(len(c.groups))
			c.groups = append(c.groups, og)
			continue
		}
		c.groups[gi].absorb(c.sortBy, og.channels, og.purposes, og.score, og.sortAt, og.best, og.bestScore, og.bestAt)
	}
}

// facetCounts counts the matching cases per status, tag, channel and
// purpose (a case counts once per value any of its matching contacts has).
// Counts are kept per segment and value ord, and named once at the end: a
// map update per case and value was a tenth of a broad query's CPU.
func (c *collector) facetCounts() map[string]map[string]int64 {
	out := map[string]map[string]int64{"status": {}, "channel": {}, "tag": {}, "purpose": {}}
	var status, tag [][]int64 // per segment, per value ord
	if c.facets&facetStatus != 0 {
		status = make([][]int64, len(c.sv.cols))
	}
	if c.facets&facetTag != 0 {
		tag = make([][]int64, len(c.sv.cols))
	}
	var channels, purposes [64]int64 // per dict bit
	for i := range c.groups {
		g := &c.groups[i]
		if status != nil {
			cols := c.sv.cols[g.firstSeg]
			if so := cols.status.first(g.firstDoc); so >= 0 {
				if status[g.firstSeg] == nil {
					status[g.firstSeg] = make([]int64, len(cols.status.dict))
				}
				status[g.firstSeg][so]++
			}
		}
		if tag != nil {
			cols := c.sv.cols[g.firstSeg]
			if tag[g.firstSeg] == nil {
				tag[g.firstSeg] = make([]int64, len(cols.tags.dict))
			}
			for _, o := range cols.tags.values(g.firstDoc) {
				tag[g.firstSeg][o]++
			}
		}
		countBits(&channels, g.channels)
		countBits(&purposes, g.purposes)
	}

	name := func(into map[string]int64, perSeg [][]int64, col func(*segColumns) *column) {
		for seg, counts := range perSeg {
			dict := col(c.sv.cols[seg]).dict
			for o, n := range counts {
				if n > 0 {
					into[dict[o]] += n
				}
			}
		}
	}
	name(out["status"], status, func(sc *segColumns) *column { return &sc.status })
	name(out["tag"], tag, func(sc *segColumns) *column { return &sc.tags })
	c.chanDict.name(out["channel"], &channels)
	c.purpDict.name(out["purpose"], &purposes)
	if c.counted != nil {
		out[c.facets.key()] = c.counted
	}
	return out
}

// countBits adds one to the count of each bit set in mask.
func countBits(counts *[64]int64, mask uint64) {
	for mask != 0 {
		i := bits.TrailingZeros64(mask)
		counts[i]++
		mask &^= 1 << i
	}
}

// caseUpdated sets every group's updatedAt to its case's: a document is
// rewritten only when its own content changes (see docHashes), carrying the
// case's updated_at of that moment, so the case's current updated_at is the
// newest any of its documents carries, not necessarily the matching one's.
func (c *collector) caseUpdated() {
	if c.updatedDone || len(c.groups) == 0 {
		c.updatedDone = true
		return
	}
	c.updatedDone = true
	c.numberCases()
	for i, ss := range c.sv.snap.Segments() {
		cols, deleted := c.sv.cols[i], ss.Deleted()
		for d := uint32(0); d < uint32(cols.n); d++ {
			co := cols.caseID.first(d)
			if co < 0 {
				continue
			}
			gi := c.groupOf[c.caseKey(i, co)]
			if gi < 0 || cols.updatedAt[d] <= c.groups[gi].updatedAt || deleted != nil && deleted.Contains(d) {
				continue
			}
			c.groups[gi].updatedAt = cols.updatedAt[d]
		}
	}
}

// keepUpdated drops the cases whose updated_at is outside [from, to); the
// collector takes no more matches after it (groupOf no longer holds).
func (c *collector) keepUpdated(from, to int64) {
	c.caseUpdated()
	c.groups = slices.DeleteFunc(c.groups, func(g group) bool { return g.updatedAt < from || g.updatedAt >= to })
	c.groupOf = nil
}

// page sorts the cases and returns the window [offset, offset+limit).
func (c *collector) page(offset, limit int) []group {
	if offset >= len(c.groups) {
		return nil
	}

	if c.sortBy == search.SortUpdated {
		c.caseUpdated()
	}

	end := min(offset+limit, len(c.groups))
	cmpG := func(a, b group) int { return compareGroups(c.sortBy, &a, &b) }
	if end*4 < len(c.groups) {
		// only the first end cases need their order: select them (a broad
		// query has thousands of cases; sorting them all was 8% of the
		// console's search CPU at 200k contacts)
		c.groups = selectFirst(c.groups, end, cmpG)
		slices.SortFunc(c.groups[:end], cmpG)
	} else {
		slices.SortFunc(c.groups, cmpG)
	}
	return c.groups[offset:end]
}

// better decides whether a contact represents its case better than the
// current best: the highest score, or for date sorts the contact that put
// the case where it is.
func better(s search.SortOrder, score float64, at int64, bestScore float64, bestAt int64) bool {
	switch s {
	case search.SortNewest:
		return at > bestAt || at == bestAt && score > bestScore
	case search.SortOldest:
		return at < bestAt || at == bestAt && score > bestScore
	default:
		return score > bestScore || score == bestScore && at > bestAt
	}
}

// compareGroups orders cases; the case ID breaks ties so that every page of
// the same query over the same data is cut from one stable order.
func compareGroups(s search.SortOrder, a, b *group) int {
	var c int
	switch s {
	case search.SortNewest:
		c = cmp.Compare(b.sortAt, a.sortAt)
	case search.SortOldest:
		c = cmp.Compare(a.sortAt, b.sortAt)
	case search.SortUpdated:
		c = cmp.Compare(b.updatedAt, a.updatedAt)
		if c == 0 {
			c = cmp.Compare(b.score, a.score)
		}
	default:
		c = cmp.Compare(b.score, a.score)
		if c == 0 {
			c = cmp.Compare(b.sortAt, a.sortAt)
		}
	}
	if c != 0 {
		return c
	}
	return cmp.Compare(a.caseID, b.caseID)
}

// addBits counts the matches in bm, local document numbers of segment i
// already narrowed to the collector's keyword filter (docFilter.restrict),
// towards their cases: what add does, without scores, sort dates or best
// contacts, for a collector whose groups only feed facet counts and the
// case-level updated_at (the disjunctive facets' collectors; see
// prefiltered).
func (c *collector) addBits(i int, bm *roaring.Bitmap) error {
	if i != c.seg {
		c.enter(i)
	}
	cols := c.cols
	dated := c.filter != nil && c.filter.dated
	it := bm.Iterator()
	for it.HasNext() {
		d := it.Next()
		if int(d) >= cols.n {
			return fmt.Errorf("bleve: document %d beyond its segment", d)
		}
		if dated && (!cols.contact[d] || cols.sortAt[d] < c.filter.from || cols.sortAt[d] >= c.filter.to) {
			continue
		}
		chBits, puBits := c.contactBits(cols, d)
		co := cols.caseID.first(d)
		if co < 0 {
			return fmt.Errorf("bleve: document %d without case", d)
		}
		k := c.caseKey(i, co)
		gi := c.groupOf[k]
		if gi < 0 {
			c.groupOf[k] = int32(len(c.groups))
			c.groups = append(c.groups, group{caseID: cols.caseID.dict[co], channels: chBits, purposes: puBits,
				updatedAt: cols.updatedAt[d], firstSeg: int32(c.seg), firstDoc: d})
			continue
		}
		g := &c.groups[gi]
		g.channels |= chBits
		g.purposes |= puBits
	}
	return nil
}

// selectFirst moves the k smallest groups under cmp (compareGroups is a
// total order: the case ID breaks ties) to the front of gs, in no
// particular order, keeping a heap of the k best seen so far.
func selectFirst(gs []group, k int, cmp func(a, b group) int) []group {
	if k <= 0 {
		return gs
	}
	h := gs[:k]
	// max-heap under cmp: h[0] is the worst of the k kept
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= k {
				return
			}
			w := l
			if r := l + 1; r < k && cmp(h[r], h[l]) > 0 {
				w = r
			}
			if cmp(h[w], h[i]) <= 0 {
				return
			}
			h[i], h[w] = h[w], h[i]
			i = w
		}
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(i)
	}
	for j := k; j < len(gs); j++ {
		if cmp(gs[j], h[0]) < 0 {
			gs[j], h[0] = h[0], gs[j]
			down(0)
		}
	}
	return gs
}

// countFacet counts the collector's one facet over the documents in bits
// (per segment, already narrowed to its keyword filter), as facetCounts
// would after addBits, for a countOnly view. A case counts once per value:
// status and tags are the case's, read from its first document in bits
// (alike on all its documents); channels and purposes are the union over
// its documents. It keeps a bit per case (or per case and value) instead
// of a group per case: the groups, their map and their garbage made the
// disjunctive facets cost 50–70% of the query they facet. Over several
// segments a case is known by its snapshot-wide number (caseNums), and a
// value by its name.
func (c *collector) countFacet(bits []*roaring.Bitmap) error {
	var segs []int
	for i, bm := range bits {
		if !bm.IsEmpty() {
			segs = append(segs, i)
		}
	}
	var nums [][]int32 // nil: one segment, whose case ords serve as numbers
	ncases := 0
	if len(segs) == 1 {
		ncases = len(c.sv.cols[segs[0]].caseID.dict)
	} else if len(segs) > 1 {
		nums, ncases = c.sv.caseNums()
	}

	// each segment's value ords mapped to one index per value name
	var names []string
	index := make(map[string]int)
	vmaps := make([][]int, len(segs))
	for k, i := range segs {
		dict := c.facetColumn(c.sv.cols[i]).dict
		vmaps[k] = make([]int, len(dict))
		for o, v := range dict {
			j, ok := index[v]
			if !ok {
				j = len(names)
				index[v] = j
				names = append(names, v)
			}
			vmaps[k][o] = j
		}
	}
	caseLevel := c.facets == facetStatus || c.facets == facetTag
	width := 1 // bits per case in seen
	if !caseLevel {
		width = len(names)
	}
	seen := make([]uint64, (ncases*width+63)/64)
	counts := make([]int64, len(names))

	dated := c.filter != nil && c.filter.dated
	buf := make([]uint32, 256)
	for k, i := range segs {
		cols, vm := c.sv.cols[i], vmaps[k]
		vals := c.facetColumn(cols)
		it := bits[i].ManyIterator()
		for n := it.NextMany(buf); n > 0; n = it.NextMany(buf) {
			for _, d := range buf[:n] {
				if int(d) >= cols.n {
					return fmt.Errorf("bleve: document %d beyond its segment", d)
				}
				if dated && (!cols.contact[d] || cols.sortAt[d] < c.filter.from || cols.sortAt[d] >= c.filter.to) {
					continue
				}
				co := cols.caseID.first(d)
				if co < 0 {
					return fmt.Errorf("bleve: document %d without case", d)
				}
				if nums != nil {
					co = int(nums[i][co])
				}
				if !caseLevel {
					for _, o := range vals.values(d) {
						if b := co*width + vm[o]; seen[b/64]&(1<<(b%64)) == 0 {
							seen[b/64] |= 1 << (b % 64)
							counts[vm[o]]++
						}
					}
					continue
				}
				if seen[co/64]&(1<<(co%64)) != 0 {
					continue
				}
				seen[co/64] |= 1 << (co % 64)
				if c.facets == facetStatus {
					if so := vals.first(d); so >= 0 {
						counts[vm[so]]++
					}
					continue
				}
				for _, o := range vals.values(d) {
					counts[vm[o]]++
				}
			}
		}
	}

	c.counted = make(map[string]int64)
	for j, n := range counts {
		if n > 0 {
			c.counted[names[j]] = n
		}
	}
	return nil
}

// facetColumn is the column of the collector's one facet.
func (c *collector) facetColumn(cols *segColumns) *column {
	switch c.facets {
	case facetStatus:
		return &cols.status
	case facetTag:
		return &cols.tags
	case facetChannel:
		return &cols.channel
	}
	return &cols.purp
}
