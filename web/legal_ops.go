package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/api"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/export"
	"github.com/casevault/casevault/retention"
)

// The legal pages of issue 18 beyond the hold list: the scope preview, the
// release preview, reinstatement, exports, the retention explanation of any
// record and the disposition records. Each calls the service the API's
// route calls, with the same validation and audit.

// holdForm reads the hold form (placing and previewing read the same
// fields). Dates are days in the user's time zone.
func holdForm(r *req) (retention.HoldInput, error) {
	c := r.c
	in := retention.HoldInput{Matter: strings.TrimSpace(c.FormValue("matter")), Reason: strings.TrimSpace(c.FormValue("reason")),
		Scope: retention.HoldScope{CaseIDs: formList(c.FormValue("case_ids")), CustomerIDs: formList(c.FormValue("customer_ids")),
			Query: strings.TrimSpace(c.FormValue("query"))}}
	for _, f := range []struct {
		name string
		dst  **time.Time
	}{{"from", &in.Scope.From}, {"to", &in.Scope.To}} {
		v := strings.TrimSpace(c.FormValue(f.name))
		if v == "" {
			continue
		}
		t, err := time.ParseInLocation("2006-01-02", v, r.L.loc)
		if err != nil {
			return in, cases.Invalid(f.name, "must be a date (YYYY-MM-DD)")
		}
		*f.dst = &t
	}
	return in, nil
}

// holdFormValues is the hold form as typed, shown again with a preview
// (copies: Fiber's form values live only as long as the request).
func holdFormValues(r *req) map[string]string {
	out := map[string]string{}
	for _, k := range []string{"matter", "reason", "case_ids", "customer_ids", "query", "from", "to"} {
		out[k] = strings.Clone(r.c.FormValue(k))
	}
	return out
}

// maxPreviewCases bounds the cases a scope preview lists (it counts all).
const maxPreviewCases = 25

// scopePreview is what a scope covers now, as a hold placed with it would
// record.
type scopePreview struct {
	Cases, Contacts int
	CaseIDs         []string
	More            int
	Error           string
	Empty           bool
}

// previewHold shows what the scope typed into the hold form covers now
// (retention.Holds.ValidateScope and Matching, as an export of an ad-hoc
// scope reads it). With partial=1 (app.js, as the user types) only the
// preview block is answered; without JavaScript the "Preview" button posts
// the form here and the holds page comes back with it filled in.
func (w *Console) previewHold(r *req) error {
	h, err := w.holds()
	if err != nil {
		return err
	}
	ctx := r.c.UserContext()
	pv := scopePreview{}
	in, err := holdForm(r)
	sc := in.Scope
	switch {
	case err != nil:
		_, pv.Error = problem(err)
	case len(sc.CaseIDs) == 0 && len(sc.CustomerIDs) == 0 && sc.Query == "" && sc.From == nil && sc.To == nil:
		pv.Empty = true
	default:
		if err := h.ValidateScope(ctx, &sc); err != nil {
			status, msg := problem(err)
			if status >= 500 {
				return err
			}
			pv.Error = msg
			break
		}
		items, err := h.Matching(ctx, sc)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, it := range items {
			if it.ContactID != "" {
				pv.Contacts++
			}
			if seen[it.CaseID] {
				continue
			}
			seen[it.CaseID] = true
			pv.Cases++
			if len(pv.CaseIDs) < maxPreviewCases {
				pv.CaseIDs = append(pv.CaseIDs, it.CaseID)
			}
		}
		pv.More = pv.Cases - len(pv.CaseIDs)
		// The preview names cases a query finds, as a search does: recorded.
		if err := r.audit("hold.preview", "hold", "", map[string]any{"cases": pv.Cases, "contacts": pv.Contacts}); err != nil {
			return err
		}
	}
	if pv.Error != "" {
		r.c.Status(fiber.StatusUnprocessableEntity)
	}
	if r.c.Query("partial") == "1" {
		return w.renderPartial(r, "holds", "preview", map[string]any{"Preview": pv})
	}
	list, next, err := h.List(ctx, retention.HoldFilter{}, 100, "")
	if err != nil {
		return err
	}
	return r.render("holds", r.L.T("holds.title"), map[string]any{"Holds": list, "Next": next, "Preview": pv, "Form": holdFormValues(r)})
}

