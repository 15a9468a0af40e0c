package cases

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits on free text, chosen to fit any real contact while keeping one
// request well under the JSON body limit.
const (
	MaxNameLen     = 200
	MaxSubjectLen  = 500
	MaxBodyLen     = 256 * 1024
	MaxAuthorLen   = 200
	MaxTagLen      = 64
	MaxTags        = 32
	MaxShortLen    = 320 // e-mail, phone, external ref, locale, labels
	MaxUserAgent   = 1024
	maxFutureSkew  = 24 * time.Hour
	defaultPurpose = PurposeCustomerService
)

var tagPattern = regexp.MustCompile(`^[\p{L}\p{N}][\p{L}\p{N}_.:/-]*$`)

// Actor is who asked for a change; it travels into the audit trail.
type Actor struct {
	TokenID   string
	Name      string
	Role      string
	RequestID string
	ClientIP  string
}

// Change describes a write for the audit trail. Detail must never hold
// secrets or message bodies.
type Change struct {
	Actor      Actor
	Action     string
	TargetType string
	TargetID   string
	Detail     map[string]any
}

// TxHook runs inside a write transaction with the change it makes, so the
// change and its audit event commit together (or not at all).
type TxHook func(ctx context.Context, tx *sql.Tx, ch Change) error

// SystemActor is the actor of scheduled and background work.
func SystemActor() Actor { return Actor{Name: "system", Role: "system"} }

// CLIActor is the actor of a command run on the server's machine.
func CLIActor() Actor { return Actor{Name: "cli", Role: "cli"} }

// Page selects a window of a list.
type Page struct {
	Limit  int
	Cursor string
}

// CaseFilter narrows a case list.
type CaseFilter struct {
	Status     Status
	CustomerID string
	Assignee   string
	Tag        string
}

// RetentionPolicy gives the retention rules in force as a write
// transaction sees them: the store asks in the transaction that stamps
// retain_until, so every replica stamps with the schedule version stored
// last, not one it loaded at start-up. It is consumed here and implemented
// by the retention schedule.
type RetentionPolicy interface {
	RulesIn(ctx context.Context, tx *sql.Tx) (RetentionRules, error)
}

// RetentionRules computes a contact's retain_until under one schedule.
type RetentionRules interface {
	RetainUntil(purposes []Purpose, capturedAt time.Time, caseClosedAt *time.Time) *time.Time
}

// Store persists the domain. Every write appends an outbox row for the
// indexer and the audit event of its Change in the same transaction.
type Store interface {
	CreateCustomer(ctx context.Context, c Customer, ch Change) error
	GetCustomer(ctx context.Context, id string) (Customer, error)
	UpdateCustomer(ctx context.Context, id string, fn func(*Customer) error, ch Change) (Customer, error)
	CreateCase(ctx context.Context, c *Case, ch Change) error
	GetCase(ctx context.Context, id string) (Case, error)
	// CaseIDByNumber finds a case by its human number (ErrNotFound).
	CaseIDByNumber(ctx context.Context, number int64) (string, error)
	UpdateCase(ctx context.Context, id string, fn func(*Case) error, ch Change) (Case, error)
	ListCases(ctx context.Context, f CaseFilter, p Page) ([]Case, string, error)
	CreateContact(ctx context.Context, c *Contact, ch Change) error
	GetContact(ctx context.Context, id string) (Contact, error)
	Timeline(ctx context.Context, caseID string) ([]Contact, error)
	// History lists a case's changes, oldest first.
	History(ctx context.Context, caseID string) ([]CaseEvent, error)
}

// Service applies the domain rules (validation, masking, consent, retention,
// who may close and reassign cases) and persists through a Store.
type Service struct {
	store Store
	now   func() time.Time
	// mayManage reports whether a role may close and reassign cases (nil:
	// every actor may).
	mayManage func(role string) bool
}

// ServiceOption configures a Service.
type ServiceOption func(*Service)

// WithCaseManagers makes closing and reassigning a case supervisor work:
// UpdateCase refuses them (a *ForbiddenError) to an actor whose role
// mayManage rejects. The server passes auth's permission matrix
// (case.manage); without this option every actor may.
func WithCaseManagers(mayManage func(role string) bool) ServiceOption {
	return func(s *Service) { s.mayManage = mayManage }
}

