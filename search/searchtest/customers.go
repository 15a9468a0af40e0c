package searchtest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/casevault/casevault/search"
)

// testCustomers (issue 16 §2): customers are found by name in any script,
// with the typo tolerance and CJK substring rules of free words, through
// search.CustomerFinder on their customer documents (search.CustomerIndexer;
// names only: a word of a subject or body finds no customer), with or
// without a case, and free text finds a case by its customer's name.
// Customer documents are never case hits. A renamed customer is found by
// the new name only, an erased one (cases and customer document deleted)
// no more; windows of a name page through every match once.
func testCustomers(t *testing.T, newEngine func(t *testing.T) search.Engine, timeout time.Duration) {
	ctx := t.Context()
	eng := newEngine(t)
	t.Cleanup(func() { _ = eng.Close() })
	f, ok := eng.(search.CustomerFinder)
	if !ok {
		t.Fatalf("engine %s does not implement search.CustomerFinder", eng.Name())
	}
	ci, ok := eng.(search.CustomerIndexer)
	if !ok {
		t.Fatalf("engine %s does not implement search.CustomerIndexer", eng.Name())
	}
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	mk := func(id, customer, name, body string) search.CaseDoc {
		return search.CaseDoc{CaseID: id, Number: int64(len(id)), CustomerID: customer, CustomerName: name,
			Subject: "customer case " + id, Status: "open", Priority: "normal", Channel: "email", CreatedAt: at, UpdatedAt: at,
			Contacts: []search.ContactDoc{{ID: id + "-c", Channel: "email", Direction: "inbound", Author: "customer",
				Body: body, OccurredAt: at, Purposes: []string{"customer_service"}}}}
	}
	docs := []search.CaseDoc{
		mk("k1", "cus-zhang", "张伟 Zhang Wei", "refund for the broken kettle"),
		mk("k2", "cus-olga", "Ольга Смирнова", "delivery was late"),
		mk("k3", "cus-muller", "Jürgen Müller", "invoice question"),
		mk("k4", "cus-anna", "Annabelle Fontaine", "refund please"),
		mk("k5", "cus-anna", "Annabelle Fontaine", "password reset"),
		mk("k6", "cus-wang", "王小明", "账户安全 问题"),
		mk("k7", "cus-none", "", "Fontaine is the street name"),
	}
	if err := eng.Index(ctx, docs); err != nil {
		t.Fatal(err)
	}
	customers := []search.CustomerDoc{
		{CustomerID: "cus-zhang", Name: "张伟 Zhang Wei"}, {CustomerID: "cus-olga", Name: "Ольга Смирнова"},
		{CustomerID: "cus-muller", Name: "Jürgen Müller"}, {CustomerID: "cus-anna", Name: "Annabelle Fontaine"},
		{CustomerID: "cus-wang", Name: "王小明"},
		// no case: found by name all the same
		{CustomerID: "cus-casper", Name: "Casper Kastner"}, {CustomerID: "cus-li", Name: "李静"},
		// no name (an anonymization pseudonym): no document
		{CustomerID: "cus-none", Name: ""},
	}
	for i := range 5 {
		customers = append(customers, search.CustomerDoc{CustomerID: fmt.Sprintf("cus-lee%d", i), Name: fmt.Sprintf("Leeroy %c", 'A'+i)})
	}
	for i := range customers {
		customers[i].Rev = 1
	}
	if err := ci.IndexCustomers(ctx, customers); err != nil {
		t.Fatal(err)
	}
	byName := func(name string, want ...string) func() error {
		return func() error {
			got, err := f.CustomerIDsByName(ctx, name, 0, 10)
			if err != nil {
				return err
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				return fmt.Errorf("CustomerIDsByName(%q) = %v, want %v", name, got, want)
			}
			return nil
		}
	}
	for _, tt := range []struct {
		name string
		want []string
	}{
		{"Zhang", []string{"cus-zhang"}},
		{"zhang wei", []string{"cus-zhang"}},
		{"张伟", []string{"cus-zhang"}},
		{"伟", []string{"cus-zhang"}},
		{"小明", []string{"cus-wang"}},
		{"王", []string{"cus-wang"}},
		{"Смирнова", []string{"cus-olga"}},
		{"смирнова", []string{"cus-olga"}},
		{"Смирнов", []string{"cus-olga"}},  // one typo at 7 letters
		{"MÜLLER", []string{"cus-muller"}}, // case folded
		{"Fontane", []string{"cus-anna"}},  // one typo; the body's "Fontaine" is not a name
		{"Annabele", []string{"cus-anna"}}, // one typo at 8 letters
		{"Zhang Olga", nil},                // every word must match the same name
		{"refund", nil},                    // bodies are not names
		{"customer", nil},                  // nor subjects
		{"Wie", nil},                       // short words are exact
		{"账户", nil},                        // a body's Chinese is not a name
		{"ann", nil},                       // no prefix match
		{"Casper", []string{"cus-casper"}}, // no case
		{"Kastnr", []string{"cus-casper"}}, // one typo at 6 letters
		{"静", []string{"cus-li"}},          // no case, Chinese by substring
	} {
		t.Run("name "+tt.name, func(t *testing.T) {
			eventually(t, timeout, "customers by name", byName(tt.name, tt.want...))
		})
	}
	t.Run("limit", func(t *testing.T) {
		eventually(t, timeout, "limit", func() error {
			got, err := f.CustomerIDsByName(ctx, "Annabelle", 0, 1)
			if err != nil || len(got) != 1 || got[0] != "cus-anna" {
				return fmt.Errorf("got %v, %v; want [cus-anna]", got, err)
			}
			return nil
		})
	})
	for _, tt := range []struct {
		q    string
		want []string
	}{
		{"Смирнова", []string{"k2"}},
		{"zhang refund", []string{"k1"}},
		{"张伟", []string{"k1"}},
		{"Fontaine", []string{"k4", "k5", "k7"}},
		{"Fontaine refund", []string{"k4"}},
		{"Müller -status:closed", []string{"k3"}},
	} {
		t.Run("free text "+tt.q, func(t *testing.T) {
			q, err := search.ParseQuery(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			findExactly(t, ctx, eng, timeout, q, tt.want...)
		})
	}
	t.Run("pages", func(t *testing.T) {
		eventually(t, timeout, "pages", func() error {
			var all []string
			for off := 0; off < 8; off += 2 {
				got, err := f.CustomerIDsByName(ctx, "Leeroy", off, 2)
				if err != nil {
					return err
				}
				if want := min(2, max(5-off, 0)); len(got) != want {
					return fmt.Errorf("window at %d: %v, want %d customers", off, got, want)
				}
				all = append(all, got...)
			}
			slices.Sort(all)
			if want := []string{"cus-lee0", "cus-lee1", "cus-lee2", "cus-lee3", "cus-lee4"}; !slices.Equal(all, want) {
				return fmt.Errorf("windows hold %v, want each of %v once", all, want)
			}
			return nil
		})
	})
	t.Run("customer documents are no case hits", func(t *testing.T) {
		for _, q := range []search.Query{
			{Words: []string{"Casper"}},
			{Words: []string{"Leeroy"}},
			{Not: search.Filter{Tags: []string{"nothing"}}},
			{Filter: search.Filter{CustomerIDs: []string{"cus-casper"}}},
		} {
			want := []string{}
			if len(q.Not.Tags) > 0 {
				want = []string{"k1", "k2", "k3", "k4", "k5", "k6", "k7"}
			}
			findExactly(t, ctx, eng, timeout, q, want...)
		}
	})
	t.Run("unnamed customers have no document", func(t *testing.T) {
		if err := ci.IndexCustomers(ctx, []search.CustomerDoc{{CustomerID: "cus-lee4", Name: "", Rev: 2}}); err != nil {
			t.Fatal(err)
		}
		eventually(t, timeout, "unnamed", byName("Leeroy", "cus-lee0", "cus-lee1", "cus-lee2", "cus-lee3"))
	})
	t.Run("renamed and erased", func(t *testing.T) {
		renamed := mk("k2", "cus-olga", "Olga Ivanova", "delivery was late")
		renamed.Rev = 2
		if err := eng.Index(ctx, []search.CaseDoc{renamed}); err != nil {
			t.Fatal(err)
		}
		if err := ci.IndexCustomers(ctx, []search.CustomerDoc{{CustomerID: "cus-olga", Name: "Olga Ivanova", Rev: 2}}); err != nil {
			t.Fatal(err)
		}
		// erasure: the cases go, and the customer document
		if err := eng.Delete(ctx, []string{"k3"}); err != nil {
			t.Fatal(err)
		}
		if err := ci.DeleteCustomers(ctx, []string{"cus-muller", "cus-casper", "cus-unknown"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, timeout, "new name", byName("Ivanova", "cus-olga"))
		eventually(t, timeout, "old name", byName("Смирнова"))
		eventually(t, timeout, "erased customer", byName("Müller"))
		eventually(t, timeout, "erased caseless customer", byName("Casper"))
		q, err := search.ParseQuery("Müller")
		if err != nil {
			t.Fatal(err)
		}
		findExactly(t, ctx, eng, timeout, q)
	})
}
