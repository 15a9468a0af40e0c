package search

import "testing"

func TestQueryWindow(t *testing.T) {
	for _, tt := range []struct {
		name string
		q    Query
		want Window
	}{
		{"defaults without text", Query{}, Window{Sort: SortNewest, Limit: DefaultLimit}},
		{"relevance kept with a word", Query{Words: []string{"refund"}}, Window{Sort: SortRelevance, Limit: DefaultLimit}},
		{"relevance kept with a phrase", Query{Phrases: []string{"late fee"}}, Window{Sort: SortRelevance, Limit: DefaultLimit}},
		{"exclusions alone are no text", Query{Excluded: []string{"spam"}}, Window{Sort: SortNewest, Limit: DefaultLimit}},
		{"explicit order kept", Query{Sort: SortOldest, Limit: 5, Offset: 10}, Window{Sort: SortOldest, Offset: 10, Limit: 5}},
		{"updated kept", Query{Sort: SortUpdated}, Window{Sort: SortUpdated, Limit: DefaultLimit}},
		{"negative limit", Query{Limit: -3}, Window{Sort: SortNewest, Limit: DefaultLimit}},
		{"limit capped", Query{Limit: MaxLimit + 1}, Window{Sort: SortNewest, Limit: MaxLimit}},
		{"limit at the cap", Query{Limit: MaxLimit}, Window{Sort: SortNewest, Limit: MaxLimit}},
		{"negative offset", Query{Offset: -1}, Window{Sort: SortNewest, Limit: DefaultLimit}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.q.Window()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("Window() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestQueryWindowRejectsUnknownSort(t *testing.T) {
	if _, err := (Query{Sort: "random"}).Window(); err == nil {
		t.Fatal("unknown sort accepted")
	}
}
