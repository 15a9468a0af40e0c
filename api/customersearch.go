package api

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
)

// CustomerSearch is the Searcher the server and the console are given when
// customers can be found (issue 15 §4, issue 16 §2): it answers searches
// through Searcher and resolves what an agent types after customer: (and
// in GET /customers?q=) into customer IDs. Names are sealed in the
// database, so they are matched through the index (Names); e-mail
// addresses and phone numbers exactly, through the store's keyed hashes
// (Lookup), normalised as those are.
type CustomerSearch struct {
	Searcher
	// Names finds customers by name in the index (search.Indexer).
	Names search.CustomerFinder
	// Lookup is the exact lookup (sqlstore.Store.FindCustomers); nil:
	// e-mail and phone find nobody.
	Lookup func(ctx context.Context, email, phone string) ([]cases.Customer, error)
}

// customerResolver is what RunSearch and GET /customers?q= need of the
// Searcher; a plain Searcher keeps customer: an exact customer-ID filter.
type customerResolver interface {
	ResolveCustomer(ctx context.Context, term string) ([]string, error)
	// CustomerWindow is ResolveCustomer's list from offset on, at most
	// limit long, for the pages of GET /customers?q=.
	CustomerWindow(ctx context.Context, term string, offset, limit int) ([]string, error)
}

// maxCustomersPerTerm bounds the customers one customer: term (or q) can
// stand for: the IDs become a filter, and a term that matches more people
// than a page shows is one to narrow.
const maxCustomersPerTerm = 100

// maxCustomerTerm bounds a customer term or q (an e-mail is at most 320
// bytes; names are far shorter).
const maxCustomerTerm = 320

// emailShaped and phoneShaped say how a term is looked up: an e-mail and a
// phone number only exactly (a name search for "alice@example.com" would
// find every Alice), anything else by name.
func emailShaped(term string) bool { return strings.Contains(term, "@") }

func phoneShaped(term string) bool {
	digits := 0
	for _, r := range term {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case strings.ContainsRune("+-(). ", r):
		default:
			return false
		}
	}
	return digits >= 5
}

// ResolveCustomer returns the IDs of up to maxCustomersPerTerm customers
// term stands for, best first: an e-mail address or a phone number by
// exact lookup, anything else by name through the index. The term itself
// is not included (the caller keeps it as an ID).
func (cs CustomerSearch) ResolveCustomer(ctx context.Context, term string) ([]string, error) {
	return cs.CustomerWindow(ctx, term, 0, maxCustomersPerTerm)
}

// CustomerWindow returns the customers term stands for from offset on, at
// most limit of them, in ResolveCustomer's order: by name, the index's
// window (best match first, ties by ID: every customer once across
// consecutive windows); by e-mail or phone, the exact lookup's (at most
// 100, oldest ID first), cut.
func (cs CustomerSearch) CustomerWindow(ctx context.Context, term string, offset, limit int) ([]string, error) {
	term = strings.TrimSpace(term)
	offset = max(offset, 0)
	var found []cases.Customer
	var err error
	switch {
	case term == "":
		return nil, nil
	case emailShaped(term):
		if cs.Lookup != nil {
			found, err = cs.Lookup(ctx, term, "")
		}
	case phoneShaped(term):
		if cs.Lookup != nil {
			found, err = cs.Lookup(ctx, "", term)
		}
	default:
		if cs.Names == nil {
			return nil, nil
		}
		ids, err := cs.Names.CustomerIDsByName(ctx, term, offset, limit)
		if err != nil {
			return nil, fmt.Errorf("find customers by name: %w", err)
		}
		return ids, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find customers: %w", err)
	}
	ids := make([]string, 0, len(found))
	for _, c := range found {
		ids = append(ids, c.ID)
	}
	return window(ids, offset, limit), nil
}

// window is s[offset:offset+limit], cut to what s holds.
func window[T any](s []T, offset, limit int) []T {
	lo := min(max(offset, 0), len(s))
	return s[lo:min(lo+max(limit, 0), len(s))]
}

// resolveCustomers replaces every customer: value of q (in its filter, its
// negated terms and its groups, at any depth) by itself (an ID, as
// customer: always matched) plus the IDs of the customers it names.
// customer_id= parameters are not q's and stay exact IDs.
func resolveCustomers(ctx context.Context, r customerResolver, q *search.Query) error {
	expand := func(vals []string) ([]string, error) {
		var out []string
		for _, v := range vals {
			if len(v) > maxCustomerTerm {
				return nil, &search.QueryError{Message: fmt.Sprintf("a customer: value is longer than %d bytes", maxCustomerTerm)}
			}
			ids, err := r.ResolveCustomer(ctx, v)
			if err != nil {
				return nil, err
			}
			for _, id := range append([]string{v}, ids...) {
				if !slices.Contains(out, id) {
					out = append(out, id)
				}
			}
		}
		return out, nil
	}
	var err error
	if q.Filter.CustomerIDs, err = expand(q.Filter.CustomerIDs); err != nil {
		return err
	}
	if q.Not.CustomerIDs, err = expand(q.Not.CustomerIDs); err != nil {
		return err
	}
	for gi := range q.Groups {
		for ai := range q.Groups[gi].Any {
			if err := resolveCustomers(ctx, r, &q.Groups[gi].Any[ai]); err != nil {
				return err
			}
		}
	}
	return nil
}
