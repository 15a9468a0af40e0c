package bleve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	bv "github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/document"
	"github.com/blevesearch/bleve/v2/search/query"
	index "github.com/blevesearch/bleve_index_api"

	"github.com/casevault/casevault/search"
)

// Field names of a contact document.
const (
	fCaseID    = "case_id"
	fHead      = "head" // "1" on exactly one document per case, for Count
	fNumber    = "number"
	fText      = "text"     // searchable: subject (array position 0) and body (1), non-CJK tokens
	fTextCJK   = "text_cjk" // the same texts' CJK bigrams
	fTextEN    = "text_en"  // the same texts' non-CJK tokens, Porter-stemmed (refund finds "Refunded")
	fSubject   = "subject"  // stored only
	fBody      = "body"     // stored only; the contact body (already masked)
	fStatus    = "status"
	fPriority  = "priority"
	fCustomer  = "customer_id"
	fAssignee  = "assignee"
	fTags      = "tags"
	fUpdatedAt = "updated_at" // case, unix micros, microsKey-encoded, as of the document's last write (the case's is the newest of its documents)
	fChannel   = "channel"    // contact channel
	fPurposes  = "purposes"   // contact purposes
	fSortAt    = "sort_at"    // occurred_at, or the case's created_at on a case-only document; sortKey-encoded
	fHash      = "hash"       // content hash of the document (docHashes), to skip unchanged rewrites
	// "1" on contact documents (not on a case-only one), for contact
	// filters in query clauses and, as doc values, the contact column
	// (columns.go). A contact's ID is its document's (docID): since
	// mapping 8 no field holds it, as no query reads it.
	fContact = "contact"
	// The customer's name is in text, text_cjk and text_en at array
	// position 2 (free text finds it). Its fields of its own, for
	// CustomerIDsByName (which must not match subjects or bodies), are
	// only in the customer index (customerindex.go): since mapping 7 case
	// documents no longer carry them, as no query of the case index reads
	// them and every contact paid for two more indexed fields.
	fName    = "customer_name"     // non-CJK tokens
	fNameCJK = "customer_name_cjk" // CJK bigrams
)

const (
	optText    = index.IndexField | index.IncludeTermVectors // positions, for phrases
	optKeyword = index.IndexField | index.DocValues
	optStored  = index.StoreField
)

func micros(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixMicro())
}

// sortKey encodes a time as one fixed-width doc value term: a numeric field
// would carry a dozen precision terms per document, and the search visits
// this value for every matching contact.
func sortKey(t time.Time) string { return microsKey(t.UnixMicro()) }

// microsKey is sortKey for a number of microseconds. Dates are only ever
// read back from doc values (search filters dates on decoded columns), so
// none is indexed as a numeric field, which costs 16 terms per value.
func microsKey(v int64) string {
	return fmt.Sprintf("%016x", uint64(v)^(1<<63))
}

func parseSortKey(b []byte) int64 {
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		}
	}
	return int64(v ^ (1 << 63))
}

// docID names a case's document: a contact's is the contact's own ID
// (unique across cases, the contacts table's key), and a case-only
// document's is the case's ID and "/", which no contact ID can be.
// Contact IDs are time-ordered (cases.NewID, UUIDv7), so a new contact's
// document ID sorts after every ID in the segments written before it, and
// a lookup of it (existing's, and scorch's own when a batch is applied,
// which treats every document as a possible replacement) skips those
// segments: zap compares an ID with the segment's largest first
// (DocNumbers) rather than walking the segment's ID dictionary. IDs led by
// the case's ID ("case/contact", mapping versions up to 7) walked every
// segment's dictionary for every new contact.
func docID(caseID, contactID string) string {
	if contactID == "" {
		return caseID + "/"
	}
	return contactID
}

// contactOf is the contact a document ID names, "" for a case-only one.
func contactOf(id string) string {
	if strings.HasSuffix(id, "/") {
		return ""
	}
	return id
}

