package export

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
)

// The files of a package.
const (
	ContactsFile = "contacts.ndjson"
	LoadFile     = "loadfile.csv"
	AuditFile    = "audit_events.ndjson"
	SummaryFile  = "summary.html"
	ManifestName = "manifest.json"
	NativesDir   = "natives/"
)

// LoadFileHeader is the load file's first row.
var LoadFileHeader = []string{"control_number", "custodian", "case", "date", "channel", "author", "file_path", "sha256"}

// Manifest lists every other file of the package with its digest, and
// what selected the items: the hold (as GET /holds/{id} shows it) or the
// ad-hoc scope, in the hold's scope shape, and why, the parts of that
// scope every item matched, named as the hold report names them.
type Manifest struct {
	ExportID  string              `json:"export_id"`
	HoldID    string              `json:"hold_id"`
	Hold      *retention.Hold     `json:"hold,omitempty"`
	Scope     retention.HoldScope `json:"scope"`
	Why       string              `json:"why"`
	CreatedAt time.Time           `json:"created_at"`
	CreatedBy string              `json:"created_by"`
	Files     []FileDigest        `json:"files"`
}

// FileDigest is one file of a package.
type FileDigest struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// record is one line of contacts.ndjson.
type record struct {
	ControlNumber string `json:"control_number"`
	// Why names the parts of the scope that selected the contact, as the
	// hold report's items do.
	Why         string          `json:"why"`
	Contact     contactRec      `json:"contact"`
	Case        caseRec         `json:"case"`
	Customer    cases.Customer  `json:"customer"`
	Attachments []attachmentRec `json:"attachments"`
}

// Run writes the package of a running export and marks it complete, or
// failed. progress, when set, is called as items are written.
func (s *Service) Run(ctx context.Context, id string, progress func(Progress)) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.running[id] = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, id)
		s.mu.Unlock()
	}()

	e, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if e.Status != StatusRunning {
		return fmt.Errorf("export %s is %s: %w", id, e.Status, ErrNotReady)
	}
	ctx, stop := s.renewing(ctx, id)
	defer stop()
	defer func() {
		if err != nil {
			s.fail(context.WithoutCancel(ctx), id, err)
		}
	}()

	sel, err := s.selection(ctx, e)
	if err != nil {
		return err
	}
	snap, err := s.readSnapshot(ctx, e, sel)
	if err != nil {
		return err
	}
	defer snap.close()

	p := Progress{ItemsTotal: int64(len(snap.contacts))}
	for _, as := range snap.attachments {
		p.ItemsTotal += int64(len(as))
		for _, a := range as {
			p.BytesTotal += a.Size
		}
	}
	if _, err := s.o.DB.Write.ExecContext(ctx, s.o.DB.Rebind(`UPDATE exports SET items_total = ?, bytes_total = ? WHERE id = ?`), p.ItemsTotal, p.BytesTotal, id); err != nil {
		return sqldb.Fail("export progress", err)
	}

	// zip (+ digest) → buffered pipe → encrypt → blob store, the two sides
	// on their own goroutines. The store names the object only once it is
	// whole (local: temp file + rename; S3: one upload), and the row says
	// complete only after that: a kill at any point leaves a row still
	// running, never a half package marked complete.
	tr := &tracker{s: s, id: id, p: p, cb: progress}
	pipe := newChunkPipe(pipeChunks, pipeChunk)
	digest := sha256.New()
	counted := &digestWriter{w: pipe, h: digest}
	var sum *Summary
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var werr error
		sum, werr = s.writePackage(ctx, counted, e, sel, snap, tr)
		pipe.CloseWrite(werr)
	}()
	enc, err := archive.EncryptStream(pipe, s.o.Key, objectID(id))
	if err == nil {
		err = s.o.Blobs.Put(ctx, blobKey(id), enc, -1)
	}
	pipe.CloseRead(errors.Join(err, io.ErrClosedPipe))
	wg.Wait()
	if err != nil {
		return fmt.Errorf("store export package: %w", err)
	}

	tr.flush(ctx)
	raw, err := json.Marshal(sum)
	if err != nil {
		return err
	}
	now := s.o.Now().UTC()
	res, err := s.o.DB.Write.ExecContext(ctx, s.o.DB.Rebind(`UPDATE exports SET status = ?, size = ?, sha256 = ?, summary = ?, finished_at = ? WHERE id = ? AND status = ?`),
		StatusComplete, counted.n, hex.EncodeToString(digest.Sum(nil)), string(raw), sqldb.Micros(now), id, StatusRunning)
	if err != nil {
		return sqldb.Fail("complete export", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		// Deleted while it ran: the package must not outlive the row's word.
		_ = s.o.Blobs.Delete(context.WithoutCancel(ctx), blobKey(id))
		return fmt.Errorf("export %s: %w", id, ErrNotReady)
	}
	return nil
}

// The pipe between the ZIP writer and the encrypting upload: enough to
// keep both busy, little enough not to matter.
const (
	pipeChunks = 4
	pipeChunk  = 1 << 20
)

// selection is what selects an export's items: its hold (as stored now)
// or its ad-hoc scope, and why, the scope parts each item matches.
type selection struct {
	hold  *retention.Hold
	scope retention.HoldScope
	why   string
}

func (s *Service) selection(ctx context.Context, e Export) (selection, error) {
	if e.Scope != nil {
		return selection{scope: *e.Scope, why: scopeWhy(*e.Scope)}, nil
	}
	h, err := s.o.Holds.Get(ctx, e.HoldID)
	if err != nil {
		return selection{}, err
	}
	return selection{hold: &h, scope: h.Scope, why: scopeWhy(h.Scope)}, nil
}

