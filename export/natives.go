package export

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/casevault/casevault/archive"
)

// Natives are fetched and decrypted ahead by workers (CRC and SHA-256
// taken on the way, one pass over each file in memory) while the ZIP
// writer copies the ones before them into the package, in package order.
const (
	// maxPrefetch: a larger native is streamed through the ZIP writer
	// instead, in its turn, so memory does not grow with file size.
	maxPrefetch = 8 << 20
	// prefetchBudget bounds the bytes fetched ahead and not yet written.
	prefetchBudget = 32 << 20
)

// native is one attachment on its way into the package.
type native struct {
	a    *attachmentRec
	done chan struct{} // closed when f or err is set
	f    *prepared     // nil: streamed in its turn
	err  error
}

// writeNatives writes the natives in order, fetched ahead by a few
// workers, and reports each as written.
func (s *Service) writeNatives(ctx context.Context, z *zipPackage, natives []*attachmentRec, tr *tracker) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()

	workers := min(max(runtime.GOMAXPROCS(0), 2), 4)
	budget := semaphore.NewWeighted(prefetchBudget)
	slots := make(chan struct{}, workers)
	queue := make(chan *native, 4*workers)
	pool := make(chan []byte, 4*workers)

	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(queue)
		for _, a := range natives {
			n := &native{a: a, done: make(chan struct{})}
			if a.Size > maxPrefetch {
				close(n.done)
			} else {
				if err := budget.Acquire(ctx, a.Size); err != nil {
					return
				}
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					n.f, n.err = s.fetchNative(ctx, a, pool)
					<-slots
					close(n.done)
				}()
			}
			select {
			case queue <- n:
			case <-ctx.Done():
				return
			}
		}
	}()

	for n := range queue {
		select {
		case <-n.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if n.err != nil {
			return n.err
		}
		if n.f != nil {
			err := z.writePrepared(n.f)
			select {
			case pool <- n.f.data:
			default:
			}
			budget.Release(n.a.Size)
			if err != nil {
				return err
			}
		} else if err := s.streamNative(ctx, z, n.a); err != nil {
			return err
		}
		tr.add(ctx, 1, n.a.Size)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	// The queue also ends early when ctx is cancelled.
	return ctx.Err()
}

// fetchNative reads an attachment decrypted, as a download does, into a
// buffer (from pool when one is large enough), and checks it is the file
// that was archived.
func (s *Service) fetchNative(ctx context.Context, a *attachmentRec, pool chan []byte) (*prepared, error) {
	_, rc, err := s.o.Attachments.Open(ctx, a.ID)
	if err != nil {
		return nil, fmt.Errorf("attachment %s: %w", a.ID, err)
	}
	defer rc.Close()

	var buf []byte
	select {
	case b := <-pool:
		if int64(cap(b)) >= a.Size {
			buf = b[:a.Size]
		}
	default:
	}
	if buf == nil {
		buf = make([]byte, a.Size)
	}
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, fmt.Errorf("attachment %s: %w", a.ID, err)
	}
	// The stream's authenticated end, too: no byte more than recorded.
	if extra, err := io.Copy(io.Discard, rc); err != nil || extra > 0 {
		return nil, fmt.Errorf("attachment %s: %w (%d bytes more than recorded)", a.ID, corruptOr(err), extra)
	}

	digest := sha256.Sum256(buf)
	sum := hex.EncodeToString(digest[:])
	if sum != a.SHA256 {
		return nil, fmt.Errorf("attachment %s: %w: sha256 %s, recorded %s", a.ID, archive.ErrCorrupt, sum, a.SHA256)
	}
	return &prepared{path: a.Path, method: zip.Store, data: buf, crc: crc32.ChecksumIEEE(buf), size: a.Size, sha256: sum}, nil
}

func corruptOr(err error) error {
	if err != nil {
		return err
	}
	return archive.ErrCorrupt
}

// streamNative writes a large attachment decrypted straight into the
// package, and checks it is the file that was archived.
func (s *Service) streamNative(ctx context.Context, z *zipPackage, a *attachmentRec) error {
	_, rc, err := s.o.Attachments.Open(ctx, a.ID)
	if err != nil {
		return fmt.Errorf("attachment %s: %w", a.ID, err)
	}
	defer rc.Close()
	f, err := z.streamed(a.Path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(f, archive.ContextReader{Ctx: ctx, R: rc}, buf); err != nil {
		return fmt.Errorf("attachment %s: %w", a.ID, err)
	}
	if got := f.close(); got != a.SHA256 {
		return fmt.Errorf("attachment %s: %w: sha256 %s, recorded %s", a.ID, archive.ErrCorrupt, got, a.SHA256)
	}
	return nil
}
