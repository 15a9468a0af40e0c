package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Outcomes of an audited action.
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
	OutcomeError  = "error"
	// OutcomeFailed is an action that was attempted and did not complete:
	// an upload cut short, a download that failed its integrity check.
	OutcomeFailed = "failed"
)

// validOutcome is the one list of outcomes an event may carry and a filter
// may ask for.
func validOutcome(o string) bool {
	switch o {
	case OutcomeOK, OutcomeDenied, OutcomeError, OutcomeFailed:
		return true
	}
	return false
}

// Actor IDs for events that no API token caused.
const (
	ActorCLI    = "cli"
	ActorSystem = "system"
)

// Actions. Names are "<resource>.<verb>"; List and Export accept a trailing
// "*" to match a prefix ("case.*"). Callers may use other names of the same
// shape; ActionPrune is reserved for the package.
const (
	ActionCustomerCreate = "customer.create"
	ActionCustomerRead   = "customer.read"
	ActionCustomerUpdate = "customer.update"
	ActionCustomerCases  = "customer.list_cases"

	ActionCaseCreate = "case.create"
	ActionCaseRead   = "case.read"
	ActionCaseUpdate = "case.update"
	ActionCaseList   = "case.list"
	ActionCaseDelete = "case.delete"

	ActionContactCreate = "contact.create"
	ActionContactRead   = "contact.read"

	ActionAttachmentCreate   = "attachment.create"
	ActionAttachmentRead     = "attachment.read"
	ActionAttachmentReadMeta = "attachment.read_meta"

	// ActionSearch carries the query text and the number of hits in Detail
	// ({"q": "...", "hits": N, "filters": {...}}).
	ActionSearch = "search.query"

	// ActionAuthFailed is an authentication failure (missing, unknown or
	// revoked token); ActionAuthForbidden an authorization failure (valid
	// token, role not allowed). Both have outcome denied.
	ActionAuthFailed    = "auth.failed"
	ActionAuthForbidden = "auth.forbidden"

	ActionTokenCreate = "token.create"
	ActionTokenList   = "token.list"
	ActionTokenRevoke = "token.revoke"

	ActionScheduleRead   = "retention.schedule_read"
	ActionScheduleUpdate = "retention.schedule_update"
	ActionRetentionRead  = "retention.explain"
	ActionRetentionRun   = "retention.run"
	ActionSweep          = "retention.sweep"
	ActionDisposition    = "retention.dispose"

	ActionHoldCreate  = "hold.create"
	ActionHoldRead    = "hold.read"
	ActionHoldList    = "hold.list"
	ActionHoldRelease = "hold.release"

	ActionBackupRun     = "backup.run"
	ActionBackupList    = "backup.list"
	ActionBackupVerify  = "backup.verify"
	ActionBackupForget  = "backup.forget"
	ActionBackupRestore = "backup.restore"

	ActionAuditRead   = "audit.read"
	ActionAuditVerify = "audit.verify"
	ActionAuditExport = "audit.export"
	// ActionPrune is appended by Prune itself; its Detail records the
	// checkpoint, which Verify cross-checks.
	ActionPrune = "audit.prune"
)

// Limits keep one event small; message bodies do not fit on purpose.
const (
	MaxFieldBytes  = 1024
	MaxDetailBytes = 16 * 1024
)

// GenesisHash is the previous hash of the first event ever appended.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// canonicalTag versions the canonical encoding; it is hashed first.
const canonicalTag = "casevault.audit.v1\n"

var (
	// ErrInvalid marks bad input: an event, filter or cursor (HTTP 400).
	ErrInvalid = errors.New("audit: invalid input")
	// ErrSecret marks a Detail key that looks like a secret or a message body.
	ErrSecret = errors.New("audit: detail must not hold secrets or message bodies")
	// ErrClosed is returned by Record after Close.
	ErrClosed = errors.New("audit: log closed")
	// ErrTampered is returned by Prune when the events it would remove do not
	// verify: pruning must never erase the evidence of tampering.
	ErrTampered = errors.New("audit: chain does not verify")
)

