// Package audit keeps casevault's append-only, hash-chained audit trail.
//
// # What is recorded
//
// One Event for every API call that reads or changes personal data
// (customers, cases, contacts, attachments, search with the query text and
// the number of hits), every authentication or authorization failure, every
// token, retention-schedule, hold, backup, restore and sweep action, and CLI
// actions (ActorID ActorCLI) and scheduled work (ActorID ActorSystem).
// Detail is a JSON object of ids, counts and query text only: never secrets
// and never message bodies. Keys that name one (token, password, secret,
// body, authorization, ...; see secretKeys) are rejected with ErrSecret, and
// a Detail over MaxDetailBytes is truncated (long strings cut, "truncated":
// true), never refused.
//
// # Durability
//
// A change appends its event with AppendTx (or Log.Change) inside its own
// write transaction, so both commit or neither does. A read or a failure is
// recorded with Log.Record, which returns only after the commit; concurrent
// Record calls share commits (group commit) but none returns before its
// batch committed. Log.Prepare (at start-up) lets appends skip parsing SQL.
//
// Denied events are the exception: Record stores the first per source,
// action and actor of a window (a minute) that way, and counts the repeats
// into one event with detail.count, written when the window ends or at
// Close (denials.go), so nobody can flood the trail.
//
// # The chain
//
// Events are numbered 1, 2, 3, ... (seq, assigned under the lock, never by
// the database, so a deletion leaves a gap). Each event stores PrevHash, the
// hash of the event before it (GenesisHash for the first event, the
// checkpoint hash after pruning), and Hash = SHA-256 (hex) over its canonical
// encoding: the tag "casevault.audit.v1\n", seq and time (Unix microseconds)
// as 8-byte big-endian integers, then actor id, actor name, role, action,
// target type, target id, request id, client IP, outcome, detail and prev
// hash, each as a 4-byte big-endian length and its bytes. Detail is stored
// and hashed as canonical JSON (keys sorted, no insignificant space, numbers
// as written), in a TEXT column so no engine reformats it. Because seq is
// hashed, swapping or renumbering rows breaks the hashes too.
//
// The one-row table audit_head holds the last seq and hash (appending never
// scans) and the checkpoint. Appends serialize on it: on PostgreSQL the row
// is locked FOR UPDATE until commit, so several replicas writing at once
// still build one chain; on SQLite the write transaction (BEGIN IMMEDIATE)
// holds the database write lock anyway.
//
// Verify walks the chain in one read snapshot, streaming, and reports the
// first seq that does not verify (see Log.Verify for what it detects). A
// hash chain without a key detects edits made without recomputing every
// later hash; VerifyResult.HeadHash, kept outside the database, also exposes
// wholesale rewrites and truncation. Export writes NDJSON carrying seq,
// prev_hash and hash, and VerifyExport checks such a file offline.
//
// # Retention
//
// The trail is kept for DefaultRetention (two years, purpose "security",
// WithRetention to change). Prune removes the oldest events in bounded
// steps, moves the checkpoint to the last removed event and appends an
// ActionPrune event recording it, so the remaining chain verifies, an edited
// checkpoint is detected, and tampered events are never pruned away.
package audit
