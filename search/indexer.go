package search

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/casevault/casevault/bg"
)

// OutboxEntry says a case changed. It carries only IDs: the indexer
// reloads the current state, so stale or duplicate entries are harmless.
// ContactID is set when the change was only that contact's creation (the
// common write); "" means anything about the case may have changed.
// An entry with CustomerID and no CaseID says a customer's name changed
// (created, renamed, erased: see customers.go).
type OutboxEntry struct {
	Seq        int64 // feed position (see feed.go)
	CaseID     string
	ContactID  string
	CustomerID string
	CreatedAt  time.Time
}

// Source is what the indexer needs from the store: the change feed, its
// consumers, and the current state of cases.
type Source interface {
	// ReadFeed returns up to limit changes above position after, in
	// position order.
	ReadFeed(ctx context.Context, after int64, limit int) ([]OutboxEntry, error)
	// FeedHead returns the highest position given so far: every change at
	// or below it has committed.
	FeedHead(ctx context.Context) (int64, error)
	// ClaimConsumer registers or renews a consumer and reports it, and
	// whether c.Owner holds its lease (may write the index and move it).
	ClaimConsumer(ctx context.Context, c Claim) (Consumer, bool, error)
	// AdvanceConsumer moves a consumer forward to pos; ErrLeaseLost when
	// owner no longer holds it.
	AdvanceConsumer(ctx context.Context, id, owner string, pos int64, now time.Time) error
	// ReleaseConsumer gives the lease up.
	ReleaseConsumer(ctx context.Context, id, owner string) error
	// FeedStatus reports the head and every consumer with its lag.
	FeedStatus(ctx context.Context, now time.Time) (FeedStatus, error)
	// PruneFeed expires consumers not seen since expireBefore and deletes
	// rows every remaining consumer has passed.
	PruneFeed(ctx context.Context, now, expireBefore time.Time) (pruned int64, expired []string, err error)
	// LoadCaseDocs loads the current state of cases; a missing ID means the
	// case is gone and must be deleted from the index.
	LoadCaseDocs(ctx context.Context, caseIDs []string) (map[string]CaseDoc, error)
	// LoadContactDocs loads the current state of cases (keys) with only the
	// given contacts of each; a missing case is gone, a missing contact is
	// simply absent (its removal has an outbox entry of its own).
	LoadContactDocs(ctx context.Context, contacts map[string][]string) (map[string]CaseDoc, error)
	// ListCaseIDs pages through every case ID in ascending order, after the
	// given ID ("" for the start), for a full rebuild.
	ListCaseIDs(ctx context.Context, after string, limit int) ([]string, error)
}

// Activator is implemented by engines whose rebuilt index must be made the
// live one explicitly (Bleve writes its CURRENT file).
type Activator interface {
	Activate(ctx context.Context) error
}

// Dropper is implemented by engines that can delete their index once it was
// replaced by a rebuild (or the rebuild failed); Drop also closes.
type Dropper interface {
	Drop(ctx context.Context) error
}

// Appender is implemented by engines that can add new contacts to a case
// without being handed the whole case. Without it, a new contact costs the
// indexer a load of every contact of its case (and the engine a comparison
// with each), which grows with the case: long chat cases made ingest
// quadratic.
type Appender interface {
	// AddContacts writes a document for each contact of each doc (the case
	// fields are current; Contacts holds only new contacts) and leaves the
	// case's other documents as they are. A contact already indexed is
	// left alone: contacts are immutable, and a case change has its own
	// full outbox entry.
	AddContacts(ctx context.Context, docs []CaseDoc) error
}

// Compactor is implemented by engines that can optimize a freshly built
// index before it goes live (Bleve merges its segments).
type Compactor interface {
	Compact(ctx context.Context) error
}