// NewService builds a Service. now may be nil (time.Now).
func NewService(store Store, now func() time.Time, opts ...ServiceOption) *Service {
	if now == nil {
		now = time.Now
	}
	s := &Service{store: store, now: func() time.Time { return now().UTC().Truncate(time.Microsecond) }}
	for _, o := range opts {
		o(s)
	}
	return s
}

// manages reports whether the actor may close and reassign cases.
func (s *Service) manages(a Actor) bool {
	return s.mayManage == nil || s.mayManage(a.Role)
}

// NewID returns a time-ordered opaque ID (UUIDv7).
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// NewCustomer is the input of CreateCustomer.
type NewCustomer struct {
	ExternalRef *string   `json:"external_ref"`
	Name        *string   `json:"name"`
	Email       *string   `json:"email"`
	Phone       *string   `json:"phone"`
	Locale      *string   `json:"locale"`
	Consents    *Consents `json:"consents"`
}

// CustomerPatch is the input of UpdateCustomer; nil fields stay unchanged.
type CustomerPatch struct {
	ExternalRef *string        `json:"external_ref"`
	Name        *string        `json:"name"`
	Email       *string        `json:"email"`
	Phone       *string        `json:"phone"`
	Locale      *string        `json:"locale"`
	Consents    *ConsentsPatch `json:"consents"`
}

// ConsentsPatch changes some consents.
type ConsentsPatch struct {
	Location        *bool `json:"location"`
	Marketing       *bool `json:"marketing"`
	Personalization *bool `json:"personalization"`
}

func checkText(v *ValidationError, field string, s *string, max int, required bool) string {
	if s == nil {
		if required {
			v.add(field, "is required")
		}
		return ""
	}
	t := strings.TrimSpace(*s)
	switch {
	case required && t == "":
		v.add(field, "must not be empty")
	case !utf8.ValidString(t):
		v.add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(t) > max:
		v.add(field, "must be at most %d characters", max)
	case strings.ContainsRune(t, 0):
		v.add(field, "must not contain NUL characters")
	}
	return t
}

// CreateCustomer validates and stores a new customer.
func (s *Service) CreateCustomer(ctx context.Context, in NewCustomer, a Actor) (Customer, error) {
	var v ValidationError
	c := Customer{
		ID:          NewID(),
		Name:        checkText(&v, "name", in.Name, MaxNameLen, true),
		ExternalRef: checkText(&v, "external_ref", in.ExternalRef, MaxShortLen, false),
		Email:       checkText(&v, "email", in.Email, MaxShortLen, false),
		Phone:       checkText(&v, "phone", in.Phone, MaxShortLen, false),
		Locale:      checkText(&v, "locale", in.Locale, 35, false),
	}
	if c.Email != "" && !strings.Contains(c.Email, "@") {
		v.add("email", "must be an e-mail address")
	}
	if in.Consents != nil {
		c.Consents = *in.Consents
	}
	if err := v.err(); err != nil {
		return Customer{}, err
	}
	c.CreatedAt = s.now()
	c.UpdatedAt = c.CreatedAt
	ch := Change{Actor: a, Action: "customer.create", TargetType: "customer", TargetID: c.ID}
	if err := s.store.CreateCustomer(ctx, c, ch); err != nil {
		return Customer{}, err
	}
	return c, nil
}

// GetCustomer reads one customer.
func (s *Service) GetCustomer(ctx context.Context, id string) (Customer, error) {
	return s.store.GetCustomer(ctx, id)
}

