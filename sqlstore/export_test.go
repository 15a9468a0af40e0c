package sqlstore

// ExpiringQuery is the sweep's expiry selection, for its query plan test.
const ExpiringQuery = expiringQuery

// EmailHashForBench is the stored e-mail hash (a benchmark inserts rows
// directly).
func EmailHashForBench(f *Fields, email string) any { return f.emailHash(email) }
