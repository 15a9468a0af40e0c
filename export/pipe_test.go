package export

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// TestChunkPipe: bytes arrive whole and in order across chunk boundaries,
// the writer's error reaches the reader after the data, and a reader that
// gives up unblocks a writer waiting for room.
func TestChunkPipe(t *testing.T) {
	data := make([]byte, 10_000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	boom := errors.New("boom")

	for _, tc := range []struct {
		name     string
		writeErr error // what the writer closes with
		want     error // what the reader ends with
	}{
		{"clean end", nil, nil},
		{"writer fails", boom, boom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newChunkPipe(3, 64)
			go func() {
				for off := 0; off < len(data); off += 999 {
					if _, err := p.Write(data[off:min(off+999, len(data))]); err != nil {
						t.Error(err)
						return
					}
				}
				p.CloseWrite(tc.writeErr)
			}()
			got, err := io.ReadAll(p)
			if !errors.Is(err, tc.want) || !bytes.Equal(got, data) {
				t.Errorf("read %d bytes equal %v, err %v; want %d bytes, err %v", len(got), bytes.Equal(got, data), err, len(data), tc.want)
			}
		})
	}

	t.Run("reader gives up", func(t *testing.T) {
		p := newChunkPipe(2, 64)
		done := make(chan error, 1)
		go func() {
			_, err := p.Write(data) // more than the pipe holds: blocks
			done <- err
		}()
		if _, err := io.ReadFull(p, make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		p.CloseRead(boom)
		if err := <-done; !errors.Is(err, boom) {
			t.Errorf("writer got %v, want the reader's error", err)
		}
	})
}
