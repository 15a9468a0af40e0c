// Package bleve is the embedded search engine: a Bleve (scorch) index on
// local disk under the data directory.
//
// Layout: one Bleve document per contact ("<case>/<contact>"), with the case
// fields copied into it, plus one case-only document ("<case>/") for a case
// that has no contacts yet. Every query matches contacts, so all words,
// phrases and contact filters must hold for the same contact; the search
// then walks every matching contact itself (see collect in search.go) and
// groups them by case, which gives exact totals, exact facet counts and
// paging that reaches every case, one hit per case with its best contact.
// What it needs of each match (case, dates, facet values, column filters)
// it reads from per-segment columns decoded once (columns.go).
//
// Versioning: indexes live in dir/cases_vN; dir/CURRENT names the live one.
// Open serves CURRENT; Build creates the next cases_vN for a rebuild, which
// becomes live when Activate writes CURRENT. The old one is removed with Drop
// once nobody queries it.
package bleve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	bv "github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis"
	_ "github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/analysis/lang/cjk"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/mapping"
	index "github.com/blevesearch/bleve_index_api"

	"github.com/casevault/casevault/bg"
	"github.com/casevault/casevault/search"
)

// MappingVersion changes whenever the document layout or analysis changes;
// an index built with an older version is reported by Outdated so the
// server rebuilds it (search.Indexer.Reindex) while still answering from it.
const MappingVersion = 8 // 5: customer names (issue 16 §2); 6: the customer index beside it (customerindex.go); 7: case documents without the customer-name fields (issue 19 §3); 8: a contact document's ID is the contact's (docID), and no field holds it

const (
	currentFile  = "CURRENT"
	indexPrefix  = "cases_v"
	mappingKey   = "casevault_mapping_version"
	textAnalyzer = "cv_text"
)

var indexDirRE = regexp.MustCompile(`^cases_v([0-9]+)$`)

// Engine is a Bleve index of cases. It is safe for concurrent use.
type Engine struct {
	dir     string
	name    string
	idx     bv.Index
	cust    *custIndex // customers_vN beside cases_vN (customerindex.go)
	m       *mapping.IndexMappingImpl
	text    analysis.Analyzer
	stems   *stems      // the stemmed side's terms (textfield.go)
	version int         // mapping version the index was built with
	durable atomic.Bool // wait for persistence on every write (false while a rebuild fills)
	created bool        // Open found no index and created an empty one

	writeMu sync.Mutex // serializes Index/Delete: each reads then rewrites a case's documents
	known   knownCases // cases with contact documents and no case-only one (index.go); under writeMu
	cols    columnCache
	fuzzy   fuzzyCache  // fuzzy clauses' terms in the newest snapshot (prefilter.go)
	warming atomic.Bool // a warm goroutine is running

	guard   *bg.Guard
	stats   *scorch.Stats         // scorch's counters, nil for another index type
	errBase uint64                // scorch's asynchronous error count at open
	broken  atomic.Pointer[error] // why the engine must be reopened (failure.go)

	// splitMin is the number of a query's prefiltered matches from which
	// its scored walk and facet views run on several goroutines
	// (prefiltered): below it the goroutines cost more than they save.
	splitMin int
	// decodeMin is the shortest postings list the scorer keeps decoded
	// (postings.go)
	decodeMin int
	// batchDocs and batchText bound what a Bleve batch of Index or
	// AddContacts takes before it is applied (index.go, defaultBatchDocs)
	batchDocs, batchText int
	// spare counts the cores not taken by a split search: a search splits
	// only if it gets one, so under concurrent searches each runs on one
	// goroutine and the split's extra CPU is not spent.
	spare spareCores
	// arenas keeps the term-at-a-time scorer's score arrays (scorer.go)
	arenas arenaPool
	// bleveScores turns the term-at-a-time scorer off: matches are scored
	// by Bleve's searchers (the reference its tests compare with)
	bleveScores bool
	// cores sizes Index's parts and the spare cores (WithCores)
	cores int
}

// spareCores is a non-blocking counting semaphore.
type spareCores chan struct{}

// newSpareCores counts the spares from the cores the process may keep busy
// (one is the searching goroutine's own; at least one spare): not from
// the Ps, which serve runs at twice the cores, since a split is only
// worth its extra CPU on a core left idle.
func newSpareCores(cores int) spareCores { return make(spareCores, max(cores-1, 1)) }