// scopeWhy names the parts of a scope an item it selects matched, as hold
// reports do (retention records it in hold_items.why): every part given,
// since the parts narrow each other.
func scopeWhy(sc retention.HoldScope) string {
	var parts []string
	if len(sc.CaseIDs) > 0 {
		parts = append(parts, "case_ids")
	}
	if len(sc.CustomerIDs) > 0 {
		parts = append(parts, "customer_ids")
	}
	if sc.Query != "" {
		parts = append(parts, "query")
	}
	if sc.From != nil || sc.To != nil {
		parts = append(parts, "date_range")
	}
	return strings.Join(parts, "+")
}

// fail records why a run failed, unless the export was deleted meanwhile.
func (s *Service) fail(ctx context.Context, id string, cause error) {
	_ = s.o.Blobs.Delete(ctx, blobKey(id))
	_, _ = s.o.DB.Write.ExecContext(ctx, s.o.DB.Rebind(`UPDATE exports SET status = ?, error = ?, finished_at = ? WHERE id = ? AND status = ?`),
		StatusFailed, cause.Error(), sqldb.Micros(s.o.Now()), id, StatusRunning)
}

// tracker reports progress: to the callback at every item, to the row at
// most twice a second.
type tracker struct {
	s     *Service
	id    string
	p     Progress
	cb    func(Progress)
	saved time.Time
}

func (t *tracker) add(ctx context.Context, items, bytes int64) {
	t.p.ItemsDone += items
	t.p.BytesDone += bytes
	if t.cb != nil {
		t.cb(t.p)
	}
	if time.Since(t.saved) >= 500*time.Millisecond {
		t.flush(ctx)
	}
}

func (t *tracker) flush(ctx context.Context) {
	t.saved = time.Now()
	_, _ = t.s.o.DB.Write.ExecContext(ctx, t.s.o.DB.Rebind(`UPDATE exports SET items_done = ?, bytes_done = ? WHERE id = ?`), t.p.ItemsDone, t.p.BytesDone, t.id)
}

// digestWriter hashes and counts what goes through it: the package's
// digest is taken as it is written, in the same pass.
type digestWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (d *digestWriter) Write(p []byte) (int, error) {
	n, err := d.w.Write(p)
	d.h.Write(p[:n])
	d.n += int64(n)
	return n, err
}

// writePackage writes the ZIP: the natives first, fetched and decrypted
// ahead by workers and written in order; then the generated files,
// prepared (encoded, deflated, digested) meanwhile on another goroutine;
// last the manifest of all of them.
func (s *Service) writePackage(ctx context.Context, w io.Writer, e Export, sel selection, snap *snapshot, tr *tracker) (*Summary, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	z := &zipPackage{zw: zip.NewWriter(w), at: e.CreatedAt}
	natives := layout(snap)
	sum := &Summary{Contacts: len(snap.contacts), Cases: len(snap.cases), Custodians: len(snap.customers), ErasedCustomers: snap.erased}
	for _, a := range natives {
		sum.Attachments++
		sum.Bytes += a.Size
	}

	// The generated files do not depend on the natives' bytes: the load
	// file names the digests recorded at upload, and a native that does not
	// match its record fails the whole export below.
	type generated struct {
		files []*prepared
		err   error
	}
	gen := make(chan generated, 1)
	go func() {
		files, err := s.generateFiles(ctx, e, sel, snap, sum)
		gen <- generated{files, err}
	}()
	werr := s.writeNatives(ctx, z, natives, tr)
	if werr != nil {
		cancel()
	}
	g := <-gen
	if err := errors.Join(werr, g.err); err != nil {
		return nil, err
	}

	for _, f := range g.files {
		if err := z.writePrepared(f); err != nil {
			return nil, err
		}
	}
	tr.add(ctx, int64(len(snap.contacts)), 0)
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	m := Manifest{ExportID: e.ID, HoldID: e.HoldID, Hold: sel.hold, Scope: sel.scope, Why: sel.why, CreatedAt: e.CreatedAt, CreatedBy: e.CreatedBy, Files: z.files}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	mf, err := deflated(ManifestName, func(w io.Writer) error { _, err := w.Write(append(raw, '\n')); return err })
	if err != nil {
		return nil, err
	}
	if err := z.writeEntry(mf); err != nil {
		return nil, err
	}
	return sum, z.zw.Close()
}

// layout numbers the contacts in package order (CV0000001…) and their
// attachments (CV0000001.001…), names the natives' paths, and returns the
// attachments in that order.
func layout(snap *snapshot) []*attachmentRec {
	var out []*attachmentRec
	for i, c := range snap.contacts {
		atts := snap.attachments[c.ID]
		for j := range atts {
			a := &atts[j]
			a.ControlNumber = fmt.Sprintf("%s.%03d", controlNumber(i), j+1)
			a.Path = NativesDir + a.ControlNumber + "_" + zipName(a.Filename)
			out = append(out, a)
		}
	}
	return out
}

func controlNumber(i int) string { return fmt.Sprintf("CV%07d", i+1) }

// zipName keeps a stored file name inside its folder of the ZIP.
func zipName(name string) string {
	r := strings.NewReplacer("/", "_", "\\", "_", "\x00", "_")
	name = r.Replace(name)
	if name == "" || name == "." || name == ".." {
		return "file"
	}
	return name
}
