// Package adminapi holds the JSON types of the emulator's admin API (ours,
// not part of the Nevis contract): the ordered event log, the state
// summary, the operations list, webhooks, and how a webhook delivery is
// signed. The emulator serves these types, sdk/backend reads them; the
// package does no I/O.
package adminapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strconv"
	"time"

	"github.com/authphone/authphone/sdk/cloudapi"
)

// Paths of the admin API; every one needs the access key.
const (
	PathState       = "/api/v1/admin/state"
	PathOperations  = "/api/v1/admin/operations"
	PathEvents      = "/api/v1/admin/events"
	PathEventStream = "/api/v1/admin/events/stream"
	PathReset       = "/api/v1/admin/reset"
	PathWebhooks    = "/api/v1/admin/webhooks"
)

// StatusEventsPath is the SSE stream of one operation's status (no access
// key: the status token is the credential).
func StatusEventsPath(statusToken string) string {
	return "/api/v1/status/" + url.PathEscape(statusToken) + "/events"
}

// Event is one entry of the event log. IDs grow by one in the order the
// changes committed, across every replica of one database; a client reads
// on with ?since=<the last ID it saw>.
type Event struct {
	ID   int64     `json:"id"`
	Time time.Time `json:"time"`
	// Type says what happened: one of the Event* constants, or another
	// dotted name a later version adds (clients ignore unknown types).
	Type            string `json:"type"`
	UserID          string `json:"userId,omitempty"`
	Username        string `json:"username,omitempty"`
	AuthenticatorID string `json:"authenticatorId,omitempty"`
	// OperationID is the transaction, login request or pairing concerned.
	OperationID string `json:"operationId,omitempty"`
	Status      string `json:"status,omitempty"`
	// Reason says why something failed or was refused.
	Reason string `json:"reason,omitempty"`
	// Data holds what else the type carries (a refused request's method,
	// path and HTTP status; a webhook's URL and attempt).
	Data map[string]string `json:"data,omitempty"`
}

// Event types. Transactions log "<kind>.<status>" (KindEnroll, KindApproval,
// KindHeadless, KindUpgrade each with created, succeeded, failed or expired).
const (
	EventCreated   = "created"
	EventSucceeded = "succeeded"
	EventFailed    = "failed"
	EventExpired   = "expired"

	EventAuthenticatorRegistered = "authenticator.registered"
	EventAuthenticatorRemoved    = "authenticator.removed"
	EventUserDeleted             = "user.deleted"
	EventUserRenamed             = "user.renamed"
	EventLoginCreated            = "login.created"
	EventLoginApproved           = "login.approved"
	EventLoginRejected           = "login.rejected"
	EventLoginCancelled          = "login.cancelled"
	EventPairingCreated          = "pairing.created"
	EventPairingApproved         = "pairing.approved"
	EventPairingCancelled        = "pairing.cancelled"
	EventTokenIssued             = "token.issued"
	EventTokenRefreshed          = "token.refreshed"
	EventTokenRevoked            = "token.revoked"
	EventKeyRotated              = "key.rotated"
	EventDataRelayed             = "data.relayed"
	EventRequestRefused          = "request.refused"
	EventReset                   = "emulator.reset"
	EventWebhookDelivered        = "webhook.delivered"
	EventWebhookFailed           = "webhook.failed"
	// EventPushDropped: chaos (drop-push) kept a push from an inbox.
	EventPushDropped = "chaos.push-dropped"
)

// EventsResponse answers GET /api/v1/admin/events?since=ID&limit=N.
type EventsResponse struct {
	Events []Event `json:"events"`
	// LastID is the newest ID in the log (0: none yet); read on from it.
	LastID int64 `json:"lastId"`
}

// MaxEvents is the most events one GET answers (and the default limit).
const MaxEvents = 1000

