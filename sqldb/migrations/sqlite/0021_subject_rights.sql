-- Issue 15 §3: a correction (rectification) is a new contact, an
-- annotation that names the contact it corrects. Contacts stay immutable;
-- the link is read both ways (corrects, corrected_by) through this column.
ALTER TABLE contacts ADD COLUMN corrects TEXT;
CREATE INDEX contacts_corrects ON contacts(corrects) WHERE corrects IS NOT NULL;

-- The customer_profile rule: when did a customer's last case go (the
-- latest disposition naming the customer).
CREATE INDEX dispositions_customer ON dispositions(customer_id, at);