// caseDocuments lays a case out as Bleve documents: one per contact, or a
// single case-only document when it has none. head says whether the first
// of them is the case's head document.
// want, when set, says which of them to build: the others are unchanged
// and building them would cost as much as the case is long.
func (e *Engine) caseDocuments(c search.CaseDoc, hashes []string, head bool, want func(i int, id string) bool) []*document.Document {
	contacts := c.Contacts
	if len(contacts) == 0 {
		contacts = []search.ContactDoc{{}} // case-only document
	}

	docs := make([]*document.Document, 0, len(contacts))
	for i, ct := range contacts {
		id := docID(c.CaseID, ct.ID)
		if want != nil && !want(i, id) {
			continue
		}
		d := document.NewDocument(id)
		// A keyword field is its whole value as one token: exactly the
		// token the mapping's keyword analyser would make (the value,
		// position 1), without a tokenizer run for each of a document's
		// dozen keyword fields (keywordField).
		kw := func(name, val string, opts index.FieldIndexingOptions) {
			if val != "" {
				d.AddField(newKeywordField(name, val, opts))
			}
		}
		kw(fCaseID, c.CaseID, optKeyword|index.StoreField)
		kw(fHash, hashes[i], optKeyword)
		if i == 0 && head {
			kw(fHead, "1", index.IndexField)
		}
		kw(fNumber, strconv.FormatInt(c.Number, 10), optStored|index.IndexField)
		// free text: one field of each side over the subject, the name and
		// the body (docText); the subject and the body are also stored, as
		// fields that are never analysed
		text := newDocText(e.text, e.stems)
		text.add(0, c.Subject)
		kw(fSubject, c.Subject, optStored)
		text.add(2, c.CustomerName)
		kw(fStatus, c.Status, optKeyword|index.StoreField)
		kw(fPriority, c.Priority, optKeyword)
		kw(fCustomer, c.CustomerID, optKeyword|index.StoreField)
		// keyword values are indexed folded (search.FoldKeyword), and
		// queries fold theirs: tag:VIP finds "vip"
		kw(fAssignee, search.FoldKeyword(c.Assignee), optKeyword)
		for _, t := range search.FoldKeywords(c.Tags) {
			kw(fTags, t, optKeyword)
		}
		kw(fUpdatedAt, microsKey(int64(micros(c.UpdatedAt))), optKeyword)
		if ct.ID != "" {
			kw(fContact, "1", optKeyword)
			kw(fChannel, ct.Channel, optKeyword)
			for _, p := range ct.Purposes {
				kw(fPurposes, p, optKeyword)
			}
			text.add(1, ct.Body)
			kw(fBody, ct.Body, optStored)
			kw(fSortAt, sortKey(ct.OccurredAt), optKeyword)
		} else {
			kw(fSortAt, sortKey(c.CreatedAt), optKeyword)
		}
		if !text.empty() {
			d.AddField(text.field(fText, sideLatin, optText))
			d.AddField(text.field(fTextCJK, sideCJK, optText))
			d.AddField(text.field(fTextEN, sideStem, index.IndexField))
		}
		docs = append(docs, d)
	}

	return docs
}

// Index implements search.Engine: a batch deletes the documents of each
// case that are not in the new layout and (re)writes the others. Large
// calls are split by case into one part per core (WithCores), built
// concurrently (a Bleve batch builds its segment on one core), each
// applying its batch whenever it is full (caseBatches). It returns once
// the batches are applied, and on a live index once they are persisted.
func (e *Engine) Index(ctx context.Context, docs []search.CaseDoc) error {
	if len(docs) == 0 {
		return nil
	}

	for _, c := range docs {
		if c.CaseID == "" {
			return fmt.Errorf("bleve: index: case without ID")
		}
	}

	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.CaseID
		e.known.forget(d.CaseID) // it may end with no contact, as a case-only document
	}

	existing, err := e.documentIDs(ctx, ids)
	if err != nil {
		return err
	}

	parts := 1
	if n := len(docs); n >= 64 {
		parts = min(e.cores, n/32)
	}

	size := (len(docs) + parts - 1) / parts
	var wg sync.WaitGroup
	errs := make([]error, parts)
	for i, chunk := 0, 0; chunk < len(docs); i, chunk = i+1, chunk+size {
		part := docs[chunk:min(chunk+size, len(docs))]
		wg.Go(func() { errs[i] = e.indexPart(ctx, part, existing) })
	}

	wg.Wait()
	return errors.Join(errs...)
}

