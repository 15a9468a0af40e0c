package cases

// Masking of payment-instrument and identity-document numbers in free text.
//
// The scanner is hand-written rather than a regular expression so that it can
// validate check digits while it scans, try several groupings of one digit
// chain, and stay linear in the size of the body whatever the input.
//
// Vocabulary:
//   - a token is a maximal run of ASCII letters and digits. Anything else —
//     punctuation, '*', spaces, non-ASCII text such as Chinese — bounds a token,
//     so "卡号4111111111111111谢谢" holds the token "4111111111111111" and a
//     number is never matched inside a longer letter/digit run;
//   - a chain is a sequence of tokens joined by exactly one ' ' or '-'.
//
// Detected numbers (each a chain starting at a token start and ending at a
// token end):
//   - card numbers: 13–19 digits in all-digit tokens joined by one kind of
//     separator (all spaces or all dashes), passing the Luhn check. A card may
//     be a shorter part of a longer digit chain ("4111 1111 1111 1111 12 25",
//     card then expiry): the longest Luhn-valid grouping from the left wins;
//   - IBANs: two letters, two check digits (02–98) and more letters/digits,
//     15–34 characters in all (15 is the shortest national IBAN), either as
//     one token or in groups of four joined by single spaces, valid by
//     ISO 7064 MOD 97-10; letters in any case;
//   - PRC resident identity numbers: one 18-character token of 17 digits and
//     a check character (0-9, X or x) that is right by GB 11643;
//   - US SSNs: ddd-dd-dddd or ddd dd dddd, with area not 000, 666 or 9xx,
//     group not 00 and serial not 0000, and not part of a longer chain of
//     digit groups joined by the same separator (e.g. "123-45-6789-01").
//
// Masking keeps the separators where they were and the last four letters or
// digits of the number, and replaces every other letter/digit of it with '*':
// "4111-1111-1111-1111" becomes "****-****-****-1111". Only ASCII bytes are
// replaced by ASCII bytes, so the output is valid UTF-8 exactly when the input
// is, and has the same length in bytes and in runes.
//
// Not detected: numbers written with full-width digits, with separators other
// than a single ASCII space or dash (dots, NBSP, doubled spaces), or bank
// account numbers that are not IBANs.

// MaskSensitive masks card numbers, IBANs, PRC resident identity numbers and
// US SSNs in body to their last four characters and reports how many numbers
// it masked. Masking is idempotent: masking the result again masks nothing.
func MaskSensitive(body string) (masked string, n int) {
	b := []byte(body)
	for i := 0; i < len(b); {
		if !isAlnum(b[i]) || (i > 0 && isAlnum(b[i-1])) {
			i++
			continue
		}
		end := matchAt(b, i)
		if end < 0 {
			i = tokenEnd(b, i)
			continue
		}
		// Resume at the kept tail rather than after the number: a second
		// pass over the output sees the tail as a fresh token start, so the
		// first pass must too, or masking would not be idempotent.
		i = maskSpan(b, i, end)
		n++
	}
	if n == 0 {
		return body, 0
	}
	return string(b), n
}

const (
	maxCardDigits = 19
	minCardDigits = 13
	maxIBANLen    = 34
	minIBANLen    = 15
	prcIDLen      = 18
	// maxTokenScan bounds how far a token is read while looking for a
	// number: nothing detected is longer than an IBAN, so reading further
	// would only cost time (and make the scan quadratic on long runs).
	maxTokenScan = maxIBANLen + 1
	// maxChainTokens bounds the chain read from one start: the longest
	// chain that can matter is a card of 19 one-digit groups.
	maxChainTokens = maxCardDigits
)

type token struct {
	start, end int  // byte offsets; end exclusive, at most start+maxTokenScan
	sep        byte // separator before this token; 0 for the first
	digits     bool // all ASCII digits
	long       bool // longer than maxTokenScan: end is not the real end
}

func (t token) len() int { return t.end - t.start }

// readChain reads the chain of tokens starting at the token start i into
// toks (reused to avoid allocation) and returns it.
func readChain(b []byte, i int, toks []token) []token {
	toks = toks[:0]
	var sep byte
	total := 0
	for len(toks) < maxChainTokens {
		t := token{start: i, sep: sep, digits: true}
		j := i
		for j < len(b) && isAlnum(b[j]) && j-i < maxTokenScan {
			if !isDigit(b[j]) {
				t.digits = false
			}
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

// matchAt returns the end of the longest number starting at the token start
// i, or -1 when none starts there.
func matchAt(b []byte, i int) int {
	// Every number starts with a digit, or with two letters and two digits
	// (IBAN): skip ordinary words without reading the chain.
	if !isDigit(b[i]) && (i+3 >= len(b) || !isLetter(b[i+1]) || !isDigit(b[i+2]) || !isDigit(b[i+3])) {
		return -1
	}
	var arr [maxChainTokens]token
	toks := readChain(b, i, arr[:0])
	best := -1
	for _, end := range [...]int{matchPRCID(b, toks), matchSSN(b, toks), matchCard(b, toks), matchIBAN(b, toks)} {
		if end > best {
			best = end
		}
	}
	return best
}

func matchCard(b []byte, toks []token) int {
	// Luhn doubles every second digit counted from the right, so which
	// digits are doubled depends on the final length. Keep both sums while
	// reading from the left — evenDbl doubles digits at even offsets, oddDbl
	// at odd ones — so every grouping is checked in O(1) more.
	n, best := 0, -1
	evenDbl, oddDbl := 0, 0
	for k, t := range toks {
		if !t.digits || t.long || (k > 1 && t.sep != toks[1].sep) || n+t.len() > maxCardDigits {
			break
		}
		for _, c := range b[t.start:t.end] {
			d := int(c - '0')
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
		}
		// With n digits the rightmost is at offset n-1 and is not doubled,
		// so the doubled offsets have the parity of n.
		sum := oddDbl
		if n%2 == 0 {
			sum = evenDbl
		}
		if n >= minCardDigits && sum%10 == 0 {
			best = t.end
		}
	}
	return best
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

func matchPRCID(b []byte, toks []token) int {
	t := toks[0]
	if t.long || t.len() != prcIDLen {
		return -1
	}
	// The GB 11643-1999 weights of the first 17 digits (2^(17-k) mod 11).
	weights := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	id := b[t.start:t.end]
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
	return t.end
}

func matchSSN(b []byte, toks []token) int {
	if len(toks) < 3 {
		return -1
	}
	area, group, serial := toks[0], toks[1], toks[2]
	sep := group.sep
	if !area.digits || area.len() != 3 || !group.digits || group.len() != 2 ||
		!serial.digits || serial.len() != 4 || serial.sep != sep {
		return -1
	}
	// Part of a longer chain of digit groups (a phone or account number):
	// not an SSN. After it, '*' counts as a digit: a following number masked
	// later in this pass must give the same answer on a second pass. (Before
	// it, a masked number always ends in its kept, unmasked tail.)
	if s := area.start; s >= 2 && b[s-1] == sep && isDigit(b[s-2]) {
		return -1
	}
	if e := serial.end; e+1 < len(b) && b[e] == sep && (isDigit(b[e+1]) || b[e+1] == '*') {
		return -1
	}
	a := atoi(b[area.start:area.end])
	if a == 0 || a == 666 || a >= 900 || atoi(b[group.start:group.end]) == 0 || atoi(b[serial.start:serial.end]) == 0 {
		return -1
	}
	return serial.end
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

func tokenEnd(b []byte, i int) int {
	for i < len(b) && isAlnum(b[i]) {
		i++
	}
	return i
}

func atoi(s []byte) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
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
