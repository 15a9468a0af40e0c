package meili

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/meilisearch/meilisearch-go"

	"github.com/casevault/casevault/search"
)

// The customer index (issue 16 §2): one document per named customer in an
// index of its own, customers_vN beside cases_vN (and customers_vN_build_…
// beside a build's cases index), created, swapped and deleted with the case
// index. In the case index a customer document would be a hit of every
// free-text search that matches the name and of every filter-only search;
// apart, case searches are unchanged and CustomerIDsByName searches
// customers only, one hit each, whether or not they have a case.

// The customer-name attributes (document.CustomerName, CustomerNameCJK,
// and the customer documents' own).
const (
	attrName    = "customer_name"
	attrNameCJK = "customer_name_cjk"
	// attrCustID is the customer document's plain customer ID: its ranking
	// rule orders equally relevant customers by ID (stable pages).
	attrCustID = "customer_id"
)

var (
	_ search.CustomerFinder  = (*Engine)(nil)
	_ search.CustomerIndexer = (*Engine)(nil)
)

// customerDocument is what the customer index stores.
type customerDocument struct {
	ID         string `json:"id"`
	CustomerID string `json:"customer_id"`
	Name       string `json:"customer_name"`
	NameCJK    string `json:"customer_name_cjk,omitempty"` // bigrams, as in case documents (cjk.go)
	Rev        int64  `json:"rev"`
}

// custUID is the customer index paired with a case index uid.
func custUID(uid string) string { return "customers" + strings.TrimPrefix(uid, "cases") }

func (e *Engine) customers() meilisearch.IndexManager {
	return e.client.Index(custUID(e.IndexName()))
}

// customerDocID is a customer's document id: the ID itself when Meilisearch
// accepts it (UUIDs), else its hash (docID).
func customerDocID(id string) string { return docID("cu", id, 0) }

// customerSettings are the customer index's settings: the name attributes
// searchable, the word rules of the case index (no prefix search, the same
// typo tolerance), ties ordered by customer ID.
func customerSettings() *meilisearch.Settings {
	prefixSearch := "disabled"
	cs := indexSettings()
	return &meilisearch.Settings{
		RankingRules:         []string{"words", "typo", "proximity", "attribute", "exactness", attrCustID + ":asc"},
		SearchableAttributes: []string{attrName, attrNameCJK},
		FilterableAttributes: []string{},
		SortableAttributes:   []string{attrCustID},
		PrefixSearch:         &prefixSearch,
		TypoTolerance:        cs.TypoTolerance,
		Pagination:           cs.Pagination,
	}
}

// ensureCustomers makes sure the customer index beside the case index
// exists with its settings (Open). A missing one is created; if the case
// index already held documents, the engine then reports Created so the
// indexer rebuilds (an index of version 5 or older has no customer index).
// One with documents and other settings is refused, as for cases.
func (e *Engine) ensureCustomers(ctx context.Context) error {
	uid := custUID(e.uid)
	cctx, cancel := e.call(ctx)
	_, err := e.client.GetIndex(cctx, uid)
	cancel()
	switch {
	case err == nil:
	case hasCode(err, meilisearch.APIErrCodeIndexNotFound):
		if err := e.createCustomers(ctx); err != nil {
			return err
		}
		e.created = true
		return nil
	default:
		return wrap("get index "+uid, err)
	}
	same, err := e.settingsOf(ctx, uid, customerSettings())
	if err != nil || same {
		return err
	}
	cctx, cancel = e.call(ctx)
	st, err := e.client.Index(uid).GetStats(cctx, nil)
	cancel()
	if err != nil {
		return wrap("stats", err)
	}
	if st.NumberOfDocuments > 0 {
		return fmt.Errorf("meili: index %s has other settings than this casevault uses; "+
			"raise the index version (--meili-index-version / CASEVAULT_MEILI_INDEX_VERSION) to build a new index", uid)
	}
	return e.customerSettingsApply(ctx, uid)
}

// createCustomers creates the customer index beside e.uid.
func (e *Engine) createCustomers(ctx context.Context) error {
	uid := custUID(e.uid)
	cctx, cancel := e.call(ctx)
	t, err := e.client.CreateIndex(cctx, &meilisearch.IndexConfig{Uid: uid, PrimaryKey: primaryKey})
	cancel()
	err = e.wait(ctx, "create index "+uid, t, err)
	var me *Error
	if err != nil && !(errors.As(err, &me) && me.Code == string(meilisearch.APIErrCodeIndexAlreadyExists)) {
		return err
	}
	return e.customerSettingsApply(ctx, uid)
}

