package backup

import "github.com/casevault/casevault/sqlstore"

// table describes one table of the logical dump. Columns are listed
// explicitly (never SELECT *): a migration that adds a column must add it
// here too, and TestTablesMatchSchema fails until it does, so a backup can
// never silently drop data.
type table struct {
	Name    string
	Columns []string
	// Bools are stored as INTEGER 0/1 on SQLite and BOOLEAN on PostgreSQL;
	// the dump writes JSON true/false so either engine can read it back.
	Bools []string
	// Order makes dumps of equal content byte-identical (digests compare).
	Order string
	// Singleton tables get their rows from the migrations; a restore
	// replaces those rows instead of adding to them.
	Singleton bool
	// Escrowed names a column the dump writes as null: its values live in
	// the key escrow (escrow.go), which erasure reaches, not in immutable
	// backup data.
	Escrowed string
}

// tables in restore order: parents before the rows that reference them.
// The outbox is not backed up (the index is rebuilt after a restore) and
// neither is the backup bookkeeping itself, nor retention's hold_recording
// and hold_changes (a restored hold re-records its scope on its next
// report; see retention/holditems.go).
var tables = []table{
	{Name: "customers", Columns: []string{"id", "external_ref", "name", "email", "phone", "locale", "consent_location", "consent_marketing", "consent_personalization", "created_at", "updated_at", "email_hash", "phone_hash"},
		Bools: []string{"consent_location", "consent_marketing", "consent_personalization"}, Order: "id"},
	{Name: "counters", Columns: []string{"name", "value"}, Order: "name", Singleton: true},
	{Name: "cases", Columns: []string{"id", "number", "customer_id", "subject", "status", "priority", "channel", "tags", "assignee", "created_at", "updated_at", "closed_at"}, Order: "id"},
	// The contacts table's columns are the store's (sqlstore owns that
	// table's shape; see sqlstore.ContactColumns).
	{Name: "contacts", Columns: sqlstore.ContactColumns(), Order: "id"},
	{Name: "attachments", Columns: []string{"id", "contact_id", "case_id", "customer_id", "filename", "content_type", "size", "sha256", "blob_key", "created_at", "stored_sha256"}, Order: "id"},
	{Name: "tokens", Columns: []string{"id", "name", "role", "hash", "created_at", "revoked_at"}, Order: "id"},
	{Name: "saved_searches", Columns: []string{"id", "owner", "name", "q", "filters", "created_at"}, Order: "id"},
	// Console users (their sessions are not backed up: a restore signs
	// everyone out).
	{Name: "users", Columns: []string{"id", "name", "role", "password_hash", "time_zone", "failed_logins", "locked_until", "created_at", "updated_at", "disabled_at"}, Order: "id"},
	// Their OpenID Connect links (issue 18).
	{Name: "user_identities", Columns: []string{"issuer", "subject", "user_id", "created_at", "last_seen_at"}, Order: "issuer, subject"},
	// The wrapped data keys are kept in the key escrow, not in the dump
	// (escrow.go: erasure must reach every backup copy of a key).
	{Name: "customer_keys", Columns: []string{"customer_id", "wrapped_key", "created_at", "destroyed_at"}, Order: "customer_id", Escrowed: escrowColumn},
	{Name: "audit_events", Columns: []string{"seq", "at", "actor_id", "actor_name", "role", "action", "target_type", "target_id", "request_id", "client_ip", "outcome", "detail", "prev_hash", "hash"}, Order: "seq"},
	{Name: "audit_head", Columns: []string{"id", "seq", "hash", "checkpoint_seq", "checkpoint_hash", "checkpoint_at"}, Order: "id", Singleton: true},
	// Events committed but not yet sequenced (issue 19): the restored
	// server's sequencer chains them.
	{Name: "audit_pending", Columns: []string{"id", "at", "actor_id", "actor_name", "role", "action", "target_type", "target_id", "request_id", "client_ip", "outcome", "detail"}, Order: "id"},
	{Name: "retention_schedules", Columns: []string{"version", "document", "created_at", "actor"}, Order: "version"},
	{Name: "retention_state", Columns: []string{"id", "holds_version", "recomputed_version"}, Order: "id", Singleton: true},
	{Name: "legal_holds", Columns: []string{"id", "matter", "reason", "scope", "placed_by", "placed_at", "released_by", "released_at", "release_reason", "grace_until", "reinstated_by", "reinstated_at", "flags_cleared_at"}, Order: "id"},
	{Name: "dispositions", Columns: []string{"id", "run_id", "contact_id", "case_id", "customer_id", "purposes", "rule", "action", "detail", "at", "content_sha256", "blob_keys", "blobs_gone_at", "reversed_at", "reversed_by"}, Order: "id"},
	{Name: "retention_runs", Columns: []string{"id", "status", "dry_run", "started_at", "finished_at", "report"}, Bools: []string{"dry_run"}, Order: "id"},
	{Name: "hold_items", Columns: []string{"hold_id", "case_id", "contact_id", "customer_id", "since", "why"}, Order: "hold_id, case_id, contact_id"},
	{Name: "case_history", Columns: []string{"id", "case_id", "at", "actor_name", "actor_role", "changes"}, Order: "id"},
	{Name: "exports", Columns: []string{"id", "hold_id", "format", "status", "created_by", "created_at", "finished_at", "expires_at", "items_total", "items_done", "bytes_total", "bytes_done", "size", "sha256", "error", "summary", "scope", "lease_until"}, Order: "id"},
}

// contentTables must be empty in a restore target: a freshly migrated
// database has none of these rows.
var contentTables = []string{"customers", "cases", "contacts", "attachments", "tokens", "users", "user_identities", "customer_keys", "audit_events", "audit_pending", "legal_holds", "dispositions", "retention_runs", "hold_items", "case_history", "exports", "saved_searches"}

func (t table) isBool(col string) bool {
	for _, b := range t.Bools {
		if b == col {
			return true
		}
	}
	return false
}

func tableByName(name string) (table, bool) {
	for _, t := range tables {
		if t.Name == name {
			return t, true
		}
	}
	return table{}, false
}
