package bleve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	bv "github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/document"
	index "github.com/blevesearch/bleve_index_api"

	"github.com/casevault/casevault/search"
)

// The customer index (issue 16 §2): one document per named customer, whose
// ID is the customer's and whose only fields are the name's tokens (fName,
// fNameCJK, analyzed as in case documents). It is a Bleve index of its own
// beside the case index, customers_vN beside cases_vN, built, activated and
// dropped with it: in the case index, customer documents would match every
// query that starts from all documents (filters alone, negations) and
// every query and count would have to exclude them. It is small (one short
// document per customer), so CustomerIDsByName uses Bleve's own top-N
// search, sorted by score then ID for a stable order across pages.

const custPrefix = "customers_v"

var custDirRE = regexp.MustCompile(`^customers_v([0-9]+)$`)

// custName is the customer index paired with the case index name.
func custName(name string) string { return custPrefix + strings.TrimPrefix(name, indexPrefix) }

// custIndex is the customer index of an Engine.
type custIndex struct {
	idx bv.Index
	mu  sync.Mutex // serializes writes (IndexCustomers, DeleteCustomers)
}

// openCustomers opens the customer index paired with the case index name,
// creating it empty when it does not exist (a case index of mapping 5 or
// older has none; it is outdated and rebuilt, and answers customer
// searches with nothing meanwhile).
func openCustomers(dir, name string) (*custIndex, error) {
	path := filepath.Join(dir, custName(name))
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return createCustomers(dir, name)
	}
	idx, err := bv.OpenUsing(path, map[string]interface{}{"bolt_timeout": "3s"})
	if err != nil {
		return nil, fmt.Errorf("bleve: open %s: %w", custName(name), err)
	}
	return &custIndex{idx: idx}, nil
}

// createCustomers creates the customer index paired with name, replacing
// any leftover of an interrupted build.
func createCustomers(dir, name string) (*custIndex, error) {
	path := filepath.Join(dir, custName(name))
	if err := os.RemoveAll(path); err != nil {
		return nil, fmt.Errorf("bleve: %w", err)
	}
	m, err := newMapping()
	if err != nil {
		return nil, err
	}
	idx, err := bv.New(path, m)
	if err != nil {
		return nil, fmt.Errorf("bleve: create %s: %w", custName(name), err)
	}
	return &custIndex{idx: idx}, nil
}

func (c *custIndex) close() error {
	if err := c.idx.Close(); err != nil && !errors.Is(err, bv.ErrorIndexClosed) {
		return fmt.Errorf("bleve: customers: %w", err)
	}
	return nil
}

// customerDocument lays a customer out: the name's non-CJK tokens and CJK
// bigrams in the fields nameQuery searches.
func (e *Engine) customerDocument(c search.CustomerDoc) *document.Document {
	text := newDocText(e.text, e.stems)
	text.add(0, c.Name)
	d := document.NewDocument(c.CustomerID)
	d.AddField(text.field(fName, sideLatin, index.IndexField))
	d.AddField(text.field(fNameCJK, sideCJK, index.IndexField))
	return d
}

// IndexCustomers implements search.CustomerIndexer.
func (e *Engine) IndexCustomers(ctx context.Context, docs []search.CustomerDoc) error {
	if len(docs) == 0 {
		return nil
	}
	b := e.cust.idx.NewBatch()
	for _, c := range docs {
		if c.CustomerID == "" {
			return errors.New("bleve: index customers: customer without ID")
		}
		if c.Name == "" {
			b.Delete(c.CustomerID)
			continue
		}
		if err := b.IndexAdvanced(e.customerDocument(c)); err != nil {
			return fmt.Errorf("bleve: index customer %s: %w", c.CustomerID, err)
		}
	}
	return e.applyCustomers(ctx, b)
}

// DeleteCustomers implements search.CustomerIndexer.
func (e *Engine) DeleteCustomers(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	b := e.cust.idx.NewBatch()
	for _, id := range ids {
		b.Delete(id)
	}
	return e.applyCustomers(ctx, b)
}

// applyCustomers executes a batch on the customer index; on a live index
// it waits until the batch is persisted, as apply does for cases (an
// erasure confirmed to the feed must not come back after a crash).
func (e *Engine) applyCustomers(ctx context.Context, b *bv.Batch) error {
	if err := e.failed(); err != nil {
		return err
	}
	e.cust.mu.Lock()
	defer e.cust.mu.Unlock()
	if !e.durable.Load() {
		if err := e.cust.idx.Batch(b); err != nil {
			return fmt.Errorf("bleve: customers: batch: %w", err)
		}
		return nil
	}
	return e.persist(ctx, e.cust.idx, "customers: ", b)
}

// flushCustomers persists everything written to the customer index (an
// empty durable batch: persisted callbacks fire in order), for Activate.
func (e *Engine) flushCustomers(ctx context.Context) error {
	e.cust.mu.Lock()
	defer e.cust.mu.Unlock()
	b := e.cust.idx.NewBatch()
	b.SetInternal([]byte(mappingKey), []byte(fmt.Sprint(e.version)))
	return e.persist(ctx, e.cust.idx, "customers: ", b)
}

// dropCustomers closes the customer index and deletes it.
func (e *Engine) dropCustomers() error {
	cerr := e.cust.close()
	if err := os.RemoveAll(filepath.Join(e.dir, custName(e.name))); err != nil {
		return fmt.Errorf("bleve: drop %s: %w", custName(e.name), err)
	}
	return cerr
}

// CountCustomers reports how many customer documents the index holds.
func (e *Engine) CountCustomers() (int64, error) {
	n, err := e.cust.idx.DocCount()
	if err != nil {
		return 0, fmt.Errorf("bleve: customers: %w", err)
	}
	return int64(n), nil
}
