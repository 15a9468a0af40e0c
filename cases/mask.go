package cases

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Masking of payment-instrument and identity-document numbers in free text.
//
// The scanner is hand-written rather than a regular expression so that it can
// validate check digits while it scans, try several groupings of one digit
// chain, and stay linear in the size of the body whatever the input.
//
// Detection reads a normalised view of the text, not the text itself, so
// that the way a number is typed cannot hide it. Each rune of the input
// becomes at most one byte of the view:
//   - ASCII stays as it is;
//   - format characters (zero-width space and joiners, BOM, soft hyphen) are
//     dropped, so "4111\u200b1111…" reads as one digit run;
//   - white space of any script (NBSP, ideographic space, …) reads as ' ' and
//     dash punctuation (‐ – — −) as '-';
//   - a decimal digit of any script (full-width ４, Arabic-Indic ٤, …) reads
//     as its ASCII digit;
//   - any other rune whose NFKC form is one ASCII character reads as that
//     character (full-width Ａ, ．, ／, （, superscript ²);
//   - everything else (Chinese text, emoji, invalid bytes) reads as one
//     opaque byte that is neither a letter, a digit nor a separator.
//
// Vocabulary, on the view:
//   - a digit run is a maximal run of ASCII digits. A letter touching it
//     does not hide it ("Visa4111111111111111"), but a digit does: a card
//     number is never matched inside a longer digit run;
//   - a token is a maximal run of ASCII letters and digits (IBANs, SSNs);
//   - a separator run is one to three of: white space, - . / , ( ).
//
// Detected numbers:
//   - card numbers: 13–19 digits in digit runs joined by separator runs,
//     passing the Luhn check. Groups of any size count when every joint is
//     the same single ' ' or '-' (1 2 3 …); otherwise (mixed, doubled, dots,
//     slashes, commas, line breaks, "(4111)1111-…") every group must have at
//     least three digits, so that lists of small numbers, amounts and dates
//     ("1, 2, 3", "2026.11.20 12") do not chain into a card. A card may be a
//     shorter part of a longer chain ("4111 1111 1111 1111 12 25", card then
//     expiry): the longest Luhn-valid grouping from the left wins;
//   - IBANs: two letters, two check digits (02–98) and more letters/digits,
//     15–34 characters in all (15 is the shortest national IBAN), either as
//     one token or in groups of four joined by single spaces, valid by
//     ISO 7064 MOD 97-10; letters in any case;
//   - PRC resident identity numbers: a digit run of 17 digits and a check
//     character (0-9, X or x) that is right by GB 11643;
//   - US SSNs: ddd-dd-dddd or ddd dd dddd as whole tokens, with area not 000,
//     666 or 9xx, group not 00 and serial not 0000, and not part of a longer
//     chain of digit groups joined by the same separator ("123-45-6789-01");
//   - passport numbers: a token of 6–12 letters and digits, at least five of
//     them digits, written after "passport" or "护照" and at most a few
//     filler words ("number", "no.", "is", ":", "号码", "是").
//
// Masking replaces every letter/digit of the number but the last four with
// '*', one '*' per rune (a full-width digit becomes an ASCII '*'), and keeps
// everything else as it was — separators, dropped format characters, the
// kept digits in their original script: "4111-1111-1111-1111" becomes
// "****-****-****-1111". The output is valid UTF-8 exactly when the input
// is, and has as many runes.
//
// Not detected: bank account numbers that are not IBANs, and identity
// numbers without a check digit or a keyword.

// MaskSensitive masks card numbers, IBANs, PRC resident identity numbers,
// US SSNs and passport numbers in body to their last four characters and
// reports how many numbers it masked. Masking is idempotent: masking the
// result again masks nothing.
func MaskSensitive(body string) (masked string, n int) {
	v := newView(body)
	b := v.b
	for i := 0; i < len(b); {
		from, end := v.matchAt(i)
		if end < 0 {
			i++
			continue
		}
		// Resume at the kept tail rather than after the number: a second
		// pass over the output sees the tail as a fresh run start, so the
		// first pass must too, or masking would not be idempotent.
		i = maskSpan(b, from, end)
		n++
	}
	if n == 0 {
		return body, 0
	}
	return v.render(body), n
}