// UpdateCustomer applies a patch.
func (s *Service) UpdateCustomer(ctx context.Context, id string, p CustomerPatch, a Actor) (Customer, error) {
	var v ValidationError
	name := checkText(&v, "name", p.Name, MaxNameLen, false)
	if p.Name != nil && name == "" {
		v.add("name", "must not be empty")
	}

	ref := checkText(&v, "external_ref", p.ExternalRef, MaxShortLen, false)
	email := checkText(&v, "email", p.Email, MaxShortLen, false)
	phone := checkText(&v, "phone", p.Phone, MaxShortLen, false)
	locale := checkText(&v, "locale", p.Locale, 35, false)
	if email != "" && !strings.Contains(email, "@") {
		v.add("email", "must be an e-mail address")
	}

	if err := v.err(); err != nil {
		return Customer{}, err
	}

	// The store records what changed (CustomerChanges) in the audit event.
	ch := Change{Actor: a, Action: "customer.update", TargetType: "customer", TargetID: id}
	return s.store.UpdateCustomer(ctx, id, func(c *Customer) error {
		set := func(dst *string, src *string, val string) {
			if src != nil {
				*dst = val
			}
		}
		set(&c.Name, p.Name, name)
		set(&c.ExternalRef, p.ExternalRef, ref)
		set(&c.Email, p.Email, email)
		set(&c.Phone, p.Phone, phone)
		set(&c.Locale, p.Locale, locale)
		if p.Consents != nil {
			setB := func(dst *bool, src *bool) {
				if src != nil {
					*dst = *src
				}
			}
			setB(&c.Consents.Location, p.Consents.Location)
			setB(&c.Consents.Marketing, p.Consents.Marketing)
			setB(&c.Consents.Personalization, p.Consents.Personalization)
		}
		c.UpdatedAt = s.now()
		return nil
	}, ch)
}

// NewCase is the input of CreateCase.
type NewCase struct {
	CustomerID *string   `json:"customer_id"`
	Subject    *string   `json:"subject"`
	Channel    *Channel  `json:"channel"`
	Priority   *Priority `json:"priority"`
	Tags       []string  `json:"tags"`
	Assignee   *string   `json:"assignee"`
}

// CasePatch is the input of UpdateCase; nil fields stay unchanged.
type CasePatch struct {
	Status   *Status   `json:"status"`
	Priority *Priority `json:"priority"`
	Tags     *[]string `json:"tags"`
	Assignee *string   `json:"assignee"`
	Subject  *string   `json:"subject"`
}

func checkEnum[T ~string](v *ValidationError, field string, val *T, allowed []T, required bool) {
	if val == nil {
		if required {
			v.add(field, "is required")
		}
		return
	}
	if !slices.Contains(allowed, *val) {
		names := make([]string, len(allowed))
		for i, a := range allowed {
			names[i] = string(a)
		}
		v.add(field, "must be one of %s", strings.Join(names, ", "))
	}
}

