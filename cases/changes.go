package cases

import "slices"

// What an update changed, for its audit event. The case fields a supervisor
// or investigator needs to reconstruct (status, assignee, priority, tags,
// subject) and the customer's consents are recorded as {"from": old, "to":
// new}; the customer's contact details (name, e-mail, phone, external
// reference, locale) only by name under "fields", so the trail, kept long
// after an erasure, does not become a second copy of them. The store calls
// these inside the update's transaction, with the row it locked and the row
// it writes.

// CaseChanges describes how cur differs from old.
func CaseChanges(old, cur Case) map[string]any {
	d := map[string]any{}
	fields := []string{}
	diff := func(name string, from, to any, same bool) {
		if !same {
			fields = append(fields, name)
			d[name] = map[string]any{"from": from, "to": to}
		}
	}
	diff("status", string(old.Status), string(cur.Status), old.Status == cur.Status)
	diff("priority", string(old.Priority), string(cur.Priority), old.Priority == cur.Priority)
	diff("assignee", old.Assignee, cur.Assignee, old.Assignee == cur.Assignee)
	diff("subject", old.Subject, cur.Subject, old.Subject == cur.Subject)
	diff("tags", nonNil(old.Tags), nonNil(cur.Tags), slices.Equal(old.Tags, cur.Tags))
	d["fields"] = fields
	return d
}

// CustomerChanges describes how cur differs from old.
func CustomerChanges(old, cur Customer) map[string]any {
	d := map[string]any{}
	fields := []string{}
	named := func(name, from, to string) {
		if from != to {
			fields = append(fields, name)
		}
	}
	named("name", old.Name, cur.Name)
	named("external_ref", old.ExternalRef, cur.ExternalRef)
	named("email", old.Email, cur.Email)
	named("phone", old.Phone, cur.Phone)
	named("locale", old.Locale, cur.Locale)
	consent := func(name string, from, to bool) {
		if from != to {
			fields = append(fields, name)
			d[name] = map[string]any{"from": from, "to": to}
		}
	}
	consent("consents.location", old.Consents.Location, cur.Consents.Location)
	consent("consents.marketing", old.Consents.Marketing, cur.Consents.Marketing)
	consent("consents.personalization", old.Consents.Personalization, cur.Consents.Personalization)
	d["fields"] = fields
	return d
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
