package bleve

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/RoaringBitmap/roaring/v2"
	segment "github.com/blevesearch/scorch_segment_api/v2"
)

// After the term-at-a-time scorer, decoding postings was two fifths of a
// broad search's CPU: the console's words ("refund", "delivery", "the")
// come back query after query, and zap decodes each of their 70,000–
// 170,000 postings (document number, frequency, norm) from its chunks every
// time. A segment never changes, so the decoded form of a broad term's
// postings is kept with the segment's columns: each document number and its
// sqrt(frequency)·norm, the part of the TF-IDF score that does not depend
// on the query (12 bytes a posting). Scores are computed from them in the
// same order of operations as from the iterator, so they stay bit for bit
// Bleve's (TestPrefilterMatchesWalk, TestTermScorerMatchesBleve).

const (
	// defaultDecodeMin is the shortest postings list kept decoded: shorter
	// ones decode in microseconds.
	defaultDecodeMin = 2048
	// decodedBudget bounds the decoded postings kept by one engine; a list
	// that would pass it is decoded for its query and not kept.
	decodedBudget = 128 << 20
)

// decodedPostings is one term's postings in one segment, deleted documents
// included (deletions grow with later snapshots, and the documents asked
// for are always live ones).
type decodedPostings struct {
	docs   []uint32
	tfnorm []float64 // sqrt(frequency) · norm, as TermQueryScorer multiplies them
}

func (dp *decodedPostings) bytes() int64 { return int64(len(dp.docs))*4 + int64(len(dp.tfnorm))*8 }

type termKey struct{ field, term string }

// decodedCache holds a segment's decoded postings (in its segColumns).
type decodedCache struct {
	mu      sync.Mutex
	terms   map[termKey]*decodedPostings
	pending map[termKey]bool // being decoded in the background
	size    int64
	// gone: the segment left the index (columnCache.forReader); a decoding
	// that finishes after is not kept, or its bytes would never leave the
	// budget
	gone bool
}

// drop forgets the segment's decoded postings and returns their bytes.
func (dc *decodedCache) drop() int64 {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	n := dc.size
	dc.terms, dc.size, dc.gone = nil, 0, true
	return n
}

// decoded returns n's postings in the segment decoded, from the segment's
// cache; nil for a short list, or one not decoded yet, which the caller
// iterates. A long list not yet decoded is decoded in the background
// (once; kept while the engine's budget allows): decoding it in the
// search itself made the first search of a word slower than iterating,
// and both halves of a split search decoded it.
func (s *segScorer) decoded(n *tnode, pl segment.PostingsList) (*decodedPostings, error) {
	if s.cols == nil || s.snap == nil || pl.Count() < uint64(s.decodeMin) {
		return nil, nil
	}
	k := termKey{n.field, n.term}
	dc := &s.cols.decoded
	dc.mu.Lock()
	dp, busy := dc.terms[k], dc.pending[k]
	if dp == nil && !busy {
		if dc.pending == nil {
			dc.pending = make(map[termKey]bool)
		}
		dc.pending[k] = true
	}
	dc.mu.Unlock()
	if dp != nil || busy {
		return dp, nil
	}

	// the snapshot keeps the segment open until the decoding is done
	snap, seg, cache := s.snap, s.segment, s.cache
	snap.AddRef()
	s.spawn("search.decode", func() {
		defer func() { _ = snap.DecRef() }()
		dp, err := decodeTerm(seg, k)
		dc.mu.Lock()
		defer dc.mu.Unlock()
		delete(dc.pending, k)
		if err != nil || dc.gone {
			return // searches go on iterating this term
		}
		if cache.decodedSize.Add(dp.bytes()) > decodedBudget {
			cache.decodedSize.Add(-dp.bytes())
			return
		}
		if dc.terms == nil {
			dc.terms = make(map[termKey]*decodedPostings)
		}
		dc.terms[k] = dp
		dc.size += dp.bytes()
	})
	return nil, nil
}

// decodeTerm decodes every posting of the term in the segment, deleted
// documents included.
func decodeTerm(seg segment.Segment, k termKey) (*decodedPostings, error) {
	dict, err := seg.Dictionary(k.field)
	if err != nil {
		return nil, fmt.Errorf("bleve: dictionary %s: %w", k.field, err)
	}
	all, err := dict.PostingsList([]byte(k.term), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("bleve: postings %s: %w", k.field, err)
	}
	return decodePostings(all)
}

// decodePostings reads every posting of pl with its weight, computed as
// eachPosting computes it.
func decodePostings(pl segment.PostingsList) (*decodedPostings, error) {
	dp := &decodedPostings{docs: make([]uint32, 0, pl.Count()), tfnorm: make([]float64, 0, pl.Count())}
	it := pl.Iterator(true, true, false, nil)
	for {
		p, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("bleve: postings: %w", err)
		}
		if p == nil {
			return dp, nil
		}
		var tf float64
		if f := p.Frequency(); f < uint64(len(sqrtTable)) {
			tf = sqrtTable[f]
		} else {
			tf = math.Sqrt(float64(f))
		}
		dp.docs = append(dp.docs, uint32(p.Number()))
		dp.tfnorm = append(dp.tfnorm, tf*p.Norm())
	}
}

// score is eachPosting over the decoded postings: each document holding
// the term in within's range of numbers gets tfnorm·idf (·qw unless 1), set
// or added with its count. Documents of the range that are not in within
// get a value too: score's arrays are undefined outside within, and
// writing them costs less than testing membership (a split search's half
// still visits only its own range).
func (dp *decodedPostings) score(within *roaring.Bitmap, idf, qw float64, set []float64, cnt []uint8) {
	if within.IsEmpty() {
		return
	}
	lo, _ := slices.BinarySearch(dp.docs, within.Minimum())
	hi, found := slices.BinarySearch(dp.docs, within.Maximum())
	if found {
		hi++
	}
	docs, tfnorm := dp.docs[lo:hi], dp.tfnorm[lo:hi]
	for j, d := range docs {
		v := tfnorm[j] * idf
		if qw != 1.0 {
			v = v * qw
		}
		if cnt == nil {
			set[d] = v
		} else {
			set[d] += v
			cnt[d]++
		}
	}
}
