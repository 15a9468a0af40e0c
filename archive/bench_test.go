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
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

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
	stop      chan struct{}
	done      sync.WaitGroup
	peakHeap  atomic.Uint64
	baseHeap  uint64
	baseRSS   int64
	peakRSSKB int64
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

func (p *peakMem) report(b *testing.B) {
	close(p.stop)
	p.done.Wait()
	growHeap := float64(p.peakHeap.Load()-p.baseHeap) / (1 << 20)
	b.ReportMetric(growHeap, "heap-growth-MiB")
	if hwm := rssKB("VmHWM"); hwm > 0 && p.baseRSS > 0 {
		b.ReportMetric(float64(hwm-p.baseRSS)/1024, "rss-growth-MiB")
	}
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
// back) with minio-go's own PutObject/GetObject of the same size against
// the same versitygw. CASEVAULT_BENCH_SIZE overrides the 1 GiB size.
//
//	go test -run '^$' -bench LargeFile -benchtime 1x ./archive/
func BenchmarkLargeFile(b *testing.B) {
	size := benchSize()
	srv := blobtest.StartVersityGW(b)
	ctx := context.Background()
	store, err := s3.New(ctx, s3.Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
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
	client := store.Client()
	label := fmt.Sprintf("%dMiB", size>>20)

	var lastDirect, lastService string
	b.Run("direct-put-"+label, func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			lastDirect = fmt.Sprintf("direct/%d", i)
			p := startPeak()
			if _, err := client.PutObject(ctx, srv.Bucket, lastDirect, newGen(size), size, minio.PutObjectOptions{}); err != nil {
				b.Fatal(err)
			}
			p.report(b)
		}
	})
	b.Run("service-put-"+label, func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			p := startPeak()
			att, err := svc.Put(ctx, archive.AttachmentInput{ContactID: contactID, Filename: "big.bin", Body: newGen(size)})
			if err != nil {
				b.Fatal(err)
			}
			p.report(b)
			lastService = att.ID
		}
	})
	b.Run("direct-get-"+label, func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			p := startPeak()
			obj, err := client.GetObject(ctx, srv.Bucket, lastDirect, minio.GetObjectOptions{})
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, obj)
			obj.Close()
			if err != nil || n != size {
				b.Fatalf("read %d, %v", n, err)
			}
			p.report(b)
		}
	})
	b.Run("service-get-"+label, func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			p := startPeak()
			_, rc, err := svc.Open(ctx, lastService)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil || n != size {
				b.Fatalf("read %d, %v", n, err)
			}
			p.report(b)
		}
	})
}
