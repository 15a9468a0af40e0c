package sqlstore

// ExpiringQuery is the sweep's expiry selection, for its query plan test.
const ExpiringQuery = expiringQuery

// EmailHashForBench is the stored e-mail hash (a benchmark inserts rows
// directly).
func EmailHashForBench(f *Fields, email string) any { return f.emailHash(email) }

// QueuedContacts is how many contact writes wait for a batch (a test
// forms a batch deterministically by holding one open).
func QueuedContacts(s *Store) int {
	s.contacts.mu.Lock()
	defer s.contacts.mu.Unlock()
	return len(s.contacts.queue)
}
