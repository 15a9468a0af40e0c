package searchtest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
)

// Vocabulary of the generated bodies. Every pair of words is at least three
// edits apart and none is a prefix of another, so typo tolerance and
// prefix search cannot blur which word a document holds (checked by
// checkVocabulary).
var vocabulary = []string{
	"refund", "invoice", "delivery", "password", "shipment", "warranty",
	"complaint", "subscription", "installation", "replacement", "cancellation",
	"verification", "damaged", "payment", "address", "broken", "charger",
	"printer", "laptop", "monitor", "router", "battery", "voucher", "coupon",
	"mobile", "cable", "screen", "login", "transfer", "balance",
	"receipt", "parcel", "courier", "card", "bank", "lost", "late", "help",
	"slow", "weekend", "yesterday", "manager", "question", "wrong",
}

// commonWord is in nearly every subject, for paging a ranked query deep.
const commonWord = "request"

// chinesePhrases appear whole in some bodies; the suite searches for their
// first two characters (阅读 must find 阅读记录).
var chinesePhrases = []string{"阅读记录", "退款申请", "账户安全", "物流信息", "发票问题"}

var tagValues = []string{"vip", "billing", "follow-up", "escalated", "legal"}

var assigneeValues = []string{"ann", "bob", "chen wei", ""}

// Special cases the suite looks up by customer ID.
const (
	snippetCustomer = `cus-snippet`
	snippetBody     = `<script>alert(1)</script> refund & "quotes"`
	maskedCustomer  = `cus-masked`
	maskedBody      = `card ************1234 paid twice`
	maskedOriginal  = `4111111111111234`
	quoteCustomer   = `cus-"quoted" \ (x) OR status:open`
	quoteTag        = `tag"with\quote`
)

// corpus is the generated data set plus a reference model of it.
type corpus struct {
	cases []search.CaseDoc
	byID  map[string]*search.CaseDoc
}

