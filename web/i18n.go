package web

import (
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/text/language"

	"github.com/casevault/casevault/auth"
)

// The console's languages: English and Simplified Chinese. Every label is
// a key of the catalogue (messages.go); a key missing from a language
// falls back to English, and one missing from English shows as the key
// (TestCatalogueComplete fails on both).
var languages = []language.Tag{language.English, language.SimplifiedChinese}

type catalogue struct {
	msgs    map[string]map[string]string // lang → key → text
	matcher language.Matcher
}

func newCatalogue() catalogue {
	return catalogue{msgs: map[string]map[string]string{
		"en":      mergeMessages(messagesEN, messagesOpsEN, agentMessagesEN),
		"zh-Hans": mergeMessages(messagesZH, messagesOpsZH, agentMessagesZH),
	}, matcher: language.NewMatcher(languages)}
}

// mergeMessages joins the message files of one language (each audience's
// pages keep theirs in its own file); a key in two files is a mistake
// TestCatalogueComplete reports, the later file wins here.
func mergeMessages(parts ...map[string]string) map[string]string {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make(map[string]string, n)
	for _, p := range parts {
		for k, v := range p {
			out[k] = v
		}
	}
	return out
}

func (c catalogue) has(lang string) bool { _, ok := c.msgs[lang]; return ok }

// locale is one request's language and time zone.
type locale struct {
	Lang string
	msgs map[string]string
	en   map[string]string
	loc  *time.Location
	// Zone is the time zone's name, shown next to dates.
	Zone string
}

// T translates a key; args fill its %s/%d verbs.
func (l *locale) T(key string, args ...any) string {
	s, ok := l.msgs[key]
	if !ok {
		if s, ok = l.en[key]; !ok {
			return key
		}
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// Time shows a time in the user's zone.
func (l *locale) Time(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(l.loc).Format("2006-01-02 15:04")
}

// TimeP shows an optional time.
func (l *locale) TimeP(t *time.Time) string {
	if t == nil {
		return ""
	}
	return l.Time(*t)
}

// ISO is a time for a <time datetime> attribute.
func (l *locale) ISO(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// localeFor picks the language (the cookie a user switched to, else
// Accept-Language) and the time zone (the user's setting, else the one the
// browser reported in a cookie, else UTC).
func (w *Console) localeFor(c *fiber.Ctx, u *auth.User) *locale {
	lang := c.Cookies(langCookie)
	if !w.cat.has(lang) {
		lang = "en"
		tags, _, err := language.ParseAcceptLanguage(c.Get(fiber.HeaderAcceptLanguage))
		if err == nil && len(tags) > 0 {
			_, idx, conf := w.cat.matcher.Match(tags...)
			if conf != language.No && idx == 1 {
				lang = "zh-Hans"
			}
		}
	}
	zone := ""
	if u != nil {
		zone = u.TimeZone
	}
	if zone == "" {
		zone = c.Cookies(tzCookie)
	}
	loc, err := time.LoadLocation(zone)
	if zone == "" || len(zone) > 64 || strings.Contains(zone, "..") || err != nil {
		loc, zone = time.UTC, "UTC"
	}
	return &locale{Lang: lang, msgs: w.cat.msgs[lang], en: w.cat.msgs["en"], loc: loc, Zone: zone}
}

// setLang switches the language (a cookie; no data changes, so a link).
func (w *Console) setLang(c *fiber.Ctx) error {
	tag := c.Params("tag")
	if !w.cat.has(tag) {
		return fiber.ErrNotFound
	}
	w.setCookie(c, langCookie, tag, 365*24*time.Hour, false)
	return c.Redirect(safeNext(c.Query("next", "/")), fiber.StatusSeeOther)
}