// take reports whether a spare core was free (then give returns it).
func (s spareCores) take() bool {
	select {
	case s <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s spareCores) give() { <-s }

// defaultSplitMin: at 4,096 matches the walk takes about 1–2 ms, where two
// goroutines' start and merge (tens of microseconds) are small.
const defaultSplitMin = 4096

// Option configures Open, Reopen and Build.
type Option func(*Engine)

// WithGuard recovers and reports panics in the engine's own background
// work (warming columns) through g.
func WithGuard(g *bg.Guard) Option { return func(e *Engine) { e.guard = g } }

// WithCores gives the engine the cores the process may keep busy
// (default: GOMAXPROCS): a large Index call builds that many parts at
// once, and that many searches less one may split (spareCores). serve runs
// twice as many Ps as cores, and four parts on two cores took more time,
// CPU and memory than two (docs/ARCHITECTURE.md); n < 1 keeps the default.
func WithCores(n int) Option {
	return func(e *Engine) {
		if n > 0 {
			e.cores = n
		}
	}
}

var _ search.Engine = (*Engine)(nil)

// Open serves the live index under dir, creating cases_v1 when there is
// none. Call Outdated to learn whether it must be rebuilt.
func Open(ctx context.Context, dir string, opts ...Option) (*Engine, error) {
	e, err := open(ctx, dir, opts)
	if err == nil {
		removeOthers(dir, e.name)
	}
	return e, err
}

// Reopen is Open without removing other versioned indexes (a rebuild may
// be filling one): the indexer reopens the live index with it after a
// failure (search.ErrBroken).
func Reopen(ctx context.Context, dir string, opts ...Option) (*Engine, error) {
	return open(ctx, dir, opts)
}

func open(ctx context.Context, dir string, opts []Option) (*Engine, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bleve: %w", err)
	}

	cur, err := os.ReadFile(filepath.Join(dir, currentFile))
	switch {
	case err == nil:
		name := strings.TrimSpace(string(cur))
		if !indexDirRE.MatchString(name) {
			return nil, fmt.Errorf("bleve: %s names %q, not an index", currentFile, name)
		}
		e, err := openIndex(ctx, dir, name, opts)
		if err != nil {
			return nil, err
		}
		e.durable.Store(true)
		e.warm()
		return e, nil
	case errors.Is(err, os.ErrNotExist):
		e, err := Build(ctx, dir, opts...)
		if err != nil {
			return nil, err
		}
		if err := e.Activate(ctx); err != nil {
			_ = e.Drop(ctx)
			return nil, err
		}
		e.created = true
		return e, nil
	default:
		return nil, fmt.Errorf("bleve: %w", err)
	}
}

// Build creates the next versioned index under dir (cases_v<N+1>), empty and
// not yet live. Fill it, then Activate it, or Drop it on failure. Until
// Activate, writes are not individually waited for on disk (bulk speed).
func Build(ctx context.Context, dir string, opts ...Option) (*Engine, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bleve: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("bleve: %w", err)
	}
	next := 1
	for _, en := range entries {
		if m := indexDirRE.FindStringSubmatch(en.Name()); m != nil {
			if n, _ := strconv.Atoi(m[1]); n >= next {
				next = n + 1
			}
		}
	}
	name := indexPrefix + strconv.Itoa(next)
	m, err := newMapping()
	if err != nil {
		return nil, err
	}
	idx, err := bv.New(filepath.Join(dir, name), m)
	if err != nil {
		return nil, fmt.Errorf("bleve: create %s: %w", name, err)
	}
	if err := idx.SetInternal([]byte(mappingKey), []byte(strconv.Itoa(MappingVersion))); err != nil {
		_ = idx.Close()
		return nil, fmt.Errorf("bleve: %w", err)
	}
	cust, err := createCustomers(dir, name)
	if err != nil {
		_ = idx.Close()
		return nil, err
	}
	return newEngine(dir, name, idx, cust, MappingVersion, opts)
}

func openIndex(_ context.Context, dir, name string, opts []Option) (*Engine, error) {
	// Another process (a running server) holding the index must produce an
	// error, not an endless wait on bolt's file lock.
	idx, err := bv.OpenUsing(filepath.Join(dir, name), map[string]interface{}{"bolt_timeout": "3s"})
	if err != nil {
		return nil, fmt.Errorf("bleve: open %s (is another casevault process using %s?): %w", name, dir, err)
	}
	v, err := idx.GetInternal([]byte(mappingKey))
	if err != nil {
		_ = idx.Close()
		return nil, fmt.Errorf("bleve: %w", err)
	}
	version, _ := strconv.Atoi(string(v))
	cust, err := openCustomers(dir, name)
	if err != nil {
		_ = idx.Close()
		return nil, err
	}
	return newEngine(dir, name, idx, cust, version, opts)
}