func checkTags(v *ValidationError, field string, tags []string) []string {
	if len(tags) > MaxTags {
		v.add(field, "at most %d tags", MaxTags)
		return nil
	}
	out := make([]string, 0, len(tags))
	for i, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		switch {
		case t == "":
			v.add(fmt.Sprintf("%s[%d]", field, i), "must not be empty")
		case utf8.RuneCountInString(t) > MaxTagLen:
			v.add(fmt.Sprintf("%s[%d]", field, i), "must be at most %d characters", MaxTagLen)
		case !tagPattern.MatchString(t):
			v.add(fmt.Sprintf("%s[%d]", field, i), "letters, digits and _ . : / - only, starting with a letter or digit")
		default:
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out
}

// CreateCase validates and stores a new case; the customer must exist.
func (s *Service) CreateCase(ctx context.Context, in NewCase, a Actor) (Case, error) {
	var v ValidationError
	custID := checkText(&v, "customer_id", in.CustomerID, 64, true)
	subject := checkText(&v, "subject", in.Subject, MaxSubjectLen, true)
	checkEnum(&v, "channel", in.Channel, Channels, true)
	checkEnum(&v, "priority", in.Priority, Priorities, false)
	tags := checkTags(&v, "tags", in.Tags)
	assignee := checkText(&v, "assignee", in.Assignee, MaxNameLen, false)
	if err := v.err(); err != nil {
		return Case{}, err
	}

	maskFields(&subject)
	tags = maskTags(tags)
	if _, err := s.store.GetCustomer(ctx, custID); err != nil {
		if isNotFound(err) {
			return Case{}, Invalid("customer_id", "no customer has this id")
		}
		return Case{}, err
	}

	now := s.now()
	c := Case{
		ID: NewID(), CustomerID: custID, Subject: subject, Status: StatusOpen,
		Priority: PriorityNormal, Channel: *in.Channel, Tags: tags, Assignee: assignee,
		CreatedAt: now, UpdatedAt: now,
	}

	if in.Priority != nil {
		c.Priority = *in.Priority
	}

	ch := Change{Actor: a, Action: "case.create", TargetType: "case", TargetID: c.ID,
		Detail: map[string]any{"customer_id": custID}}
	if err := s.store.CreateCase(ctx, &c, ch); err != nil {
		return Case{}, err
	}

	return c, nil
}

// GetCase reads a case with its timeline: contacts and history.
func (s *Service) GetCase(ctx context.Context, id string) (Case, error) {
	c, err := s.store.GetCase(ctx, id)
	if err != nil {
		return Case{}, err
	}
	c.Contacts, err = s.store.Timeline(ctx, id)
	if err != nil {
		return Case{}, err
	}
	c.History, err = s.store.History(ctx, id)
	if err != nil {
		return Case{}, err
	}
	return c, nil
}

// GetCaseByNumber reads a case, with its timeline, by the number agents
// quote ("case #1234"). Numbers start at 1.
func (s *Service) GetCaseByNumber(ctx context.Context, number int64) (Case, error) {
	if number < 1 {
		return Case{}, Invalid("number", "must be a positive integer")
	}

	id, err := s.store.CaseIDByNumber(ctx, number)
	if err != nil {
		return Case{}, err
	}
	return s.GetCase(ctx, id)
}

// ListCases lists cases newest first.
func (s *Service) ListCases(ctx context.Context, f CaseFilter, p Page) ([]Case, string, error) {
	if f.Status != "" && !slices.Contains(Statuses, f.Status) {
		return nil, "", Invalid("status", "unknown status")
	}
	return s.store.ListCases(ctx, f, p)
}

// UpdateCase applies a patch. Closing sets closed_at (which starts the
// case_closed retention clock); reopening clears it.
//
// Closing a case, and giving an assigned case to someone else, need a role
// that manages cases (WithCaseManagers): closing is refused before
// anything is read, reassigning once the locked row shows a different
// assignee.
func (s *Service) UpdateCase(ctx context.Context, id string, p CasePatch, a Actor) (Case, error) {
	if p.Status != nil && *p.Status == StatusClosed && !s.manages(a) {
		return Case{}, &ForbiddenError{Role: a.Role, Change: "close"}
	}

	var v ValidationError
	checkEnum(&v, "status", p.Status, Statuses, false)
	checkEnum(&v, "priority", p.Priority, Priorities, false)
	subject := checkText(&v, "subject", p.Subject, MaxSubjectLen, false)
	if p.Subject != nil && subject == "" {
		v.add("subject", "must not be empty")
	}

	assignee := checkText(&v, "assignee", p.Assignee, MaxNameLen, false)
	var tags []string
	if p.Tags != nil {
		tags = checkTags(&v, "tags", *p.Tags)
	}

	if err := v.err(); err != nil {
		return Case{}, err
	}

	maskFields(&subject)
	tags = maskTags(tags)
	// The store records what changed (CaseChanges) in the audit event.
	ch := Change{Actor: a, Action: "case.update", TargetType: "case", TargetID: id}
	return s.store.UpdateCase(ctx, id, func(c *Case) error {
		if p.Assignee != nil && c.Assignee != "" && c.Assignee != assignee && !s.manages(a) {
			return &ForbiddenError{Role: a.Role, Change: "reassign"}
		}

		now := s.now()
		if p.Status != nil && *p.Status != c.Status {
			c.Status = *p.Status
			if c.Status == StatusClosed {
				c.ClosedAt = &now
			} else {
				c.ClosedAt = nil
			}
		}
		if p.Priority != nil {
			c.Priority = *p.Priority
		}
		if p.Subject != nil {
			c.Subject = subject
		}
		if p.Assignee != nil {
			c.Assignee = assignee
		}
		if p.Tags != nil && !slices.Equal(tags, c.Tags) {
			c.Tags = tags
		}
		c.UpdatedAt = now
		return nil
	}, ch)
}

// NewContact is the input of AddContact.
type NewContact struct {
	Channel    *Channel   `json:"channel"`
	Direction  *Direction `json:"direction"`
	Author     *string    `json:"author"`
	Body       *string    `json:"body"`
	OccurredAt *string    `json:"occurred_at"`
	Purposes   []Purpose  `json:"purposes"`
	Categories []Category `json:"categories"`
	Location   *Location  `json:"location"`
	Device     *Device    `json:"device"`
	// Corrects makes the contact a correction of another contact of the
	// same case (the store checks that one exists there).
	Corrects *string `json:"corrects"`
}

// ContactResult is a stored contact plus what ingest did to it.
type ContactResult struct {
	Contact
	LocationDropped bool `json:"location_dropped"`
	// PurposesDropped lists the requested purposes the customer's consent
	// does not cover (personalization without that consent): the contact
	// is stored without them, as a location without consent is dropped.
	PurposesDropped []Purpose `json:"purposes_dropped"`
	MaskedNumbers   int       `json:"masked_numbers"`
}

// AddContact validates, masks and stores a contact on a case.
func (s *Service) AddContact(ctx context.Context, caseID string, in NewContact, a Actor) (ContactResult, error) {
	var v ValidationError
	corrects := checkCorrects(&v, &in)
	checkEnum(&v, "channel", in.Channel, Channels, true)
	checkEnum(&v, "direction", in.Direction, Directions, true)
	author := checkText(&v, "author", in.Author, MaxAuthorLen, true)
	if in.Body == nil {
		v.add("body", "is required")
	} else if !utf8.ValidString(*in.Body) {
		v.add("body", "must be valid UTF-8")
	} else if strings.IndexByte(*in.Body, 0) >= 0 {
		// PostgreSQL cannot store a NUL; SQLite can, and a backup holding
		// one would not restore into PostgreSQL.
		v.add("body", "must not contain NUL characters")
	} else if len(*in.Body) > MaxBodyLen {
		v.add("body", "must be at most %d bytes", MaxBodyLen)
	} else if strings.TrimSpace(*in.Body) == "" {
		v.add("body", "must not be empty")
	}

	now := s.now()
	occurred := now
	if in.OccurredAt != nil {
		t, err := time.Parse(time.RFC3339Nano, *in.OccurredAt)
		switch {
		case err != nil:
			v.add("occurred_at", "must be an RFC 3339 timestamp")
		case t.After(now.Add(maxFutureSkew)):
			v.add("occurred_at", "must not be in the future")
		case t.Year() < 1970:
			v.add("occurred_at", "must be after 1970")
		default:
			occurred = t.UTC().Truncate(time.Microsecond)
		}
	}

	purposes := in.Purposes
	if len(purposes) == 0 {
		purposes = []Purpose{defaultPurpose}
	}

	seenP := map[Purpose]bool{}
	var ps []Purpose
	for i, p := range purposes {
		if !slices.Contains(Purposes, p) {
			v.add(fmt.Sprintf("purposes[%d]", i), "unknown purpose %q", string(p))
			continue
		}
		if !seenP[p] {
			seenP[p] = true
			ps = append(ps, p)
		}
	}

	cats := []Category{CategorySupportContent}
	for i, c := range in.Categories {
		if !slices.Contains(Categories, c) {
			v.add(fmt.Sprintf("categories[%d]", i), "unknown category %q", string(c))
			continue
		}
		if !slices.Contains(cats, c) {
			cats = append(cats, c)
		}
	}

	if l := in.Location; l != nil {
		if l.Lat < -90 || l.Lat > 90 {
			v.add("location.lat", "must be between -90 and 90")
		}
		if l.Lon < -180 || l.Lon > 180 {
			v.add("location.lon", "must be between -180 and 180")
		}
		checkText(&v, "location.label", &l.Label, MaxShortLen, false)
	}

	if d := in.Device; d != nil {
		checkText(&v, "device.ip", &d.IP, 64, false)
		checkText(&v, "device.user_agent", &d.UserAgent, MaxUserAgent, false)
	}

	if err := v.err(); err != nil {
		return ContactResult{}, err
	}

	// Only a location or a consent-gated purpose needs the customer (for
	// the consent) before the write; otherwise the store takes the
	// customer from the case row it locks, which saves two reads on the
	// hottest path.
	var cust Customer
	var customerID string
	gated := slices.ContainsFunc(ps, func(p Purpose) bool { return consentOf(p) != nil })
	if in.Location != nil || gated {
		cs, err := s.store.GetCase(ctx, caseID)
		if err != nil {
			return ContactResult{}, err
		}
		if cust, err = s.store.GetCustomer(ctx, cs.CustomerID); err != nil {
			return ContactResult{}, err
		}
		customerID = cs.CustomerID
	}

	// A purpose resting on a consent the customer does not give is dropped
	// (issue 15 §3: a withdrawal drops it from stored contacts, so ingest
	// must not bring it back); a contact left with no purpose has no basis
	// and is refused, naming the dropped purpose.
	var droppedP []Purpose
	if gated {
		kept := ps[:0:0]
		for _, p := range ps {
			if given := consentOf(p); given != nil && !given(cust.Consents) {
				droppedP = append(droppedP, p)
				continue
			}
			kept = append(kept, p)
		}
		if len(kept) == 0 {
			for i, p := range purposes {
				if slices.Contains(droppedP, p) {
					v.add(fmt.Sprintf("purposes[%d]", i), "the customer has not consented to %q and no other purpose is given", string(p))
				}
			}
			return ContactResult{}, v.err()
		}
		ps = kept
	}

	body, masked := MaskSensitive(*in.Body)
	masked += maskFields(&author)
	var loc *Location
	if in.Location != nil {
		l := *in.Location
		masked += maskFields(&l.Label)
		loc = &l
	}

	res := ContactResult{Contact: Contact{
		ID: NewID(), CaseID: caseID, CustomerID: customerID,
		Channel: *in.Channel, Direction: *in.Direction, Author: author, Body: body,
		OccurredAt: occurred, CreatedAt: now, Purposes: ps, Categories: cats,
		Device: in.Device, Corrects: corrects, Attachments: []Attachment{},
	}, MaskedNumbers: masked, PurposesDropped: droppedP}
	if res.PurposesDropped == nil {
		res.PurposesDropped = []Purpose{}
	}
	if in.Location != nil {
		if cust.Consents.Location {
			res.Location = loc
			if !slices.Contains(res.Categories, CategoryLocation) {
				res.Categories = append(res.Categories, CategoryLocation)
			}
		} else {
			res.LocationDropped = true
		}
	}

	if res.Device != nil && !slices.Contains(res.Categories, CategoryDevice) {
		res.Categories = append(res.Categories, CategoryDevice)
	}

	ch := Change{Actor: a, Action: "contact.create", TargetType: "contact", TargetID: res.ID,
		Detail: map[string]any{"case_id": caseID, "masked_numbers": masked, "location_dropped": res.LocationDropped, "purposes_dropped": res.PurposesDropped}}
	if corrects != "" {
		ch.Detail["corrects"] = corrects
	}
	if err := s.store.CreateContact(ctx, &res.Contact, ch); err != nil {
		return ContactResult{}, err
	}

	return res, nil
}

// consentOf returns the consent a purpose rests on, or nil for a purpose
// resting on contract, legal obligation or legitimate interest (the
// retention package's consentGates apply the same mapping to stored
// contacts on withdrawal).
func consentOf(p Purpose) func(Consents) bool {
	if p == PurposePersonalization {
		return func(c Consents) bool { return c.Personalization }
	}
	return nil
}

// checkCorrects validates a correction's target id (its existence and case
// are the store's to check, in the write's transaction) and makes a
// correction without a direction a note: it is an annotation.
func checkCorrects(v *ValidationError, in *NewContact) string {
	if in.Corrects == nil {
		return ""
	}
	id := strings.TrimSpace(*in.Corrects)
	if u, err := uuid.Parse(id); err != nil || u.String() != id {
		v.add("corrects", "must be the id of a contact of this case")
		return ""
	}
	if in.Direction == nil {
		note := DirectionNote
		in.Direction = &note
	}
	return id
}

// GetContact reads one contact with its attachments.
func (s *Service) GetContact(ctx context.Context, id string) (Contact, error) {
	return s.store.GetContact(ctx, id)
}

// ListCustomerCases lists one customer's cases, newest first.
func (s *Service) ListCustomerCases(ctx context.Context, customerID string, p Page) ([]Case, string, error) {
	if _, err := s.store.GetCustomer(ctx, customerID); err != nil {
		return nil, "", err
	}
	return s.store.ListCases(ctx, CaseFilter{CustomerID: customerID}, p)
}
