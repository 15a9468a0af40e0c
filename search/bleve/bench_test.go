package bleve_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/search/bleve"
)

// corpusSize reads CASEVAULT_BENCH_CONTACTS (default 20,000; the full
// target is 200,000 contacts in 20,000 cases).
func corpusSize(b *testing.B) int {
	n := 20000
	if s := os.Getenv("CASEVAULT_BENCH_CONTACTS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 100 {
			b.Fatalf("CASEVAULT_BENCH_CONTACTS=%q", s)
		}
		n = v
	}
	return n
}

// benchWords is a Zipf-distributed vocabulary: real support words first
// (frequent), then generated ones, so queries hit both common and rare terms.
type benchText struct {
	words []string
	zipf  *rand.Zipf
	han   []rune
	rng   *rand.Rand
}

func newBenchText(rng *rand.Rand) *benchText {
	base := strings.Fields(`the a to and of is i my for on it you was not have with this order refund
		account card payment delivery package password login email phone please help thanks customer
		invoice charge charged twice cancel subscription address shipping late broken damaged replace
		replacement warranty return label tracking number store manager agent call back today yesterday
		week month error screen app update device battery charger printer laptop router network slow
		issue problem question answer resolved pending escalate supervisor complaint feedback balance
		transfer bank statement receipt voucher coupon discount price billing overcharged verification
		identity security locked unlock reset code message notification delivery courier parcel missing`)
	syll := []string{"ka", "lo", "mi", "ter", "van", "sol", "dre", "pin", "ex", "ra", "mon", "tu", "bel", "gor", "sha", "quin", "ul", "ost"}
	seen := map[string]bool{}
	for _, w := range base {
		seen[w] = true
	}
	words := slices.Clone(base)
	for len(words) < 8000 {
		var sb strings.Builder
		for range 2 + rng.IntN(3) {
			sb.WriteString(syll[rng.IntN(len(syll))])
		}
		if w := sb.String(); !seen[w] {
			seen[w] = true
			words = append(words, w)
		}
	}
	han := []rune("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严阅读记录退款申请账户安全物流信息发票问题客服投诉订单快递")
	return &benchText{words: words, zipf: rand.NewZipf(rng, 1.07, 2, uint64(len(words)-1)), han: han, rng: rng}
}

func (bt *benchText) english(n int) string {
	var sb strings.Builder
	for i := range n {
		if i > 0 {
			if bt.rng.IntN(12) == 0 {
				sb.WriteString(". ")
			} else {
				sb.WriteByte(' ')
			}
		}
		sb.WriteString(bt.words[bt.zipf.Uint64()])
	}
	if bt.rng.IntN(10) == 0 {
		sb.WriteString(" card ************" + strconv.Itoa(1000+bt.rng.IntN(9000)))
	}
	return sb.String()
}

func (bt *benchText) chinese(n int) string {
	var sb strings.Builder
	for i := range n {
		if i > 0 && bt.rng.IntN(15) == 0 {
			sb.WriteString("，")
		}
		// favour the first few hundred characters, like real text
		sb.WriteRune(bt.han[min(int(bt.rng.ExpFloat64()*120), len(bt.han)-1)])
	}
	return sb.String()
}

func benchCorpus(nContacts int) []search.CaseDoc {
	rng := rand.New(rand.NewPCG(7, 7))
	bt := newBenchText(rng)
	nCases := max(nContacts/10, 1)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]search.CaseDoc, nCases)
	left := nContacts
	for i := range out {
		created := base.Add(time.Duration(rng.IntN(700*24*60)) * time.Minute)
		c := search.CaseDoc{
			CaseID: fmt.Sprintf("case-%07d", i), Number: int64(i + 1), CustomerID: fmt.Sprintf("cus-%05d", rng.IntN(8000)),
			Subject:   bt.english(3 + rng.IntN(8)),
			Status:    string(cases.Statuses[rng.IntN(4)]),
			Priority:  string(cases.Priorities[rng.IntN(4)]),
			Channel:   string(cases.Channels[rng.IntN(6)]),
			Assignee:  []string{"ann", "bob", "chen", "dana", ""}[rng.IntN(5)],
			Tags:      [][]string{nil, {"vip"}, {"billing"}, {"vip", "escalated"}, {"legal"}}[rng.IntN(5)],
			CreatedAt: created, UpdatedAt: created.Add(time.Duration(rng.IntN(30*24)) * time.Hour),
		}
		n := nContacts / nCases
		if i == nCases-1 {
			n = left
		}
		left -= n
		chinese := rng.IntN(5) == 0
		for j := range n {
			body := ""
			if chinese {
				body = bt.chinese(20 + rng.IntN(150))
			} else {
				body = bt.english(15 + rng.IntN(120))
			}
			c.Contacts = append(c.Contacts, search.ContactDoc{
				ID: fmt.Sprintf("ct-%07d-%02d", i, j), Channel: string(cases.Channels[rng.IntN(6)]),
				Direction: "inbound", Author: "customer", Body: body,
				OccurredAt: created.Add(time.Duration(j*37+rng.IntN(30)) * time.Minute),
				Purposes:   []string{string(cases.Purposes[rng.IntN(len(cases.Purposes))])},
			})
		}
		out[i] = c
	}
	return out
}

func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func typo(rng *rand.Rand, w string) string {
	r := []rune(w)
	if len(r) < 5 {
		return w
	}
	i := 1 + rng.IntN(len(r)-1)
	r[i] = 'x'
	return string(r)
}