func newEngine(dir, name string, idx bv.Index, cust *custIndex, version int, opts []Option) (*Engine, error) {
	im, ok := idx.Mapping().(*mapping.IndexMappingImpl)
	if !ok {
		_ = idx.Close()
		_ = cust.close()
		return nil, fmt.Errorf("bleve: %s has mapping %T", name, idx.Mapping())
	}
	e := &Engine{dir: dir, name: name, idx: idx, cust: cust, m: im, version: version, known: knownCases{}, splitMin: defaultSplitMin, decodeMin: defaultDecodeMin, batchDocs: defaultBatchDocs, batchText: defaultBatchText, cores: runtime.GOMAXPROCS(0), arenas: make(arenaPool, runtime.GOMAXPROCS(0)+1)}
	for _, o := range opts {
		o(e)
	}
	e.spare = newSpareCores(e.cores)
	if adv, err := idx.Advanced(); err == nil {
		e.stats = scorchStats(adv)
		e.errBase = asyncErrors(e.stats)
	}
	e.text = im.AnalyzerNamed(textAnalyzer)
	e.stems = newStems()
	if e.text == nil {
		_ = idx.Close()
		_ = cust.close()
		return nil, fmt.Errorf("bleve: %s lacks the %s analyzer (built by an older mapping?)", name, textAnalyzer)
	}
	e.text = fastWidth(e.text)
	return e, nil
}

// removeOthers deletes leftovers of interrupted rebuilds and retired
// versions; only the live index is worth keeping at startup.
func removeOthers(dir, keep string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, en := range entries {
		if en.Name() != keep && en.Name() != custName(keep) && (indexDirRE.MatchString(en.Name()) || custDirRE.MatchString(en.Name())) {
			_ = os.RemoveAll(filepath.Join(dir, en.Name()))
		}
	}
}

// newMapping declares every field so queries analyze text the way documents
// were analyzed; documents themselves are built directly (IndexAdvanced).
//
// Text uses the CJK analyzer chain: the unicode tokenizer (words for Latin
// scripts, single ideographs for Han), width folding, lower case, then
// bigrams of adjacent ideographs, so 阅读 is a token of 阅读记录.
func newMapping() (*mapping.IndexMappingImpl, error) {
	im := bv.NewIndexMapping()
	err := im.AddCustomAnalyzer(textAnalyzer, map[string]any{
		"type":          "custom",
		"tokenizer":     "unicode",
		"token_filters": []any{cjk.WidthName, "to_lower", cjk.BigramName},
	})
	if err != nil {
		return nil, fmt.Errorf("bleve: analyzer: %w", err)
	}

	im.DefaultAnalyzer = textAnalyzer
	im.IndexDynamic = false
	im.StoreDynamic = false
	im.DocValuesDynamic = false

	dm := bv.NewDocumentStaticMapping()
	text := func() *mapping.FieldMapping {
		f := bv.NewTextFieldMapping()
		f.Analyzer = textAnalyzer
		f.Store = false
		f.IncludeTermVectors = true
		f.IncludeInAll = false
		f.DocValues = false
		return f
	}

	kw := func() *mapping.FieldMapping {
		f := bv.NewKeywordFieldMapping()
		f.IncludeInAll = false
		f.DocValues = true
		return f
	}

	dm.AddFieldMappingsAt(fText, text())
	dm.AddFieldMappingsAt(fTextCJK, text())
	dm.AddFieldMappingsAt(fTextEN, text()) // declared only: queries hold stems (stem, as sideStem indexes them), never analyzed by the mapping
	for _, n := range []string{fCaseID, fHead, fStatus, fPriority, fCustomer, fAssignee, fTags, fContact, fChannel, fPurposes, fSortAt, fHash, fUpdatedAt} {
		dm.AddFieldMappingsAt(n, kw())
	}

	im.DefaultMapping = dm
	if err := im.Validate(); err != nil {
		return nil, fmt.Errorf("bleve: mapping: %w", err)
	}

	return im, nil
}

// Name implements search.Engine.
func (e *Engine) Name() string { return "bleve" }

// IndexName implements search.Engine.
func (e *Engine) IndexName() string { return e.name }

// Outdated reports whether the index was built with an older mapping and
// should be rebuilt.
func (e *Engine) Outdated() bool { return e.version != MappingVersion }