// Options tune an Indexer; zero values take the defaults.
type Options struct {
	// BatchSize is how many outbox entries a batch reads (default 2000).
	// Bleve's CPU per contact falls with the segment a batch makes:
	// BenchmarkAppendCPU, batches of 2000 against 500, 15-20% less (issue
	// 19). A rebuild lists cases in pages of at most rebuildPage.
	BatchSize int
	// MaxBatchText caps the contact text (bodies and authors) one batch
	// loads, in bytes (default 32 MiB): a batch loads its cases and
	// contacts loadWindow entries at a time, stops after the window that
	// passes the cap, and leaves the rest of what it read to the next
	// batch. Without it 2000 contacts at the body limit (256 KiB) would be
	// 512 MiB in memory before Bleve analysed them, and 2000 whole cases
	// have no bound at all.
	MaxBatchText int
	PollInterval time.Duration // idle wait between polls unless kicked (default 1s)
	MaxBackoff   time.Duration // cap of the retry delay after engine errors (default 30s)
	// Settle is how long a kick waits after a batch that did work, so that
	// bursts of writes coalesce (default 200ms; negative disables).
	Settle time.Duration
	// MaxSettle caps how far the settle window stretches while writes keep
	// arriving, until a batch's worth (BatchSize) was written (default 1s;
	// at most Settle disables the stretching). Bleve's cost per contact
	// halves from batches of ~100 to ~500 (BenchmarkAppendCPU), which is
	// what ingest under load produced with a fixed 200 ms window.
	MaxSettle time.Duration
	// Guard recovers panics in the indexer's work (batches, rebuilds,
	// queries), reports them, and turns them into errors; nil still
	// recovers, without reporting.
	Guard *bg.Guard
	// Reopen opens the live engine again, after it failed in a way that
	// leaves its in-memory state untrustworthy (ErrBroken, a panic) or
	// could not be opened at all (Unavailable). The indexer closes the old
	// engine first (Bleve locks its files). Nil: the engine is retried as
	// it is.
	Reopen func(ctx context.Context) (Engine, error)

	// Consumer names this index in the change feed (default "default"):
	// an embedded index's ID is kept in its directory; a shared index has
	// one ID for every replica.
	Consumer string
	// Shared says every replica reads this index and only the lease holder
	// writes it (Meilisearch); else only this process uses it.
	Shared bool
	// Owner names this process for the lease (default: Consumer for an
	// embedded index, which only its process can open; a random ID for a
	// shared one).
	Owner string
	// LeaseTTL is how long a claim holds the lease; it is renewed every
	// third of it (default 15s).
	LeaseTTL time.Duration
	// ExpireAfter is how long a consumer may go unseen before it is expired
	// and rows it has not read may be pruned (default 7 days); it rebuilds
	// when it returns.
	ExpireAfter time.Duration
	// PruneEvery is how often the lease holder prunes the feed (default 1m).
	PruneEvery time.Duration
	// Untrusted says the index's content is vouched for by no cursor (an
	// index older than the feed, or copied in): it is rebuilt once the
	// lease is first held, whatever the stored position.
	Untrusted bool
	// Rebuild builds a new, empty index, for the rebuild the indexer starts
	// when its cursor was pruned past (nil: it stays untrusted and says so).
	Rebuild func(ctx context.Context) (Engine, error)
	// Now is the clock of leases and lag (default time.Now).
	Now func() time.Time
}

// Status is the indexer's health for GET /api/v1/search/status. Pending,
// LagSeconds and Position are this replica's index's, read from the feed's
// consumer table (for a shared index, the writer's progress).
type Status struct {
	Engine     string  `json:"engine"`
	Index      string  `json:"index"`
	Documents  int64   `json:"documents"`
	Pending    int64   `json:"pending"`
	LagSeconds float64 `json:"lag_seconds"`
	Healthy    bool    `json:"healthy"`
	// Consumer is this index's consumer ID; Position is where its cursor
	// is (-1: must rebuild), Head the feed's.
	Consumer string `json:"consumer"`
	Position int64  `json:"position"`
	Head     int64  `json:"head"`
	// Writer says this process holds the lease (writes the index).
	Writer bool `json:"writer"`
	// Rebuilding says a rebuild is under way; MustRebuild that the index
	// cannot be trusted until one finishes.
	Rebuilding  bool `json:"rebuilding"`
	MustRebuild bool `json:"must_rebuild"`
	// Consumers is every index reading the feed, with its position and lag.
	Consumers []Consumer `json:"consumers"`
	// Error is why the last batch failed, while the indexer is failing
	// (e.g. the disk is full); readiness reports it.
	Error string `json:"error,omitempty"`
}

// ErrReindexRunning is returned when a rebuild is requested during another.
var ErrReindexRunning = errors.New("search: a reindex is already running")

// Indexer feeds an engine from the store's outbox and owns the engine that
// answers queries, so that a rebuild can switch engines under live traffic.
//
// Writers never wait for it: the store only appends outbox rows in the
// write's transaction, and Kick merely wakes the loop.
type Indexer struct {
	src  Source
	log  *slog.Logger
	opts Options
	kick chan struct{}
	// kicks counts Kick calls since the last feed read began: the writes
	// (usually one each) the next batch would carry, which the settle
	// window waits for (settle).
	kicks atomic.Int64

	cur atomic.Pointer[handle] // the engine answering queries

	// applyMu serializes every load-then-write against the engines (outbox
	// batches and rebuild batches), so the last write of a case into any
	// engine always carries the latest state that was loaded.
	applyMu  sync.Mutex
	building Engine // rebuild target, fed by outbox batches too (guarded by applyMu)
	buildErr error  // first error writing to building (guarded by applyMu)

	failures   atomic.Int64 // consecutive failed batches
	poisoned   atomic.Int64 // cases set aside as poison (PoisonError)
	lastErr    atomic.Pointer[string]
	reindexing atomic.Bool
	// broken says the live engine must be closed and reopened before the
	// next batch (see Options.Reopen).
	broken atomic.Bool

	// pos is the feed position read up to (guarded by applyMu for writes).
	pos atomic.Int64
	// stale says the live engine lacks changes at or below pos (the cursor
	// was pruned past): the stored cursor is not moved until a rebuild
	// replaces it.
	stale atomic.Bool
	// leased says this process holds the consumer's lease; epoch counts
	// the times it gained it, so a rebuild can tell it kept it throughout.
	leased atomic.Bool
	epoch  atomic.Int64
	// claimMu guards lastClaim and lastPrune.
	claimMu   sync.Mutex
	lastClaim time.Time
	lastPrune time.Time
}

// handle guards an engine against being closed under a running query.
type handle struct {
	eng    Engine
	mu     sync.RWMutex // queries hold R; retiring takes W
	closed bool
}

