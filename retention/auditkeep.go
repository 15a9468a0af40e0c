package retention

import "time"

// auditKeepCond names the audit events about a legal hold in force (not
// released, or released and still in its grace: the same test as
// Holds.active) and about what such a hold has covered as recorded in
// hold_items: its cases, their contacts and attachments, and its
// customers. It is a condition on audit_events rows (issue 21 §12).
const auditKeepCond = `EXISTS (SELECT 1 FROM legal_holds h WHERE (h.released_at IS NULL OR h.grace_until > ?) AND (
  (audit_events.target_type = 'hold' AND audit_events.target_id = h.id)
  OR EXISTS (SELECT 1 FROM hold_items i WHERE i.hold_id = h.id AND (
       (audit_events.target_type = 'case' AND i.case_id = audit_events.target_id)
    OR (audit_events.target_type = 'customer' AND i.customer_id = audit_events.target_id)
    OR (audit_events.target_type = 'contact' AND (i.contact_id = audit_events.target_id
         OR (i.contact_id = '' AND i.case_id IN (SELECT c.case_id FROM contacts c WHERE c.id = audit_events.target_id))))
    OR (audit_events.target_type = 'attachment' AND i.case_id IN (SELECT a.case_id FROM attachments a WHERE a.id = audit_events.target_id))))))`

// AuditKeep is the audit trail's keep rule (audit.WithKeep): while a hold
// is in force, the events about it and about what it covers are not
// pruned, so the history of held evidence is preserved with it.
func AuditKeep(now time.Time) (string, []any) {
	return auditKeepCond, []any{now.UnixMicro()}
}
