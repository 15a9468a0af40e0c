package cases

import "slices"

// maskFields masks payment and identity numbers in each short text field in
// place (case subject, contact author, labels, tags) and returns how many
// numbers it masked. Every free-text field goes through it before it is
// stored, indexed or audited: a card number typed into a subject is as
// sensitive as one in a body.
func maskFields(fields ...*string) int {
	n := 0
	for _, f := range fields {
		if f == nil {
			continue
		}
		var k int
		*f, k = MaskSensitive(*f)
		n += k
	}
	return n
}

// maskTags masks every tag and drops the duplicates masking can make (two
// cards ending in the same four digits).
func maskTags(tags []string) []string {
	out := tags[:0]
	for _, t := range tags {
		t, _ = MaskSensitive(t)
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}
