package search

import (
	"errors"
	"time"
)

// The change feed: every write appends a row to the store's outbox in its
// own transaction, and the store gives each row a position that only grows
// in commit order. Every index is a consumer with a cursor of its own (a
// replica's embedded index; a shared Meilisearch index is one consumer,
// written by the one replica that holds its lease), so each index sees
// every change, and rows are pruned only once every registered consumer
// has passed them.

// Consumer kinds.
const (
	// ConsumerEmbedded is an index only its own process writes and reads
	// (Bleve under the data directory).
	ConsumerEmbedded = "embedded"
	// ConsumerShared is one index every replica reads and one elected
	// replica writes (Meilisearch).
	ConsumerShared = "shared"
)

// ErrLeaseLost is returned when a consumer's cursor is moved by a process
// that no longer holds its lease: another replica writes that index now.
var ErrLeaseLost = errors.New("search: feed consumer lease lost")

// Claim registers a consumer or renews it: this process (Owner) takes or
// keeps the consumer's lease for TTL when it is free, expired or already
// its own.
type Claim struct {
	ID    string
	Kind  string
	Owner string
	TTL   time.Duration
	Now   time.Time
	// MustRebuild stores position -1 with the lease: the caller knows its
	// index cannot be trusted, and it stays so, across restarts, until a
	// rebuild moves the cursor.
	MustRebuild bool
}

// Consumer is one index's place in the feed, as the store keeps it.
type Consumer struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Position: every change at or below it is in the index. -1: the index
	// must be rebuilt before it can be trusted (registered after rows were
	// pruned, or expired while away).
	Position   int64      `json:"position"`
	Owner      string     `json:"owner,omitempty"`
	LeaseUntil *time.Time `json:"lease_until,omitempty"`
	SeenAt     time.Time  `json:"seen_at"`
	Expired    bool       `json:"expired"`
	// Pending is how many changes the index has not applied (head minus
	// position; every change, when it must rebuild).
	Pending int64 `json:"pending"`
	// LagSeconds is the age of the oldest change it has not applied.
	LagSeconds  float64 `json:"lag_seconds"`
	MustRebuild bool    `json:"must_rebuild"`
}

// FeedStatus is the feed as a whole: its head, how far it was pruned, and
// every registered consumer with its lag.
type FeedStatus struct {
	Head          int64      `json:"head"`
	PrunedThrough int64      `json:"pruned_through"`
	Consumers     []Consumer `json:"consumers"`
}
