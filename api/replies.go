package api

import (
	"time"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/search"
)

// The bodies of the answers that are not a domain type: the handlers encode
// these types and the OpenAPI document reflects them, so the two cannot
// drift apart.

type health struct {
	Status  string `json:"status"`
	Version string `json:"version"`
}

type readiness struct {
	Ready  bool                  `json:"ready"`
	Checks map[string]checkState `json:"checks"`
}

type checkState struct {
	Status string `json:"status" doc:"ok, degraded (the instance stays ready) or down"`
	Detail any    `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
}

// openAPIDocument stands for the document itself (any JSON object).
type openAPIDocument map[string]any

// createdToken is the only answer that carries a token's secret.
type createdToken struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      auth.Role `json:"role"`
	Token     string    `json:"token" doc:"The bearer secret; shown once, stored only as a hash."`
	CreatedAt time.Time `json:"created_at"`
}

// started answers a request that started a background run.
type started struct {
	ID string `json:"id"`
}

type reindexStarted struct {
	Status string `json:"status"`
}

type searchReply struct {
	Hits       []search.Hit                `json:"hits"`
	Total      int64                       `json:"total"`
	Facets     map[string]map[string]int64 `json:"facets"`
	TookMS     int64                       `json:"took_ms"`
	NextCursor *string                     `json:"next_cursor"`
}

type holdDetail struct {
	Hold            retention.Hold              `json:"hold"`
	Counts          retention.HoldCounts        `json:"counts"`
	Custodians      []retention.CustodianCounts `json:"custodians"`
	Mirroring       string                      `json:"mirroring,omitempty"`
	MirroringDetail *retention.Mirroring        `json:"mirroring_detail,omitempty"`
}

type mirrorReport struct {
	HoldID          string               `json:"hold_id"`
	Mirroring       string               `json:"mirroring"`
	MirroringDetail *retention.Mirroring `json:"mirroring_detail,omitempty"`
}

type backupList struct {
	Items      []backup.Summary `json:"items"`
	Damaged    []backup.Damaged `json:"damaged"`
	Runs       []backup.Run     `json:"runs"`
	NextCursor *string          `json:"next_cursor"`
}

// backupRun answers GET /backups/{id} while the backup is not complete.
type backupRun struct {
	ID     string     `json:"id"`
	Status string     `json:"status"`
	Run    backup.Run `json:"run"`
}
