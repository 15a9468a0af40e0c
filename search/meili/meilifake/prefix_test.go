package meilifake

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestPrefixSearch: Meilisearch matches the last word of q as a prefix,
// typos included, unless prefixSearch is "disabled"; it never stems.
func TestPrefixSearch(t *testing.T) {
	f := New(t)
	for _, tt := range []struct {
		setting string // "" leaves the default (indexingTime)
		q       string
		want    []string
	}{
		{"", "refund", []string{"1", "2", "3"}},
		{"", "ref", []string{"1", "2", "3"}},
		{"", "refin", []string{"1", "2", "3"}},             // a typo in the prefix
		{"", "charge refund", []string{"1"}},               // the last word is a prefix
		{"", "charge dup", []string{"1"}},                  // dup: prefix of duplicate
		{"", "dup charge", nil},                            // an earlier word is not a prefix
		{"", "refunded", []string{"1"}},                    // no stems
		{"", `"ref"`, nil},                                 // a phrase is exact
		{`"indexingTime"`, "ref", []string{"1", "2", "3"}}, // explicit default
		{`"disabled"`, "ref", nil},                         // only whole words
		{`"disabled"`, "refund", []string{"2", "3"}},       // refunds is one typo away, refunded two
		{`"disabled"`, "charge refund", nil},
	} {
		t.Run(tt.setting+" "+tt.q, func(t *testing.T) {
			ix := NewIndex("p", "id")
			if tt.setting != "" {
				ix.Settings["prefixSearch"] = json.RawMessage(tt.setting)
			}
			for id, body := range map[string]string{"1": "Refunded the duplicate charge", "2": "refund asked", "3": "refunds dup"} {
				ix.Docs[id] = map[string]any{"id": id, "body": body}
				ix.Order = append(ix.Order, id)
			}
			slices.Sort(ix.Order)
			f.Indexes = map[string]*Index{"p": ix}

			q := tt.q
			resp, _, apiErr := f.searchLocked("p", searchReq{Q: &q})
			if apiErr != nil {
				t.Fatal(apiErr)
			}
			var got []string
			for _, h := range resp["hits"].([]map[string]any) {
				got = append(got, h["id"].(string))
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("q %q: got %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}