// Compact merges the index down to one segment and waits for it: fewer
// segments make every query cheaper. Meant for a freshly filled rebuild,
// before Activate (search.Indexer.Reindex calls it); it also works on a
// live index, which keeps answering meanwhile.
func (e *Engine) Compact(ctx context.Context) error {
	if err := e.failed(); err != nil {
		return err
	}
	adv, err := e.idx.Advanced()
	if err != nil {
		return fmt.Errorf("bleve: compact: %w", err)
	}
	s, ok := adv.(*scorch.Scorch)
	if !ok {
		return nil
	}
	if err := s.ForceMerge(ctx, nil); err != nil {
		return fmt.Errorf("bleve: compact: %w", err)
	}
	e.warm()
	return nil
}

// Created reports whether Open found no index and created an empty one: if
// the store already holds cases (say the index directory was lost), the
// server should rebuild (search.Indexer.Reindex with Build).
func (e *Engine) Created() bool { return e.created }

// Activate flushes the index to disk, makes it the live one for the next
// Open (CURRENT is replaced atomically: temp file, fsync, rename) and from
// then on waits for persistence on every write.
func (e *Engine) Activate(ctx context.Context) error {
	// persisted callbacks fire in order: once this batch is on disk, so is
	// everything written before it
	b := e.idx.NewBatch()
	b.SetInternal([]byte(mappingKey), []byte(strconv.Itoa(e.version)))
	if err := e.applyDurable(ctx, b); err != nil {
		return fmt.Errorf("bleve: activate: %w", err)
	}
	if err := e.flushCustomers(ctx); err != nil {
		return fmt.Errorf("bleve: activate: %w", err)
	}
	e.durable.Store(true)
	tmp, err := os.CreateTemp(e.dir, ".current-*")
	if err != nil {
		return fmt.Errorf("bleve: activate: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(e.name + "\n"); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("bleve: activate: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("bleve: activate: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("bleve: activate: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(e.dir, currentFile)); err != nil {
		return fmt.Errorf("bleve: activate: %w", err)
	}
	return nil
}

// Drop closes the index and deletes it from disk; used for an index that was
// replaced by a rebuild or whose rebuild failed. It refuses to drop the live
// index.
func (e *Engine) Drop(_ context.Context) error {
	cur, err := os.ReadFile(filepath.Join(e.dir, currentFile))
	if err == nil && strings.TrimSpace(string(cur)) == e.name {
		return fmt.Errorf("bleve: refusing to drop live index %s", e.name)
	}
	cerr := e.idx.Close()
	if err := os.RemoveAll(filepath.Join(e.dir, e.name)); err != nil {
		return fmt.Errorf("bleve: drop %s: %w", e.name, err)
	}
	if err := e.dropCustomers(); err != nil {
		return err
	}
	if cerr != nil && !errors.Is(cerr, bv.ErrorIndexClosed) {
		return fmt.Errorf("bleve: drop %s: %w", e.name, cerr)
	}
	return nil
}

// Ping implements search.Engine.
func (e *Engine) Ping(_ context.Context) error {
	if err := e.failed(); err != nil {
		return err
	}
	if _, err := e.idx.DocCount(); err != nil {
		return fmt.Errorf("bleve: %w", err)
	}
	return nil
}

// Close implements search.Engine.
func (e *Engine) Close() error {
	cerr := e.cust.close()
	if err := e.idx.Close(); err != nil && !errors.Is(err, bv.ErrorIndexClosed) {
		return fmt.Errorf("bleve: %w", err)
	}
	return cerr
}

// DiskSize reports the bytes the index occupies on disk.
func (e *Engine) DiskSize() (int64, error) {
	var total int64
	err := filepath.WalkDir(filepath.Join(e.dir, e.name), func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				if errors.Is(err, os.ErrNotExist) { // merged away meanwhile
					return nil
				}
				return err
			}
			total += info.Size()
		}
		return nil
	})
	return total, err
}

// reader opens a consistent snapshot of the index.
func (e *Engine) reader() (index.IndexReader, error) {
	if err := e.failed(); err != nil {
		return nil, err
	}
	adv, err := e.idx.Advanced()
	if err != nil {
		return nil, fmt.Errorf("bleve: %w", err)
	}
	r, err := adv.Reader()
	if err != nil {
		return nil, fmt.Errorf("bleve: reader: %w", err)
	}
	return r, nil
}

// warm decodes, in the background, the search columns (see columns.go) of
// segments that are new in the current snapshot, so that the first query
// after a write or a merge does not pay for it. At most one runs at a
// time; a query still decodes whatever is missing itself.
func (e *Engine) warm() {
	if e.warming.Swap(true) {
		return
	}
	e.guard.Go("search.warm", func() {
		defer e.warming.Store(false)
		r, err := e.reader()
		if err != nil {
			return // closed or broken meanwhile
		}
		defer r.Close()
		_, _ = e.cols.forReader(context.Background(), r)
	})
}