// A Bleve batch holds every document it takes analysed until it is
// applied: ~15 KB per contact document of the benchmark's 170-byte bodies
// (token frequencies and positions of four text fields), and for long
// bodies some 25 times their text. Index and AddContacts therefore apply
// a batch, between two cases, once it holds defaultBatchDocs documents or
// defaultBatchText bytes of contact text. Before, a replica joining an
// archive of 56,000 contacts loaded them as whole cases in one feed batch
// and its four parts analysed them all at once: 3.2 GB of heap in use
// after catching up, 4.6 GB peak RSS, the next collection set at 8 GB
// (GOGC 400). 2,000 is the feed's own batch (search.Options.BatchSize),
// whose segments Bleve indexes cheapest per contact (BenchmarkAppendCPU);
// 4 MiB is 16 bodies at the 256 KiB limit.
const (
	defaultBatchDocs = 2000
	defaultBatchText = 4 << 20
)

// caseBatches fills the Bleve batches of one Index part or AddContacts
// call, case by case, and applies each once it is full.
type caseBatches struct {
	e *Engine
	b *bv.Batch
	// docs and text are what b holds: documents, and their contacts' text
	docs, text int
}

func (e *Engine) caseBatches() *caseBatches { return &caseBatches{e: e, b: e.idx.NewBatch()} }

// add puts documents of the current case in the batch; contacts are the
// contacts they hold, whose text counts towards the bound.
func (w *caseBatches) add(docs []*document.Document, contacts []search.ContactDoc) error {
	for _, d := range docs {
		if err := w.b.IndexAdvanced(d); err != nil {
			return fmt.Errorf("bleve: index %s: %w", d.ID(), err)
		}
	}
	w.docs += len(docs)
	w.text += search.ContactText(contacts)
	return nil
}

// endCase applies the batch when it holds batchDocs documents or batchText
// of text. Only between cases, never inside one: a case's documents (its
// one head among them, which Count relies on) change in one batch, and a
// case above the bounds still goes in one.
func (w *caseBatches) endCase(ctx context.Context) error {
	if w.docs < w.e.batchDocs && w.text < w.e.batchText {
		return nil
	}
	return w.flush(ctx)
}

// flush applies what the batch holds (nothing for an empty one) and starts
// the next.
func (w *caseBatches) flush(ctx context.Context) error {
	if w.b.Size() == 0 {
		return nil
	}
	if err := w.e.apply(ctx, w.b); err != nil {
		return err
	}
	w.b, w.docs, w.text = w.e.idx.NewBatch(), 0, 0
	return nil
}

func (e *Engine) indexPart(ctx context.Context, docs []search.CaseDoc, existing map[string]map[string]string) error {
	w := e.caseBatches()
	for _, c := range docs {
		keep := make(map[string]bool, len(c.Contacts)+1)
		hashes := docHashes(c)
		old := existing[c.CaseID]
		// Contacts are immutable and a new contact only moves the case's
		// updated_at (which no hash includes, see docHashes), so a
		// document whose content hash is unchanged is neither built nor
		// rewritten: a new contact costs its own document, not the case's.
		var rewritten []search.ContactDoc
		changed := func(i int, id string) bool {
			keep[id] = true
			if old[id] == hashes[i] {
				return false
			}
			if i < len(c.Contacts) {
				rewritten = append(rewritten, c.Contacts[i])
			}
			return true
		}
		if err := w.add(e.caseDocuments(c, hashes, true, changed), rewritten); err != nil {
			return err
		}
		for id := range old {
			if !keep[id] {
				w.b.Delete(id)
			}
		}

		if err := w.endCase(ctx); err != nil {
			return err
		}
	}
	return w.flush(ctx)
}