// releasePage shows what releasing a hold would make due and when (its
// grace), with the release form: the release is confirmed on this page.
func (w *Console) releasePage(r *req) error {
	h, err := w.holds()
	if err != nil {
		return err
	}
	ctx := r.c.UserContext()
	hold, err := h.Get(ctx, r.c.Params("id"))
	if err != nil {
		return err
	}
	pv, err := h.ReleasePreview(ctx, hold.ID)
	if err != nil {
		return err
	}
	shown := pv.Items
	if len(shown) > maxPreviewCases {
		shown = shown[:maxPreviewCases]
	}
	return r.render("release", r.L.T("release.title", hold.Matter), map[string]any{"Hold": hold, "Preview": pv, "Shown": shown, "More": pv.Due - len(shown)})
}

// reinstateHold undoes a release within its grace, as POST
// /api/v1/holds/{id}/reinstate (409 after it).
func (w *Console) reinstateHold(r *req) error {
	h, err := w.holds()
	if err != nil {
		return err
	}
	id := strings.Clone(r.c.Params("id"))
	hold, err := h.Reinstate(r.c.UserContext(), id, strings.TrimSpace(r.c.FormValue("reason")), r.actor, w.d.API.Retention.AuditTx)
	if err != nil {
		return err
	}
	if fl := w.d.API.Retention.Flags; fl != nil {
		if _, err := fl.MirrorHold(r.c.UserContext(), hold); err != nil {
			w.log.Warn("legal-hold flags pending", "hold", hold.ID, "err", err)
		}
	}
	return r.redirect("/holds/"+id, "hold_reinstated")
}

func (w *Console) exports() (api.ExportService, error) {
	if w.d.API.Exports == nil {
		return nil, &statusError{fiber.StatusNotFound, "exports are not configured"}
	}
	return w.d.API.Exports, nil
}

// exportHold starts an export of a hold, as POST /api/v1/exports: the run
// outlives the request but not the console (Close cancels it, and the
// export is then failed, never complete).
func (w *Console) exportHold(r *req) error {
	ex, err := w.exports()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(w.runCtx)
	e, done, err := ex.Start(ctx, export.Input{HoldID: strings.Clone(r.c.Params("id"))}, r.actor)
	if err != nil {
		cancel()
		return err
	}
	go func() {
		<-done
		cancel()
	}()
	return r.redirect("/exports/"+e.ID, "export_started")
}

// exportPage shows an export's progress; while it runs the page reloads
// itself (a Refresh header: no script needed), and once complete it links
// the download.
func (w *Console) exportPage(r *req) error {
	ex, err := w.exports()
	if err != nil {
		return err
	}
	e, err := ex.Get(r.c.UserContext(), r.c.Params("id"))
	if err != nil {
		return err
	}
	running := e.Status == export.StatusRunning
	if running {
		r.c.Set("Refresh", "2")
	}
	pct := 0
	if e.Progress.ItemsTotal > 0 {
		pct = int(e.Progress.ItemsDone * 100 / e.Progress.ItemsTotal)
	}
	return r.render("export", r.L.T("export.title", e.ID), map[string]any{"Export": e, "Running": running, "Percent": pct,
		"Complete": e.Status == export.StatusComplete})
}

// downloadExport streams a complete package, decrypted (the API's route
// without ranges); the page guard records export.download.
func (w *Console) downloadExport(r *req) error {
	ex, err := w.exports()
	if err != nil {
		return err
	}
	ctx := r.c.UserContext()
	e, err := ex.Get(ctx, r.c.Params("id"))
	if err != nil {
		return err
	}
	if e.Status != export.StatusComplete {
		return &statusError{fiber.StatusConflict, r.L.T("export.not_complete", e.Status)}
	}
	rc, err := ex.OpenRange(ctx, e, 0, e.Size)
	if err != nil {
		return err
	}
	// Read (and so authenticate) the first bytes before a status goes out,
	// as the API does: a package that fails to open is an error page, not
	// a truncated download.
	head := make([]byte, min(e.Size, 64<<10))
	if _, err := io.ReadFull(rc, head); err != nil {
		rc.Close()
		return fmt.Errorf("export %s: %w", e.ID, err)
	}
	r.readID = e.ID
	r.readDetail = map[string]any{"size": e.Size, "sha256": e.SHA256}
	r.c.Set(fiber.HeaderContentType, "application/zip")
	r.c.Set(fiber.HeaderContentDisposition, `attachment; filename="export-`+e.ID+`.zip"`)
	r.c.Set(fiber.HeaderETag, `"`+e.SHA256+`"`)
	r.c.Context().SetBodyStream(readCloser{io.MultiReader(bytes.NewReader(head), rc), rc}, int(e.Size))
	return nil
}

