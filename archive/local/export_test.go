package local

// OnSync makes fn see every fsync of what s's unsynced views wrote ("file",
// "dir") and every blob written around the page cache ("direct"); fn may
// be called from several goroutines.
func OnSync(s *Store, fn func(kind, path string)) { s.unsynced.onSync = fn }
