package export

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"html/template"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/cases"
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

// Manifest lists every other file of the package with its digest.
type Manifest struct {
	ExportID  string       `json:"export_id"`
	HoldID    string       `json:"hold_id"`
	CreatedAt time.Time    `json:"created_at"`
	Files     []FileDigest `json:"files"`
}

// FileDigest is one file of a package.
type FileDigest struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// record is one line of contacts.ndjson.
type record struct {
	ControlNumber string          `json:"control_number"`
	Contact       contactRec      `json:"contact"`
	Case          caseRec         `json:"case"`
	Customer      cases.Customer  `json:"customer"`
	Attachments   []attachmentRec `json:"attachments"`
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

	snap, err := s.readSnapshot(ctx, e)
	if err != nil {
		return err
	}

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

	// zip → digest → encrypt → blob store. The store names the object only
	// once it is whole (local: temp file + rename; S3: one upload), and the
	// row says complete only after that: a kill at any point leaves a row
	// still running, never a half package marked complete.
	tr := &tracker{s: s, id: id, p: p, cb: progress}
	pr, pw := io.Pipe()
	digest := sha256.New()
	counted := &countWriter{w: io.MultiWriter(pw, digest)}
	var sum *Summary
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var werr error
		sum, werr = s.writePackage(ctx, counted, e, snap, tr)
		pw.CloseWithError(werr)
	}()
	enc, err := archive.EncryptStream(pr, s.o.Key, objectID(id))
	if err != nil {
		pr.CloseWithError(err)
		wg.Wait()
		return err
	}
	err = s.o.Blobs.Put(ctx, blobKey(id), enc, -1)
	pr.CloseWithError(errors.Join(err, io.ErrClosedPipe))
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

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// zipPackage writes the entries of a package and remembers their digests.
type zipPackage struct {
	zw    *zip.Writer
	files []FileDigest
}

// file is one entry being written; close records its digest.
type file struct {
	z    *zipPackage
	path string
	w    io.Writer
	h    hash.Hash
	n    int64
}

func (z *zipPackage) create(path string, deflate bool, at time.Time) (*file, error) {
	m := zip.Store
	if deflate {
		m = zip.Deflate
	}
	w, err := z.zw.CreateHeader(&zip.FileHeader{Name: path, Method: m, Modified: at})
	if err != nil {
		return nil, err
	}
	f := &file{z: z, path: path, h: sha256.New()}
	f.w = io.MultiWriter(w, f.h)
	return f, nil
}

func (f *file) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	f.n += int64(n)
	return n, err
}

func (f *file) close() string {
	sum := hex.EncodeToString(f.h.Sum(nil))
	f.z.files = append(f.z.files, FileDigest{Path: f.path, Size: f.n, SHA256: sum})
	return sum
}

