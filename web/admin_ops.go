package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/api"
	"github.com/casevault/casevault/retention"
)

// The admin pages of issue 18 beyond users and tokens: the retention
// schedule editor (validated as PUT /api/v1/retention/schedule validates,
// with a dry run of what the change would make due before it is saved) and
// the settings in force.

// maxScheduleDoc bounds the schedule editor's text (the API's JSON body
// limit is larger; a schedule is a few kilobytes).
const maxScheduleDoc = 64 << 10

// schedulePreviewLimit bounds the contacts a schedule preview compares, so
// that the page answers in seconds on a large store; beyond it the counts
// are a lower bound and the page says so.
const schedulePreviewLimit = 200_000

// scheduleDoc is a schedule as the editor shows it: indented JSON.
func scheduleDoc(sc retention.Schedule) string {
	b, err := json.MarshalIndent(sc, "", "  ")
	if err != nil {
		return ""
	}
	return string(b)
}

// retentionPage shows the schedule in force, its versions, and the editor
// holding the schedule's JSON.
func (w *Console) retentionPage(r *req) error {
	rt := w.d.API.Retention
	if rt == nil || rt.Schedules == nil {
		return fiber.ErrNotFound
	}
	return w.renderRetention(r, "", nil, "")
}

// renderRetention renders the schedule page with the editor holding doc
// ("" : the schedule in force), the dry run's result and an error.
func (w *Console) renderRetention(r *req, doc string, pv *retention.SchedulePreview, problemText string) error {
	rt := w.d.API.Retention
	ctx := r.c.UserContext()
	sc, err := rt.Schedules.Current(ctx)
	if err != nil {
		return err
	}
	versions, err := rt.Schedules.Versions(ctx)
	if err != nil {
		return err
	}
	if doc == "" {
		doc = scheduleDoc(sc)
	}
	return r.render("retention", r.L.T("retention.title"), map[string]any{"Schedule": sc, "Versions": versions, "Doc": doc,
		"Preview": pv, "Problem": problemText, "Previewed": docDigest(doc)})
}

// editedSchedule reads and checks the editor's JSON with the API's rules:
// the strict decoder of request bodies, then Schedule.Validate. The
// version in the document is the one the editor started from.
func editedSchedule(r *req) (retention.Schedule, string, error) {
	doc := strings.Clone(r.c.FormValue("schedule"))
	var sc retention.Schedule
	if len(doc) > maxScheduleDoc {
		return sc, "", &statusError{fiber.StatusRequestEntityTooLarge, r.L.T("retention.too_large", maxScheduleDoc)}
	}
	if err := api.DecodeStrictJSON([]byte(doc), &sc); err != nil {
		return sc, doc, err
	}
	return sc, doc, sc.Validate()
}

// previewSchedule validates the edited schedule and shows what it would
// make due now next to the schedule in force (retention.Schedules.Preview:
// a read-only walk, nothing stored), with the save button.
func (w *Console) previewSchedule(r *req) error {
	rt := w.d.API.Retention
	if rt == nil || rt.Schedules == nil {
		return fiber.ErrNotFound
	}
	sc, doc, err := editedSchedule(r)
	if err != nil {
		return w.scheduleProblem(r, doc, err)
	}
	pv, err := rt.Schedules.Preview(r.c.UserContext(), sc, rt.Holds, w.cfg.Now(), schedulePreviewLimit)
	if err != nil {
		return err
	}
	return w.renderRetention(r, doc, &pv, "")
}

// docDigest names the exact text a preview was shown for: saving requires
// it, so what is stored is what was previewed.
func docDigest(doc string) string {
	sum := sha256.Sum256([]byte(doc))
	return hex.EncodeToString(sum[:])
}

// scheduleProblem shows the editor again with the text as typed and what
// is wrong with it (422 for a field problem, the API's status otherwise).
func (w *Console) scheduleProblem(r *req, doc string, err error) error {
	status, msg := problem(err)
	if status >= 500 {
		return err
	}
	r.c.Status(status)
	return w.renderRetention(r, doc, nil, msg)
}

// saveSchedule stores the edited schedule as a new version, as PUT does
// (audited in its transaction, then the recompute in the background); it
// refuses (409) when another version was stored since the editor opened,
// and shows the preview instead of saving a text whose preview was not
// shown.
func (w *Console) saveSchedule(r *req) error {
	rt := w.d.API.Retention
	if rt == nil || rt.Schedules == nil {
		return fiber.ErrNotFound
	}
	sc, doc, err := editedSchedule(r)
	if err != nil {
		return w.scheduleProblem(r, doc, err)
	}
	ctx := r.c.UserContext()
	cur, err := rt.Schedules.Current(ctx)
	if err != nil {
		return err
	}
	if sc.Version != cur.Version {
		return w.scheduleProblem(r, doc, &statusError{fiber.StatusConflict, r.L.T("retention.moved", sc.Version, cur.Version)})
	}
	if r.c.FormValue("previewed") != docDigest(doc) {
		// Not the text the admin saw the preview of (edited since, or
		// never previewed): show its preview first.
		return w.previewSchedule(r)
	}
	if _, err := rt.Schedules.Put(ctx, sc, r.actor, rt.AuditTx); err != nil {
		return w.scheduleProblem(r, doc, err)
	}
	if rt.Recompute != nil {
		rt.Recompute(context.WithoutCancel(ctx))
	}
	return r.redirect("/admin/retention", "schedule_saved")
}

// Setting is one setting in force as the settings page shows it. The
// caller never hands a secret's value over: Value is empty for a secret
// and Set says whether it has one.
type Setting struct {
	Name, Env, Value, Source string
	Secret, Set              bool
}

// settingsPage lists the settings in force (flags, environment, defaults),
// secrets only as set or unset, as `casevault config` prints them.
func (w *Console) settingsPage(r *req) error {
	if w.d.Ops.Settings == nil {
		return &statusError{fiber.StatusNotFound, "settings are not available"}
	}
	list := w.d.Ops.Settings()
	for i := range list {
		if list[i].Secret {
			list[i].Value = "" // whatever the caller passed
		}
	}
	return r.render("settings", r.L.T("settings.title"), map[string]any{"Settings": list, "Version": w.cfg.Version})
}
