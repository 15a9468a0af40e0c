package backup

// Tables exposes the dump's table list to the schema test.
func Tables() map[string][]string {
	out := map[string][]string{}
	for _, t := range tables {
		out[t.Name] = t.Columns
	}
	return out
}
