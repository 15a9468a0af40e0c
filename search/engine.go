// Package search holds the Engine interface that every search backend
// implements, the query language agents type, and the indexer that feeds an
// engine from the store's transactional outbox.
package search

import (
	"context"
	"time"
)

// CaseDoc is the unit the indexer hands to an engine: a case with its current
// contacts. Engines decide how to lay it out (one document per contact is
// the expected shape); indexing a CaseDoc replaces everything previously
// indexed for that case, so a removed contact disappears from the index.
type CaseDoc struct {
	CaseID     string
	Number     int64
	CustomerID string
	// CustomerName is the customer's name as the store opened it (names
	// are sealed in the database, so the index is the only place a name
	// can be searched). Free text matches it; CustomerFinder finds
	// customers by their customer documents (CustomerDoc). Erasing the
	// customer deletes their cases, and with them every document holding
	// the name.
	CustomerName string
	Subject      string
	Status       string
	Priority     string
	Channel      string
	Assignee     string
	Tags         []string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	Rev          int64 // feed position of the newest change this document reflects
	Contacts     []ContactDoc
}

// ContactDoc is one contact as the index sees it. Bodies are already masked
// by the store; engines never see the original payment or identity numbers.
type ContactDoc struct {
	// ID is unique across cases (the store's key of the contact): the
	// engines name a contact's document by it alone.
	ID         string
	Channel    string
	Direction  string
	Author     string
	Body       string
	OccurredAt time.Time
	Purposes   []string
}

// Engine is a search backend. Every implementation must pass the shared
// conformance suite in search/searchtest.
type Engine interface {
	// Name identifies the engine ("bleve", "meilisearch") in status output.
	Name() string
	// IndexName is the versioned index currently answering queries (cases_v1, ...).
	IndexName() string
	// Index replaces all documents of each given case. It returns only after
	// the engine confirmed the write (for Meilisearch: the task succeeded).
	Index(ctx context.Context, docs []CaseDoc) error
	// Delete removes every document of the given cases.
	Delete(ctx context.Context, caseIDs []string) error
	// Search answers a parsed query.
	Search(ctx context.Context, q Query) (Result, error)
	// Count reports how many cases are in the index.
	Count(ctx context.Context) (int64, error)
	// Ping reports whether the engine is reachable.
	Ping(ctx context.Context) error
	Close() error
}

// CustomerFinder is implemented by every engine (the conformance suite
// requires it): it finds customers by name through their customer
// documents (see customers.go), whether or not they have a case.
type CustomerFinder interface {
	// CustomerIDsByName returns the IDs of up to limit customers whose
	// name matches name as free text does (every word, typo-tolerant by
	// length, Chinese by substring), best match first, skipping the first
	// offset of them. Ties are in a fixed order (Bleve: by ID), so
	// consecutive windows of an unchanged index page through every match
	// once.
	CustomerIDsByName(ctx context.Context, name string, offset, limit int) ([]string, error)
}

// SortOrder selects hit ordering.
type SortOrder string

const (
	SortRelevance SortOrder = ""        // default
	SortNewest    SortOrder = "newest"  // contact occurred_at descending
	SortOldest    SortOrder = "oldest"  // contact occurred_at ascending
	SortUpdated   SortOrder = "updated" // case updated_at descending
)

// Filter narrows hits. Values within one field are alternatives (OR); the
// fields combine with AND. Zero values mean "no constraint".
type Filter struct {
	Statuses    []string
	Channels    []string // contact channel
	Priorities  []string
	CustomerIDs []string
	Assignees   []string
	Tags        []string
	Purposes    []string
	CaseIDs     []string
	Numbers     []int64   // case numbers (#1234, number:1234)
	From        time.Time // contact occurred_at >= From
	To          time.Time // contact occurred_at < To
	UpdatedFrom time.Time // case updated_at >= UpdatedFrom
	UpdatedTo   time.Time // case updated_at < UpdatedTo
}

// Query is a parsed search request. Engines receive user text only through
// these typed fields, never as raw filter syntax.
type Query struct {
	Words []string // free words, typo-tolerant unless Exact
	// Exact matches Words as typed (no typo tolerance), for legal holds:
	// a hold on "Lagoss" must not hold the "Lagos" case.
	Exact    bool
	Phrases  []string // exact phrases
	Excluded []string // words that must not appear
	Filter   Filter
	// Not holds negated field terms (-tag:vip, -status:open): a hit has
	// none of its values. Its date bounds are unused (the parser turns a
	// negated date term into the opposite bound).
	Not Filter
	// Groups are the parenthesised and OR-joined parts of the query: each
	// must hold, for the same contact as everything else.
	Groups []Group
	Sort   SortOrder
	Offset int
	Limit  int
	Facets bool
}

// Group is a disjunction: at least one of Any must match the contact (or,
// when Negated, none). Only the text and filters of each alternative count:
// Sort, paging and Facets belong to the top-level Query. Words inside a
// negated group are matched exactly (as Excluded words are). Alternatives
// never carry UpdatedFrom/UpdatedTo (the parser refuses updated: in a
// group): a case's updated_at is a case-level value that engines check
// after grouping contacts by case.
type Group struct {
	Any     []Query
	Negated bool
}

// Hit is one case, represented by its best-matching contact.
type Hit struct {
	CaseID     string `json:"case_id"`
	Number     int64  `json:"number"`
	Subject    string `json:"subject"`
	Status     string `json:"status"`
	CustomerID string `json:"customer_id"`
	ContactID  string `json:"contact_id"`
	Snippet    string `json:"snippet"`
	// SnippetField says where the snippet comes from: "body" (the
	// contact's text) or "subject" (the case's, when only it matched or
	// the case has no contact).
	SnippetField string  `json:"snippet_field"`
	Score        float64 `json:"score"`
}

// Result is a page of hits with the total and facet counts over all hits.
type Result struct {
	Hits   []Hit
	Total  int64
	Facets map[string]map[string]int64 // "status","channel","tag","purpose"
}