// generate builds n cases with 0–4 contacts each (seeded, so a failure
// reproduces), plus the special cases.
func generate(seed uint64, n int) *corpus {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	words := func(min, max int) string {
		k := min + rng.IntN(max-min+1)
		parts := make([]string, 0, k+2)
		for range k {
			w := pick(vocabulary)
			if rng.IntN(8) == 0 {
				w = strings.ToUpper(w[:1]) + w[1:]
			}
			parts = append(parts, w)
		}
		if rng.IntN(3) == 0 {
			parts = append(parts, pick(chinesePhrases)+"。")
		}
		if rng.IntN(6) == 0 {
			parts = append(parts, fmt.Sprintf("ref %d,", rng.IntN(100000)))
		}
		rng.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
		return strings.Join(parts, " ")
	}
	c := &corpus{byID: make(map[string]*search.CaseDoc)}
	for i := range n {
		created := base.Add(time.Duration(rng.IntN(300*24)) * time.Hour).Add(time.Duration(i) * time.Microsecond)
		cd := search.CaseDoc{
			CaseID:     fmt.Sprintf("case-%05d", i),
			Number:     int64(i + 1),
			CustomerID: fmt.Sprintf("cus-%03d", rng.IntN(150)),
			Subject:    words(1, 4),
			Status:     string(cases.Statuses[rng.IntN(len(cases.Statuses))]),
			Priority:   string(cases.Priorities[rng.IntN(len(cases.Priorities))]),
			Channel:    string(cases.Channels[rng.IntN(len(cases.Channels))]),
			Assignee:   pick(assigneeValues),
			CreatedAt:  created,
		}
		if rng.IntN(20) != 0 {
			cd.Subject = commonWord + " " + cd.Subject
		}
		for range rng.IntN(3) {
			if t := pick(tagValues); !slices.Contains(cd.Tags, t) {
				cd.Tags = append(cd.Tags, t)
			}
		}
		nContacts := rng.IntN(5) // 0..4; about a fifth of the cases have none
		last := created
		for j := range nContacts {
			at := created.Add(time.Duration(rng.IntN(20*24*60)) * time.Minute).Add(time.Duration(j+1) * 10 * time.Nanosecond * 100)
			ct := search.ContactDoc{
				ID:         fmt.Sprintf("ct-%05d-%d", i, j),
				Channel:    string(cases.Channels[rng.IntN(len(cases.Channels))]),
				Direction:  string(cases.Directions[rng.IntN(len(cases.Directions))]),
				Author:     pick([]string{"customer", "ann", "bob"}),
				Body:       words(3, 25),
				OccurredAt: at.Truncate(time.Microsecond),
			}
			for range 1 + rng.IntN(2) {
				if p := string(cases.Purposes[rng.IntN(len(cases.Purposes))]); !slices.Contains(ct.Purposes, p) {
					ct.Purposes = append(ct.Purposes, p)
				}
			}
			if at.After(last) {
				last = at
			}
			cd.Contacts = append(cd.Contacts, ct)
		}
		cd.UpdatedAt = last.Add(time.Duration(rng.IntN(1000)) * time.Minute).Add(time.Duration(i) * time.Microsecond).Truncate(time.Microsecond)
		c.cases = append(c.cases, cd)
	}
	special := func(id, customer, body string, tags ...string) {
		at := base.Add(-time.Duration(len(c.cases)) * time.Hour)
		c.cases = append(c.cases, search.CaseDoc{
			CaseID: id, Number: int64(len(c.cases) + 1), CustomerID: customer, Subject: "special",
			Status: "open", Priority: "normal", Channel: "email", Tags: tags,
			CreatedAt: at, UpdatedAt: at,
			Contacts: []search.ContactDoc{{
				ID: id + "-c", Channel: "email", Direction: "inbound", Author: "customer", Body: body,
				OccurredAt: at, Purposes: []string{"customer_service"},
			}},
		})
	}
	special("case-snippet", snippetCustomer, snippetBody)
	special("case-masked", maskedCustomer, maskedBody)
	special("case-quoted", quoteCustomer, "special quoted", quoteTag)
	for i := range c.cases {
		c.byID[c.cases[i].CaseID] = &c.cases[i]
	}
	return c
}

