package archive

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/minio/sio"
)

// ErrCorrupt: a stored object failed authentication (modified, truncated,
// swapped) or is not in our format. No unauthenticated byte is ever
// returned; bytes already delivered before the error were authentic.
var ErrCorrupt = errors.New("stored object is corrupt or was tampered with")

// Object format: magic "CVE1", a random 32-byte salt, then a DARE 2.0
// stream (github.com/minio/sio, AES-256-GCM, 64 KiB packages). The object
// key is HKDF-SHA256(data key, salt, info = format || object ID): DARE wants
// a distinct key per stream, the salt gives one, and binding the object ID
// means a blob moved under another attachment fails to decrypt.
const (
	objMagic     = "CVE1"
	saltSize     = 32
	objHeaderLen = int64(len(objMagic) + saltSize)

	darePayload = 64 << 10
	dareOver    = 16 + 16 // package header + GCM tag
	darePackage = darePayload + dareOver
)

func objectKey(dataKey, salt []byte, objectID string) ([]byte, error) {
	return hkdf.Key(sha256.New, dataKey, salt, "casevault/attachment/v1\x00"+objectID, 32)
}

func dareConfig(key []byte, seq uint32) sio.Config {
	return sio.Config{
		MinVersion:     sio.Version20,
		MaxVersion:     sio.Version20,
		CipherSuites:   []byte{sio.AES_256_GCM},
		Key:            key,
		SequenceNumber: seq,
	}
}

// EncryptedSize is the stored size of a plaintext of n bytes.
func EncryptedSize(n int64) int64 {
	full := n / darePayload
	size := objHeaderLen + full*darePackage
	if rest := n % darePayload; rest > 0 {
		size += rest + dareOver
	}
	return size
}

// encryptReader returns the stored form of src for objectID.
func encryptReader(src io.Reader, dataKey []byte, objectID string) (io.Reader, error) {
	header := make([]byte, objHeaderLen)
	copy(header, objMagic)
	if _, err := rand.Read(header[len(objMagic):]); err != nil {
		return nil, err
	}
	key, err := objectKey(dataKey, header[len(objMagic):], objectID)
	if err != nil {
		return nil, err
	}
	enc, err := sio.EncryptReader(src, dareConfig(key, 0))
	if err != nil {
		return nil, err
	}
	return io.MultiReader(bytes.NewReader(header), enc), nil
}

func corrupt(err error) error {
	var se sio.Error
	if errors.As(err, &se) {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}

func parseHeader(h []byte, dataKey []byte, objectID string) ([]byte, error) {
	if len(h) != int(objHeaderLen) || string(h[:len(objMagic)]) != objMagic {
		return nil, fmt.Errorf("%w: bad object header", ErrCorrupt)
	}
	return objectKey(dataKey, h[len(objMagic):], objectID)
}

// openDecrypted streams plaintext [off, off+n) of the object whose
// plaintext size is plainSize (from the metadata row). Only the DARE
// packages covering the range are fetched and authenticated: one request
// for the header and one for the packages (a single request when the range
// starts in the first package).
func openDecrypted(ctx context.Context, blobs Blobs, blobKey string, dataKey []byte, objectID string, plainSize, off, n int64) (io.ReadCloser, error) {
	if off < 0 || n < 0 || off > plainSize || n > plainSize-off {
		return nil, fmt.Errorf("%w: [%d, +%d) of %d bytes", ErrInvalidRange, off, n, plainSize)
	}

	whole := off == 0 && n == plainSize
	if n == 0 && !whole {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}

	first := off / darePayload

	// The packages covering the range end here in the stored object.
	end := objHeaderLen + (off+n+darePayload-1)/darePayload*darePackage
	if total := EncryptedSize(plainSize); end > total {
		end = total
	}

	var body io.ReadCloser
	var key []byte
	var err error
	if first == 0 {
		length := int64(-1)
		if !whole {
			length = end
		}
		body, err = blobs.GetRange(ctx, blobKey, 0, length)
		if err != nil {
			return nil, err
		}
		h := make([]byte, objHeaderLen)
		if _, err := io.ReadFull(body, h); err != nil {
			body.Close()
			return nil, fmt.Errorf("%w: reading header: %w", ErrCorrupt, err)
		}
		if key, err = parseHeader(h, dataKey, objectID); err != nil {
			body.Close()
			return nil, err
		}
	} else {
		hr, err := blobs.GetRange(ctx, blobKey, 0, objHeaderLen)
		if err != nil {
			return nil, err
		}
		h, err := io.ReadAll(hr)
		hr.Close()
		if err != nil {
			return nil, err
		}
		if key, err = parseHeader(h, dataKey, objectID); err != nil {
			return nil, err
		}
		start := objHeaderLen + first*darePackage
		body, err = blobs.GetRange(ctx, blobKey, start, end-start)
		if err != nil {
			return nil, err
		}
	}

	r := &plainReader{body: body, left: n, whole: whole}
	if plainSize == 0 {
		// sio writes nothing for an empty input; the object is the header.
		r.dec = body
		r.whole = true
		return r, nil
	}

	dec, err := sio.DecryptReader(body, dareConfig(key, uint32(first)))
	if err != nil {
		body.Close()
		return nil, err
	}

	r.dec = dec
	if skip := off - first*darePayload; skip > 0 {
		if _, err := io.CopyN(io.Discard, dec, skip); err != nil {
			body.Close()
			return nil, corrupt(err)
		}
	}

	return r, nil
}

// plainReader delivers exactly left bytes of plaintext. For a whole-object
// read it also insists on the authenticated end of the stream, so a
// truncated or extended object is an error rather than a short file.
type plainReader struct {
	dec   io.Reader
	body  io.Closer
	left  int64
	whole bool
	err   error
}

func (p *plainReader) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	if p.left == 0 {
		if p.whole {
			// The final package must have been seen: one more read must be
			// a clean EOF.
			var one [1]byte
			n, err := p.dec.Read(one[:])
			switch {
			case n > 0:
				p.err = fmt.Errorf("%w: more data than recorded", ErrCorrupt)
			case err == io.EOF:
				p.err = io.EOF
			case err == nil:
				return 0, nil
			default:
				p.err = corrupt(err)
			}
			return 0, p.err
		}
		p.err = io.EOF
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n, err := p.dec.Read(b)
	p.left -= int64(n)
	if err == io.EOF && p.left > 0 {
		p.err = fmt.Errorf("%w: object shorter than recorded", ErrCorrupt)
		return n, p.err
	}
	if err != nil && err != io.EOF {
		p.err = corrupt(err)
		return n, p.err
	}
	return n, nil
}

func (p *plainReader) Close() error { return p.body.Close() }

// EncryptStream returns the stored form of src in the attachment object
// format under key, bound to objectID. Other objects kept at rest (export
// packages) use it with a key of their own.
func EncryptStream(src io.Reader, key []byte, objectID string) (io.Reader, error) {
	return encryptReader(src, key, objectID)
}

// OpenStream streams plaintext [off, off+n) of an object EncryptStream
// stored under blobKey; plainSize is the plaintext size recorded for it.
func OpenStream(ctx context.Context, blobs Blobs, blobKey string, key []byte, objectID string, plainSize, off, n int64) (io.ReadCloser, error) {
	return openDecrypted(ctx, blobs, blobKey, key, objectID, plainSize, off, n)
}
