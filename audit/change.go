package audit

import (
	"encoding"
	"encoding/json"
	"reflect"
	"unicode/utf8"

	"github.com/casevault/casevault/cases"
)

// FromChange turns a domain change (what stores, the sweeper and backups
// hand their change hooks) into an audit event with the given outcome.
func FromChange(ch cases.Change, outcome string) Event {
	ev := Event{
		ActorID: ch.Actor.TokenID, ActorName: ch.Actor.Name, Role: ch.Actor.Role,
		Action: ch.Action, TargetType: ch.TargetType, TargetID: ch.TargetID,
		RequestID: ch.Actor.RequestID, ClientIP: ch.Actor.ClientIP, Outcome: outcome,
	}
	if ev.ActorName == "" && ev.ActorID == "" {
		ev.ActorName = "anonymous"
	}
	if ch.Detail != nil {
		if raw, err := json.Marshal(ch.Detail); err == nil {
			ev.Detail = raw
			// A detail of flat values is already canonical as json.Marshal
			// writes it (keys sorted, no space, each number as written),
			// so normalize keeps it rather than decoding and encoding it
			// again: that was 2% of serve's CPU under contact ingest
			// (issue 19). Anything else takes the general path.
			ev.canonical = len(raw) <= MaxDetailBytes && flatDetail(ch.Detail)
		}
	}
	return ev
}

// flatDetail reports whether every value of m is flat (flatValue) and no
// key names a secret (which the general path refuses).
func flatDetail(m map[string]any) bool {
	for k, v := range m {
		if secretKey(k) || !flatValue(v) {
			return false
		}
	}
	return true
}

// flatValue reports whether v holds no key (no map, no struct) and
// encodes by its kind alone: nil, a string, a boolean, a number, or a
// slice of strings, none with a JSON or text encoding of its own, every
// string valid UTF-8 (json.Marshal writes an invalid byte as an escaped
// U+FFFD, which the general path's decoding turns into the character).
func flatValue(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	t := rv.Type()
	if t.Kind() == reflect.Slice {
		t = t.Elem()
		if t.Kind() != reflect.String {
			return false
		}
	}
	if t.Implements(jsonMarshaler) || t.Implements(textMarshaler) ||
		reflect.PointerTo(t).Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(textMarshaler) {
		return false
	}
	switch rv.Kind() {
	case reflect.Slice:
		for i := range rv.Len() {
			if !utf8.ValidString(rv.Index(i).String()) {
				return false
			}
		}
		return true
	case reflect.String:
		return utf8.ValidString(rv.String())
	case reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)
