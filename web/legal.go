package web

import (
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

func (w *Console) legalRoutes() []pageRoute {
	return []pageRoute{
		{method: "GET", path: "/holds", perm: auth.LegalWork, h: w.holdsPage},
		{method: "POST", path: "/holds", perm: auth.LegalWork, h: w.placeHold},
		{method: "GET", path: "/holds/:id", perm: auth.LegalWork, read: "hold.report", target: "hold", h: w.holdPage},
		{method: "POST", path: "/holds/:id/release", perm: auth.LegalWork, h: w.releaseHold},
		{method: "GET", path: "/audit", perm: auth.LegalWork, read: "audit.list", target: "audit", h: w.auditPage},
	}
}

func (w *Console) holds() (*retention.Holds, error) {
	if w.d.API.Retention == nil || w.d.API.Retention.Holds == nil {
		return nil, fiber.ErrNotFound
	}
	return w.d.API.Retention.Holds, nil
}

func (w *Console) holdsPage(r *req) error {
	h, err := w.holds()
	if err != nil {
		return err
	}
	list, next, err := h.List(r.c.UserContext(), retention.HoldFilter{}, 100, r.c.Query("cursor"))
	if errors.Is(err, retention.ErrBadCursor) {
		return cases.Invalid("cursor", "was not issued by this list")
	}
	if err != nil {
		return err
	}
	return r.render("holds", r.L.T("holds.title"), map[string]any{"Holds": list, "Next": next, "Form": map[string]string{}})
}

// placeHold places a hold by cases, customers, a query and a date range,
// as POST /api/v1/holds (retention.Holds validates the scope).
func (w *Console) placeHold(r *req) error {
	h, err := w.holds()
	if err != nil {
		return err
	}
	c := r.c
	in, err := holdForm(r)
	if err != nil {
		return err
	}
	hold, err := h.Place(c.UserContext(), in, r.actor, w.d.API.Retention.AuditTx)
	if err != nil {
		return err
	}
	if fl := w.d.API.Retention.Flags; fl != nil {
		if _, err := fl.MirrorHold(c.UserContext(), hold); err != nil {
			// The hold is in force; the reconciler retries the flags.
			w.log.Warn("legal-hold flags pending", "hold", hold.ID, "err", err)
		}
	}
	return r.redirect("/holds/"+hold.ID, "hold_placed")
}

func (w *Console) holdPage(r *req) error {
	h, err := w.holds()
	if err != nil {
		return err
	}
	ctx := r.c.UserContext()
	hold, err := h.Get(ctx, r.c.Params("id"))
	if err != nil {
		return err
	}
	r.readID = hold.ID
	counts, err := h.Counts(ctx, hold.ID)
	if err != nil {
		return err
	}
	items, next, err := h.Items(ctx, hold.ID, retention.ItemFilter{}, 100, r.c.Query("cursor"))
	if errors.Is(err, retention.ErrBadCursor) {
		return cases.Invalid("cursor", "was not issued by this report")
	}
	if err != nil {
		return err
	}
	return r.render("hold", hold.Matter, map[string]any{"Hold": hold, "Counts": counts, "Items": items, "Next": next})
}

func (w *Console) releaseHold(r *req) error {
	h, err := w.holds()
	if err != nil {
		return err
	}
	reason := strings.TrimSpace(r.c.FormValue("reason"))
	if reason == "" {
		return cases.Invalid("reason", "is required")
	}
	id := r.c.Params("id")
	if _, err := h.Release(r.c.UserContext(), id, reason, r.actor, w.d.API.Retention.AuditTx); err != nil {
		return err
	}
	return r.redirect("/holds/"+id, "hold_released")
}

// auditPage lists events with the API's filters and, on request, the
// result of verifying the chain.
func (w *Console) auditPage(r *req) error {
	tr := w.d.API.AuditTrail
	if tr == nil {
		return fiber.ErrNotFound
	}
	c := r.c
	f := audit.Filter{Actor: c.Query("actor"), Action: c.Query("action"), TargetType: c.Query("target_type"), TargetID: c.Query("target_id"),
		Outcome: c.Query("outcome"), Cursor: c.Query("cursor"), Limit: 100}
	for _, b := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := c.Query(b.name); v != "" {
			t, err := cases.ParseTime(b.name, v)
			if err != nil {
				return err
			}
			*b.dst = t
		}
	}
	events, next, err := tr.List(c.UserContext(), f)
	if err != nil {
		return err
	}
	data := map[string]any{"Events": events, "Next": next, "F": f, "FromText": c.Query("from"), "ToText": c.Query("to")}
	if next != "" {
		v := cloneValuesFrom(c)
		v.Set("cursor", next)
		data["NextHref"] = "/audit?" + v.Encode()
	}
	if c.Query("verify") == "1" {
		res, err := tr.Verify(c.UserContext())
		if err != nil {
			return err
		}
		data["Verify"] = res
		if err := r.audit("audit.verify", "audit", "", nil); err != nil {
			return err
		}
	}
	return r.render("audit", r.L.T("audit.title"), data)
}

// cloneValuesFrom copies a request's query parameters.
func cloneValuesFrom(c *fiber.Ctx) url.Values {
	v := url.Values{}
	c.Context().QueryArgs().VisitAll(func(k, val []byte) { v.Add(string(k), string(val)) })
	v.Del("done")
	return v
}