// writePackage writes the ZIP: natives first (their digests go into the
// load file), then the records, load file, audit events, summary and last
// the manifest of all of them.
func (s *Service) writePackage(ctx context.Context, w io.Writer, e Export, snap *snapshot, tr *tracker) (*Summary, error) {
	z := &zipPackage{zw: zip.NewWriter(w)}
	at := e.CreatedAt
	sum := &Summary{Cases: len(snap.cases), Custodians: len(snap.customers), AuditEvents: len(snap.audit), ErasedCustomers: snap.erased}

	var rows [][]string
	var lines []byte
	for i, c := range snap.contacts {
		control := fmt.Sprintf("CV%07d", i+1)
		atts := snap.attachments[c.ID]
		for j := range atts {
			a := &atts[j]
			a.ControlNumber = fmt.Sprintf("%s.%03d", control, j+1)
			a.Path = NativesDir + a.ControlNumber + "_" + zipName(a.Filename)
			if err := s.copyNative(ctx, z, a, at); err != nil {
				return nil, err
			}
			sum.Attachments++
			sum.Bytes += a.Size
			tr.add(ctx, 1, a.Size)
		}

		rec := record{ControlNumber: control, Contact: c, Case: snap.cases[c.CaseID], Customer: snap.customers[c.CustomerID], Attachments: atts}
		if rec.Attachments == nil {
			rec.Attachments = []attachmentRec{}
		}
		line, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		lineSum := sha256.Sum256(line)
		lines = append(append(lines, line...), '\n')

		cust, kase := rec.Customer.Name, fmt.Sprintf("%d", rec.Case.Number)
		rows = append(rows, []string{control, cust, kase, c.OccurredAt, c.Channel, c.Author, ContactsFile, hex.EncodeToString(lineSum[:])})
		for _, a := range atts {
			rows = append(rows, []string{a.ControlNumber, cust, kase, c.OccurredAt, c.Channel, c.Author, a.Path, a.SHA256})
		}
		sum.Contacts++
		tr.add(ctx, 1, 0)
	}

	if err := z.whole(ContactsFile, at, func(w io.Writer) error { _, err := w.Write(lines); return err }); err != nil {
		return nil, err
	}
	if err := z.whole(LoadFile, at, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		_ = cw.Write(LoadFileHeader)
		_ = cw.WriteAll(rows)
		return cw.Error()
	}); err != nil {
		return nil, err
	}
	if err := z.whole(AuditFile, at, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, ev := range snap.audit {
			if err := enc.Encode(ev); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := z.whole(SummaryFile, at, func(w io.Writer) error { return summaryHTML.Execute(w, summaryPage{Export: e, Summary: sum}) }); err != nil {
		return nil, err
	}

	m := Manifest{ExportID: e.ID, HoldID: e.HoldID, CreatedAt: e.CreatedAt, Files: z.files}
	mw, err := z.zw.CreateHeader(&zip.FileHeader{Name: ManifestName, Method: zip.Deflate, Modified: at})
	if err != nil {
		return nil, err
	}
	enc := json.NewEncoder(mw)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return sum, z.zw.Close()
}

// whole writes one generated (deflated) file.
func (z *zipPackage) whole(path string, at time.Time, fn func(w io.Writer) error) error {
	f, err := z.create(path, true, at)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	f.close()
	return nil
}

// copyNative writes an attachment decrypted, as a download does, and
// checks it is the file that was archived.
func (s *Service) copyNative(ctx context.Context, z *zipPackage, a *attachmentRec, at time.Time) error {
	_, rc, err := s.o.Attachments.Open(ctx, a.ID)
	if err != nil {
		return fmt.Errorf("attachment %s: %w", a.ID, err)
	}
	defer rc.Close()
	// Stored, not deflated: natives are mostly compressed formats already,
	// and deflate would cost more CPU than the archive saves.
	f, err := z.create(a.Path, false, at)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		return fmt.Errorf("attachment %s: %w", a.ID, err)
	}
	if got := f.close(); got != a.SHA256 {
		return fmt.Errorf("attachment %s: %w: sha256 %s, recorded %s", a.ID, archive.ErrCorrupt, got, a.SHA256)
	}
	return nil
}

// zipName keeps a stored file name inside its folder of the ZIP.
func zipName(name string) string {
	r := strings.NewReplacer("/", "_", "\\", "_", "\x00", "_")
	name = r.Replace(name)
	if name == "" || name == "." || name == ".." {
		return "file"
	}
	return name
}

type summaryPage struct {
	Export  Export
	Summary *Summary
}

// summaryHTML is escaped by html/template: names and ids in it are data.
var summaryHTML = template.Must(template.New("summary").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Export {{.Export.ID}}</title></head>
<body>
<h1>E-discovery export {{.Export.ID}}</h1>
<table>
<tr><th>Legal hold</th><td>{{.Export.HoldID}}</td></tr>
<tr><th>Created</th><td>{{.Export.CreatedAt.Format "2006-01-02T15:04:05Z07:00"}} by {{.Export.CreatedBy}}</td></tr>
<tr><th>Contacts</th><td>{{.Summary.Contacts}}</td></tr>
<tr><th>Cases</th><td>{{.Summary.Cases}}</td></tr>
<tr><th>Custodians</th><td>{{.Summary.Custodians}}</td></tr>
<tr><th>Attachments</th><td>{{.Summary.Attachments}} ({{.Summary.Bytes}} bytes)</td></tr>
<tr><th>Audit events</th><td>{{.Summary.AuditEvents}}</td></tr>
</table>
{{if .Summary.ErasedCustomers}}<h2>Not exported: erased customers</h2>
<p>These customers were covered by the hold but have been erased (their data key is destroyed); none of their content is in this package.</p>
<ul>{{range .Summary.ErasedCustomers}}<li>{{.}}</li>{{end}}</ul>{{end}}
<p>Files: contacts.ndjson (one record per contact), natives/ (attachments), loadfile.csv, audit_events.ndjson, manifest.json (SHA-256 of every file).</p>
</body></html>
`))
