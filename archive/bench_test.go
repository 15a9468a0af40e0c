package archive_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/s3"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// genReader produces size bytes on the fly by repeating a random 1 MiB
// block (nothing in the path compresses, so repetition does not flatter).
type genReader struct {
	block []byte
	left  int64
	off   int
}

func newGen(size int64) *genReader { return &genReader{block: blobtest.RandBytes(1 << 20), left: size} }

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], g.block[g.off:])
		n += c
		g.off = (g.off + c) % len(g.block)
	}
	g.left -= int64(n)
	return n, nil
}

// peakMem samples the heap while an operation runs.
type peakMem struct {
	stop     chan struct{}
	done     sync.WaitGroup
	peakHeap atomic.Uint64
	baseHeap uint64
	baseRSS  int64
}

func rssKB(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return -1
}

func startPeak() *peakMem {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	// Reset the RSS high-water mark so VmHWM covers this operation only.
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	p := &peakMem{stop: make(chan struct{}), baseHeap: ms.HeapInuse, baseRSS: rssKB("VmRSS")}
	p.peakHeap.Store(ms.HeapInuse)
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > p.peakHeap.Load() {
					p.peakHeap.Store(ms.HeapInuse)
				}
			}
		}
	}()
	return p
}

// finish stops sampling and returns the growth of the heap in use and of
// the resident set (high-water mark) over the operation, in MiB.
func (p *peakMem) finish() (heapMiB, rssMiB float64) {
	close(p.stop)
	p.done.Wait()
	heapMiB = float64(p.peakHeap.Load()-p.baseHeap) / (1 << 20)
	if hwm := rssKB("VmHWM"); hwm > 0 && p.baseRSS > 0 {
		rssMiB = float64(hwm-p.baseRSS) / 1024
	}
	return heapMiB, rssMiB
}

func benchSize() int64 {
	if s := os.Getenv("CASEVAULT_BENCH_SIZE"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 1 << 30
}

// BenchmarkLargeFile compares the attachment service (SHA-256 + DARE
// encryption + S3 multipart upload of unknown length; decryption on the way
// back) with minio-go's own PutObject/GetObject (default options, known
// size) of the same size against the same versitygw. Each iteration does both, in alternating order, after
// a sync so that one side does not pay for the other's disk writeback.
// CASEVAULT_BENCH_SIZE overrides the 1 GiB size.
//
//	go test -run '^$' -bench LargeFile -benchtime 1x -count 3 ./archive/
func BenchmarkLargeFile(b *testing.B) {
	size := benchSize()
	srv := blobtest.StartVersityGW(b)
	ctx := context.Background()
	// CASEVAULT_BENCH_SIGNED=1 measures the service with SigV4-signed
	// payloads (s3.Config.SignPayload), the way the baseline sends them.
	store, err := s3.New(ctx, s3.Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
		SignPayload: os.Getenv("CASEVAULT_BENCH_SIGNED") == "1"})
	if err != nil {
		b.Fatal(err)
	}
	db := sqldbtest.Open(b, sqldb.SQLite)
	kr, err := archive.NewKeyring(db, masterKey(3), archive.KeyringOptions{})
	if err != nil {
		b.Fatal(err)
	}
	svc := archive.NewAttachments(db, store, kr, archive.AttachmentOptions{MaxSize: size})
	e := &env{db: db, blobs: store, keys: kr, att: svc}
	contactID, _ := e.contact(b)
	// The baseline is a minio-go client with default options.
	client, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""), BucketLookup: minio.BucketLookupPath})
	if err != nil {
		b.Fatal(err)
	}

	type result struct {
		secs float64
		heap float64
		rss  float64
	}
	measure := func(fn func() error) result {
		syscall.Sync()
		p := startPeak()
		start := time.Now()
		if err := fn(); err != nil {
			b.Fatal(err)
		}
		secs := time.Since(start).Seconds()
		heap, rss := p.finish()
		return result{secs, heap, rss}
	}
	directPut := func(key string) func() error {
		return func() error {
			_, err := client.PutObject(ctx, srv.Bucket, key, newGen(size), size, minio.PutObjectOptions{})
			return err
		}
	}
	var attID string
	servicePut := func() error {
		att, err := svc.Put(ctx, archive.AttachmentInput{ContactID: contactID, Filename: "big.bin", Body: newGen(size)})
		attID = att.ID
		return err
	}
	directGet := func(key string) func() error {
		return func() error {
			obj, err := client.GetObject(ctx, srv.Bucket, key, minio.GetObjectOptions{})
			if err != nil {
				return err
			}
			defer obj.Close()
			n, err := io.Copy(io.Discard, obj)
			if err == nil && n != size {
				err = fmt.Errorf("read %d bytes", n)
			}
			return err
		}
	}
	serviceGet := func() error {
		_, rc, err := svc.Open(ctx, attID)
		if err != nil {
			return err
		}
		defer rc.Close()
		n, err := io.Copy(io.Discard, rc)
		if err == nil && n != size {
			err = fmt.Errorf("read %d bytes", n)
		}
		return err
	}

	var dp, sp, dg, sg []result
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := fmt.Sprintf("direct/%d", i)
		if i%2 == 0 {
			dp = append(dp, measure(directPut(key)))
			sp = append(sp, measure(servicePut))
			dg = append(dg, measure(directGet(key)))
			sg = append(sg, measure(serviceGet))
		} else {
			sp = append(sp, measure(servicePut))
			dp = append(dp, measure(directPut(key)))
			sg = append(sg, measure(serviceGet))
			dg = append(dg, measure(directGet(key)))
		}
		b.StopTimer()
		if err := svc.Delete(ctx, attID, nil); err != nil {
			b.Fatal(err)
		}
		if err := store.Delete(ctx, key); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	mbps := func(rs []result) float64 {
		var secs float64
		for _, r := range rs {
			secs += r.secs
		}
		return float64(size) * float64(len(rs)) / secs / 1e6
	}
	maxOf := func(rs []result, f func(result) float64) float64 {
		m := f(rs[0])
		for _, r := range rs[1:] {
			m = max(m, f(r))
		}
		return m
	}
	heap := func(r result) float64 { return r.heap }
	rss := func(r result) float64 { return r.rss }
	b.ReportMetric(mbps(dp), "direct-put-MB/s")
	b.ReportMetric(mbps(sp), "service-put-MB/s")
	b.ReportMetric(100*mbps(sp)/mbps(dp), "put-ratio-%")
	b.ReportMetric(mbps(dg), "direct-get-MB/s")
	b.ReportMetric(mbps(sg), "service-get-MB/s")
	b.ReportMetric(100*mbps(sg)/mbps(dg), "get-ratio-%")
	b.ReportMetric(maxOf(sp, heap), "service-put-heap-growth-MiB")
	b.ReportMetric(maxOf(sp, rss), "service-put-rss-growth-MiB")
	b.ReportMetric(maxOf(dp, heap), "direct-put-heap-growth-MiB")
	b.ReportMetric(maxOf(sg, heap), "service-get-heap-growth-MiB")
	b.ReportMetric(maxOf(sg, rss), "service-get-rss-growth-MiB")
}