// tokens splits text the way both engines do for Latin script: lower-cased
// runs of letters and digits.
func tokens(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// typos counts like Meilisearch: edit distance, where a wrong first
// character costs two.
func typos(a, b string) int {
	d := levenshtein(a, b)
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 0 && len(rb) > 0 && ra[0] != rb[0] {
		d++
	}
	return d
}

// allowedTypos is the Meilisearch default both engines follow.
func allowedTypos(word string) int {
	switch n := len([]rune(word)); {
	case n >= 9:
		return 2
	case n >= 5:
		return 1
	}
	return 0
}

func isCJK(s string) bool {
	for _, r := range s {
		if unicode.Is(unicode.Han, r) {
			return true
		}
	}
	return false
}

// unit is what one engine document holds: the case fields with one contact
// (or none, for a case without contacts).
type unit struct {
	c  *search.CaseDoc
	ct *search.ContactDoc
}

func (u unit) texts() []string {
	// the customer's name is text too (issue 16 §2)
	if u.ct == nil {
		return []string{u.c.Subject, u.c.CustomerName}
	}
	return []string{u.c.Subject, u.ct.Body, u.c.CustomerName}
}

func (u unit) hasWord(w string, fuzzy bool) bool {
	if isCJK(w) {
		for _, t := range u.texts() {
			if strings.Contains(t, w) {
				return true
			}
		}
		return false
	}
	for _, wt := range tokens(w) {
		allowed := 0
		if fuzzy {
			allowed = allowedTypos(wt)
		}
		found := false
		for _, t := range u.texts() {
			for _, tok := range tokens(t) {
				if tok == wt || allowed > 0 && typos(tok, wt) <= allowed {
					found = true
				}
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// searchable reports whether text has anything an engine indexes.
func searchable(s string) bool { return isCJK(s) || len(tokens(s)) > 0 }

func (u unit) hasPhrase(p string) bool {
	if isCJK(p) {
		return u.hasWord(p, false)
	}
	want := tokens(p)
	for _, t := range u.texts() {
		toks := tokens(t)
		for i := 0; i+len(want) <= len(toks); i++ {
			if slices.Equal(toks[i:i+len(want)], want) {
				return true
			}
		}
	}
	return false
}

func oneOf(vals []string, v string) bool { return len(vals) == 0 || slices.Contains(vals, v) }

func anyOf(vals, have []string) bool {
	if len(vals) == 0 {
		return true
	}
	for _, v := range have {
		if slices.Contains(vals, v) {
			return true
		}
	}
	return false
}

// noneOf reports whether have holds none of vals (an empty vals excludes
// nothing).
func noneOf(vals, have []string) bool {
	for _, v := range have {
		if slices.Contains(vals, v) {
			return false
		}
	}
	return true
}

// folded compares keyword values as engines do: case-folded on both sides.
func folded(vals []string) []string { return search.FoldKeywords(vals) }

func (u unit) assignee() []string {
	if u.c.Assignee == "" {
		return nil
	}
	return []string{search.FoldKeyword(u.c.Assignee)}
}

func (u unit) contactValues() (channel, purposes []string) {
	if u.ct == nil {
		return nil, nil
	}
	return []string{u.ct.Channel}, u.ct.Purposes
}

func (u unit) matchesFilter(f search.Filter) bool {
	c := u.c
	if !oneOf(f.Statuses, c.Status) || !oneOf(f.Priorities, c.Priority) || !oneOf(f.CustomerIDs, c.CustomerID) ||
		!anyOf(folded(f.Assignees), u.assignee()) || !anyOf(folded(f.Tags), folded(c.Tags)) ||
		!oneOf(f.CaseIDs, c.CaseID) || len(f.Numbers) > 0 && !slices.Contains(f.Numbers, c.Number) {
		return false
	}
	if !f.UpdatedFrom.IsZero() && c.UpdatedAt.Before(f.UpdatedFrom) || !f.UpdatedTo.IsZero() && !c.UpdatedAt.Before(f.UpdatedTo) {
		return false
	}
	if len(f.Channels) > 0 || len(f.Purposes) > 0 || !f.From.IsZero() || !f.To.IsZero() {
		if u.ct == nil {
			return false
		}
		if !oneOf(f.Channels, u.ct.Channel) || !anyOf(f.Purposes, u.ct.Purposes) {
			return false
		}
		if !f.From.IsZero() && u.ct.OccurredAt.Before(f.From) || !f.To.IsZero() && !u.ct.OccurredAt.Before(f.To) {
			return false
		}
	}
	return true
}

// matchesNot reports whether the unit has none of a negated filter's
// values (a case without contacts has no channel or purpose to exclude).
func (u unit) matchesNot(f search.Filter) bool {
	c := u.c
	chans, purps := u.contactValues()
	if slices.Contains(f.Numbers, c.Number) {
		return false
	}
	return noneOf(f.Statuses, []string{c.Status}) && noneOf(f.Priorities, []string{c.Priority}) &&
		noneOf(f.CustomerIDs, []string{c.CustomerID}) && noneOf(folded(f.Assignees), u.assignee()) &&
		noneOf(folded(f.Tags), folded(c.Tags)) && noneOf(f.CaseIDs, []string{c.CaseID}) &&
		noneOf(f.Channels, chans) && noneOf(f.Purposes, purps)
}

func (u unit) matches(q search.Query) bool { return u.matchesIn(q, false) }

// matchesIn is matches inside a negated group when negated is set: words
// are then exact, as Excluded words are.
func (u unit) matchesIn(q search.Query, negated bool) bool {
	if !u.matchesFilter(q.Filter) || !u.matchesNot(q.Not) {
		return false
	}
	for _, w := range q.Words {
		if searchable(w) && !u.hasWord(w, !negated) {
			return false
		}
	}
	for _, p := range q.Phrases {
		if searchable(p) && !u.hasPhrase(p) {
			return false
		}
	}
	for _, x := range q.Excluded {
		if searchable(x) && u.hasPhrase(x) {
			return false
		}
	}
	for _, g := range q.Groups {
		hit := false
		for _, a := range g.Any {
			if u.matchesIn(a, negated || g.Negated) {
				hit = true
				break
			}
		}
		if hit == g.Negated {
			return false
		}
	}
	return true
}

func (u unit) sortAt() time.Time {
	if u.ct == nil {
		return u.c.CreatedAt
	}
	return u.ct.OccurredAt
}

// expected is the model's answer: matching cases with their matching units.
type expected struct {
	ids    []string // in the query's order when it is a date sort, else sorted by ID
	units  map[string][]unit
	facets map[string]map[string]int64
}

func (c *corpus) expect(q search.Query) expected {
	ex := expected{units: make(map[string][]unit), facets: map[string]map[string]int64{
		"status": {}, "channel": {}, "tag": {}, "purpose": {},
	}}
	for i := range c.cases {
		cd := &c.cases[i]
		var us []unit
		if len(cd.Contacts) == 0 {
			us = []unit{{c: cd}}
		} else {
			for j := range cd.Contacts {
				us = append(us, unit{c: cd, ct: &cd.Contacts[j]})
			}
		}
		var matched []unit
		for _, u := range us {
			if u.matches(q) {
				matched = append(matched, u)
			}
		}
		if len(matched) == 0 {
			continue
		}
		ex.ids = append(ex.ids, cd.CaseID)
		ex.units[cd.CaseID] = matched
		ex.facets["status"][cd.Status]++
		for _, t := range folded(cd.Tags) {
			ex.facets["tag"][t]++
		}
		chans, purps := map[string]bool{}, map[string]bool{}
		for _, u := range matched {
			if u.ct != nil {
				chans[u.ct.Channel] = true
				for _, p := range u.ct.Purposes {
					purps[p] = true
				}
			}
		}
		for ch := range chans {
			ex.facets["channel"][ch]++
		}
		for p := range purps {
			ex.facets["purpose"][p]++
		}
	}
	// Facets are disjunctive within a field: a field's counts come from
	// the query without that field's (top-level) filter.
	for _, f := range []struct {
		key   string
		clear func(*search.Filter) bool
	}{
		{"status", func(f *search.Filter) bool { had := len(f.Statuses) > 0; f.Statuses = nil; return had }},
		{"channel", func(f *search.Filter) bool { had := len(f.Channels) > 0; f.Channels = nil; return had }},
		{"tag", func(f *search.Filter) bool { had := len(f.Tags) > 0; f.Tags = nil; return had }},
		{"purpose", func(f *search.Filter) bool { had := len(f.Purposes) > 0; f.Purposes = nil; return had }},
	} {
		q2 := q
		if f.clear(&q2.Filter) {
			ex.facets[f.key] = c.expect(q2).facets[f.key]
		}
	}
	key := func(id string) time.Time {
		us := ex.units[id]
		t := us[0].sortAt()
		for _, u := range us[1:] {
			if q.Sort == search.SortOldest && u.sortAt().Before(t) || q.Sort != search.SortOldest && u.sortAt().After(t) {
				t = u.sortAt()
			}
		}
		return t
	}
	sortBy := q.Sort
	if sortBy == search.SortRelevance && !q.HasText() {
		sortBy = search.SortNewest
	}
	switch sortBy {
	case search.SortNewest:
		slices.SortFunc(ex.ids, func(a, b string) int { return key(b).Compare(key(a)) })
	case search.SortOldest:
		slices.SortFunc(ex.ids, func(a, b string) int { return key(a).Compare(key(b)) })
	case search.SortUpdated:
		slices.SortFunc(ex.ids, func(a, b string) int { return c.byID[b].UpdatedAt.Compare(c.byID[a].UpdatedAt) })
	default:
		slices.Sort(ex.ids)
	}
	return ex
}