func (e *Engine) customerSettingsApply(ctx context.Context, uid string) error {
	cctx, cancel := e.call(ctx)
	t, err := e.client.Index(uid).UpdateSettings(cctx, customerSettings())
	cancel()
	return e.wait(ctx, "update settings "+uid, t, err)
}

// settingsOf compares an index's settings with want, as settingsMatch
// does for the case index.
func (e *Engine) settingsOf(ctx context.Context, uid string, want *meilisearch.Settings) (bool, error) {
	cctx, cancel := e.call(ctx)
	defer cancel()
	raw, err := e.client.Index(uid).GetSettings(cctx)
	if err != nil {
		return false, wrap("get settings", err)
	}
	got, err := settingsMap(raw)
	if err != nil {
		return false, err
	}
	w, err := settingsMap(want)
	if err != nil {
		return false, err
	}
	for k, v := range w {
		if !reflect.DeepEqual(normalizeSetting(k, got[k]), normalizeSetting(k, v)) {
			return false, nil
		}
	}
	return true, nil
}

// IndexCustomers implements search.CustomerIndexer: one addition of every
// named customer's document (replacing the one held, by id), one deletion
// of the unnamed ones'.
func (e *Engine) IndexCustomers(ctx context.Context, docs []search.CustomerDoc) error {
	if len(docs) == 0 {
		return nil
	}
	var add []customerDocument
	var unnamed []string
	for _, c := range docs {
		switch {
		case c.CustomerID == "":
			return errors.New("meili: index customers: customer without ID")
		case c.Name == "":
			unnamed = append(unnamed, c.CustomerID)
		default:
			add = append(add, customerDocument{ID: customerDocID(c.CustomerID), CustomerID: c.CustomerID,
				Name: c.Name, NameCJK: cjkField(c.Name), Rev: c.Rev})
		}
	}
	if err := e.ready(ctx); err != nil {
		return err
	}
	for chunk := range slices.Chunk(add, 1000) {
		pk := primaryKey
		cctx, cancel := e.call(ctx)
		t, err := e.customers().AddDocuments(cctx, chunk, &meilisearch.DocumentOptions{PrimaryKey: &pk})
		cancel()
		if err := e.wait(ctx, "add customers", t, err); err != nil {
			return err
		}
	}
	return e.deleteCustomers(ctx, unnamed)
}

// DeleteCustomers implements search.CustomerIndexer.
func (e *Engine) DeleteCustomers(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := e.ready(ctx); err != nil {
		return err
	}
	return e.deleteCustomers(ctx, ids)
}

func (e *Engine) deleteCustomers(ctx context.Context, ids []string) error {
	for chunk := range slices.Chunk(ids, 1000) {
		docIDs := make([]string, len(chunk))
		for i, id := range chunk {
			docIDs[i] = customerDocID(id)
		}
		cctx, cancel := e.call(ctx)
		t, err := e.customers().DeleteDocuments(cctx, docIDs, nil)
		cancel()
		if err := e.wait(ctx, "delete customers", t, err); err != nil {
			return err
		}
	}
	return nil
}

// CustomerIDsByName implements search.CustomerFinder with one search of
// the customer index whose q is the name as free text would send it (CJK
// runs as phrases of their bigrams), every word required, best first and
// ties by customer ID (the index's last ranking rule).
func (e *Engine) CustomerIDsByName(ctx context.Context, name string, offset, limit int) ([]string, error) {
	// each word a term of its own, as free words are
	words := strings.Fields(name)
	if len(words) == 0 || !everyTermSearchable(words, nil) || limit <= 0 {
		return []string{}, nil
	}
	text := buildTerms(words, nil, nil)
	if n := queryWords(text); n > maxQueryWords {
		return nil, &search.QueryError{Term: name, Message: fmt.Sprintf("more than %d words (Meilisearch reads only the first %d)", maxQueryWords, maxQueryWords)}
	}
	// beyond maxTotalHits Meilisearch returns nothing: the last page is
	// the one that ends there
	offset = max(offset, 0)
	if offset >= maxTotalHits {
		return []string{}, nil
	}
	req := &meilisearch.SearchRequest{
		Query:                text,
		MatchingStrategy:     meilisearch.All,
		AttributesToRetrieve: []string{attrCustID},
		Offset:               int64(offset),
		Limit:                int64(min(limit, maxTotalHits-offset)),
	}
	cctx, cancel := e.call(ctx)
	defer cancel()
	raw, err := e.customers().SearchRaw(cctx, req.Query, req)
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
