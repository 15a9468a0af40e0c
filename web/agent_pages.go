package web

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

// agentRoutes are the agent pages of issue 18 §1–3 beyond search and the
// case timeline: attachments, the customer lookup and consents, OIDC
// sign-in (agent_oidc.go mounts its own two routes before the guard).
func (w *Console) agentRoutes() []pageRoute {
	return []pageRoute{
		{method: "POST", path: "/cases/:id/attachments", perm: auth.CaseWrite, h: w.uploadFile},
		{method: "GET", path: "/attachments/:id/preview", perm: auth.CaseRead, read: "attachment.read", target: "attachment", h: w.previewAttachment},
		{method: "GET", path: "/customers", perm: auth.CaseRead, h: w.lookupPage},
		{method: "POST", path: "/customers/:id/consents", perm: auth.CaseWrite, h: w.updateConsents},
	}
}

// explainCase adds the retention explanation of every contact to a case
// page, for the roles the API shows it to (GET /cases/{id}/retention is
// legal work), with the API's audit event (retention.explain).
func (w *Console) explainCase(r *req, caseID string, data map[string]any) error {
	rt := w.d.API.Retention
	if rt == nil || rt.Explainer == nil || !r.ses.User.Role.Allows(auth.LegalWork) {
		return nil
	}
	x, err := rt.Explainer.ExplainCase(r.c.UserContext(), caseID, w.cfg.Now())
	if err != nil {
		return err
	}
	byContact := make(map[string]*retention.ContactExplanation, len(x.Contacts))
	for i := range x.Contacts {
		byContact[x.Contacts[i].ContactID] = &x.Contacts[i]
	}
	data["Explain"] = byContact
	data["ExplainHolds"] = x.Holds
	return r.audit("retention.explain", "case", caseID, nil)
}

// recentContacts are the contacts a file can be attached to from the case
// page, newest first (the form's list stays short on a long case).
func recentContacts(cs cases.Case, n int) []cases.Contact {
	out := make([]cases.Contact, 0, min(n, len(cs.Contacts)))
	for i := len(cs.Contacts) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, cs.Contacts[i])
	}
	return out
}

// lookupPage finds customers by exact e-mail or phone through the API's
// keyed-hash lookup (GET /api/v1/customers?email=&phone=). The audit event
// names who was found, never what was asked for, as the API's does.
func (w *Console) lookupPage(r *req) error {
	email, phone := strings.TrimSpace(r.c.Query("email")), strings.TrimSpace(r.c.Query("phone"))
	data := map[string]any{"Email": email, "Phone": phone}
	p := w.d.API.Privacy
	if p == nil || p.FindCustomers == nil {
		data["Error"] = r.L.T("lookup.unavailable")
		return r.render("lookup", r.L.T("lookup.title"), data)
	}
	if email == "" && phone == "" {
		return r.render("lookup", r.L.T("lookup.title"), data)
	}
	if len(email) > 320 || len(phone) > 64 {
		r.c.Status(fiber.StatusUnprocessableEntity)
		data["Error"] = r.L.T("lookup.too_long")
		return r.render("lookup", r.L.T("lookup.title"), data)
	}
	found, err := p.FindCustomers(r.c.UserContext(), email, phone)
	if err != nil {
		return err
	}
	ids := make([]string, len(found))
	for i, f := range found {
		ids[i] = f.ID
	}
	if err := r.audit("customer.lookup", "customer", "", map[string]any{"found": ids, "by_email": email != "", "by_phone": phone != ""}); err != nil {
		return err
	}
	if len(found) == 1 {
		return r.c.Redirect("/customers/"+found[0].ID, fiber.StatusSeeOther)
	}
	data["Found"] = found
	data["Searched"] = true
	return r.render("lookup", r.L.T("lookup.title"), data)
}

// updateConsents changes a customer's consents as PATCH
// /api/v1/customers/{id} with {"consents": …} does: the profile first,
// then what a withdrawal forbids is redacted (retention.Consents).
func (w *Console) updateConsents(r *req) error {
	ctx := r.c.UserContext()
	id := r.c.Params("id")
	cur, err := w.d.API.Cases.GetCustomer(ctx, id)
	if err != nil {
		return err
	}
	var p cases.ConsentsPatch
	withdrawn := false
	for _, f := range []struct {
		name string
		cur  bool
		dst  **bool
	}{{"location", cur.Consents.Location, &p.Location}, {"marketing", cur.Consents.Marketing, &p.Marketing}, {"personalization", cur.Consents.Personalization, &p.Personalization}} {
		v := r.c.FormValue(f.name) == "on"
		if v != f.cur {
			*f.dst = &v
			withdrawn = withdrawn || !v
		}
	}
	if p.Location == nil && p.Marketing == nil && p.Personalization == nil {
		return r.redirect("/customers/"+id, "consents_unchanged")
	}
	cust, err := w.d.API.Cases.UpdateCustomer(ctx, id, cases.CustomerPatch{Consents: &p}, r.actor)
	if err != nil {
		return err
	}
	if pr := w.d.API.Privacy; withdrawn && pr != nil && pr.Consents != nil {
		if _, err := pr.Consents.Apply(ctx, cust.ID, r.actor); err != nil {
			return err
		}
	}
	return r.redirect("/customers/"+id, "consents_changed")
}
