package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/casevault/casevault/cases"
)

// The string walk costs a second tokenization of every JSON body; compare it
// with the decode it follows (a typical 2 KB contact).
func benchBody() []byte {
	b, _ := json.Marshal(map[string]any{"channel": "email", "direction": "inbound", "author": "Li Wei",
		"body": strings.Repeat("我的订单还没有到，请帮我查一下。The parcel is late. ", 30), "purposes": []string{"customer_service"},
		"location": map[string]any{"lat": 31.2, "lon": 121.5, "label": "Shanghai"}})
	return b
}

func BenchmarkDecodeContact(b *testing.B) {
	body := benchBody()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var in cases.NewContact
		if err := json.Unmarshal(body, &in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckJSONStrings(b *testing.B) {
	body := benchBody()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := checkJSONStrings(body); err != nil {
			b.Fatal(err)
		}
	}
}
