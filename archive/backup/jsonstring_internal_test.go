package backup

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// referenceJSONString is the rune-by-rune quoting the dump used before
// appendJSONString copied runs: the canonical form every backup's digests
// were computed over, so the faster one must equal it byte for byte.
func referenceJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				buf = append(buf, '\\', c)
			case c == '\n':
				buf = append(buf, '\\', 'n')
			case c == '\r':
				buf = append(buf, '\\', 'r')
			case c == '\t':
				buf = append(buf, '\\', 't')
			case c < 0x20:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				buf = append(buf, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, `\ufffd`...)
		} else {
			buf = append(buf, s[i:i+size]...)
		}
		i += size
	}
	return append(buf, '"')
}

var jsonStringSeeds = []string{
	"", "plain", `"q" \ /`, "tab\tnl\ncr\r", "\x00\x01\x1f\x7f", "<b>&amp;</b>",
	"中文 长文本 😀", "\u2028\u2029", "ok\xff\x80tail", "\xe4\xb8", "中\xe4\xb8文", "é\xc3", strings.Repeat("退款", 500) + "\n",
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range jsonStringSeeds {
		got := string(appendJSONString(nil, s))
		if want := string(referenceJSONString(nil, s)); got != want {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
		// Always valid JSON that decodes to s (invalid UTF-8 as U+FFFD).
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("%q: %s is not JSON: %v", s, got, err)
		} else if want := strings.ToValidUTF8(s, "\ufffd"); back != want && utf8.ValidString(s) {
			t.Errorf("%q: decodes to %q", s, back)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonStringSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := appendJSONString([]byte("x"), s), referenceJSONString([]byte("x"), s); string(got) != string(want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}