const (
	maxCardDigits = 19
	minCardDigits = 13
	// minLooseGroup is the shortest digit group of a card written with
	// anything but one consistent single space or dash between groups.
	minLooseGroup = 3
	maxSepRun     = 3
	maxIBANLen    = 34
	minIBANLen    = 15
	prcIDLen      = 18
	minPassport   = 6
	maxPassport   = 12
	// maxFiller bounds how far after a passport keyword its number is looked
	// for.
	maxFiller = 24
	// maxTokenScan bounds how far a token is read while looking for a
	// number: nothing detected is longer than an IBAN, so reading further
	// would only cost time (and make the scan quadratic on long runs).
	maxTokenScan = maxIBANLen + 1
	// maxChainTokens bounds the chain read from one start: the longest
	// chain that can matter is a card of 19 one-digit groups.
	maxChainTokens = maxCardDigits
	// opaque stands in the view for a rune that is neither an ASCII letter,
	// digit nor separator (it is not valid UTF-8 on its own, so it cannot be
	// confused with any ASCII byte).
	opaque = 0xFF
)

// view is the normalised text the detectors read: one byte per rune of the
// original that was not dropped.
type view struct {
	b []byte
	// src[k] is the byte offset in the original of the rune behind b[k];
	// nil when the original is ASCII and the view is a copy of it.
	src []int32
	// before is b as built, to tell masked runes at render time, and orig
	// the original (both only with src).
	before []byte
	orig   string
}

func newView(s string) view {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return view{b: []byte(s)}
	}
	v := view{b: make([]byte, 0, len(s)), src: make([]int32, 0, len(s)), orig: s}
	var rb, nb [utf8.UTFMax * 4]byte
	for off := 0; off < len(s); {
		r, size := utf8.DecodeRuneInString(s[off:])
		c, keep := fold(r, size, rb[:0], nb[:0])
		if keep {
			v.b = append(v.b, c)
			v.src = append(v.src, int32(off))
		}
		off += size
	}
	v.before = append([]byte(nil), v.b...)
	return v
}

// fold maps one rune of the input to its byte in the view; keep is false
// for a rune the view drops. rb and nb are scratch space.
func fold(r rune, size int, rb, nb []byte) (c byte, keep bool) {
	switch {
	case r < utf8.RuneSelf:
		return byte(r), true
	case r == utf8.RuneError && size == 1:
		return opaque, true
	case unicode.Is(unicode.Han, r):
		return opaque, true // the common case in Chinese text, decided early
	case unicode.Is(unicode.Cf, r):
		return 0, false
	case unicode.IsSpace(r):
		return ' ', true
	case unicode.Is(unicode.Pd, r) || r == '\u2212': // dashes, minus sign
		return '-', true
	case unicode.Is(unicode.Nd, r):
		return '0' + digitValue(r), true
	}
	rb = utf8.AppendRune(rb, r)
	if nf := norm.NFKC.Append(nb, rb...); len(nf) == 1 && nf[0] < utf8.RuneSelf {
		return nf[0], true
	}
	return opaque, true
}

// digitValue is the value of a decimal digit of any script: Unicode
// allocates each script's digits 0–9 as a contiguous block, so the value is
// the distance from the start of the block (blocks may be adjacent, as the
// mathematical digits are, hence mod 10).
func digitValue(r rune) byte {
	n := 0
	for n < 64 && unicode.Is(unicode.Nd, r-rune(n)-1) {
		n++
	}
	return byte(n % 10)
}

