// Command cvbench is the load generator for casevault's benchmarks. It runs
// as its own process so that it does not share a Go runtime with the server
// under test, and reports throughput and latency percentiles.
//
//	cvbench -url http://127.0.0.1:8080 -token $(cat data/admin.token) -mode contacts -c 32 -d 20s
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "server base URL")
	token := flag.String("token", os.Getenv("CASEVAULT_TOKEN"), "bearer token (admin or agent)")
	mode := flag.String("mode", "contacts", "contacts (POST contacts) or healthz (GET /healthz)")
	conc := flag.Int("c", 32, "concurrent clients")
	dur := flag.Duration("d", 20*time.Second, "duration")
	cases := flag.Int("cases", 1000, "cases to spread contacts over (a 20 s run at 2,000/s gives ~40 contacts per case)")
	jsonOut := flag.Bool("json", false, "print one JSON object")
	flag.Parse()
	if err := run(*url, *token, *mode, *conc, *dur, *cases, *jsonOut); err != nil {
		fmt.Fprintln(os.Stderr, "cvbench:", err)
		os.Exit(1)
	}
}

type client struct {
	http  *http.Client
	base  string
	token string
}

func (c *client) post(path string, body any) (int, map[string]any, error) {
	b, _ := json.Marshal(body)
	res, err := c.send(path, b)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m, nil
}

// postRaw sends a prepared body and only reads the status: the load loop
// must cost the machine (which the server shares) as little as possible.
func (c *client) postRaw(path string, body []byte) (int, error) {
	res, err := c.send(path, body)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, err
}

func (c *client) send(path string, b []byte) (*http.Response, error) {
	req, err := http.NewRequest("POST", c.base+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	return c.http.Do(req)
}

func run(base, token, mode string, conc int, dur time.Duration, ncases int, jsonOut bool) error {
	tr := &http.Transport{MaxIdleConnsPerHost: conc * 2, MaxConnsPerHost: conc * 2}
	c := &client{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}, base: base, token: token}
	var caseIDs []string
	if mode == "contacts" {
		code, cust, err := c.post("/api/v1/customers", map[string]any{"name": "Bench Customer"})
		if err != nil || code != 201 {
			return fmt.Errorf("create customer: %d %v", code, err)
		}
		for i := 0; i < ncases; i++ {
			code, cs, err := c.post("/api/v1/cases", map[string]any{"customer_id": cust["id"], "subject": fmt.Sprint("bench case ", i), "channel": "chat"})
			if err != nil || code != 201 {
				return fmt.Errorf("create case: %d %v", code, err)
			}
			caseIDs = append(caseIDs, cs["id"].(string))
		}
	}
	var ok, fail atomic.Int64
	lat := make([][]time.Duration, conc)
	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			body, _ := json.Marshal(map[string]any{"channel": "chat", "direction": "inbound", "author": "bench",
				"body": "Hello, I was charged twice for my order last week and would like a refund. 我的订单被重复扣款了，请帮我退款。"})
			paths := make([]string, len(caseIDs))
			for i, id := range caseIDs {
				paths[i] = "/api/v1/cases/" + id + "/contacts"
			}
			// Each client picks its next case at random: walking the
			// list in step (client w at case w+i), neighbouring clients
			// wrote the same case at the same moment all run long and
			// queued on its row lock, a collision real traffic spread
			// over many cases does not have (issue 19).
			rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			for i := 0; time.Now().Before(stop); i++ {
				t0 := time.Now()
				var code int
				var err error
				if mode == "healthz" {
					var res *http.Response
					res, err = c.http.Get(base + "/healthz")
					if err == nil {
						_, _ = io.Copy(io.Discard, res.Body)
						res.Body.Close()
						code = res.StatusCode
					}
				} else {
					code, err = c.postRaw(paths[rnd.IntN(len(paths))], body)
				}
				lat[w] = append(lat[w], time.Since(t0))
				if err == nil && (code == 201 || code == 200) {
					ok.Add(1)
				} else {
					fail.Add(1)
				}
			}
		}(w)
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[int(float64(len(all)-1)*p)]
	}
	res := map[string]any{
		"mode": mode, "concurrency": conc, "duration_s": dur.Seconds(), "ok": ok.Load(), "failed": fail.Load(),
		"per_second": float64(ok.Load()) / dur.Seconds(),
		"p50_ms":     float64(pct(0.50).Microseconds()) / 1000, "p99_ms": float64(pct(0.99).Microseconds()) / 1000,
	}
	if jsonOut {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("%-9s c=%d %5.0fs  ok=%d failed=%d  %.0f/s  p50=%.2fms p99=%.2fms\n", mode, conc, dur.Seconds(),
		ok.Load(), fail.Load(), res["per_second"], res["p50_ms"], res["p99_ms"])
	return nil
}