// Event is one audit record. Time is stored as Unix microseconds (UTC).
// Seq, PrevHash and Hash are assigned when the event is appended, or, with
// WithSequencer, when it is sequenced.
type Event struct {
	Seq        int64           `json:"seq"`
	Time       time.Time       `json:"time"`
	ActorID    string          `json:"actor_id"`
	ActorName  string          `json:"actor_name"`
	Role       string          `json:"role"`
	Action     string          `json:"action"`
	TargetType string          `json:"target_type"`
	TargetID   string          `json:"target_id"`
	RequestID  string          `json:"request_id"`
	ClientIP   string          `json:"client_ip"`
	Outcome    string          `json:"outcome"`
	Detail     json.RawMessage `json:"detail"`
	PrevHash   string          `json:"prev_hash"`
	Hash       string          `json:"hash"`
	// Pending marks an event appended but not yet sequenced (WithSequencer):
	// it has no seq and no hashes yet. Never hashed or exported.
	Pending bool `json:"pending,omitempty"`
	// canonical: Detail is already in canonical form and free of secret
	// keys (FromChange), so normalize keeps it as it is.
	canonical bool
}

// ComputeHash returns the SHA-256 (lowercase hex) of the event's canonical
// encoding: every field except Hash. An exported trail can be checked with it
// offline: each line's hash must equal ComputeHash and the next line's
// PrevHash.
func (e Event) ComputeHash() string {
	var out [64]byte
	hashFields(nil, &out, e.Seq, e.Time.UnixMicro(), [nFields]string{
		e.ActorID, e.ActorName, e.Role, e.Action, e.TargetType, e.TargetID,
		e.RequestID, e.ClientIP, e.Outcome, string(e.Detail), e.PrevHash,
	})
	return string(out[:])
}

const nFields = 11

// hashFields writes the hex SHA-256 of the canonical encoding into out and
// returns buf for reuse. The encoding is the version tag, seq and time as
// 8-byte big-endian integers, then each text field (in Event order, Detail
// as its canonical JSON text, PrevHash last) as a 4-byte big-endian length
// followed by its bytes; length prefixes make it unambiguous.
func hashFields[T ~string | ~[]byte](buf []byte, out *[64]byte, seq, at int64, f [nFields]T) []byte {
	buf = append(buf[:0], canonicalTag...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(seq))
	buf = binary.BigEndian.AppendUint64(buf, uint64(at))
	for _, s := range f {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
		buf = append(buf, s...)
	}
	sum := sha256.Sum256(buf)
	hex.Encode(out[:], sum[:])
	return buf
}

// normalize validates ev and brings it into the form that is hashed and
// stored: time in UTC microseconds (now when zero), free-text fields valid
// UTF-8 without NUL and at most MaxFieldBytes (they may come from request
// headers, and a strange header must not make auditing fail), Detail
// canonical JSON.
func normalize(ev Event, now func() time.Time) (Event, error) {
	if ev.Time.IsZero() {
		ev.Time = now()
	}
	ev.Time = time.UnixMicro(ev.Time.UnixMicro()).UTC()
	if err := checkName("action", ev.Action); err != nil {
		return Event{}, err
	}
	if !validOutcome(ev.Outcome) {
		return Event{}, fmt.Errorf("%w: outcome %q is not ok, denied, error or failed", ErrInvalid, ev.Outcome)
	}
	for _, p := range []*string{&ev.ActorID, &ev.ActorName, &ev.Role, &ev.TargetType, &ev.TargetID, &ev.RequestID, &ev.ClientIP} {
		*p = cleanText(*p)
	}
	if !ev.canonical {
		d, err := canonicalDetail(ev.Detail)
		if err != nil {
			return Event{}, err
		}
		ev.Detail = d
	}
	ev.Seq, ev.PrevHash, ev.Hash = 0, "", ""
	return ev, nil
}

// normalizeCaller is normalize for events from outside the package, which
// may not forge the checkpoint record of a prune.
func normalizeCaller(ev Event, now func() time.Time) (Event, error) {
	if ev.Action == ActionPrune {
		return Event{}, fmt.Errorf("%w: action %s is reserved for Prune", ErrInvalid, ActionPrune)
	}
	return normalize(ev, now)
}

// checkName accepts the "<resource>.<verb>" shape of actions.
func checkName(what, s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("%w: %s must be 1 to 64 characters", ErrInvalid, what)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %s %q may hold only a-z, 0-9, '.', '_' and '-'", ErrInvalid, what, s)
		}
	}
	return nil
}

