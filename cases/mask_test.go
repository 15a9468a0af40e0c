package cases

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The helpers below compute check digits independently of mask.go (different
// formulation), so a bug there cannot hide behind a shared one here.

// testLuhnOK reports whether the ASCII digit string s passes Luhn, by summing
// the digit sums of the doubled/undoubled digits from the left.
func testLuhnOK(s string) bool {
	total := 0
	parity := len(s) % 2
	for i, c := range s {
		d := int(c - '0')
		if i%2 == parity {
			d = d*2/10 + d*2%10
		}
		total += d
	}
	return total%10 == 0
}

// withLuhn appends the check digit that makes prefix Luhn-valid.
func withLuhn(t testing.TB, prefix string) string {
	t.Helper()
	for d := '0'; d <= '9'; d++ {
		if s := prefix + string(d); testLuhnOK(s) {
			return s
		}
	}
	t.Fatalf("no Luhn digit for %q", prefix)
	return ""
}

// withBadLuhn appends a check digit that makes prefix fail Luhn.
func withBadLuhn(t testing.TB, prefix string) string {
	t.Helper()
	s := withLuhn(t, prefix)
	last := (s[len(s)-1]-'0'+1)%10 + '0'
	return s[:len(s)-1] + string(last)
}

// withPRCCheck appends the GB 11643 check character to 17 digits:
// weight of position i (1-based from the left) is 2^(18-i) mod 11 and the
// check character is (12 - sum mod 11) mod 11, 10 written as X.
func withPRCCheck(t testing.TB, digits17 string) string {
	t.Helper()
	if len(digits17) != 17 {
		t.Fatalf("need 17 digits, got %q", digits17)
	}
	sum := 0
	for i, c := range digits17 {
		w := 1
		for k := 0; k < 17-i; k++ {
			w = w * 2 % 11
		}
		sum += int(c-'0') * w
	}
	check := (12 - sum%11) % 11
	if check == 10 {
		return digits17 + "X"
	}
	return digits17 + string(rune('0'+check))
}

// wrongPRCCheck returns id with a different, wrong check character.
func wrongPRCCheck(id string) string {
	if id[17] == '0' {
		return id[:17] + "1"
	}
	return id[:17] + "0"
}

func stars(n int) string { return strings.Repeat("*", n) }

func TestMaskSensitive(t *testing.T) {
	visa := "4111111111111111"
	if !testLuhnOK(visa) || !testLuhnOK("378282246310005") {
		t.Fatal("test Luhn helper rejects known-good card numbers")
	}
	card13 := withLuhn(t, "401288888888")        // 13 digits
	card19 := withLuhn(t, "622202020202020202")  // 19 digits
	card12 := withLuhn(t, "41111111111")         // 12 digits: too short
	card20 := withLuhn(t, "4111111111111111111") // 20 digits: too long
	badCard := withBadLuhn(t, "411111111111111")
	prc := withPRCCheck(t, "11010519491231002") // the standard example: ...002X
	if prc != "11010519491231002X" {
		t.Fatalf("PRC helper computed %q, want the published example 11010519491231002X", prc)
	}
	prc2 := withPRCCheck(t, "44030119900307123")
	phone := "+86 138 0013 8000" // 13 digits, Luhn-invalid
	if testLuhnOK("8613800138000") {
		t.Fatal("phone fixture happens to pass Luhn; pick another")
	}
	// A 20-digit run that starts with a valid card: must stay, being one
	// longer number (word boundary).
	run20 := visa + "1234"
	tail := withLuhn(t, "1111"+"10000000") // 13 digits starting with visa's last four

	tests := []struct {
		name string
		in   string
		want string
		n    int
	}{
		{"empty", "", "", 0},
		{"plain text", "hello, no numbers here 123", "hello, no numbers here 123", 0},
		{"card compact", "card " + visa + ".", "card " + stars(12) + "1111.", 1},
		{"card Chinese adjacent", "卡号" + visa + "谢谢", "卡号" + stars(12) + "1111谢谢", 1},
		{"card dashes", "4111-1111-1111-1111", "****-****-****-1111", 1},
		{"card spaces", "pay with 4111 1111 1111 1111 today", "pay with **** **** **** 1111 today", 1},
		{"amex 4-6-5", "3782 822463 10005", "**** ****** *0005", 1},
		{"card 13 digits", card13, stars(9) + card13[9:], 1},
		{"card 19 digits", card19, stars(15) + card19[15:], 1},
		{"card then expiry", "4111 1111 1111 1111 12 25", "**** **** **** 1111 12 25", 1},
		{"card in parentheses", "(" + visa + ")", "(" + stars(12) + "1111)", 1},
		{"card start and end of text", visa, stars(12) + "1111", 1},
		{"card after newline and tab", "a\n\t" + visa + "\n", "a\n\t" + stars(12) + "1111\n", 1},
		{"card after underscore", "ref_" + visa, "ref_" + stars(12) + "1111", 1},
		{"Luhn-invalid card", badCard, badCard, 0},
		{"Luhn-valid 12 digits too short", card12, card12, 0},
		{"Luhn-valid 20 digits too long", card20, card20, 0},
		{"card inside longer digit run", run20, run20, 0},
		// A letter does not bound a number any more (issue 12 §5).
		{"card glued to letters", "x" + visa, "x" + stars(12) + "1111", 1},
		{"card glued to letters after", visa + "abc", stars(12) + "1111abc", 1},
		{"phone number", "call " + phone, "call " + phone, 0},
		{"mixed separators", "4111 1111-1111 1111", "**** ****-**** 1111", 1},
		{"double space", "4111  1111  1111  1111", "****  ****  ****  1111", 1},
		{"loose joints need groups of three", "1,2,3,4,5,6,7,8,9,1,2,3,3", "1,2,3,4,5,6,7,8,9,1,2,3,3", 0},
		{"simple joints allow small groups", "1 2 3 4 5 6 7 8 9 1 2 3 3", "* * * * * * * * * 1 2 3 3", 1},
		{"date then time", "on 2026-11-20 at 14:32:05", "on 2026-11-20 at 14:32:05", 0},
		{"amounts", "paid 1,234.56 and 7,890.12 on 2026/11/20", "paid 1,234.56 and 7,890.12 on 2026/11/20", 0},
		{"phone with parentheses", "call +1 (415) 555-0134", "call +1 (415) 555-0134", 0},
		{"full-width phone", "电话：１３８ ００１３ ８０００", "电话：１３８ ００１３ ８０００", 0},
		{"card across four spaces", "4111    1111    1111    1111", "4111    1111    1111    1111", 0},

		{"passport", "passport E12345678.", "passport *****5678.", 1},
		{"passport number is", "Passport number is G12345678", "Passport number is *****5678", 1},
		{"passport no colon", "PASSPORT No.: 123456789", "PASSPORT No.: *****6789", 1},
		{"passport Chinese", "护照号 E12345678", "护照号 *****5678", 1},
		{"passport Chinese full", "我的护照号码是：E12345678。", "我的护照号码是：*****5678。", 1},
		{"passport Chinese adjacent", "护照E12345678谢谢", "护照*****5678谢谢", 1},
		{"passport mixed letters", "passport C01X00T47", "passport *****0T47", 1},
		{"passport without number", "passport expires 2027-05-01", "passport expires 2027-05-01", 0},
		{"passport number too short", "passport 12345", "passport 12345", 0},
		{"passport word too far", "passport was renewed after E12345678", "passport was renewed after E12345678", 0},
		{"passport number alone", "E12345678", "E12345678", 0},
		{"passports plural", "passports E12345678", "passports E12345678", 0},
		{"order number", "order 20261128000123", "order 20261128000123", 0},

		{"IBAN GB grouped", "IBAN GB82 WEST 1234 5698 7654 32 thanks", "IBAN **** **** **** **** **54 32 thanks", 1},
		{"IBAN GB compact", "GB82WEST12345698765432", stars(18) + "5432", 1},
		{"IBAN lower case", "gb82west12345698765432", stars(18) + "5432", 1},
		{"IBAN DE grouped", "DE89 3704 0044 0532 0130 00", "**** **** **** **** **30 00", 1},
		{"IBAN DE before short words", "DE89 3704 0044 0532 0130 00 abc defg", "**** **** **** **** **30 00 abc defg", 1},
		{"IBAN Chinese adjacent", "账户DE89370400440532013000。", "账户" + stars(18) + "3000。", 1},
		{"IBAN bad checksum", "GB83 WEST 1234 5698 7654 32", "GB83 WEST 1234 5698 7654 32", 0},
		{"IBAN bad checksum compact", "DE89370400440532013001", "DE89370400440532013001", 0},
		{"IBAN inside longer run", "XGB82WEST12345698765432", "XGB82WEST12345698765432", 0},

		{"PRC ID", "身份证" + prc + "。", "身份证" + stars(14) + "002X。", 1},
		{"PRC ID lower x", "id " + strings.ToLower(prc), "id " + stars(14) + "002x", 1},
		{"PRC ID digit check", prc2, stars(14) + prc2[14:], 1},
		{"PRC ID wrong check", wrongPRCCheck(prc), wrongPRCCheck(prc), 0},
		{"PRC ID wrong check digit", wrongPRCCheck(prc2), wrongPRCCheck(prc2), 0},

		{"SSN dashes", "SSN 123-45-6789.", "SSN ***-**-6789.", 1},
		{"SSN spaces", "ssn: 123 45 6789", "ssn: *** ** 6789", 1},
		{"SSN Chinese adjacent", "号码123-45-6789谢谢", "号码***-**-6789谢谢", 1},
		{"SSN after letters and dash", "SSN-123-45-6789", "SSN-***-**-6789", 1},
		{"SSN area 000", "000-12-3456", "000-12-3456", 0},
		{"SSN area 666", "666-12-3456", "666-12-3456", 0},
		{"SSN area 900", "900-12-3456", "900-12-3456", 0},
		{"SSN area 999", "999-12-3456", "999-12-3456", 0},
		{"SSN group 00", "123-00-4567", "123-00-4567", 0},
		{"SSN serial 0000", "123-45-0000", "123-45-0000", 0},
		{"SSN mixed separators", "123-45 6789", "123-45 6789", 0},
		{"SSN in longer chain after", "123-45-6789-01", "123-45-6789-01", 0},
		{"SSN in longer chain before", "1-123-45-6789", "1-123-45-6789", 0},
		{"SSN glued", "a123-45-6789", "a123-45-6789", 0}, // no check digit: a token of its own only
		{"SSN chained to a card", "123-45-6789-" + visa, "123-45-6789-" + stars(12) + "1111", 1},
		{"SSN chained to an IBAN", "123-45-6789-GB82WEST12345698765432", "***-**-6789-" + stars(18) + "5432", 2},
		{"SSN without separators", "123456789", "123456789", 0},

		{"several numbers", "card " + visa + ", IBAN GB82WEST12345698765432, SSN 123-45-6789",
			"card " + stars(12) + "1111, IBAN " + stars(18) + "5432, SSN ***-**-6789", 3},
		// The kept tail of one card and the next group form another valid
		// card: the first pass must catch it, or a second pass would.
		{"tail forms a new card", "4111-1111-1111-1111 " + tail[4:],
			"****-****-****-**** " + stars(5) + tail[9:], 2},
		{"already masked", "****-****-****-1111", "****-****-****-1111", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n := MaskSensitive(tt.in)
			if got != tt.want || n != tt.n {
				t.Fatalf("MaskSensitive(%q) = %q, %d; want %q, %d", tt.in, got, n, tt.want, tt.n)
			}
			again, n2 := MaskSensitive(got)
			if again != got || n2 != 0 {
				t.Fatalf("not idempotent: second pass gave %q, %d", again, n2)
			}
		})
	}
}

