package export

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/flate"
)

// zipPackage writes the entries of a package and remembers their digests.
type zipPackage struct {
	zw    *zip.Writer
	at    time.Time // every entry's modification time: the export's
	files []FileDigest
}

// prepared is an entry whose stored bytes are ready: the ZIP writer only
// copies them (CreateRaw), so the work of making them (decrypting a
// native, encoding and deflating a generated file, their CRC and SHA-256)
// happens on other goroutines.
type prepared struct {
	path   string
	method uint16
	data   []byte // as stored: deflated, or the file itself
	crc    uint32
	size   int64 // uncompressed
	sha256 string
}

// writePrepared writes f and records its digest in the manifest.
func (z *zipPackage) writePrepared(f *prepared) error {
	if err := z.writeEntry(f); err != nil {
		return err
	}
	z.files = append(z.files, FileDigest{Path: f.path, Size: f.size, SHA256: f.sha256})
	return nil
}

// writeEntry writes f without listing it in the manifest (the manifest).
func (z *zipPackage) writeEntry(f *prepared) error {
	w, err := z.zw.CreateRaw(z.rawHeader(f))
	if err != nil {
		return err
	}
	if _, err := w.Write(f.data); err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	return nil
}

// rawHeader is f's header. CreateRaw writes a header as given, so what
// CreateHeader derives from the name and Modified is set here the same
// way: the UTF-8 flag for a non-ASCII name, the MS-DOS time and Info-ZIP's
// extended timestamp.
func (z *zipPackage) rawHeader(f *prepared) *zip.FileHeader {
	fh := &zip.FileHeader{Name: f.path, Method: f.method, CRC32: f.crc,
		CompressedSize64: uint64(len(f.data)), UncompressedSize64: uint64(f.size), Modified: z.at}
	if needsUTF8Flag(f.path) {
		fh.Flags |= 0x800
	}
	fh.CreatorVersion, fh.ReaderVersion = 20, 20
	// CreateRaw writes these fields as given and does not derive them from
	// Modified (only CreateHeader does), so they are set here, as
	// CreateHeader sets them; readers without the extended timestamp
	// need them.
	//lint:ignore SA1019 the deprecation is of reading them instead of Modified
	fh.ModifiedDate, fh.ModifiedTime = msDosTime(z.at)
	var ext [9]byte
	binary.LittleEndian.PutUint16(ext[0:], 0x5455) // extended timestamp
	binary.LittleEndian.PutUint16(ext[2:], 5)
	ext[4] = 1 // modification time only
	binary.LittleEndian.PutUint32(ext[5:], uint32(z.at.Unix()))
	fh.Extra = ext[:]
	return fh
}

// needsUTF8Flag is archive/zip's rule: set the flag when the name is
// valid UTF-8 and has a character outside the ASCII that CP-437 readers
// agree on.
func needsUTF8Flag(s string) bool {
	require := false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r < 0x20 || r > 0x7d || r == 0x5c {
			if r == utf8.RuneError && size == 1 {
				return false
			}
			require = true
		}
	}
	return require
}

func msDosTime(t time.Time) (date, tm uint16) {
	return uint16(t.Day() + int(t.Month())<<5 + (t.Year()-1980)<<9), uint16(t.Second()/2 + t.Minute()<<5 + t.Hour()<<11)
}

// streamed writes a native too large to prepare in memory through the
// ZIP writer (which computes its CRC), with its SHA-256.
func (z *zipPackage) streamed(path string) (*streamFile, error) {
	w, err := z.zw.CreateHeader(&zip.FileHeader{Name: path, Method: zip.Store, Modified: z.at})
	if err != nil {
		return nil, err
	}
	return &streamFile{z: z, path: path, w: w, h: sha256.New()}, nil
}

type streamFile struct {
	z    *zipPackage
	path string
	w    io.Writer
	h    hash.Hash
	n    int64
}

func (f *streamFile) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	f.h.Write(p[:n])
	f.n += int64(n)
	return n, err
}

func (f *streamFile) close() string {
	sum := hex.EncodeToString(f.h.Sum(nil))
	f.z.files = append(f.z.files, FileDigest{Path: f.path, Size: f.n, SHA256: sum})
	return sum
}

// deflateLevel: the generated files are JSON and CSV, which compress
// well even at the fastest level (about 8× here); the better levels cost
// several times the CPU for a few percent.
const deflateLevel = flate.BestSpeed

// deflated prepares a generated file: fn writes it, and it is deflated,
// CRC'd and digested in that one pass.
func deflated(path string, fn func(w io.Writer) error) (*prepared, error) {
	var out bytes.Buffer
	fw, err := flate.NewWriter(&out, deflateLevel)
	if err != nil {
		return nil, err
	}
	crc, sum := crc32.NewIEEE(), sha256.New()
	n := &counter{}
	bw := bufio.NewWriterSize(io.MultiWriter(fw, crc, sum, n), 256<<10)
	if err := fn(bw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if err := fw.Close(); err != nil {
		return nil, err
	}
	return &prepared{path: path, method: zip.Deflate, data: out.Bytes(), crc: crc.Sum32(), size: n.n, sha256: hex.EncodeToString(sum.Sum(nil))}, nil
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