func cleanText(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) && len(s) <= MaxFieldBytes {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	if len(s) > MaxFieldBytes {
		cut := MaxFieldBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// canonicalDetail re-encodes a JSON object with sorted keys and no
// insignificant space; an empty or null detail becomes {}. Numbers keep
// their literal form.
func canonicalDetail(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}"), nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: detail is not JSON: %w", ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: detail has trailing data", ErrInvalid)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: detail must be a JSON object", ErrInvalid)
	}
	if err := checkSecrets(m, 0); err != nil {
		return nil, err
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: detail: %w", ErrInvalid, err)
	}
	if len(out) > MaxDetailBytes {
		return truncateDetail(m, len(out))
	}
	return out, nil
}

// truncateDetail shrinks a detail over MaxDetailBytes instead of failing:
// a request that happens to carry long text (a 3.8 KB search URL once made
// the search's detail 20 KiB and the request a 500) must still be on
// record. Every string longer than a limit is cut at a character boundary
// (marked with "…"), halving the limit until the detail fits, and the
// detail gains "truncated": true and "detail_bytes" (its size before). A
// detail that does not fit even then (huge arrays) keeps only those two.
func truncateDetail(m map[string]any, size int) (json.RawMessage, error) {
	for limit := 4096; limit >= 32; limit /= 2 {
		c, _ := cutStrings(m, limit).(map[string]any)
		c["truncated"], c["detail_bytes"] = true, size
		out, err := json.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("%w: detail: %w", ErrInvalid, err)
		}
		if len(out) <= MaxDetailBytes {
			return out, nil
		}
	}
	out, err := json.Marshal(map[string]any{"truncated": true, "detail_bytes": size})
	if err != nil {
		return nil, fmt.Errorf("%w: detail: %w", ErrInvalid, err)
	}
	return out, nil
}

// cutStrings copies v with every string longer than limit bytes cut to at
// most limit bytes (at a rune start) plus "…".
func cutStrings(v any, limit int) any {
	switch x := v.(type) {
	case string:
		if len(x) <= limit {
			return x
		}
		cut := limit
		for cut > 0 && !utf8.RuneStart(x[cut]) {
			cut--
		}
		return x[:cut] + "…"
	case map[string]any:
		c := make(map[string]any, len(x))
		for k, e := range x {
			c[k] = cutStrings(e, limit)
		}
		return c
	case []any:
		c := make([]any, len(x))
		for i, e := range x {
			c[i] = cutStrings(e, limit)
		}
		return c
	}
	return v
}

// secretKeys are Detail keys that name a secret or message content. Ids and
// counts (token_id, body_bytes) stay allowed; the key itself is the signal.
var secretKeys = map[string]bool{
	"token": true, "access_token": true, "refresh_token": true, "bearer": true,
	"authorization": true, "cookie": true, "api_key": true, "apikey": true,
	"master_key": true, "backup_key": true, "private_key": true, "key_material": true,
	"body": true, "message": true, "message_body": true, "content": true, "text": true,
	"raw": true, "data": true,
}

func checkSecrets(v any, depth int) error {
	if depth > 16 {
		return fmt.Errorf("%w: detail nests deeper than 16 levels", ErrInvalid)
	}
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if secretKey(k) {
				return fmt.Errorf("%w (key %q)", ErrSecret, k)
			}
			if err := checkSecrets(c, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for _, c := range x {
			if err := checkSecrets(c, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// secretKey reports whether a detail key names a secret or message
// content.
func secretKey(k string) bool {
	lk := strings.ToLower(k)
	return secretKeys[lk] || strings.Contains(lk, "password") || strings.Contains(lk, "passwd") ||
		strings.Contains(lk, "secret") || strings.Contains(lk, "passphrase") ||
		strings.HasSuffix(lk, "_token") || strings.HasSuffix(lk, "_body")
}

// EncodeDetail marshals a detail map (ids, counts, query text; never
// secrets or message bodies) for Event.Detail.
func EncodeDetail(m map[string]any) (json.RawMessage, error) {
	if len(m) == 0 {
		return json.RawMessage("{}"), nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: detail: %w", ErrInvalid, err)
	}
	return b, nil
}
