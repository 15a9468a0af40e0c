package bleve

import (
	"context"
	"fmt"
	"regexp"
	"unicode/utf8"

	bv "github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/casevault/casevault/search"
)

var (
	_ search.CustomerFinder  = (*Engine)(nil)
	_ search.CustomerIndexer = (*Engine)(nil)
)

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

// CustomerIDsByName implements search.CustomerFinder on the customer
// index (customerindex.go): best score first, ties by customer ID, so
// consecutive windows of an unchanged index never repeat or skip one.
func (e *Engine) CustomerIDsByName(ctx context.Context, name string, offset, limit int) ([]string, error) {
	nq := e.nameQuery(name)
	if nq == nil || limit <= 0 {
		return []string{}, nil
	}
	if err := e.failed(); err != nil {
		return nil, err
	}
	req := bv.NewSearchRequestOptions(nq, limit, max(offset, 0), false)
	req.SortBy([]string{"-_score", "_id"})
	res, err := e.cust.idx.SearchInContext(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("bleve: customers: %w", err)
	}
	ids := make([]string, len(res.Hits))
	for i, h := range res.Hits {
		ids[i] = h.ID
	}
	return ids, nil
}