// docHashes returns, in caseDocuments order, a hash of everything each
// document holds except the case's updated_at: documents are not rewritten
// when only it moves (a new contact), and the updated sort takes the newest
// updated_at any document of the case carries. The hash is stored in the
// document itself (fHash doc values) rather than in
// Bleve's internal store: scorch copies that whole map on every batch and
// merge and rewrites it on every persist, which made bulk indexing
// quadratic. 96 bits are plenty to notice that one document changed.
func docHashes(c search.CaseDoc) []string {
	contacts := c.Contacts
	if len(contacts) == 0 {
		contacts = []search.ContactDoc{{}}
	}
	h := newHasher()
	sum := h.caseSum(c)
	out := make([]string, len(contacts))
	for i, ct := range contacts {
		out[i] = h.contact(sum, i == 0, ct)
	}
	return out
}

// hasher computes docHashes' hashes, reusing its state.
type hasher struct {
	h   hash.Hash
	buf []byte
}

func newHasher() *hasher { return &hasher{h: sha256.New()} }

func (x *hasher) w(parts ...string) {
	for _, p := range parts {
		x.buf = strconv.AppendInt(x.buf[:0], int64(len(p)), 10)
		x.buf = append(x.buf, ':')
		x.h.Write(x.buf)
		io.WriteString(x.h, p)
		x.h.Write([]byte{';'})
	}
}

// caseSum hashes the case fields every document of the case carries.
func (x *hasher) caseSum(c search.CaseDoc) []byte {
	x.h.Reset()
	x.w(strconv.Itoa(MappingVersion), c.CaseID, strconv.FormatInt(c.Number, 10), c.CustomerID, c.CustomerName, c.Subject, c.Status,
		c.Priority, c.Channel, c.Assignee, strings.Join(c.Tags, "\x00"), strconv.FormatInt(c.CreatedAt.UnixMicro(), 10))
	return x.h.Sum(nil)
}

// contact hashes one document: the case's sum, whether it is the case's
// head document, and the contact.
func (x *hasher) contact(caseSum []byte, head bool, ct search.ContactDoc) string {
	x.h.Reset()
	x.h.Write(caseSum)
	x.w(strconv.FormatBool(head), ct.ID, ct.Channel, ct.Direction, ct.Author, ct.Body,
		strconv.FormatInt(ct.OccurredAt.UnixMicro(), 10), strings.Join(ct.Purposes, "\x00"))
	return hex.EncodeToString(x.h.Sum(nil)[:12])
}

// AddContacts implements search.Appender: each new contact gets its
// document, and nothing else of its case is read or rewritten, so a new
// contact costs the same in a case of 3 contacts or of 30,000.
//
// The case keeps exactly one head document (Count relies on it): a new
// contact is the head only when the case has no document yet, or only its
// case-only document, which it replaces. That head need not be the earliest
// contact, as a full rewrite would choose; the next full rewrite of the case
// moves it (the hash covers the head flag). A contact already indexed is
// skipped, which makes a retried batch harmless.
func (e *Engine) AddContacts(ctx context.Context, docs []search.CaseDoc) error {
	if len(docs) == 0 {
		return nil
	}

	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	r, err := e.reader()
	if err != nil {
		return err
	}
	defer r.Close()
	present, err := existing(r, docs, e.known)
	if err != nil {
		return err
	}
	w := e.caseBatches()
	h := newHasher()
	var learnt []string
	for _, c := range docs {
		if err := ctx.Err(); err != nil {
			return err
		}
		known := e.known.has(c.CaseID)
		caseOnly := !known && present[docID(c.CaseID, "")]
		head := caseOnly
		if !caseOnly && !known {
			some, err := hasDocs(ctx, r, c.CaseID)
			if err != nil {
				return err
			}
			head = !some
		}
		sum := h.caseSum(c)
		var hashes []string
		var add []search.ContactDoc
		for _, ct := range c.Contacts {
			if present[docID(c.CaseID, ct.ID)] {
				continue
			}
			hashes = append(hashes, h.contact(sum, head && len(add) == 0, ct))
			add = append(add, ct)
		}
		if len(add) > 0 || !head && !caseOnly {
			learnt = append(learnt, c.CaseID) // contact documents, and no case-only one, once applied
		}
		if len(add) == 0 {
			continue
		}
		part := c
		part.Contacts = add
		if err := w.add(e.caseDocuments(part, hashes, head, nil), add); err != nil {
			return err
		}
		if caseOnly {
			w.b.Delete(docID(c.CaseID, ""))
		}

		// Each case's head was chosen from the snapshot r, which a batch
		// of other cases applied meanwhile does not change.
		if err := w.endCase(ctx); err != nil {
			return err
		}
	}
	if err := w.flush(ctx); err != nil {
		return err
	}

	for _, id := range learnt {
		e.known.add(id)
	}
	return nil
}

