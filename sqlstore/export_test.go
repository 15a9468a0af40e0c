package sqlstore

// ExpiringQuery is the sweep's expiry selection, for its query plan test.
const ExpiringQuery = expiringQuery