// render returns the original text with every rune whose view byte was
// masked replaced by '*'.
func (v view) render(orig string) string {
	if v.src == nil {
		return string(v.b)
	}
	var sb strings.Builder
	sb.Grow(len(orig))
	prev := 0
	for k, off := range v.src {
		if v.b[k] == v.before[k] {
			continue
		}
		o := int(off)
		_, size := utf8.DecodeRuneInString(orig[o:])
		sb.WriteString(orig[prev:o])
		sb.WriteByte('*')
		prev = o + size
	}
	sb.WriteString(orig[prev:])
	return sb.String()
}

// matchAt returns the span [from, end) to mask for the number detected at
// i, or end -1 when none is. Only passports mask from elsewhere than i
// (their keyword starts the match).
func (v view) matchAt(i int) (from, end int) {
	b := v.b
	c := b[i]
	alnumStart := i == 0 || !isAlnum(b[i-1])
	switch {
	case isDigit(c):
		if i > 0 && isDigit(b[i-1]) {
			return i, -1
		}
		best := max(matchCard(b, i), matchPRCID(b, i))
		if alnumStart {
			best = max(best, matchSSN(b, i))
		}
		return i, best
	case isLetter(c):
		if !alnumStart {
			return i, -1
		}
		if i+3 < len(b) && isLetter(b[i+1]) && isDigit(b[i+2]) && isDigit(b[i+3]) {
			var arr [maxChainTokens]token
			if end := matchIBAN(b, readChain(b, i, arr[:0])); end >= 0 {
				return i, end
			}
		}
		if hasWordFold(b, i, "passport") {
			return v.passportAfter(i + len("passport"))
		}
	case c == opaque && v.src != nil:
		// The original is needed here: the view keeps no Chinese.
		return v.passportAfterCJK(i)
	}

	return i, -1
}

func matchCard(b []byte, i int) int {
	// Luhn doubles every second digit counted from the right, so which
	// digits are doubled depends on the final length. Keep both sums while
	// reading from the left — evenDbl doubles digits at even offsets, oddDbl
	// at odd ones — so every grouping is checked in O(1) more.
	n, best := 0, -1
	evenDbl, oddDbl := 0, 0
	simple := true // every joint so far is the same single ' ' or '-'
	var joint byte
	shortest := maxCardDigits
	for j := i; ; {
		g := j
		for j < len(b) && isDigit(b[j]) {
			if n == maxCardDigits {
				return best // the run goes on past the longest card
			}
			d := int(b[j] - '0')
			dd := d * 2
			if dd > 9 {
				dd -= 9
			}
			if n%2 == 0 {
				evenDbl, oddDbl = evenDbl+dd, oddDbl+d
			} else {
				evenDbl, oddDbl = evenDbl+d, oddDbl+dd
			}
			n++
			j++
		}
		shortest = min(shortest, j-g)
		// With n digits the rightmost is at offset n-1 and is not doubled,
		// so the doubled offsets have the parity of n.
		sum := oddDbl
		if n%2 == 0 {
			sum = evenDbl
		}
		if n >= minCardDigits && sum%10 == 0 && (simple || shortest >= minLooseGroup) {
			best = j
		}
		k := j
		for k < len(b) && isSep(b[k]) && k-j <= maxSepRun {
			k++
		}
		if k == j || k-j > maxSepRun || k == len(b) || !isDigit(b[k]) {
			return best
		}
		if k-j == 1 && (b[j] == ' ' || b[j] == '-') && (joint == 0 || joint == b[j]) {
			joint = b[j]
		} else {
			simple = false
		}
		j = k
	}
}

type token struct {
	start, end int  // byte offsets; end exclusive, at most start+maxTokenScan
	sep        byte // separator before this token; 0 for the first
	long       bool // longer than maxTokenScan: end is not the real end
}

func (t token) len() int { return t.end - t.start }