// knownCases are the cases this engine knows to have contact documents
// and no case-only one, from having added or found their contacts in
// AddContacts. Only this engine's writes change that, and Index and Delete
// forget their cases first. A case known spares AddContacts two look-ups
// in every segment per case and call: its case-only document's ID and
// hasDocs (6% of BenchmarkAppendCPU's CPU at two contacts a case per
// batch). Every use holds writeMu. It starts again empty when full.
type knownCases map[string]struct{}

const maxKnownCases = 1 << 16

func (k knownCases) has(caseID string) bool {
	_, ok := k[caseID]
	return ok
}

func (k knownCases) add(caseID string) {
	if len(k) >= maxKnownCases {
		clear(k)
	}
	k[caseID] = struct{}{}
}

func (k knownCases) forget(caseID string) { delete(k, caseID) }

// existing returns which of the documents AddContacts could write for docs
// (each contact's, and the case-only document of each case not known) the
// snapshot holds.
// One lookup of all the IDs per segment: looking each ID up alone (a term
// reader over every segment per ID) was 3% of serve's CPU under ingest
// (issue 19), and the IDs are nearly always new: a new contact's skips
// every segment older than it (docID).
func existing(r index.IndexReader, docs []search.CaseDoc, known knownCases) (map[string]bool, error) {
	var ids []string
	for _, c := range docs {
		if c.CaseID == "" {
			return nil, fmt.Errorf("bleve: add contacts: case without ID")
		}
		if !known.has(c.CaseID) {
			ids = append(ids, docID(c.CaseID, ""))
		}
		for _, ct := range c.Contacts {
			if ct.ID == "" {
				return nil, fmt.Errorf("bleve: add contacts: case %s: contact without ID", c.CaseID)
			}
			ids = append(ids, docID(c.CaseID, ct.ID))
		}
	}
	dr, err := r.DocIDReaderOnly(ids)
	if err != nil {
		return nil, fmt.Errorf("bleve: look up documents: %w", err)
	}
	defer dr.Close()
	present := map[string]bool{}
	for {
		n, err := dr.Next()
		if err != nil {
			return nil, fmt.Errorf("bleve: look up documents: %w", err)
		}
		if n == nil {
			return present, nil
		}
		id, err := r.ExternalID(n)
		if err != nil {
			return nil, fmt.Errorf("bleve: look up documents: %w", err)
		}
		present[id] = true
	}
}

// hasDocs reports whether any document of the case is in the snapshot,
// reading at most one posting.
func hasDocs(ctx context.Context, r index.IndexReader, caseID string) (bool, error) {
	tfr, err := r.TermFieldReader(ctx, []byte(caseID), fCaseID, false, false, false)
	if err != nil {
		return false, fmt.Errorf("bleve: case %s: %w", caseID, err)
	}
	defer tfr.Close()
	next, err := tfr.Next(nil)
	if err != nil {
		return false, fmt.Errorf("bleve: case %s: %w", caseID, err)
	}
	return next != nil, nil
}