// State answers GET /api/v1/admin/state: how many of each thing the
// emulator holds.
type State struct {
	Users                 int   `json:"users"`
	Authenticators        int   `json:"authenticators"`
	DeletedAuthenticators int   `json:"deletedAuthenticators"`
	PendingOperations     int   `json:"pendingOperations"`
	Transactions          int   `json:"transactions"`
	LoginRequests         int   `json:"loginRequests"`
	Pairings              int   `json:"pairings"`
	InboxItems            int   `json:"inboxItems"`
	RefreshTokens         int   `json:"refreshTokens"`
	Webhooks              int   `json:"webhooks"`
	LastEventID           int64 `json:"lastEventId"`
	// LongPolls is how many ?wait= requests the answering emulator process
	// holds right now (ours: a script waits for it before acting).
	LongPolls int `json:"longPolls"`
}

// Operation kinds beyond the transaction kinds.
const (
	OperationLogin   = "login"
	OperationPairing = "pairing"
)

// Operation is one enrolment, approval, login request or pairing.
type Operation struct {
	ID              string    `json:"id"`
	Kind            string    `json:"kind"`
	Status          string    `json:"status"`
	Reason          string    `json:"reason,omitempty"`
	UserID          string    `json:"userId,omitempty"`
	Username        string    `json:"username,omitempty"`
	AuthenticatorID string    `json:"authenticatorId,omitempty"`
	Message         string    `json:"message,omitempty"`
	CreatedAt       time.Time `json:"createdAt"`
	UpdatedAt       time.Time `json:"updatedAt"`
	ExpiresAt       time.Time `json:"expiresAt"`
	// AppLink is a pending enrolment's or approval's dispatch payload as an
	// app link (what its QR code holds), while its token is unused.
	AppLink string `json:"appLink,omitempty"`
	// QRCode is that link as a PNG, with ?qr=true.
	QRCode *cloudapi.QRCode `json:"qrCode,omitempty"`
	Inbox  []InboxItem      `json:"inbox,omitempty"`
}

// InboxItem is a message waiting in a device's inbox for an operation.
type InboxItem struct {
	ID              string    `json:"id"`
	AuthenticatorID string    `json:"authenticatorId"`
	Kind            string    `json:"kind"`
	Payload         string    `json:"payload"`
	Message         string    `json:"message,omitempty"`
	CreatedAt       time.Time `json:"createdAt"`
	ExpiresAt       time.Time `json:"expiresAt"`
}

// OperationsResponse answers GET /api/v1/admin/operations?status=S.
type OperationsResponse struct {
	Operations []Operation `json:"operations"`
}

// Operation statuses a client may filter on, besides the transaction
// statuses (pending, succeeded, failed): every status.
const StatusAll = "all"

// Webhook is a URL the emulator posts every event to.
type Webhook struct {
	ID  string `json:"id"`
	URL string `json:"url"`
	// Secret signs the deliveries; it is shown when the webhook is made.
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// WebhookRequest is the body of POST /api/v1/admin/webhooks; without a
// secret the emulator makes one.
type WebhookRequest struct {
	URL    string `json:"url"`
	Secret string `json:"secret,omitempty"`
}

// Headers of a webhook delivery. The body is one Event as JSON.
const (
	HeaderSignature = "Authphone-Signature" // "v1=" + hex HMAC-SHA256
	HeaderTimestamp = "Authphone-Timestamp" // Unix seconds
	HeaderEventID   = "Authphone-Event-Id"
	HeaderWebhookID = "Authphone-Webhook-Id"
)

// DefaultReplayWindow is how far a delivery's timestamp may be from the
// receiver's clock.
const DefaultReplayWindow = 5 * time.Minute

// Sign is the HeaderSignature value of a delivery: "v1=" and the hex
// HMAC-SHA256, keyed with the secret, of the timestamp (Unix seconds in
// decimal), a dot and the body. The timestamp is signed so a delivery
// cannot be replayed later with a fresh one.
func Sign(secret string, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}