// readChain reads the chain of tokens joined by exactly one ' ' or '-'
// starting at the token start i into toks (reused to avoid allocation) and
// returns it.
func readChain(b []byte, i int, toks []token) []token {
	toks = toks[:0]
	var sep byte
	total := 0
	for len(toks) < maxChainTokens {
		t := token{start: i, sep: sep}
		j := i
		for j < len(b) && isAlnum(b[j]) && j-i < maxTokenScan {
			j++
		}
		t.end = j
		t.long = j < len(b) && isAlnum(b[j])
		toks = append(toks, t)
		total += t.len()
		if t.long || total > maxIBANLen {
			break
		}
		// Continue only over exactly one separator followed by a token.
		if j+1 >= len(b) || (b[j] != ' ' && b[j] != '-') || !isAlnum(b[j+1]) {
			break
		}
		sep = b[j]
		i = j + 1
	}
	return toks
}

func matchIBAN(b []byte, toks []token) int {
	t0 := toks[0]
	if t0.len() < 4 || !isLetter(b[t0.start]) || !isLetter(b[t0.start+1]) ||
		!isDigit(b[t0.start+2]) || !isDigit(b[t0.start+3]) {
		return -1
	}
	if t0.len() > 4 {
		if !t0.long && t0.len() >= minIBANLen && t0.len() <= maxIBANLen && ibanValid(b[t0.start:t0.end]) {
			return t0.end
		}
		return -1
	}
	// Grouped form: "GB82 WEST 1234 5698 7654 32" — groups of four joined by
	// single spaces, the last group one to four characters.
	var chars [maxIBANLen]byte
	n := copy(chars[:], b[t0.start:t0.end])
	best := -1
	for _, t := range toks[1:] {
		if t.sep != ' ' || t.len() > 4 || n+t.len() > maxIBANLen {
			break
		}
		n += copy(chars[n:], b[t.start:t.end])
		if n >= minIBANLen && ibanValid(chars[:n]) {
			best = t.end
		}
		if t.len() < 4 {
			break
		}
	}
	return best
}

// ibanValid checks the ISO 13616 check digits of an IBAN given as letters and
// digits only (no separators), in any case.
func ibanValid(s []byte) bool {
	if cd := int(s[2]-'0')*10 + int(s[3]-'0'); cd < 2 || cd > 98 {
		return false
	}
	// ISO 7064 MOD 97-10 over the rearranged string (first four characters
	// moved to the end), letters counting as 10..35, computed digit by digit
	// so no big integer is needed.
	rem := 0
	for k := range s {
		c := s[(k+4)%len(s)]
		switch {
		case isDigit(c):
			rem = (rem*10 + int(c-'0')) % 97
		case isLetter(c):
			v := int(upper(c)-'A') + 10
			rem = (rem*100 + v) % 97
		default:
			return false
		}
	}
	return rem == 1
}

// prcCheck maps the GB 11643-1999 weighted sum mod 11 to the check character.
const prcCheck = "10X98765432"

// matchPRCID matches at the digit-run start i.
func matchPRCID(b []byte, i int) int {
	end := i + prcIDLen
	if end > len(b) {
		return -1
	}
	// After the ID: no further digit (a longer run) and, after an X, no
	// letter. '*' counts as both: a number masked later in this pass must
	// give the same answer on a second pass.
	if end < len(b) && (isAlnum(b[end]) || b[end] == '*') {
		return -1
	}
	// The GB 11643-1999 weights of the first 17 digits (2^(17-k) mod 11).
	weights := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	id := b[i:end]
	sum := 0
	for k, w := range weights {
		if !isDigit(id[k]) {
			return -1
		}
		sum += int(id[k]-'0') * w
	}
	if upper(id[17]) != prcCheck[sum%11] {
		return -1
	}
	return end
}

