package search

import (
	"context"
	"fmt"
)

// Customers in the index (issue 16 §2). Names are sealed in the database,
// so the index is the only place a name can be searched. Case documents
// carry their customer's name (free text finds a case by it), but a
// customer with no case has no case document: every engine therefore also
// keeps one customer document per named customer, apart from the case
// documents (Bleve: a second index beside the case index; Meilisearch: a
// customers_vN index beside cases_vN), which CustomerFinder searches. Case
// queries never see customer documents.
//
// The documents follow the change feed like cases do: the store appends a
// customer entry (OutboxEntry.CustomerID, no CaseID) when a customer is
// created, renamed, erased or deleted by the retention sweep, the indexer
// reloads the customer's current state (LoadCustomerDocs) and writes it, or
// deletes the document when the customer is gone. A rebuild lists every
// customer (ListCustomerIDs) after the cases.

// CustomerDoc is a customer as the index sees them: the ID and the name
// (opened by the store). A customer without a name (the pseudonym owner of
// anonymized contacts) has no document.
type CustomerDoc struct {
	CustomerID string
	Name       string
	Rev        int64 // feed position of the newest change this document reflects
}

// CustomerIndexer is implemented by every engine (the conformance suite
// requires it): it keeps the customer documents that CustomerFinder
// searches.
type CustomerIndexer interface {
	// IndexCustomers writes one document per customer, replacing the one
	// held; a doc with an empty Name deletes it.
	IndexCustomers(ctx context.Context, docs []CustomerDoc) error
	// DeleteCustomers removes the customers' documents (absent ones are no
	// error).
	DeleteCustomers(ctx context.Context, customerIDs []string) error
}

// CustomerSource is what the indexer needs of the store to keep customer
// documents: the store (sqlstore.Store) implements it beside Source. A
// Source without it leaves customer entries of the feed unapplied (test
// sources that hold no customers).
type CustomerSource interface {
	// LoadCustomerDocs loads the current name of customers; a missing ID
	// means the customer is gone (erased, deleted) and must leave the index.
	LoadCustomerDocs(ctx context.Context, customerIDs []string) (map[string]CustomerDoc, error)
	// ListCustomerIDs pages through every customer ID in ascending order,
	// after the given ID ("" for the start), for a full rebuild.
	ListCustomerIDs(ctx context.Context, after string, limit int) ([]string, error)
}

// splitCustomers separates the customer entries of a batch (CaseID "",
// CustomerID set) from the case entries, and returns each customer once.
func splitCustomers(entries []OutboxEntry) (cases []OutboxEntry, customers []string) {
	seen := map[string]bool{}
	cases = entries[:0:0]
	for _, e := range entries {
		if e.CaseID == "" && e.CustomerID != "" {
			if !seen[e.CustomerID] {
				seen[e.CustomerID] = true
				customers = append(customers, e.CustomerID)
			}
			continue
		}
		cases = append(cases, e)
	}
	return cases, customers
}

// loadCustomers loads the customers' current documents; those gone are
// returned in missing. Without a CustomerSource nothing is loaded.
func (ix *Indexer) loadCustomers(ctx context.Context, ids []string, rev int64) (present []CustomerDoc, missing []string, err error) {
	cs, ok := ix.src.(CustomerSource)
	if !ok || len(ids) == 0 {
		return nil, nil, nil
	}
	docs, err := cs.LoadCustomerDocs(ctx, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("search: load customers: %w", err)
	}
	for _, id := range ids {
		if d, ok := docs[id]; ok && d.Name != "" {
			d.Rev = rev
			present = append(present, d)
		} else {
			missing = append(missing, id)
		}
	}
	return present, missing, nil
}

// applyCustomers writes the customer documents into eng. An engine that
// keeps no customer documents is a wiring mistake (the conformance suite
// requires CustomerIndexer), reported rather than skipped: the feed would
// move past changes the engine never saw.
func applyCustomers(ctx context.Context, eng Engine, present []CustomerDoc, missing []string) error {
	if len(present) == 0 && len(missing) == 0 {
		return nil
	}
	ci, ok := eng.(CustomerIndexer)
	if !ok {
		return fmt.Errorf("search: engine %s cannot index customers", eng.Name())
	}
	if len(present) > 0 {
		if err := ci.IndexCustomers(ctx, present); err != nil {
			return fmt.Errorf("search: %s index customers: %w", eng.Name(), err)
		}
	}
	if len(missing) > 0 {
		if err := ci.DeleteCustomers(ctx, missing); err != nil {
			return fmt.Errorf("search: %s delete customers: %w", eng.Name(), err)
		}
	}
	return nil
}

// fillCustomers writes every customer into a rebuilt engine, in ID order,
// after its cases. A source without customers (CustomerSource) has none to
// write.
func (ix *Indexer) fillCustomers(ctx context.Context, eng Engine) (int, error) {
	cs, ok := ix.src.(CustomerSource)
	if !ok {
		return 0, nil
	}
	var after string
	total := 0
	for {
		ids, err := cs.ListCustomerIDs(ctx, after, ix.opts.BatchSize)
		if err != nil {
			return total, fmt.Errorf("search: reindex: list customers: %w", err)
		}
		if len(ids) == 0 {
			return total, nil
		}
		if err := ix.fillCustomerBatch(ctx, eng, ids); err != nil {
			return total, err
		}
		total += len(ids)
		after = ids[len(ids)-1]
	}
}

// fillCustomerBatch writes one rebuild batch of customers, under applyMu
// like fill: a feed batch that renames or erases one of them meanwhile is
// applied before or after it, never in between its load and its write.
func (ix *Indexer) fillCustomerBatch(ctx context.Context, eng Engine, ids []string) error {
	ix.applyMu.Lock()
	defer ix.applyMu.Unlock()
	rev, err := ix.src.FeedHead(ctx)
	if err != nil {
		return fmt.Errorf("search: reindex: %w", err)
	}
	present, _, err := ix.loadCustomers(ctx, ids, rev) // missing: gone since listed, nothing to write
	if err != nil {
		return fmt.Errorf("search: reindex: %w", err)
	}
	if len(present) == 0 {
		return nil
	}
	if err := applyCustomers(ctx, eng, present, nil); err != nil {
		return fmt.Errorf("search: reindex: %w", err)
	}
	return nil
}
