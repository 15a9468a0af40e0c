package bleve

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/casevault/casevault/search"
)

var _ search.CustomerFinder = (*Engine)(nil)

// nameQuery matches every token of name in the customer-name fields, with
// the same rules as free words (typo tolerance by length with the first
// character kept; CJK bigrams exactly, a lone CJK character inside any
// bigram). nil: name has no searchable token.
func (e *Engine) nameQuery(name string) query.Query {
	toks := e.text.Analyze([]byte(name))
	per := make([]query.Query, 0, len(toks))
	for _, t := range toks {
		term := string(t.Term)
		switch {
		case hasCJKBytes(t.Term) && utf8.RuneCountInString(term) == 1:
			c := regexp.QuoteMeta(term)
			rq := query.NewRegexpQuery(c + ".?|." + c)
			rq.SetField(fNameCJK)
			per = append(per, rq)
		case hasCJKBytes(t.Term):
			tq := query.NewTermQuery(term)
			tq.SetField(fNameCJK)
			per = append(per, tq)
		default:
			switch f := fuzziness(term); f {
			case 0:
				tq := query.NewTermQuery(term)
				tq.SetField(fName)
				per = append(per, tq)
			case 1:
				per = append(per, fuzzyQuery(term, fName, 1, 1))
			default:
				per = append(per, disjunction([]query.Query{fuzzyQuery(term, fName, 2, 1), fuzzyQuery(term, fName, 1, 0)}))
			}
		}
	}
	if len(per) == 0 {
		return nil
	}
	return conjunction(per)
}

// CustomerIDsByName implements search.CustomerFinder: it walks the
// documents whose customer name matches and keeps each customer's best
// score (a customer's name is on every document of their cases).
func (e *Engine) CustomerIDsByName(ctx context.Context, name string, limit int) ([]string, error) {
	nq := e.nameQuery(name)
	if nq == nil || limit <= 0 {
		return []string{}, nil
	}
	r, err := e.reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	dvr, err := r.DocValueReader([]string{fCustomer})
	if err != nil {
		return nil, fmt.Errorf("bleve: customers: %w", err)
	}
	best := map[string]float64{}
	err = each(ctx, r, e.m, nq, true, func(m matchInfo) error {
		var id string
		if err := dvr.VisitDocValues(m.id, func(_ string, term []byte) { id = string(term) }); err != nil {
			return fmt.Errorf("bleve: customers: %w", err)
		}
		if s, ok := best[id]; id != "" && (!ok || m.score > s) {
			best[id] = m.score
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(best))
	for id := range best {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		return cmp.Or(cmp.Compare(best[b], best[a]), cmp.Compare(a, b))
	})
	return ids[:min(limit, len(ids))], nil
}
