package bleve

// Stats exposes Bleve's index statistics to the benchmark.
func (e *Engine) Stats() map[string]any { return e.idx.StatsMap() }