// Delete implements search.Engine.
func (e *Engine) Delete(ctx context.Context, caseIDs []string) error {
	if len(caseIDs) == 0 {
		return nil
	}
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	for _, id := range caseIDs {
		e.known.forget(id)
	}
	existing, err := e.documentIDs(ctx, caseIDs)
	if err != nil {
		return err
	}
	if len(existing) == 0 {
		return nil
	}
	b := e.idx.NewBatch()
	for _, ids := range existing {
		for id := range ids {
			b.Delete(id)
		}
	}
	return e.apply(ctx, b)
}

// apply executes a batch. On a live index it waits until scorch has
// persisted it, so that a confirmed write survives a crash; while a rebuild
// fills a new index that wait is skipped (Activate flushes once at the end,
// and a crash before that just restarts the rebuild).
func (e *Engine) apply(ctx context.Context, b *bv.Batch) error {
	if err := e.failed(); err != nil {
		return err
	}
	if !e.durable.Load() {
		if err := e.idx.Batch(b); err != nil {
			return fmt.Errorf("bleve: batch: %w", err)
		}
		return nil
	}
	if err := e.applyDurable(ctx, b); err != nil {
		return err
	}
	e.warm()
	return nil
}

func (e *Engine) applyDurable(ctx context.Context, b *bv.Batch) error {
	if err := e.failed(); err != nil {
		return err
	}
	return e.persist(ctx, e.idx, "", b)
}

// persist applies b to idx (the case index or the customer index, what
// names it in errors) and waits until scorch has persisted it.
func (e *Engine) persist(ctx context.Context, idx bv.Index, what string, b *bv.Batch) error {
	persisted := make(chan error, 1)
	b.SetPersistedCallback(func(err error) { persisted <- err })
	if err := idx.Batch(b); err != nil {
		// scorch may have half applied it (a segment written, not
		// introduced): start again from what is on disk
		return e.breakWith(fmt.Errorf("%sbatch: %w", what, err))
	}

	// A failed persist never calls back (scorch retries it for ever), so
	// watch its error counter meanwhile (failure.go).
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-persisted:
			if err != nil {
				return e.breakWith(fmt.Errorf("%spersist: %w", what, err))
			}
			return nil
		case <-tick.C:
			if err := e.failed(); err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("bleve: %swaiting for persistence: %w", what, ctx.Err())
		}
	}
}

// documentIDs lists the Bleve document IDs currently held for each case,
// with their content hashes.
func (e *Engine) documentIDs(ctx context.Context, caseIDs []string) (map[string]map[string]string, error) {
	r, err := e.reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	dv, err := r.DocValueReader([]string{fCaseID, fHash})
	if err != nil {
		return nil, fmt.Errorf("bleve: %w", err)
	}

	out := make(map[string]map[string]string)
	err = each(ctx, r, e.m, termsQuery(fCaseID, caseIDs), false, func(m matchInfo) error {
		id, err := r.ExternalID(m.id)
		if err != nil {
			return fmt.Errorf("bleve: %w", err)
		}
		var caseID, hash string
		err = dv.VisitDocValues(m.id, func(field string, term []byte) {
			if field == fCaseID {
				caseID = string(term)
			} else {
				hash = string(term)
			}
		})
		if err != nil {
			return fmt.Errorf("bleve: doc values: %w", err)
		}
		if out[caseID] == nil {
			out[caseID] = make(map[string]string)
		}
		out[caseID][id] = hash
		return nil
	})
	return out, err
}

// Count implements search.Engine: the number of cases.
func (e *Engine) Count(ctx context.Context) (int64, error) {
	if err := e.failed(); err != nil {
		return 0, err
	}
	tq := query.NewTermQuery("1")
	tq.SetField(fHead)
	req := bv.NewSearchRequestOptions(tq, 0, 0, false)
	res, err := e.idx.SearchInContext(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("bleve: count: %w", err)
	}
	return int64(res.Total), nil
}