func TestMaskSensitiveGeneratedNumbers(t *testing.T) {
	// Every Luhn-valid length from 13 to 19 digits is masked; flipping the
	// check digit makes each one stay.
	for l := minCardDigits; l <= maxCardDigits; l++ {
		prefix := strings.Repeat("5", l-1)
		good, bad := withLuhn(t, prefix), withBadLuhn(t, prefix)
		if got, n := MaskSensitive("x " + good + " y"); n != 1 || got != "x "+stars(l-4)+good[l-4:]+" y" {
			t.Errorf("%d digits: got %q, %d", l, got, n)
		}
		if got, n := MaskSensitive("x " + bad + " y"); n != 0 || got != "x "+bad+" y" {
			t.Errorf("%d digits, bad Luhn: got %q, %d", l, got, n)
		}
	}
	// Every PRC ID check character, X included.
	seen := map[byte]bool{}
	for i := 0; len(seen) < 11 && i < 10000; i++ {
		id := withPRCCheck(t, fmt.Sprintf("3201021980%07d", i))
		seen[id[17]] = true
		if got, n := MaskSensitive(id); n != 1 || got != stars(14)+id[14:] {
			t.Fatalf("PRC %s: got %q, %d", id, got, n)
		}
		if bad := wrongPRCCheck(id); !testLuhnOK(bad) {
			// A wrong check digit stays, unless it happens to make a card.
			if got, n := MaskSensitive(bad); n != 0 || got != bad {
				t.Fatalf("PRC %s with wrong check: got %q, %d", bad, got, n)
			}
		}
	}
	if len(seen) != 11 {
		t.Fatalf("generated only check characters %v", seen)
	}
}

