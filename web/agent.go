package web

import (
	"errors"
	"html"
	"html/template"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/api"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
)

// routes is the console's page table (paths, permissions and read audit
// actions; the API's names where the API has the same read).
func (w *Console) routes() []pageRoute {
	rs := []pageRoute{
		{method: "GET", path: "/search", perm: auth.CaseRead, read: "search", target: "search", h: w.searchPage},
		{method: "GET", path: "/cases/:id", perm: auth.CaseRead, read: "case.read", target: "case", h: w.casePage},
		{method: "POST", path: "/cases/:id", perm: auth.CaseWrite, h: w.updateCase},
		{method: "POST", path: "/cases/:id/contacts", perm: auth.CaseWrite, h: w.addContact},
		{method: "GET", path: "/customers/:id", perm: auth.CaseRead, read: "customer.read", target: "customer", h: w.customerPage},
		{method: "GET", path: "/attachments/:id", perm: auth.CaseRead, read: "attachment.read", target: "attachment", h: w.downloadAttachment},
	}
	rs = append(rs, w.agentRoutes()...)
	rs = append(rs, w.legalRoutes()...)
	rs = append(rs, w.operatorRoutes()...)
	rs = append(rs, w.opsRoutes()...)
	return append(rs, w.adminRoutes()...)
}

const searchPageSize = 20

// facetLink is one facet value as a filter link.
type facetLink struct {
	Field, Value string
	Count        int64
	Href         string
	Active       bool
}

type hitView struct {
	search.Hit
	SnippetHTML template.HTML
}

// safeSnippet keeps only <mark> of an engine's snippet: the text between
// the marks is unescaped and escaped again, so whatever an engine returns,
// nothing but <mark> reaches the page as markup.
func safeSnippet(s string) template.HTML {
	var b strings.Builder
	open := false
	for s != "" {
		tag := "<mark>"
		if open {
			tag = "</mark>"
		}
		i := strings.Index(s, tag)
		if i < 0 {
			b.WriteString(template.HTMLEscapeString(html.UnescapeString(s)))
			break
		}
		b.WriteString(template.HTMLEscapeString(html.UnescapeString(s[:i])))
		b.WriteString(tag)
		open = !open
		s = s[i+len(tag):]
	}
	if open {
		b.WriteString("</mark>")
	}
	return template.HTML(b.String()) //nolint:gosec // built from escaped text and <mark> only
}

func (w *Console) searchPage(r *req) error {
	c := r.c
	vals := url.Values{}
	c.Context().QueryArgs().VisitAll(func(k, v []byte) { vals.Add(string(k), string(v)) })
	vals.Del("done")
	data := map[string]any{"Q": vals.Get("q"), "Vals": vals}
	r.readID = ""
	if vals.Get("q") == "" && len(vals) == 0 {
		// An empty form reads nothing: no audit event.
		r.readDetail = nil
		return r.renderSearch(data)
	}
	if id, ok, err := w.byNumber(r, vals); err != nil || ok {
		if err != nil {
			return err
		}
		return c.Redirect("/cases/"+id, fiber.StatusSeeOther)
	}
	res, q, err := api.RunSearch(c.UserContext(), w.d.API.Search, vals, searchPageSize)
	if err != nil {
		status, msg := problem(err)
		if status != fiber.StatusUnprocessableEntity {
			return err
		}
		c.Status(status)
		data["Error"] = msg
		return r.renderSearch(data)
	}
	r.readDetail = api.SearchAuditDetail(vals, res.Total)
	hits := make([]hitView, len(res.Hits))
	for i, h := range res.Hits {
		hits[i] = hitView{Hit: h, SnippetHTML: safeSnippet(h.Snippet)}
	}
	data["Hits"] = hits
	data["Total"] = res.Total
	page := q.Offset/searchPageSize + 1
	data["Page"] = page
	if page > 1 {
		data["Prev"] = pageHref(vals, page-1)
	}
	if int64(q.Offset+len(res.Hits)) < res.Total {
		data["Next"] = pageHref(vals, page+1)
	}
	data["Facets"] = facetLinks(vals, res.Facets)
	return r.renderSearch(data)
}

// caseNumber matches a query that is only a case number: "#17" or "17".
var caseNumber = regexp.MustCompile(`^#?([0-9]{1,18})$`)