// readCloser reads from one reader and closes another (fasthttp closes a
// body stream that is an io.Closer once sent).
type readCloser struct {
	io.Reader
	c io.Closer
}

func (rc readCloser) Close() error { return rc.c.Close() }

// explainPage explains the retention of any record by its id: a case
// (every contact), a contact or a customer profile, as the three explain
// routes of the API do, recording retention.explain on the record's type.
func (w *Console) explainPage(r *req) error {
	rt := w.d.API.Retention
	if rt == nil || rt.Explainer == nil {
		return &statusError{fiber.StatusNotFound, "retention is not configured"}
	}
	// A copy: the id goes to the audit trail, whose group commit may hold
	// it past the handler (Fiber reuses the request's bytes).
	id := strings.Clone(strings.TrimSpace(r.c.Query("id")))
	data := map[string]any{"ID": id}
	if id == "" {
		return r.render("explain", r.L.T("explain.title"), data)
	}
	ctx := r.c.UserContext()
	now := w.cfg.Now()
	kind := ""
	if x, err := rt.Explainer.ExplainCase(ctx, id, now); err == nil {
		kind, data["Case"] = "case", x
	} else if !errors.Is(err, cases.ErrNotFound) {
		return err
	} else if x, err := rt.Explainer.ExplainContact(ctx, id, now); err == nil {
		kind, data["Contact"] = "contact", x
	} else if !errors.Is(err, cases.ErrNotFound) {
		return err
	} else if x, err := rt.Explainer.ExplainCustomer(ctx, id, now); err == nil {
		kind, data["Customer"] = "customer", x
	} else if !errors.Is(err, cases.ErrNotFound) {
		return err
	}
	if kind == "" {
		r.c.Status(fiber.StatusNotFound)
		data["NotFound"] = true
		return r.render("explain", r.L.T("explain.title"), data)
	}
	if err := r.audit("retention.explain", kind, id, nil); err != nil {
		return err
	}
	data["Kind"] = kind
	return r.render("explain", r.L.T("explain.title"), data)
}

const dispositionPage = 50

// dispositionsPage lists the disposition records with filters, newest
// first, a page at a time (retention.Explainer.Dispositions).
func (w *Console) dispositionsPage(r *req) error {
	rt := w.d.API.Retention
	if rt == nil || rt.Explainer == nil {
		return &statusError{fiber.StatusNotFound, "retention is not configured"}
	}
	c := r.c
	f := retention.DispositionFilter{Action: strings.Clone(c.Query("action")), Rule: strings.Clone(c.Query("rule")), RunID: strings.Clone(c.Query("run_id")),
		CaseID: strings.Clone(c.Query("case_id")), CustomerID: strings.Clone(c.Query("customer_id"))}
	for _, b := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := strings.TrimSpace(c.Query(b.name)); v != "" {
			t, err := time.ParseInLocation("2006-01-02", v, r.L.loc)
			if err != nil {
				return cases.Invalid(b.name, "must be a date (YYYY-MM-DD)")
			}
			if b.name == "to" {
				t = t.AddDate(0, 0, 1) // the whole day
			}
			*b.dst = t
		}
	}
	items, next, err := rt.Explainer.Dispositions(c.UserContext(), f, dispositionPage, c.Query("cursor"))
	if errors.Is(err, retention.ErrBadCursor) {
		return cases.Invalid("cursor", "was not issued by this list")
	}
	if err != nil {
		return err
	}
	r.readDetail = map[string]any{"count": len(items)}
	data := map[string]any{"Items": items, "F": f, "FromText": strings.Clone(c.Query("from")), "ToText": strings.Clone(c.Query("to")),
		"Actions": retention.DispositionActions()}
	if next != "" {
		v := cloneValuesFrom(c)
		v.Set("cursor", next)
		data["NextHref"] = "/dispositions?" + v.Encode()
	}
	if c.Query("cursor") != "" {
		v := cloneValuesFrom(c)
		v.Del("cursor")
		data["FirstHref"] = "/dispositions?" + v.Encode()
	}
	return r.render("dispositions", r.L.T("dispositions.title"), data)
}