// normalisedForTest folds s the way issue 12 §5 asks detection to see it,
// independently of mask.go: NFKC per rune, Unicode digits by their Nd range,
// white space and dashes to ' ' and '-', format characters dropped, any other
// non-ASCII rune to NUL (a boundary that is not a separator).
func normalisedForTest(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if r < utf8.RuneSelf {
			sb.WriteRune(r)
			continue
		}
		if d, ok := ndValue(r); ok {
			sb.WriteByte('0' + d)
			continue
		}
		switch {
		case unicode.In(r, unicode.Cf):
			continue
		case unicode.IsSpace(r):
			sb.WriteByte(' ')
			continue
		case unicode.In(r, unicode.Pd) || r == '−':
			sb.WriteByte('-')
			continue
		}
		if n := norm.NFKC.String(string(r)); len(n) == 1 && n[0] < utf8.RuneSelf {
			sb.WriteString(n)
			continue
		}
		sb.WriteByte(0)
	}
	return sb.String()
}

// validCardsLeft returns the Luhn-valid card numbers left in s after
// normalisation, by a brute-force scan independent of mask.go: 13–19 digits
// in whole digit runs joined by runs of one to three separators (white
// space - . / , ( )), either all joined by the same single space or dash,
// or all groups at least three digits long.
func validCardsLeft(s string) []string {
	s = normalisedForTest(s)
	isDig := func(c byte) bool { return c >= '0' && c <= '9' }
	type group struct {
		start, end int
	}
	var runs []group
	for i := 0; i < len(s); {
		if !isDig(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isDig(s[j]) {
			j++
		}
		runs = append(runs, group{i, j})
		i = j
	}
	joint := func(a, b group) (string, bool) {
		sep := s[a.end:b.start]
		if len(sep) < 1 || len(sep) > 3 || strings.Trim(sep, " \t\n\r\v\f-./,()") != "" {
			return "", false
		}
		return sep, true
	}
	var found []string
	for i := range runs {
		digits, simple, shortest := "", true, 99
		first := ""
		for j := i; j < len(runs); j++ {
			if j > i {
				sep, ok := joint(runs[j-1], runs[j])
				if !ok {
					break
				}
				if first == "" {
					first = sep
				}
				if sep != first || (sep != " " && sep != "-") {
					simple = false
				}
			}
			g := s[runs[j].start:runs[j].end]
			digits += g
			shortest = min(shortest, len(g))
			if len(digits) > 19 {
				break
			}
			if len(digits) >= 13 && testLuhnOK(digits) && (simple || shortest >= 3) {
				found = append(found, digits)
			}
		}
	}
	return found
}

func FuzzMaskSensitive(f *testing.F) {
	for _, s := range []string{
		"", "4111111111111111", "卡号4111111111111111谢谢", "4111-1111-1111-1111 100000003",
		"4111 1111 1111 1111 12 25", "GB82 WEST 1234 5698 7654 32", "DE89370400440532013000",
		"11010519491231002X", "123-45-6789", "123 45 6789-12", "3782 822463 10005",
		"****-****-****-1111 2222", "+86 138 0013 8000", "\xff4111111111111111\xfe",
		"4111.1111.1111.1111", "4111  1111\t1111\n1111", "(4111)1111-1111-1111", "Visa4111111111111111",
		"４１１１１１１１１１１１１１１１", "٤١١١١١١١١١١١١١١١", "4111\u200b1111\u00a01111 1111",
		"passport E12345678", "护照号 E12345678", "身份证１１０１０５１９４９１２３１００２Ｘ",
	} {
		f.Add(s)
	}
	f.Fuzz(checkMaskInvariants)
}

// checkMaskInvariants checks what must hold for any input.
func checkMaskInvariants(t *testing.T, in string) {
	t.Helper()
	out, n := MaskSensitive(in)
	if utf8.ValidString(in) && !utf8.ValidString(out) {
		t.Fatalf("invalid UTF-8 output %q for %q", out, in)
	}
	if (n == 0) != (out == in) {
		t.Fatalf("n=%d but output changed=%v: %q -> %q", n, out != in, in, out)
	}
	// Rune by rune (invalid bytes count as one each), only runes that
	// normalise to a letter or digit may change, and only into '*'.
	ri, ro := 0, 0
	for ri < len(in) && ro < len(out) {
		r1, s1 := utf8.DecodeRuneInString(in[ri:])
		r2, s2 := utf8.DecodeRuneInString(out[ro:])
		if in[ri:ri+s1] != out[ro:ro+s2] {
			f := normalisedForTest(in[ri : ri+s1])
			if r2 != '*' || len(f) != 1 || !isAlnum(f[0]) {
				t.Fatalf("rune %q at byte %d became %q: only letters/digits may become '*' (%q -> %q)", r1, ri, r2, in, out)
			}
		}
		ri, ro = ri+s1, ro+s2
	}
	if ri != len(in) || ro != len(out) {
		t.Fatalf("rune count changed: %q -> %q", in, out)
	}
	if again, n2 := MaskSensitive(out); n2 != 0 || again != out {
		t.Fatalf("not idempotent: %q -> %q -> %q (%d)", in, out, again, n2)
	}
	if left := validCardsLeft(out); len(left) > 0 {
		t.Fatalf("valid card numbers %q left in %q (from %q)", left, out, in)
	}
}

// TestMaskSensitiveRandomBodies checks the invariants on bodies assembled
// from valid and near-valid numbers, separators and text, which random byte
// mutation rarely produces (a random 16-digit run passes Luhn 1 time in 10,
// but rarely sits next to another number).
func TestMaskSensitiveRandomBodies(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + rng.IntN(10))
		}
		return string(b)
	}
	group := func(s string, size int, sep string) string {
		var parts []string
		for len(s) > size {
			parts = append(parts, s[:size])
			s = s[size:]
		}
		return strings.Join(append(parts, s), sep)
	}
	frags := []func() string{
		func() string { return withLuhn(t, digits(12+rng.IntN(7))) },
		func() string { return group(withLuhn(t, "4"+digits(14)), 4, " ") },
		func() string { return group(withLuhn(t, "5"+digits(14)), 4, "-") },
		func() string {
			return group(withLuhn(t, digits(12+rng.IntN(7))), 1+rng.IntN(5), []string{" ", "-"}[rng.IntN(2)])
		},
		func() string { return withBadLuhn(t, digits(15)) },
		func() string { return digits(1 + rng.IntN(6)) },
		func() string { return withPRCCheck(t, digits(17)) },
		func() string { return "GB82 WEST 1234 5698 7654 32" },
		func() string { return "DE89370400440532013000" },
		func() string { return fmt.Sprintf("%03d-%02d-%04d", 1+rng.IntN(899), 1+rng.IntN(99), 1+rng.IntN(9999)) },
		func() string {
			return []string{" ", "-", "  ", ", ", "卡号", "谢谢", "*", "**", "x", "\n", "。"}[rng.IntN(11)]
		},
		// Issue 12 §5: other scripts, separators and invisible characters.
		func() string {
			return []string{".", "/", ",", "\t", "\r\n", "(", ")", " - ", "\u00a0", "\u200b", "\u3000", "－", "\u2013", "Visa", "护照号", "passport "}[rng.IntN(16)]
		},
		func() string {
			zero := []rune{'０', '٠', '۰', '०'}[rng.IntN(4)]
			return strings.Map(func(r rune) rune { return zero + r - '0' }, withLuhn(t, digits(12+rng.IntN(7))))
		},
		func() string {
			seps := []string{".", "  ", "/", ",", "\n", "\u00a0", " - ", "-", " "}
			s := withLuhn(t, digits(12+rng.IntN(7)))
			var sb strings.Builder
			for len(s) > 0 {
				k := min(len(s), 1+rng.IntN(5))
				sb.WriteString(s[:k])
				s = s[k:]
				if len(s) > 0 {
					sb.WriteString(seps[rng.IntN(len(seps))])
				}
			}
			return sb.String()
		},
		func() string { return []string{"E", "G"}[rng.IntN(2)] + digits(8) },
		func() string { return []string{"card", "IBAN", "订单", "SSN:"}[rng.IntN(4)] },
	}
	for range 20000 {
		var sb strings.Builder
		for range 1 + rng.IntN(8) {
			sb.WriteString(frags[rng.IntN(len(frags))]())
			if rng.IntN(2) == 0 {
				sb.WriteString([]string{" ", "-", ""}[rng.IntN(3)])
			}
		}
		checkMaskInvariants(t, sb.String())
		if t.Failed() {
			return
		}
	}
}