// byNumber opens a case by its number when the query is one and the case
// exists (a number that names no case is searched as text).
func (w *Console) byNumber(r *req, vals url.Values) (string, bool, error) {
	m := caseNumber.FindStringSubmatch(strings.TrimSpace(vals.Get("q")))
	if m == nil || w.d.CaseByNumber == nil || r.c.Query("partial") == "1" {
		return "", false, nil
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return "", false, nil
	}
	id, err := w.d.CaseByNumber(r.c.UserContext(), n)
	if errors.Is(err, cases.ErrNotFound) {
		return "", false, nil
	}
	return id, err == nil, err
}

func (r *req) renderSearch(data map[string]any) error {
	if r.c.Query("partial") == "1" {
		// The live search asks for the results only (assets/app.js).
		return r.w.renderPartial(r, "search", "results", data)
	}
	return r.render("search", r.L.T("search.title"), data)
}

func pageHref(vals url.Values, page int) string {
	v := cloneValues(vals)
	v.Del("cursor")
	v.Del("partial")
	v.Set("page", strconv.Itoa(page))
	return "/search?" + v.Encode()
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// facetLinks turns facet counts into filter links: a value not yet
// filtered on adds its filter (field=value), an active one removes it.
func facetLinks(vals url.Values, facets map[string]map[string]int64) map[string][]facetLink {
	out := map[string][]facetLink{}
	for _, field := range []string{"status", "channel", "tag", "purpose"} {
		for value, n := range facets[field] {
			v := cloneValues(vals)
			v.Del("page")
			v.Del("cursor")
			v.Del("partial")
			active := slices.Contains(v[field], value)
			if active {
				v[field] = slices.DeleteFunc(slices.Clone(v[field]), func(s string) bool { return s == value })
			} else {
				v.Add(field, value)
			}
			out[field] = append(out[field], facetLink{Field: field, Value: value, Count: n, Href: "/search?" + v.Encode(), Active: active})
		}
		sort.Slice(out[field], func(i, j int) bool {
			a, b := out[field][i], out[field][j]
			return a.Count > b.Count || (a.Count == b.Count && a.Value < b.Value)
		})
	}
	return out
}

// timelineItem is a contact or a change of the case, in time order.
type timelineItem struct {
	At      time.Time
	Contact *cases.Contact
	Change  *cases.CaseEvent
}

func caseTimeline(cs cases.Case) []timelineItem {
	out := make([]timelineItem, 0, len(cs.Contacts)+len(cs.History))
	for i := range cs.Contacts {
		out = append(out, timelineItem{At: cs.Contacts[i].OccurredAt, Contact: &cs.Contacts[i]})
	}
	for i := range cs.History {
		out = append(out, timelineItem{At: cs.History[i].At, Change: &cs.History[i]})
	}
	slices.SortStableFunc(out, func(a, b timelineItem) int { return a.At.Compare(b.At) })
	return out
}

func (w *Console) casePage(r *req) error {
	ctx := r.c.UserContext()
	cs, err := w.d.API.Cases.GetCase(ctx, r.c.Params("id"))
	if err != nil {
		return err
	}
	r.readID = cs.ID
	data := map[string]any{
		"Case": cs, "Timeline": caseTimeline(cs),
		"CanWrite": r.ses.User.Role.Allows(auth.CaseWrite), "CanManage": r.ses.User.Role.Allows(auth.CaseManage),
		"Statuses": cases.Statuses, "Channels": cases.Channels, "Directions": cases.Directions, "Purposes": cases.Purposes,
		"Tags": strings.Join(cs.Tags, ", "),
	}
	if rt := w.d.API.Retention; rt != nil && rt.Holds != nil {
		held, err := rt.Holds.CoveringCase(ctx, cs.ID, cs.CustomerID)
		if err != nil {
			return err
		}
		data["Holds"] = held
	}
	data["Recent"] = recentContacts(cs, 50)
	if err := w.explainCase(r, cs.ID, data); err != nil {
		return err
	}
	return r.render("case", r.L.T("case.title", cs.Number), data)
}

// formList splits a comma-separated field ("vip, refund").
func formList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// updateCase changes status, assignee and tags; cases.Service decides
// what the role may change (closing and reassigning are supervisor work),
// as for PATCH /api/v1/cases/{id}.
func (w *Console) updateCase(r *req) error {
	ctx := r.c.UserContext()
	id := r.c.Params("id")
	cur, err := w.d.API.Cases.GetCase(ctx, id)
	if err != nil {
		return err
	}
	var p cases.CasePatch
	if v := cases.Status(r.c.FormValue("status")); v != "" && v != cur.Status {
		p.Status = &v
	}
	if v, ok := formValue(r.c, "assignee"); ok && v != cur.Assignee {
		p.Assignee = &v
	}
	if v, ok := formValue(r.c, "tags"); ok {
		tags := formList(v)
		if !slices.Equal(tags, cur.Tags) {
			p.Tags = &tags
		}
	}
	_, err = w.d.API.Cases.UpdateCase(ctx, id, p, r.actor)
	if err != nil {
		return err
	}
	return r.redirect("/cases/"+id, "case_updated")
}

// formValue reports a form field and whether the form had it.
func formValue(c *fiber.Ctx, key string) (string, bool) {
	if c.Request().PostArgs().Has(key) {
		return strings.TrimSpace(c.FormValue(key)), true
	}
	return "", false
}

// addContact logs a contact; with a file (the form is multipart then,
// the file its last field) the file is attached to the new contact.
func (w *Console) addContact(r *req) error {
	c := r.c
	id := c.Params("id")
	if err := w.checkUploadSize(r); err != nil {
		return err
	}
	f, err := r.readForm()
	if err != nil {
		return err
	}
	ch := cases.Channel(f.get("channel"))
	dir := cases.Direction(f.get("direction"))
	author := r.ses.User.Name
	if v := f.get("author"); v != "" {
		author = v
	}
	body := f.vals.Get("body")
	in := cases.NewContact{Channel: &ch, Direction: &dir, Author: &author, Body: &body}
	for _, p := range f.vals["purposes"] {
		in.Purposes = append(in.Purposes, cases.Purpose(p))
	}
	if when := f.get("occurred_at"); when != "" {
		// A datetime-local field is in the user's zone.
		t, err := time.ParseInLocation("2006-01-02T15:04", when, r.L.loc)
		if err != nil {
			return cases.Invalid("occurred_at", "must be a date and time")
		}
		s := t.UTC().Format(time.RFC3339)
		in.OccurredAt = &s
	}
	res, err := w.d.API.Cases.AddContact(c.UserContext(), id, in, r.actor)
	if err != nil {
		return err
	}
	if f.file != nil {
		if _, err := w.storeFile(r, res.ID, f.file); err != nil {
			return err
		}
		return r.redirect("/cases/"+id, "contact_file_added")
	}
	return r.redirect("/cases/"+id, "contact_added")
}

func (w *Console) customerPage(r *req) error {
	ctx := r.c.UserContext()
	cust, err := w.d.API.Cases.GetCustomer(ctx, r.c.Params("id"))
	if err != nil {
		return err
	}
	r.readID = cust.ID
	list, _, err := w.d.API.Cases.ListCustomerCases(ctx, cust.ID, cases.Page{Limit: 100})
	if err != nil {
		return err
	}
	if err := r.audit("customer.cases", "customer", cust.ID, nil); err != nil {
		return err
	}
	return r.render("customer", cust.Name, map[string]any{"Customer": cust, "Cases": list, "CanWrite": r.ses.User.Role.Allows(auth.CaseWrite)})
}

// downloadAttachment streams an attachment as a download (never inline:
// a stored HTML or SVG file must not run as a page of this origin).
func (w *Console) downloadAttachment(r *req) error {
	att := w.d.API.Attachments
	if att == nil {
		return fiber.ErrNotFound
	}
	ctx := r.c.UserContext()
	meta, err := att.Meta(ctx, r.c.Params("id"))
	if err != nil {
		return err
	}
	_, rc, err := att.OpenRange(ctx, meta.ID, 0, meta.Size)
	if err != nil {
		return err
	}
	r.readID = meta.ID
	r.c.Set("Content-Disposition", "attachment; filename*=UTF-8''"+url.PathEscape(meta.Filename))
	r.c.Set(fiber.HeaderContentType, "application/octet-stream")
	r.c.Set("X-Content-Type-Options", "nosniff")
	return r.c.SendStream(rc, int(meta.Size))
}
