package main

import (
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
)

// newFlagMirror builds the mirror of legal holds onto the attachment
// bucket's S3 legal-hold flags (lh from legalHolder; nil for local blobs,
// whose holds then report mirroring "unavailable"). Flag changes are
// audited in the transaction that records them.
func newFlagMirror(db *sqldb.DB, holds *retention.Holds, lh retention.LegalHolder, sink auditSink) *retention.FlagMirror {
	return retention.NewFlagMirror(db, holds, retention.FlagMirrorOptions{Flags: lh, OnChange: sink.hook})
}