func BenchmarkMaskSensitive(b *testing.B) {
	var sb strings.Builder
	parts := []string{
		"您好，我的信用卡号是4111 1111 1111 1111，订单号20261128000123，请帮我查一下。",
		"Hi, I was charged twice on card 4111-1111-1111-1111 for order #88231. ",
		"Please refund to IBAN GB82 WEST 1234 5698 7654 32 or DE89370400440532013000. ",
		"My SSN is 123-45-6789 and my phone is +1 415 555 0134; ID 11010519491231002X. ",
		"The tracking number 1Z999AA10123456784 shows delivered on 2026-11-20 at 14:32. ",
	}
	for sb.Len() < 2048 {
		for _, p := range parts {
			sb.WriteString(p)
		}
	}
	body := sb.String()[:2048]
	body = strings.ToValidUTF8(body, "")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		MaskSensitive(body)
	}
}

// BenchmarkMaskSensitiveWorstCase shows the scan stays linear on inputs built
// to make a backtracking matcher blow up: ns/op should grow ~100x from 2 KB to
// 200 KB, not ~10000x.
func BenchmarkMaskSensitiveWorstCase(b *testing.B) {
	inputs := map[string]string{
		"one-digit groups": "1 ",
		"dash groups":      "1234-",
		"IBAN-like groups": "GB82 ",
		"digit run":        "1",
		"SSN-like":         "123-45-",
	}
	for name, unit := range inputs {
		for _, size := range []int{2 << 10, 200 << 10} {
			body := strings.Repeat(unit, size/len(unit))
			b.Run(fmt.Sprintf("%s/%dKB", name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					MaskSensitive(body)
				}
			})
		}
	}
}
