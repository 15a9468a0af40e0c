package cases

import (
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// cardVariants writes the 16-digit card number in every way issue 12 §5
// saw pass unmasked: each variant is named and written in groups of four.
func cardVariants(card string) map[string]string {
	g := []string{card[0:4], card[4:8], card[8:12], card[12:16]}
	join := func(sep string) string { return strings.Join(g, sep) }
	script := func(zero rune) string {
		return strings.Map(func(r rune) rune { return zero + (r - '0') }, card)
	}
	return map[string]string{
		"compact":                card,
		"dots":                   join("."),
		"spaces":                 join(" "),
		"double spaces":          join("  "),
		"dashes":                 join("-"),
		"mixed separators":       g[0] + " " + g[1] + "-" + g[2] + "." + g[3],
		"line breaks":            join("\n"),
		"CRLF":                   join("\r\n"),
		"tabs":                   join("\t"),
		"slashes":                join("/"),
		"commas":                 join(","),
		"comma space":            join(", "),
		"parentheses":            "(" + g[0] + ")" + g[1] + "-" + g[2] + "-" + g[3],
		"letter before":          "Visa" + card,
		"letter after":           card + "exp",
		"full-width digits":      script('０'),
		"full-width grouped":     strings.Join([]string{script('０')[0:12], script('０')[12:24], script('０')[24:36], script('０')[36:48]}, "　"),
		"Arabic-Indic digits":    script('٠'),
		"Persian digits":         script('۰'),
		"Devanagari digits":      script('०'),
		"zero-width space":       g[0] + g[1][:2] + "\u200b" + g[1][2:] + g[2] + "\u200b" + g[3],
		"zero-width joiners":     join("\u200d"),
		"BOM inside":             g[0] + "\ufeff" + g[1] + g[2] + g[3],
		"NBSP":                   join("\u00a0"),
		"narrow NBSP":            join("\u202f"),
		"ideographic space":      join("\u3000"),
		"en dashes":              join("\u2013"),
		"full-width hyphen":      join("－"),
		"full-width dots":        join("．"),
		"space dash space":       join(" - "),
		"full-width parentheses": "（" + g[0] + "）" + join(" ")[5:],
	}
}

// digitsOf returns the decimal digits of s in any script as ASCII, by an
// independent route: NFKC first, then the Unicode Nd range tables.
func digitsOf(s string) string {
	var sb strings.Builder
	for _, r := range norm.NFKC.String(s) {
		if d, ok := ndValue(r); ok {
			sb.WriteByte('0' + d)
		}
	}
	return sb.String()
}

// ndValue is the value of a decimal digit: its distance from the low end of
// its range in unicode.Nd, mod 10 (every range is whole blocks of ten).
func ndValue(r rune) (byte, bool) {
	for _, rg := range unicode.Nd.R16 {
		if r >= rune(rg.Lo) && r <= rune(rg.Hi) && (r-rune(rg.Lo))%rune(rg.Stride) == 0 {
			return byte((r - rune(rg.Lo)) % 10), true
		}
	}
	for _, rg := range unicode.Nd.R32 {
		if r >= rune(rg.Lo) && r <= rune(rg.Hi) && (r-rune(rg.Lo))%rune(rg.Stride) == 0 {
			return byte((r - rune(rg.Lo)) % 10), true
		}
	}
	return 0, false
}

// TestMaskCardVariants feeds every way of writing a card that issue 12 §5
// found unmasked, inside English and Chinese sentences: each must be masked
// to its last four digits and nothing else in the sentence may change.
func TestMaskCardVariants(t *testing.T) {
	sentences := []string{
		"Please charge my card %s today.",
		"My card number is %s, thanks!",
		"card:%s",
		"%s",
		"我的卡号是%s，谢谢。",
		"请用这张卡%s付款",
		"卡号：%s（请保密）",
	}
	for _, card := range []string{"4111111111111111", "5555555555554444", "6011000990139424"} {
		if !testLuhnOK(card) {
			t.Fatalf("fixture %s fails Luhn", card)
		}
		for name, v := range cardVariants(card) {
			for _, sentence := range sentences {
				in := fmt.Sprintf(sentence, v)
				t.Run(card[:4]+"/"+name+"/"+sentence, func(t *testing.T) {
					out, n := MaskSensitive(in)
					if n != 1 {
						t.Fatalf("MaskSensitive(%q) = %q, %d numbers; want 1", in, out, n)
					}
					if got := digitsOf(out); got != card[12:] {
						t.Fatalf("MaskSensitive(%q) = %q: digits left %q, want only the last four %q", in, out, got, card[12:])
					}
					if utf8.RuneCountInString(out) != utf8.RuneCountInString(in) {
						t.Fatalf("rune count changed: %q -> %q", in, out)
					}
					// Everything but the masked digits is as it was.
					rin, rout := []rune(in), []rune(out)
					for i := range rin {
						if rin[i] != rout[i] {
							if _, digit := ndValue(rin[i]); !digit && !unicode.IsDigit(rin[i]) || rout[i] != '*' {
								t.Fatalf("rune %d changed from %q to %q in %q -> %q", i, rin[i], rout[i], in, out)
							}
						}
					}
					checkMaskInvariants(t, in)
				})
			}
		}
	}
}

// TestMaskOrdinaryNumbers: numbers that are not payment or identity
// numbers survive, whatever their script or separators.
func TestMaskOrdinaryNumbers(t *testing.T) {
	for _, in := range []string{
		"订单号 20261128000123",
		"订单号２０２６１１２８０００１２３",
		"order #88231, shipped 2026-11-20 14:32, tracking 1Z999AA10123456784",
		"call +86 138 0013 8000 or +1 (415) 555-0134",
		"电话：１３８ ００１３ ８０００",
		"totals: 1,234.56 / 7,890.12 / 4,567.89",
		"version 1.2.3.4.5.6.7.8.9.1.2.3.3",
		"steps 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3, 3",
		"٢٠٢٦/١١/٢٠",
		"passport photo 2026",
	} {
		if out, n := MaskSensitive(in); n != 0 || out != in {
			t.Errorf("MaskSensitive(%q) = %q, %d; want it unchanged", in, out, n)
		}
	}
}

// TestMaskIdentityVariants: the other numbers normalise the same way.
func TestMaskIdentityVariants(t *testing.T) {
	fw := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' {
				return r - '0' + '０'
			}
			return r
		}, s)
	}
	for _, tt := range []struct{ in, want string }{
		{"身份证号" + fw("11010519491231002X"), "身份证号" + stars(14) + fw("002X")},
		{"身份证号11010519491231002X谢谢", "身份证号" + stars(14) + "002X谢谢"},
		{"ID11010519491231002X", "ID" + stars(14) + "002X"},
		{"SSN " + fw("123-45-6789"), "SSN " + "***-**-" + fw("6789")},
		{"SSN 123\u00a045\u00a06789", "SSN ***\u00a0**\u00a06789"},
		{"护照号 " + fw("E12345678"), "护照号 " + stars(5) + fw("5678")},
		{"ＩＢＡＮ ＧＢ８２ＷＥＳＴ１２３４５６９８７６５４３２", "ＩＢＡＮ " + stars(18) + "５４３２"},
	} {
		out, n := MaskSensitive(tt.in)
		if out != tt.want || n != 1 {
			t.Errorf("MaskSensitive(%q) = %q, %d; want %q, 1", tt.in, out, n, tt.want)
		}
		checkMaskInvariants(t, tt.in)
	}
}

func TestDigitValueEveryScript(t *testing.T) {
	for _, tab := range [][]unicode.Range16{unicode.Nd.R16} {
		for _, rg := range tab {
			for r := rune(rg.Lo); r <= rune(rg.Hi); r += rune(rg.Stride) {
				want, _ := ndValue(r)
				if got := digitValue(r); got != want {
					t.Fatalf("digitValue(%U) = %d, want %d", r, got, want)
				}
			}
		}
	}
	for _, rg := range unicode.Nd.R32 {
		for r := rune(rg.Lo); r <= rune(rg.Hi); r += rune(rg.Stride) {
			want, _ := ndValue(r)
			if got := digitValue(r); got != want {
				t.Fatalf("digitValue(%U) = %d, want %d", r, got, want)
			}
		}
	}
}