// BenchmarkCorpus indexes a generated corpus (see corpusSize), then runs
// 1–3 word queries (some with a typo, some Chinese) with two filters and
// facets, reporting indexing rate, p50/p99 latency, index size and peak RSS.
//
//	CASEVAULT_BENCH_CONTACTS=200000 go test -run '^$' -bench Corpus -benchtime 2000x ./search/bleve/
func BenchmarkCorpus(b *testing.B) {
	nContacts := corpusSize(b)
	docs := benchCorpus(nContacts)
	// bulk: the rebuild path (Build, fill, Activate flushes to disk)
	eng, err := bleve.Build(b.Context(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	start := time.Now()
	for chunk := range slices.Chunk(docs, benchChunk()) {
		if err := eng.Index(b.Context(), chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := eng.Activate(b.Context()); err != nil {
		b.Fatal(err)
	}
	indexTime := time.Since(start)
	start = time.Now()
	if os.Getenv("CASEVAULT_BENCH_COMPACT") != "0" {
		if err := eng.Compact(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	compactTime := time.Since(start)

	// live: every batch waits until it is on disk (the outbox path). A
	// tenth of the cases get a new contact, and every fourth of those also
	// a status change (which rewrites all its documents), in outbox-sized
	// batches. Re-sending unchanged cases would measure nothing: unchanged
	// documents are skipped.
	live, liveContacts := liveUpdates(docs)
	start = time.Now()
	for chunk := range slices.Chunk(live, 100) {
		if err := eng.Index(b.Context(), chunk); err != nil {
			b.Fatal(err)
		}
	}
	liveTime := time.Since(start)
	size, err := eng.DiskSize()
	if err != nil {
		b.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(9, 9))
	bt := newBenchText(rng)
	filters := []func() search.Filter{
		func() search.Filter {
			return search.Filter{Statuses: []string{"open"}, Channels: []string{string(cases.Channels[rng.IntN(6)])}}
		},
		func() search.Filter {
			return search.Filter{Tags: []string{"vip"}, Statuses: []string{"open", "pending"}}
		},
		func() search.Filter {
			return search.Filter{Purposes: []string{string(cases.Purposes[rng.IntN(9)])}, From: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)}
		},
	}
	chineseWords := []string{"阅读", "退款", "账户", "物流", "发票", "问题", "客服", "订单"}
	mkQuery := func() search.Query {
		q := search.Query{Limit: 20, Facets: true, Filter: filters[rng.IntN(len(filters))]()}
		for range 1 + rng.IntN(3) {
			if rng.IntN(6) == 0 {
				q.Words = append(q.Words, chineseWords[rng.IntN(len(chineseWords))])
				continue
			}
			w := bt.words[rng.IntN(200)] // the words people actually type
			if rng.IntN(4) == 0 {
				w = typo(rng, w)
			}
			q.Words = append(q.Words, w)
		}
		return q
	}
	segs := func() any {
		idx, _ := eng.Stats()["index"].(map[string]any)
		return idx["TotFileSegmentsAtRoot"]
	}
	b.Logf("file segments at root before queries: %v", segs())
	var lat []time.Duration
	var hits int64
	for b.Loop() {
		q := mkQuery()
		t0 := time.Now()
		res, err := eng.Search(b.Context(), q)
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		hits += res.Total
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(int(float64(len(lat))*p), len(lat)-1)].Microseconds()) / 1000
	}
	b.ReportMetric(float64(nContacts)/indexTime.Seconds(), "contacts/s")
	b.ReportMetric(float64(liveContacts)/liveTime.Seconds(), "live-contacts/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(size)/(1<<20), "index-MB")
	b.ReportMetric(peakRSSMB(), "peakRSS-MB")
	b.ReportMetric(float64(hits)/float64(len(lat)), "cases/query")
	b.Logf("%d contacts in %d cases indexed in %v, compacted in %v; %d queries", nContacts, len(docs), indexTime.Round(time.Millisecond), compactTime.Round(time.Millisecond), len(lat))
}

// benchChunk is the cases per Index call in the bulk phase
// (CASEVAULT_BENCH_CHUNK, default 100).
func benchChunk() int {
	if v, err := strconv.Atoi(os.Getenv("CASEVAULT_BENCH_CHUNK")); err == nil && v > 0 {
		return v
	}
	return 100
}

// liveUpdates returns the first tenth of the cases, each with one new
// contact (and a later updated_at), every fourth also closed, and the
// number of new contacts.
func liveUpdates(docs []search.CaseDoc) ([]search.CaseDoc, int) {
	rng := rand.New(rand.NewPCG(11, 11))
	bt := newBenchText(rng)
	live := make([]search.CaseDoc, len(docs)/10)
	for i := range live {
		c := docs[i]
		at := c.UpdatedAt.Add(time.Hour)
		c.Contacts = append(slices.Clip(c.Contacts), search.ContactDoc{
			ID: fmt.Sprintf("ct-%07d-new", i), Channel: string(cases.Channels[rng.IntN(6)]),
			Direction: "inbound", Author: "customer", Body: bt.english(15 + rng.IntN(120)), OccurredAt: at,
			Purposes: []string{string(cases.Purposes[rng.IntN(len(cases.Purposes))])},
		})
		c.UpdatedAt = at
		if i%4 == 0 {
			c.Status = string(cases.StatusClosed)
		}
		live[i] = c
	}
	return live, len(live)
}