// matchSSN matches at the token start i.
func matchSSN(b []byte, i int) int {
	// ddd s dd s dddd, s one ' ' or '-', each group a whole token.
	if i+11 > len(b) {
		return -1
	}

	sep := b[i+3]
	if sep != ' ' && sep != '-' || b[i+6] != sep {
		return -1
	}

	for _, k := range [...]int{0, 1, 2, 4, 5, 7, 8, 9, 10} {
		if !isDigit(b[i+k]) {
			return -1
		}
	}

	end := i + 11
	if end < len(b) && isAlnum(b[end]) {
		return -1
	}

	// Part of a longer chain of digit groups (a phone or account number):
	// not an SSN. After it, '*' counts as a digit: a following number masked
	// later in this pass must give the same answer on a second pass. (Before
	// it, a masked number always ends in its kept, unmasked tail.)
	if i >= 2 && b[i-1] == sep && isDigit(b[i-2]) {
		return -1
	}

	if end+1 < len(b) && b[end] == sep && (isDigit(b[end+1]) || b[end+1] == '*') {
		return -1
	}

	if a := atoi(b[i : i+3]); a == 0 || a == 666 || a >= 900 || atoi(b[i+4:i+6]) == 0 || atoi(b[i+7:i+11]) == 0 {
		return -1
	}

	return end
}

// passportFillers are the words that may stand between a passport keyword
// and its number.
var passportFillers = [...]string{"no", "nr", "num", "number", "is", "was", "id"}

// passportFillersCJK are the Chinese ones (each one rune).
const passportFillersCJK = "号码是为："

// passportAfterCJK matches "护照" at the opaque byte i of the view. The
// view does not say which rune an opaque byte stands for; the original does.
func (v view) passportAfterCJK(i int) (from, end int) {
	if !strings.HasPrefix(v.origAt(i), "护照") {
		return i, -1
	}
	return v.passportAfter(i + 2) // two runes, two opaque bytes
}

func (v view) origAt(k int) string { return v.orig[v.src[k]:] }

// passportAfter looks for a passport number after the keyword ending at j.
func (v view) passportAfter(j int) (from, end int) {
	b := v.b
	limit := min(len(b), j+maxFiller)
	for j < limit {
		switch c := b[j]; {
		case isSep(c) || c == ':' || c == '#' || c == '=':
			j++
			continue
		case c == opaque && v.src != nil && v.isCJKFiller(j):
			j++
			continue
		case isLetter(c):
			if w := wordFiller(b, j); w > 0 {
				j += w
				continue
			}
		}
		break
	}

	if j >= len(b) || !isAlnum(b[j]) || (j > 0 && isAlnum(b[j-1])) {
		return j, -1
	}

	k, digits := j, 0
	for k < len(b) && isAlnum(b[k]) && k-j <= maxPassport {
		if isDigit(b[k]) {
			digits++
		}
		k++
	}

	if n := k - j; n < minPassport || n > maxPassport || digits < 5 || (k < len(b) && b[k] == '*') {
		return j, -1
	}

	return j, k
}

func (v view) isCJKFiller(j int) bool {
	r, _ := utf8.DecodeRuneInString(v.origAt(j))
	return strings.ContainsRune(passportFillersCJK, r)
}

// wordFiller returns the length of the filler word at j (a whole word), or
// 0.
func wordFiller(b []byte, j int) int {
	for _, w := range passportFillers {
		if hasWordFold(b, j, w) {
			return len(w)
		}
	}
	return 0
}

// hasWordFold reports whether b holds the ASCII word w (lower case) at i,
// in any case, not followed by another letter.
func hasWordFold(b []byte, i int, w string) bool {
	if i+len(w) > len(b) || (i+len(w) < len(b) && isLetter(b[i+len(w)])) {
		return false
	}
	for k := range len(w) {
		if b[i+k]|0x20 != w[k] {
			return false
		}
	}
	return true
}

// maskSpan replaces every letter/digit in b[start:end] but the last four with
// '*' and returns the offset of the first kept character.
func maskSpan(b []byte, start, end int) int {
	keep := end
	for kept := 0; kept < 4 && keep > start; {
		keep--
		if isAlnum(b[keep]) {
			kept++
		}
	}
	for k := start; k < keep; k++ {
		if isAlnum(b[k]) {
			b[k] = '*'
		}
	}
	return keep
}

func atoi(s []byte) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func isSep(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f', '-', '.', '/', ',', '(', ')':
		return true
	}
	return false
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }
func isAlnum(c byte) bool  { return isDigit(c) || isLetter(c) }
func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}
