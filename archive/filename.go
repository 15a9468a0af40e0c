package archive

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxFilenameLen caps a stored file name in bytes (most filesystems' limit).
const MaxFilenameLen = 255

// SanitizeFilename makes a client-supplied name safe to store and to put in
// Content-Disposition: only the last path element (either slash), no control
// or bidirectional-override characters, valid UTF-8, at most 255 bytes with
// the extension kept; other Unicode is kept as it is. An empty result, "."
// or ".." becomes "attachment".
func SanitizeFilename(name string) string {
	name = strings.ToValidUTF8(name, "")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || isBidiControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "" || strings.Trim(name, ".") == "" {
		return "attachment"
	}
	if len(name) > MaxFilenameLen {
		ext := path.Ext(name)
		if len(ext) > 32 || len(ext) == len(name) {
			ext = ""
		}
		stem := truncateUTF8(name[:len(name)-len(ext)], MaxFilenameLen-len(ext))
		name = strings.TrimSpace(stem) + ext
	}
	return name
}

func isBidiControl(r rune) bool {
	switch {
	case r == 0x061C, r == 0x200E, r == 0x200F:
		return true
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// DetectContentType picks the stored content type: the client's when it is
// specific (valid and not application/octet-stream), otherwise what
// http.DetectContentType sniffs from the first 512 bytes.
func DetectContentType(clientType string, head []byte) string {
	if clientType != "" {
		mt, params, err := mime.ParseMediaType(clientType)
		if err == nil && mt != "application/octet-stream" && !strings.HasPrefix(mt, "multipart/") {
			if f := mime.FormatMediaType(mt, params); f != "" {
				return f
			}
		}
	}
	return http.DetectContentType(head)
}

// ErrInvalidDigest: a digest header that cannot be parsed, or two digest
// headers that disagree (the API answers 400).
var ErrInvalidDigest = errors.New("invalid digest header")

// ParseDigestHeaders reads the client's SHA-256 of the body from an RFC 9530
// Content-Digest header ("sha-256=:<base64>:", other algorithms ignored)
// and/or an X-Content-SHA256 header (hex). It returns lowercase hex, or ""
// when neither carries a SHA-256.
func ParseDigestHeaders(contentDigest, xContentSHA256 string) (string, error) {
	var fromCD string
	if strings.TrimSpace(contentDigest) != "" {
		for _, member := range strings.Split(contentDigest, ",") {
			member = strings.TrimSpace(member)
			alg, val, ok := strings.Cut(member, "=")
			if !ok {
				return "", fmt.Errorf("%w: Content-Digest member %q", ErrInvalidDigest, member)
			}
			if !strings.EqualFold(strings.TrimSpace(alg), "sha-256") {
				continue
			}
			val, _, _ = strings.Cut(strings.TrimSpace(val), ";") // drop parameters
			if len(val) < 2 || val[0] != ':' || val[len(val)-1] != ':' {
				return "", fmt.Errorf("%w: Content-Digest sha-256 must be a byte sequence in colons (:<base64>:)", ErrInvalidDigest)
			}
			raw, err := base64.StdEncoding.DecodeString(val[1 : len(val)-1])
			if err != nil || len(raw) != 32 {
				return "", fmt.Errorf("%w: Content-Digest sha-256 is not 32 base64 bytes", ErrInvalidDigest)
			}
			h := hex.EncodeToString(raw)
			if fromCD != "" && fromCD != h {
				return "", fmt.Errorf("%w: two different sha-256 values in Content-Digest", ErrInvalidDigest)
			}
			fromCD = h
		}
	}

	var fromX string
	if x := strings.TrimSpace(xContentSHA256); x != "" {
		raw, err := hex.DecodeString(x)
		if err != nil || len(raw) != 32 {
			return "", fmt.Errorf("%w: X-Content-SHA256 must be 64 hexadecimal characters", ErrInvalidDigest)
		}
		fromX = hex.EncodeToString(raw)
	}

	if fromCD != "" && fromX != "" && fromCD != fromX {
		return "", fmt.Errorf("%w: Content-Digest and X-Content-SHA256 disagree", ErrInvalidDigest)
	}

	if fromCD != "" {
		return fromCD, nil
	}

	return fromX, nil
}
