// Package cases holds the domain of casevault: customers, cases and the
// contacts (interactions) logged into them, the rules applied on ingest, and
// the Store interface the service persists through.
package cases

import "time"

// Channel is how a contact reached us.
type Channel string

const (
	ChannelPhone    Channel = "phone"
	ChannelEmail    Channel = "email"
	ChannelChat     Channel = "chat"
	ChannelWeb      Channel = "web"
	ChannelSocial   Channel = "social"
	ChannelInPerson Channel = "in_person"
)

// Channels lists every valid channel, in documentation order.
var Channels = []Channel{ChannelPhone, ChannelEmail, ChannelChat, ChannelWeb, ChannelSocial, ChannelInPerson}

// Status is a case's life-cycle state.
type Status string

const (
	StatusOpen     Status = "open"
	StatusPending  Status = "pending"
	StatusResolved Status = "resolved"
	StatusClosed   Status = "closed"
)

var Statuses = []Status{StatusOpen, StatusPending, StatusResolved, StatusClosed}

// Priority orders the queue.
type Priority string

const (
	PriorityLow    Priority = "low"
	PriorityNormal Priority = "normal"
	PriorityHigh   Priority = "high"
	PriorityUrgent Priority = "urgent"
)

var Priorities = []Priority{PriorityLow, PriorityNormal, PriorityHigh, PriorityUrgent}

// Direction says who spoke: the customer, us, or an internal note.
type Direction string

const (
	DirectionInbound  Direction = "inbound"
	DirectionOutbound Direction = "outbound"
	DirectionNote     Direction = "note"
)

var Directions = []Direction{DirectionInbound, DirectionOutbound, DirectionNote}

// Purpose is why a piece of personal data was collected; it decides how long
// the data may be kept.
type Purpose string

const (
	PurposeCustomerService Purpose = "customer_service"
	PurposeAuthentication  Purpose = "authentication"
	PurposeSecurity        Purpose = "security"
	PurposeFraudMonitoring Purpose = "fraud_monitoring"
	PurposeNotification    Purpose = "notification"
	PurposeImprovement     Purpose = "improvement"
	PurposePersonalization Purpose = "personalization"
	PurposeLegalObligation Purpose = "legal_obligation"
	PurposeConsented       Purpose = "consented"
)

var Purposes = []Purpose{
	PurposeCustomerService, PurposeAuthentication, PurposeSecurity, PurposeFraudMonitoring,
	PurposeNotification, PurposeImprovement, PurposePersonalization, PurposeLegalObligation, PurposeConsented,
}

// Category is a kind of personal data a contact holds; categories carry their
// own minimization clocks.
type Category string

const (
	CategoryAccount        Category = "account"
	CategoryPayment        Category = "payment"
	CategorySharedContent  Category = "shared_content"
	CategoryLog            Category = "log"
	CategoryDevice         Category = "device"
	CategoryBrowsing       Category = "browsing"
	CategoryMetadata       Category = "metadata"
	CategoryLocation       Category = "location"
	CategoryUsage          Category = "usage"
	CategorySupportContent Category = "support_content"
)

var Categories = []Category{
	CategoryAccount, CategoryPayment, CategorySharedContent, CategoryLog, CategoryDevice,
	CategoryBrowsing, CategoryMetadata, CategoryLocation, CategoryUsage, CategorySupportContent,
}

// Consents are the customer's answers to optional processing.
type Consents struct {
	Location        bool `json:"location"`
	Marketing       bool `json:"marketing"`
	Personalization bool `json:"personalization"`
}

// Customer is the person the cases are about.
type Customer struct {
	ID          string    `json:"id"`
	ExternalRef string    `json:"external_ref"`
	Name        string    `json:"name"`
	Email       string    `json:"email"`
	Phone       string    `json:"phone"`
	Locale      string    `json:"locale"`
	Consents    Consents  `json:"consents"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Case groups the contacts about one matter of one customer.
type Case struct {
	ID         string     `json:"id"`
	Number     int64      `json:"number"`
	CustomerID string     `json:"customer_id"`
	Subject    string     `json:"subject"`
	Status     Status     `json:"status"`
	Priority   Priority   `json:"priority"`
	Channel    Channel    `json:"channel"`
	Tags       []string   `json:"tags"`
	Assignee   string     `json:"assignee"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	ClosedAt   *time.Time `json:"closed_at"`
	// Contacts is filled only when the case is read with its timeline.
	Contacts []Contact `json:"contacts,omitempty"`
	// History is filled with Contacts: the case's changes, oldest first
	// (the API interleaves both into "timeline").
	History []CaseEvent `json:"-"`
}

// Location is where the customer was, kept only with their consent.
type Location struct {
	Lat   float64 `json:"lat"`
	Lon   float64 `json:"lon"`
	Label string  `json:"label,omitempty"`
}

// Device describes the customer's device for a web or app contact.
type Device struct {
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}

// Contact is one interaction; immutable once written (retention may later
// anonymize or redact it, never edit it).
type Contact struct {
	ID          string     `json:"id"`
	CaseID      string     `json:"case_id"`
	CustomerID  string     `json:"customer_id"`
	Channel     Channel    `json:"channel"`
	Direction   Direction  `json:"direction"`
	Author      string     `json:"author"`
	Body        string     `json:"body"`
	OccurredAt  time.Time  `json:"occurred_at"`
	CreatedAt   time.Time  `json:"created_at"`
	Purposes    []Purpose  `json:"purposes"`
	Categories  []Category `json:"categories"`
	Location    *Location  `json:"location"`
	Device      *Device    `json:"device"`
	RetainUntil *time.Time `json:"retain_until"`
	// Corrects is the id of the contact of the same case this one corrects
	// (rectification: contacts are never edited; a correction is a new
	// annotation linked to the one it corrects); "" for an ordinary contact.
	Corrects string `json:"corrects,omitempty"`
	// CorrectedBy lists the corrections of this contact, oldest first;
	// filled when the contact is read for a timeline or by ID.
	CorrectedBy []string `json:"corrected_by,omitempty"`
	// Attachments is filled when the contact is read for a timeline or by ID.
	Attachments []Attachment `json:"attachments"`
}

// Attachment is a file stored with a contact; the bytes live in the blob store.
type Attachment struct {
	ID          string    `json:"id"`
	ContactID   string    `json:"contact_id"`
	Filename    string    `json:"filename"`
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	CreatedAt   time.Time `json:"created_at"`
}

// CaseEvent is one update of a case in its history: the recorded fields it
// changed (status, priority, assignee, tags, subject) as {"from", "to"},
// who made it and when. Every update leaves one, so the values a case had
// while a legal hold covered it stay readable.
type CaseEvent struct {
	At      time.Time              `json:"at"`
	Actor   string                 `json:"actor"`
	Role    string                 `json:"role,omitempty"`
	Changes map[string]FieldChange `json:"changes"`
}

// FieldChange is one field's old and new value.
type FieldChange struct {
	From any `json:"from"`
	To   any `json:"to"`
}
