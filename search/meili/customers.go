package meili

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/meilisearch/meilisearch-go"

	"github.com/casevault/casevault/search"
)

// The customer-name attributes (document.CustomerName, CustomerNameCJK).
const (
	attrName    = "customer_name"
	attrNameCJK = "customer_name_cjk"
)

var _ search.CustomerFinder = (*Engine)(nil)

// CustomerIDsByName implements search.CustomerFinder with one search whose
// q is the name as free text would send it (CJK runs as phrases of their
// bigrams), searched on the name attributes only (attributesToSearchOn),
// one hit per customer (search-time distinct on the customer's filter
// form), best first.
func (e *Engine) CustomerIDsByName(ctx context.Context, name string, limit int) ([]string, error) {
	// each word a term of its own, as free words are
	words := strings.Fields(name)
	if len(words) == 0 || !everyTermSearchable(words, nil) || limit <= 0 {
		return []string{}, nil
	}
	text := buildTerms(words, nil, nil)
	if n := queryWords(text); n > maxQueryWords {
		return nil, &search.QueryError{Term: name, Message: fmt.Sprintf("more than %d words (Meilisearch reads only the first %d)", maxQueryWords, maxQueryWords)}
	}
	req := &meilisearch.SearchRequest{
		IndexUID:             e.IndexName(),
		Query:                text,
		MatchingStrategy:     meilisearch.All,
		AttributesToSearchOn: []string{attrName, attrNameCJK},
		AttributesToRetrieve: []string{"customer_id"},
		Distinct:             string(attrCustomerID),
		Limit:                int64(limit),
	}
	cctx, cancel := e.call(ctx)
	defer cancel()
	raw, err := e.index().SearchRaw(cctx, req.Query, req)
	if err != nil {
		return nil, wrap("customers", err)
	}
	var resp struct {
		Hits []struct {
			CustomerID string `json:"customer_id"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(*raw, &resp); err != nil {
		return nil, &Error{Op: "customers", Message: "decode response", Err: err}
	}
	ids := make([]string, 0, len(resp.Hits))
	for _, h := range resp.Hits {
		if h.CustomerID != "" {
			ids = append(ids, h.CustomerID)
		}
	}
	return ids, nil
}
