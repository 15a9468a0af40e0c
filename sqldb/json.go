package sqldb

import (
	"encoding/json"
	"fmt"
)

// JSONText is the stored form of a list or small document column: JSON
// text in both dialects (see Micros for timestamps). It panics when v does
// not marshal, which only a programming error can cause: callers pass
// their own slices, maps and structs.
func JSONText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("sqldb: marshal %T: %v", v, err))
	}
	return string(b)
}
