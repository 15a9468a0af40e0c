package meilifake

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"unicode"
)

// More of the fake Meilisearch: the routes the adapter uses for its version
// floor, settings comparison, stats, rebuild swaps and multi-search, and
// Chinese segmentation the way Meilisearch does it.

func (f *Server) deleteIndex(w http.ResponseWriter, uid string) {
	f.enqueue(w, uid, "indexDeletion", map[string]any{"deletedDocuments": nil}, func() *APIErr {
		if f.Indexes[uid] == nil {
			return NewAPIErr("index_not_found", "invalid_request", "Index `"+uid+"` not found.")
		}
		delete(f.Indexes, uid)
		return nil
	})
}

func (f *Server) stats(w http.ResponseWriter, uid string) {
	idx := f.Indexes[uid]
	if idx == nil {
		writeJSON(w, 404, NewAPIErr("index_not_found", "invalid_request", "Index `"+uid+"` not found."))
		return
	}
	fields := map[string]int{}
	for _, d := range idx.Docs {
		for k := range d {
			fields[k]++
		}
	}
	writeJSON(w, 200, map[string]any{
		"numberOfDocuments": len(idx.Docs), "indexSize": 0, "usedIndexSize": 0, "rawDocumentDbSize": 0,
		"avgDocumentSize": 0, "isIndexing": false, "fieldDistribution": fields,
		"numberOfEmbeddings": 0, "numberOfEmbeddedDocuments": 0,
	})
}

// getSettings answers the settings the index has; settings never set are
// left out (Meilisearch would show its defaults, which the adapter does not
// compare).
func (f *Server) getSettings(w http.ResponseWriter, uid string) {
	idx := f.Indexes[uid]
	if idx == nil {
		writeJSON(w, 404, NewAPIErr("index_not_found", "invalid_request", "Index `"+uid+"` not found."))
		return
	}
	out := map[string]json.RawMessage{}
	for k, v := range idx.Settings {
		out[k] = v
	}
	// Meilisearch answers sortableAttributes sorted, whatever the order set.
	if raw, ok := out["sortableAttributes"]; ok {
		var l []string
		_ = json.Unmarshal(raw, &l)
		sort.Strings(l)
		out["sortableAttributes"], _ = json.Marshal(l)
	}
	writeJSON(w, 200, out)
}

func (f *Server) swapIndexes(w http.ResponseWriter, body []byte) {
	var req []struct {
		Indexes []string `json:"indexes"`
		Rename  bool     `json:"rename"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, 400, NewAPIErr("bad_request", "invalid_request", err.Error()))
		return
	}
	f.enqueue(w, "", "indexSwap", map[string]any{"swaps": req}, func() *APIErr {
		for _, s := range req {
			a, b := f.Indexes[s.Indexes[0]], f.Indexes[s.Indexes[1]]
			if a == nil || b == nil {
				return NewAPIErr("index_not_found", "invalid_request", "Indexes `"+strings.Join(s.Indexes, "`, `")+"` not found.")
			}
			a.UID, b.UID = b.UID, a.UID
			f.Indexes[a.UID], f.Indexes[b.UID] = a, b
		}
		return nil
	})
}

func (f *Server) multiSearch(w http.ResponseWriter, body []byte) {
	var req struct {
		Queries []json.RawMessage `json:"queries"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, 400, NewAPIErr("bad_request", "invalid_request", err.Error()))
		return
	}
	results := []map[string]any{}
	for _, raw := range req.Queries {
		var q searchReq
		var uid struct {
			IndexUID string `json:"indexUid"`
		}
		if err := json.Unmarshal(raw, &q); err != nil {
			writeJSON(w, 400, NewAPIErr("bad_request", "invalid_request", err.Error()))
			return
		}
		_ = json.Unmarshal(raw, &uid)
		resp, status, aerr := f.searchLocked(uid.IndexUID, q)
		if aerr != nil {
			writeJSON(w, status, aerr)
			return
		}
		resp["indexUid"] = uid.IndexUID
		results = append(results, resp)
	}
	writeJSON(w, 200, map[string]any{"results": results})
}

// chineseDict is the fake's word list for Chinese segmentation: forward
// maximum matching over it reproduces what Meilisearch's jieba segmenter
// does to the support phrases in the conformance suite — 没收到 is 没收 +
// 到 ("confiscate" + particle), 银行卡号码 is 银行卡 + 号码, 信用卡被盗刷
// is 信用卡 + 被盗 + 刷 — so a word that jieba does not cut out (收到,
// 卡号, 盗刷) is not found by its own tokens.
var chineseDict = map[string]bool{
	"没收": true, "收到": true, "银行": true, "银行卡": true, "卡号": true, "号码": true,
	"信用": true, "信用卡": true, "被盗": true, "退款": true, "客户": true, "你好": true,
}

const maxDictWord = 3 // runes

// segmentHan cuts a run of ideographs into words, longest dictionary word
// first, single ideographs otherwise.
func segmentHan(run []rune) []string {
	var out []string
	for i := 0; i < len(run); {
		n := 1
		for l := min(maxDictWord, len(run)-i); l > 1; l-- {
			if chineseDict[string(run[i:i+l])] {
				n = l
				break
			}
		}
		out = append(out, string(run[i:i+n]))
		i += n
	}
	return out
}

func isHan(r rune) bool { return unicode.Is(unicode.Han, r) }