// NewIndexer returns an indexer over eng; call Run to start it.
func NewIndexer(src Source, eng Engine, logger *slog.Logger, opts Options) *Indexer {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 2000
	}
	if opts.MaxBatchText <= 0 {
		opts.MaxBatchText = 32 << 20
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.Settle == 0 {
		opts.Settle = 200 * time.Millisecond
	}
	if opts.MaxSettle == 0 {
		opts.MaxSettle = time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Consumer == "" {
		opts.Consumer = "default"
	}
	if opts.Owner == "" {
		opts.Owner = opts.Consumer
		if opts.Shared {
			opts.Owner = fmt.Sprintf("%s-%016x", opts.Consumer, rand.Uint64())
		}
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 15 * time.Second
	}
	if opts.ExpireAfter <= 0 {
		opts.ExpireAfter = 7 * 24 * time.Hour
	}
	if opts.PruneEvery <= 0 {
		opts.PruneEvery = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ix := &Indexer{src: src, log: logger, opts: opts, kick: make(chan struct{}, 1)}
	ix.cur.Store(&handle{eng: eng})
	return ix
}

// Kick wakes the loop early, typically right after a write committed. It
// never blocks.
func (ix *Indexer) Kick() {
	ix.kicks.Add(1)
	select {
	case ix.kick <- struct{}{}:
	default:
	}
}

// Engine returns the engine currently answering queries. Prefer Search,
// which is safe across a rebuild's switch.
func (ix *Indexer) Engine() Engine { return ix.cur.Load().eng }

// Search runs q on the live engine, holding it open for the duration.
func (ix *Indexer) Search(ctx context.Context, q Query) (Result, error) {
	for {
		h := ix.cur.Load()
		h.mu.RLock()
		if h.closed { // retired between Load and RLock: take the new one
			h.mu.RUnlock()
			continue
		}
		var res Result
		err := ix.opts.Guard.Run("search.query", func() (err error) {
			res, err = h.eng.Search(ctx, q)
			return err
		})
		h.mu.RUnlock()
		if isPanic(err) || errors.Is(err, ErrBroken) {
			// the engine's state is suspect: reopen it before the next batch
			ix.broken.Store(true)
			ix.Kick()
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return res, err
	}
}

// CustomerIDsByName implements CustomerFinder on the live engine, with the
// same guard and reopening as Search. An engine that cannot find customers
// is a wiring mistake (the conformance suite requires it), reported as an
// error rather than as "nobody found".
func (ix *Indexer) CustomerIDsByName(ctx context.Context, name string, offset, limit int) ([]string, error) {
	for {
		h := ix.cur.Load()
		h.mu.RLock()
		if h.closed {
			h.mu.RUnlock()
			continue
		}
		f, ok := h.eng.(CustomerFinder)
		if !ok {
			h.mu.RUnlock()
			return nil, fmt.Errorf("search: engine %s cannot find customers by name", h.eng.Name())
		}
		var ids []string
		err := ix.opts.Guard.Run("search.customers", func() (err error) {
			ids, err = f.CustomerIDsByName(ctx, name, offset, limit)
			return err
		})
		h.mu.RUnlock()
		if isPanic(err) || errors.Is(err, ErrBroken) {
			ix.broken.Store(true)
			ix.Kick()
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return ids, err
	}
}

func isPanic(err error) bool { return errors.Is(err, bg.ErrPanic) }

// Close gives the feed lease up (so another replica can take a shared
// index over at once) and closes the live engine. Stop Run (cancel its
// context) first.
func (ix *Indexer) Close() error {
	if ix.leased.Swap(false) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := ix.src.ReleaseConsumer(ctx, ix.opts.Consumer, ix.opts.Owner); err != nil {
			ix.log.Warn("search: releasing the feed lease", "err", err)
		}
		cancel()
	}
	h := ix.cur.Load()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	return h.eng.Close()
}

// Run drains the outbox until ctx ends: a full batch is followed by the next
// at once, an empty one waits PollInterval or a Kick, a failed one waits an
// exponential backoff with jitter. It returns nil when ctx is cancelled.
func (ix *Indexer) Run(ctx context.Context) error {
	for {
		var n int
		// A panic in a batch (Bleve on a full disk) is recovered here and
		// handled like any failed batch: back off, reopen, retry.
		err := ix.opts.Guard.Run("indexer", func() (err error) {
			n, err = ix.drainOnce(ctx)
			return err
		})
		var wait time.Duration
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			if ix.opts.Reopen != nil && needsReopen(err) {
				ix.broken.Store(true)
			}
			msg := err.Error()
			ix.lastErr.Store(&msg)
			f := ix.failures.Add(1)
			wait = backoff(f, ix.opts.MaxBackoff)
			ix.log.WarnContext(ctx, "search indexing failed; will retry", "err", err, "failures", f, "retry_in", wait)
		case n >= ix.opts.BatchSize:
			ix.succeeded()
			continue
		default:
			ix.succeeded()
			wait = ix.opts.PollInterval
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-ix.kick:
			// Under a steady write load every commit kicks; waiting a short
			// settle window after a batch that did work lets the next batch
			// cover many writes, so a busy case is re-indexed once per
			// window rather than once per contact.
			if err == nil && n > 0 && ix.opts.Settle > 0 {
				if !ix.settle(ctx) {
					t.Stop()
					return nil
				}
			}
			// a kick does not cut a backoff short: the engine is what failed
			if err != nil {
				select {
				case <-ctx.Done():
					t.Stop()
					return nil
				case <-t.C:
				}
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// settle waits the settle window after a kick that follows a batch that
// did work. While writes keep coming it stretches the window, in steps of
// a quarter Settle, until a batch's worth of them arrived or MaxSettle
// passed: under load, batches then hold ~BatchSize entries instead of the
// 200 ms's worth (~100 at 500 contacts/s), and Bleve's persisting and
// merging cost per contact falls with the segment count (issue 19 §3). A
// step without any write ends the wait, so the last writes of a burst are
// not held back. It reports false when ctx ended.
func (ix *Indexer) settle(ctx context.Context) bool {
	start := time.Now()
	sleep := func(d time.Duration) bool {
		st := time.NewTimer(d)
		defer st.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-st.C:
			return true
		}
	}
	if !sleep(ix.opts.Settle) {
		return false
	}
	step := max(ix.opts.Settle/4, time.Millisecond)
	for {
		seen := ix.kicks.Load()
		if seen >= int64(ix.opts.BatchSize) || time.Since(start)+step > ix.opts.MaxSettle {
			return true
		}
		if !sleep(step) {
			return false
		}
		if ix.kicks.Load() == seen {
			return true // the writes stopped
		}
	}
}

func (ix *Indexer) succeeded() {
	ix.failures.Store(0)
	ix.lastErr.Store(nil)
}

// mustReopen reports whether the live engine is to be reopened before the
// next batch: it failed for good, or is the stand-in for one that could not
// be opened.
func (ix *Indexer) mustReopen() bool {
	_, standIn := ix.cur.Load().eng.(unavailable)
	return ix.opts.Reopen != nil && (standIn || ix.broken.Load())
}

// reopen closes the live engine and opens it again (Options.Reopen). A
// stand-in answers queries with ErrUnavailable meanwhile, and stays when
// the engine cannot be opened (the next attempt comes after a backoff).
func (ix *Indexer) reopen(ctx context.Context) error {
	ix.applyMu.Lock()
	defer ix.applyMu.Unlock()
	old := ix.cur.Load()
	name := old.eng.Name()
	if _, standIn := old.eng.(unavailable); !standIn {
		ix.cur.Store(&handle{eng: Unavailable(name, errors.New("reopening after a failure"))})
		// Close, never Drop: the files are the index we are about to reopen.
		old.mu.Lock()
		if !old.closed {
			old.closed = true
			if err := ix.opts.Guard.Run("search.close", old.eng.Close); err != nil {
				ix.log.WarnContext(ctx, "search: closing the failed engine", "index", old.eng.IndexName(), "err", err)
			}
		}
		old.mu.Unlock()
	}
	var eng Engine
	err := ix.opts.Guard.Run("search.reopen", func() (err error) {
		eng, err = ix.opts.Reopen(ctx)
		return err
	})
	if err != nil {
		ix.cur.Store(&handle{eng: Unavailable(name, err)})
		return fmt.Errorf("search: reopen: %w", err)
	}
	ix.cur.Store(&handle{eng: eng})
	ix.broken.Store(false)
	ix.log.InfoContext(ctx, "search engine reopened", "engine", eng.Name(), "index", eng.IndexName())
	return nil
}

// backoff is 250ms doubled per consecutive failure, capped, with the upper
// half jittered so that many instances do not retry in step.
func backoff(failures int64, limit time.Duration) time.Duration {
	d := 250 * time.Millisecond
	for i := int64(1); i < failures && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d/2 + rand.N(d/2+1)
}

// drainOnce processes one batch and reports how many feed entries it read.
func (ix *Indexer) drainOnce(ctx context.Context) (int, error) {
	if ix.mustReopen() {
		if err := ix.reopen(ctx); err != nil {
			return 0, err
		}
	}

	if err := ix.claim(ctx); err != nil {
		return 0, err
	}
	if !ix.leased.Load() {
		return 0, nil // another replica writes this (shared) index
	}
	ix.prune(ctx)

	// writes kicking from here on may miss this read: the next settle
	// counts them
	ix.kicks.Store(0)
	entries, err := ix.src.ReadFeed(ctx, ix.pos.Load(), ix.opts.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("search: read feed: %w", err)
	}

	if len(entries) == 0 {
		return 0, nil
	}

	ix.applyMu.Lock()
	defer ix.applyMu.Unlock()
	engines := []Engine{ix.cur.Load().eng}
	if ix.building != nil && ix.buildErr == nil {
		engines = append(engines, ix.building)
	}

	// The cases' state is loaded window by window: past MaxBatchText the
	// batch is cut, and everything below works on the entries kept.
	appendable := canAppend(engines)
	read := len(entries)
	entries, loaded, err := ix.loadWindows(ctx, entries, appendable)
	if err != nil {
		return 0, err
	}

	// Every document written carries the batch's last position: the state
	// loaded reflects at least every change up to it (it was read after
	// the entries).
	rev := entries[len(entries)-1].Seq
	caseEntries, customers := splitCustomers(entries)
	full, added := plan(caseEntries, appendable)
	var present []CaseDoc
	var missing []string
	for _, id := range full {
		if d, ok := loaded.whole[id]; ok {
			d.Rev = rev
			present = append(present, d)
		} else {
			missing = append(missing, id)
		}
	}
	custPresent, custMissing, err := ix.loadCustomers(ctx, customers, rev)
	if err != nil {
		return 0, err
	}

	var fresh []CaseDoc
	for _, id := range slices.Sorted(maps.Keys(added)) {
		d, ok := loaded.parts[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		// a window may have loaded contacts of the case that the entries
		// kept do not add (cut off, or the case is loaded whole)
		want := make(map[string]bool, len(added[id]))
		for _, c := range added[id] {
			want[c] = true
		}
		d.Contacts = slices.DeleteFunc(d.Contacts, func(c ContactDoc) bool { return !want[c.ID] })
		if len(d.Contacts) > 0 {
			d.Rev = rev
			fresh = append(fresh, d)
		}
	}

	for i, eng := range engines {
		err := apply(ctx, eng, present, missing)
		if err == nil {
			err = applyCustomers(ctx, eng, custPresent, custMissing)
		}
		if err == nil && len(fresh) > 0 {
			if err = eng.(Appender).AddContacts(ctx, fresh); err != nil {
				err = fmt.Errorf("search: %s add contacts: %w", eng.Name(), err)
			}
		}
		err = ix.setAside(ctx, err) // poison cases (issue 20 §8, poison.go)
		switch {
		case err == nil:
		case i == 0:
			return 0, err
		default:
			// the rebuild fails at its end; the live index goes on
			ix.buildErr = err
		}
	}

	// a rebuild may have moved the cursor past this batch meanwhile
	ix.pos.Store(max(ix.pos.Load(), rev))
	if err := ix.advance(ctx); err != nil {
		return 0, err
	}

	if len(entries) < read {
		return ix.opts.BatchSize, nil // cut short: the rest is waiting
	}
	return read, nil
}

// rebuildPage caps the cases a rebuild loads at a time: a case brings all
// its contacts, and a feed batch's size says nothing about those.
const rebuildPage = 500

// loadWindow is how many feed entries' cases are loaded at a time: a
// batch cut at MaxBatchText holds at most one window more.
const loadWindow = 250

// windowLoads is what loadWindows read of the cases: whole cases (every
// contact), and the contacts that entries add to others, by case.
type windowLoads struct {
	whole, parts map[string]CaseDoc
}

// loadWindows loads, window by window in feed order, what entries need of
// their cases (plan: whole cases, or only the contacts added), until the
// contact text loaded passes MaxBatchText. It returns the entries up to the
// end of the last window loaded, and what it loaded; a case that is gone
// has no entry. A window may load a case the entries kept load otherwise
// (its later entry asks for the whole case): the caller picks by its own
// plan of the entries kept.
func (ix *Indexer) loadWindows(ctx context.Context, entries []OutboxEntry, appendable bool) ([]OutboxEntry, windowLoads, error) {
	got := windowLoads{whole: map[string]CaseDoc{}, parts: map[string]CaseDoc{}}
	text := 0
	for start := 0; start < len(entries); start += loadWindow {
		end := min(start+loadWindow, len(entries))
		caseEntries, _ := splitCustomers(entries[start:end])
		full, added := plan(caseEntries, appendable)
		full = slices.DeleteFunc(full, func(id string) bool { _, ok := got.whole[id]; return ok })
		if len(full) > 0 {
			docs, err := ix.src.LoadCaseDocs(ctx, full)
			if err != nil {
				return nil, got, fmt.Errorf("search: load cases: %w", err)
			}
			for id, d := range docs {
				text += ContactText(d.Contacts)
				got.whole[id] = d
			}
		}
		if len(added) > 0 {
			docs, err := ix.src.LoadContactDocs(ctx, added)
			if err != nil {
				return nil, got, fmt.Errorf("search: load contacts: %w", err)
			}
			for id, d := range docs {
				text += ContactText(d.Contacts)
				if prev, ok := got.parts[id]; ok {
					d.Contacts = append(prev.Contacts, d.Contacts...)
				}
				got.parts[id] = d
			}
		}
		if text > ix.opts.MaxBatchText && end < len(entries) {
			entries = entries[:end]
			break
		}
	}
	for id, d := range got.parts {
		// windows load apart: occurrence order, ties by id (the source's
		// order), which also puts a contact loaded twice side by side
		slices.SortFunc(d.Contacts, func(a, b ContactDoc) int {
			return cmp.Or(a.OccurredAt.Compare(b.OccurredAt), strings.Compare(a.ID, b.ID))
		})
		d.Contacts = slices.CompactFunc(d.Contacts, func(a, b ContactDoc) bool { return a.ID == b.ID })
		got.parts[id] = d
	}
	return entries, got, nil
}

// ContactText is the size of contacts' text (bodies and authors), by which
// the indexer bounds what a batch loads and the Bleve engine what one of
// its batches analyses.
func ContactText(contacts []ContactDoc) int {
	n := 0
	for _, c := range contacts {
		n += len(c.Body) + len(c.Author)
	}
	return n
}

// advance stores the cursor, unless the live engine is stale (its stored
// position stays where it was until a rebuild replaces it). Call with
// applyMu held.
func (ix *Indexer) advance(ctx context.Context) error {
	if ix.stale.Load() {
		return nil
	}
	err := ix.src.AdvanceConsumer(ctx, ix.opts.Consumer, ix.opts.Owner, ix.pos.Load(), ix.opts.Now())
	if errors.Is(err, ErrLeaseLost) {
		ix.leased.Store(false)
		ix.log.WarnContext(ctx, "search: another replica took over writing the index", "consumer", ix.opts.Consumer)
		return nil
	}
	if err != nil {
		return fmt.Errorf("search: advance feed cursor: %w", err)
	}
	return nil
}

// claim registers the consumer or renews its lease (every third of the
// TTL). Gaining the lease starts the cursor from the stored position; a
// stored -1 (pruned past, or expired while away) marks the live engine
// stale and starts a rebuild.
func (ix *Indexer) claim(ctx context.Context) error {
	ix.claimMu.Lock()
	now := ix.opts.Now()
	if ix.leased.Load() && now.Sub(ix.lastClaim) < ix.opts.LeaseTTL/3 {
		ix.claimMu.Unlock()
		return nil
	}
	kind := ConsumerEmbedded
	if ix.opts.Shared {
		kind = ConsumerShared
	}
	untrusted := ix.opts.Untrusted && ix.epoch.Load() == 0 && !ix.leased.Load()
	c, held, err := ix.src.ClaimConsumer(ctx, Claim{ID: ix.opts.Consumer, Kind: kind, Owner: ix.opts.Owner, TTL: ix.opts.LeaseTTL, Now: now, MustRebuild: untrusted})
	if err != nil {
		ix.claimMu.Unlock()
		return fmt.Errorf("search: claim feed consumer: %w", err)
	}
	ix.lastClaim = now
	gained := held && !ix.leased.Load()
	if gained {
		ix.applyMu.Lock()
		ix.pos.Store(max(c.Position, 0))
		ix.stale.Store(c.Position < 0)
		ix.epoch.Add(1)
		ix.leased.Store(true)
		ix.applyMu.Unlock()
	} else {
		ix.leased.Store(held)
	}
	ix.claimMu.Unlock()

	if !gained {
		return nil
	}
	ix.log.InfoContext(ctx, "search: reading the change feed", "consumer", c.ID, "kind", kind, "position", c.Position)
	if c.Position >= 0 {
		return nil
	}
	if ix.opts.Rebuild == nil {
		ix.log.ErrorContext(ctx, "search: the index missed changes that were pruned and must be rebuilt (casevault reindex)", "consumer", c.ID)
		return nil
	}
	ix.log.WarnContext(ctx, "search: the index missed changes that were pruned; rebuilding it", "consumer", c.ID)
	if err := ix.StartReindex(context.WithoutCancel(ctx), ix.opts.Rebuild, nil); err != nil && !errors.Is(err, ErrReindexRunning) {
		return err
	}
	return nil
}

// prune expires long-absent consumers and deletes the rows every consumer
// has passed, once per PruneEvery. A failure only delays pruning.
func (ix *Indexer) prune(ctx context.Context) {
	ix.claimMu.Lock()
	now := ix.opts.Now()
	due := now.Sub(ix.lastPrune) >= ix.opts.PruneEvery
	if due {
		ix.lastPrune = now
	}
	ix.claimMu.Unlock()
	if !due {
		return
	}

	n, expired, err := ix.src.PruneFeed(ctx, now, now.Add(-ix.opts.ExpireAfter))
	if err != nil {
		ix.log.WarnContext(ctx, "search: pruning the change feed failed", "err", err)
		return
	}
	for _, id := range expired {
		ix.log.WarnContext(ctx, "search: feed consumer expired after being away too long; it rebuilds its index when it returns", "consumer", id, "away_longer_than", ix.opts.ExpireAfter)
	}
	if n > 0 {
		ix.log.DebugContext(ctx, "search: change feed pruned", "rows", n)
	}
}

// plan splits a batch of entries into cases to load whole and, when every
// engine is an Appender, cases that only gained contacts (with those
// contacts' IDs). A case with any whole-case entry is loaded whole.
func plan(entries []OutboxEntry, appendable bool) (full []string, added map[string][]string) {
	whole := make(map[string]bool, len(entries))
	for _, e := range entries {
		if e.ContactID == "" || !appendable {
			if !whole[e.CaseID] {
				whole[e.CaseID] = true
				full = append(full, e.CaseID)
			}
		}
	}
	for _, e := range entries {
		if whole[e.CaseID] {
			continue
		}
		if added == nil {
			added = make(map[string][]string)
		}
		if !slices.Contains(added[e.CaseID], e.ContactID) {
			added[e.CaseID] = append(added[e.CaseID], e.ContactID)
		}
	}
	return full, added
}

func canAppend(engines []Engine) bool {
	for _, e := range engines {
		if _, ok := e.(Appender); !ok {
			return false
		}
	}
	return true
}

func (ix *Indexer) load(ctx context.Context, ids []string, rev int64) (present []CaseDoc, missing []string, err error) {
	docs, err := ix.src.LoadCaseDocs(ctx, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("search: load cases: %w", err)
	}
	for _, id := range ids {
		if d, ok := docs[id]; ok {
			d.Rev = rev
			present = append(present, d)
		} else {
			missing = append(missing, id)
		}
	}
	return present, missing, nil
}

func apply(ctx context.Context, eng Engine, present []CaseDoc, missing []string) error {
	if len(present) > 0 {
		if err := eng.Index(ctx, present); err != nil {
			return fmt.Errorf("search: %s index: %w", eng.Name(), err)
		}
	}
	if len(missing) > 0 {
		if err := eng.Delete(ctx, missing); err != nil {
			return fmt.Errorf("search: %s delete: %w", eng.Name(), err)
		}
	}
	return nil
}

// Status reports the live engine and this index's place in the change
// feed, with every other consumer's. An unreachable engine gives Healthy
// false, not an error; only a store failure errors.
func (ix *Indexer) Status(ctx context.Context) (Status, error) {
	h := ix.cur.Load()
	st := Status{Engine: h.eng.Name(), Index: h.eng.IndexName(), Consumer: ix.opts.Consumer,
		Writer: ix.leased.Load(), Rebuilding: ix.reindexing.Load(), Position: -1}
	fs, err := ix.src.FeedStatus(ctx, ix.opts.Now())
	if err != nil {
		return st, fmt.Errorf("search: feed status: %w", err)
	}

	st.Head, st.Consumers = fs.Head, fs.Consumers
	st.Pending = fs.Head // until registered (the first batch registers it)
	registered := false
	for _, c := range fs.Consumers {
		if c.ID == ix.opts.Consumer {
			registered = true
			st.Position, st.Pending, st.LagSeconds, st.MustRebuild = c.Position, c.Pending, c.LagSeconds, c.MustRebuild
		}
	}
	if ix.leased.Load() && ix.stale.Load() {
		st.MustRebuild = true
	}

	if msg := ix.lastErr.Load(); msg != nil {
		st.Error = *msg
	}

	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return st, nil
	}

	var n int64
	err = ix.opts.Guard.Run("search.status", func() (err error) {
		if err = h.eng.Ping(ctx); err != nil {
			return err
		}
		n, err = h.eng.Count(ctx)
		return err
	})
	st.Documents = n
	st.Healthy = err == nil && ix.failures.Load() == 0 && registered && !st.MustRebuild
	if err != nil && st.Error == "" {
		st.Error = err.Error()
	}

	return st, nil
}

// Position reports this index's stored feed position (-1: not yet
// registered, or must rebuild), for a caller that must know the index has
// reached a head before it trusts it (the sweep, with query holds).
func (ix *Indexer) Position(ctx context.Context) (int64, error) {
	fs, err := ix.src.FeedStatus(ctx, ix.opts.Now())
	if err != nil {
		return -1, fmt.Errorf("search: feed status: %w", err)
	}
	for _, c := range fs.Consumers {
		if c.ID == ix.opts.Consumer {
			if ix.leased.Load() && ix.stale.Load() {
				return -1, nil
			}
			return c.Position, nil
		}
	}
	return -1, nil
}

// Reindex rebuilds the index from the store and switches to it:
//
//  1. build returns a new, empty engine on a new versioned index
//     (bleve.Build: cases_v<N+1>);
//  2. every case is loaded in ID order and written to it, while Run keeps
//     feeding the live engine and, from step 1 on, the new one too; the two
//     kinds of batch are serialized, so no stale state can overwrite newer;
//  3. the new engine is compacted (Compactor), activated (Activator) and
//     swapped in atomically:
//     queries in flight finish on the old engine, new ones use the new;
//  4. the old engine is dropped (Dropper) or closed once its last query ended.
//
// Queries are answered from the old index throughout. On error the new
// index is dropped and the old one stays live.
func (ix *Indexer) Reindex(ctx context.Context, build func(ctx context.Context) (Engine, error)) (err error) {
	if !ix.reindexing.CompareAndSwap(false, true) {
		return ErrReindexRunning
	}
	defer ix.reindexing.Store(false)
	return ix.opts.Guard.Run("search.reindex", func() error { return ix.rebuild(ctx, build) })
}

// StartReindex starts Reindex in the background and returns at once:
// ErrReindexRunning when a rebuild is already under way (the API answers
// 409), else nil. done, when not nil, receives the rebuild's result.
func (ix *Indexer) StartReindex(ctx context.Context, build func(ctx context.Context) (Engine, error), done func(error)) error {
	if !ix.reindexing.CompareAndSwap(false, true) {
		return ErrReindexRunning
	}
	ix.opts.Guard.Go("search.reindex", func() {
		err := ix.opts.Guard.Run("search.reindex", func() error { return ix.rebuild(ctx, build) })
		// Free the slot before reporting, so whoever learns of the end can
		// start the next rebuild at once.
		ix.reindexing.Store(false)
		if err != nil {
			ix.log.ErrorContext(ctx, "search reindex failed", "err", err)
		}
		if done != nil {
			done(err)
		}
	})
	return nil
}

func (ix *Indexer) rebuild(ctx context.Context, build func(ctx context.Context) (Engine, error)) (err error) {
	// Only the consumer's writer may rebuild, and only if it stays the
	// writer throughout: the feed feeds the new index only while leased.
	if err := ix.claim(ctx); err != nil {
		return fmt.Errorf("search: reindex: %w", err)
	}
	if !ix.leased.Load() {
		return fmt.Errorf("search: reindex: another replica writes index consumer %s: %w", ix.opts.Consumer, ErrLeaseLost)
	}
	epoch := ix.epoch.Load()

	neu, err := build(ctx)
	if err != nil {
		return fmt.Errorf("search: reindex: build: %w", err)
	}

	ix.applyMu.Lock()
	ix.building, ix.buildErr = neu, nil
	// From here every feed batch goes into the new index too; the listing
	// below sees every change up to the head. A stale live index's cursor
	// jumps there: what it lacks below comes from the listing.
	head, err := ix.src.FeedHead(ctx)
	if err == nil && ix.stale.Load() {
		ix.pos.Store(max(ix.pos.Load(), head))
	}
	ix.applyMu.Unlock()
	swapped := false
	defer func() {
		// also on a panic (recovered by the caller's Guard): every step
		// below releases applyMu on its way out
		if !swapped {
			ix.applyMu.Lock()
			ix.building = nil
			ix.applyMu.Unlock()
			discard(context.WithoutCancel(ctx), neu)
		}
	}()
	if err != nil { // the head, read above, now that the cleanup is armed
		return fmt.Errorf("search: reindex: feed head: %w", err)
	}
	start := time.Now()
	var after string
	var total int
	for {
		ids, err := ix.src.ListCaseIDs(ctx, after, min(ix.opts.BatchSize, rebuildPage))
		if err != nil {
			return fmt.Errorf("search: reindex: list cases: %w", err)
		}
		if len(ids) == 0 {
			break
		}
		if err := ix.fill(ctx, neu, ids); err != nil {
			return err
		}
		total += len(ids)
		after = ids[len(ids)-1]
	}
	customers, err := ix.fillCustomers(ctx, neu)
	if err != nil {
		return err
	}

	if c, ok := neu.(Compactor); ok {
		// outside applyMu: outbox batches keep flowing into both engines
		if err := c.Compact(ctx); err != nil {
			return fmt.Errorf("search: reindex: compact: %w", err)
		}
	}

	old, err := ix.activate(ctx, neu, epoch)
	if err != nil {
		return err
	}

	swapped = true
	ix.log.InfoContext(ctx, "search index rebuilt", "index", neu.IndexName(), "replaced", old.eng.IndexName(), "cases", total, "customers", customers, "took", time.Since(start))
	retire(context.WithoutCancel(ctx), old, ix.log)
	return nil
}

// activate makes a filled rebuild the live engine and returns the one it
// replaced.
func (ix *Indexer) activate(ctx context.Context, neu Engine, epoch int64) (*handle, error) {
	ix.applyMu.Lock()
	defer ix.applyMu.Unlock()
	if ix.buildErr != nil {
		return nil, fmt.Errorf("search: reindex: %w", ix.buildErr)
	}
	if !ix.leased.Load() || ix.epoch.Load() != epoch {
		return nil, fmt.Errorf("search: reindex: the feed lease was lost during the rebuild: %w", ErrLeaseLost)
	}
	if a, ok := neu.(Activator); ok {
		if err := a.Activate(ctx); err != nil {
			return nil, fmt.Errorf("search: reindex: activate: %w", err)
		}
	}
	old := ix.cur.Swap(&handle{eng: neu})
	ix.building = nil
	ix.broken.Store(false) // the failed engine, if any, is the one replaced

	// The new index holds every change up to the cursor: a stale index is
	// trusted again, and its stored position moves at last.
	ix.stale.Store(false)
	if err := ix.advance(ctx); err != nil {
		ix.log.WarnContext(ctx, "search: storing the feed position after a rebuild", "err", err)
	}
	return old, nil
}

// fill writes one rebuild batch, retrying engine errors a few times.
func (ix *Indexer) fill(ctx context.Context, eng Engine, ids []string) error {
	var err error
	for attempt := int64(1); attempt <= 5; attempt++ {
		err = func() error {
			ix.applyMu.Lock()
			defer ix.applyMu.Unlock()
			// the state loaded reflects at least every change up to the head
			rev, err := ix.src.FeedHead(ctx)
			if err != nil {
				return err
			}
			present, _, err := ix.load(ctx, ids, rev) // missing: deleted since listed, nothing to write
			if err == nil && len(present) > 0 {
				err = eng.Index(ctx, present)
			}
			return err
		}()
		if err == nil || ctx.Err() != nil {
			break
		}
		t := time.NewTimer(backoff(attempt, ix.opts.MaxBackoff))
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	if err != nil {
		return fmt.Errorf("search: reindex: %w", err)
	}
	return ctx.Err()
}

func discard(ctx context.Context, eng Engine) {
	if d, ok := eng.(Dropper); ok {
		_ = d.Drop(ctx)
		return
	}
	_ = eng.Close()
}

// retire waits for the old engine's running queries, then drops it.
func retire(ctx context.Context, h *handle, log *slog.Logger) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	var err error
	if d, ok := h.eng.(Dropper); ok {
		err = d.Drop(ctx)
	} else {
		err = h.eng.Close()
	}
	if err != nil {
		log.WarnContext(ctx, "search: retiring old index", "index", h.eng.IndexName(), "err", err)
	}
}
