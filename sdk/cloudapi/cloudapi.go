// Package cloudapi holds the JSON types of the cloud's backend-facing REST
// API (cloud-api.md, Nevis Authentication Cloud compatible) and the rules
// both sides apply to its input. The emulator serves these types and the
// backend client sends them; the package does no I/O.
package cloudapi

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Paths of the backend API.
const (
	PathPing           = "/ping"
	PathEnroll         = "/api/v1/users/enroll"
	PathApproval       = "/api/v1/approval"
	PathStatus         = "/api/v1/status"
	PathIntrospect     = "/api/v1/introspect"
	PathIntent         = "/api/v1/intent"
	PathUsers          = "/api/v1/users"
	PathAuthenticators = "/api/v1/authenticators"
	// PathClock reads (GET) or moves forward (POST) the emulator's clock
	// (ours, for tests: see ClockRequest).
	PathClock = "/api/v1/admin/clock"
)

// Channels of enroll and approval.
const (
	ChannelApp  = "app"
	ChannelPush = "push"
	// ChannelSMS is one of the channels an intent token may be limited to
	// (the emulator serves no SMS operations).
	ChannelSMS = "sms"
)

// Transaction statuses.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusUnknown   = "unknown"
)

// User statuses.
const (
	UserNew    = "new"
	UserActive = "active"
)

// Intent operations.
const (
	OperationEnroll  = "enroll"
	OperationApprove = "approve"
)

// MaxBody is the largest request body the API accepts.
const MaxBody = 64 << 10

// MaxWait is the longest ?wait= the API honours.
const MaxWait = 60 * time.Second

// MaxInboxesWait is the longest ?wait= the multi-account inbox read
// (POST /_app/inboxes, ours) honours: an idle phone holds that long-poll
// all the time, so a fleet of K idle phones sends K signed reads every
// MaxInboxesWait, each a signature made and checked; at 60 s a
// 10 000-phone fleet spent about a tenth of a core on each side on them.
const MaxInboxesWait = 5 * time.Minute

// MaxAuthenticators is how many authenticators a user may have.
const MaxAuthenticators = 10

// ErrorBody is every error response.
type ErrorBody struct {
	Status  int    `json:"status"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

// EnrollRequest is the body of POST /api/v1/users/enroll.
type EnrollRequest struct {
	Username string `json:"username,omitempty"`
	UserID   string `json:"userId,omitempty"`
	Channel  string `json:"channel,omitempty"`
}

// QRCode is a PNG QR code as a data: URI. URL (ours) serves the same PNG
// while the operation is pending; an answer asked for with Prefer:
// return=minimal carries the URL only, and the PNG is rendered when it is
// fetched.
type QRCode struct {
	Type    string `json:"type"`
	Size    int    `json:"size"`
	DataURI string `json:"dataUri,omitempty"`
	URL     string `json:"url,omitempty"`
}

// Enrollment is the enrol part of an enroll response.
type Enrollment struct {
	TransactionID string  `json:"transactionId"`
	StatusToken   string  `json:"statusToken"`
	QRCode        *QRCode `json:"qrCode,omitempty"`
	AppLinkURI    string  `json:"appLinkUri,omitempty"`
}

// Authenticator is one registered authenticator of a user. EnrolledAt and
// UpdatedAt are the public API reference's names; CreatedAt (the same time
// as EnrolledAt) is the contract's, kept for clients written against it.
type Authenticator struct {
	AuthenticatorID   string    `json:"authenticatorId"`
	Name              string    `json:"name"`
	Type              string    `json:"type"`
	AuthenticatorType string    `json:"authenticatorType"`
	State             string    `json:"state"`
	EnrolledAt        time.Time `json:"enrolledAt"`
	UpdatedAt         time.Time `json:"updatedAt"`
	CreatedAt         time.Time `json:"createdAt"`
	// UAF is the FIDO UAF part, present for authenticatorType app, as the
	// public API reference shapes it.
	UAF *AuthenticatorUAF `json:"uaf,omitempty"`
}

// AuthenticatorUAF is an authenticator's uaf object (public API reference,
// authenticators endpoint). UserAgent is optional there and the emulator
// has none to give; DeviceRef names the phone the key lives on (the same
// for every account of one phone), absent until the phone has registered
// its push target.
type AuthenticatorUAF struct {
	UserAgent                    string `json:"userAgent,omitempty"`
	DeviceRef                    string `json:"deviceRef,omitempty"`
	UserDisabledPushNotification bool   `json:"userDisabledPushNotification"`
}

// RateLimit is one entry of a user's exceededRateLimits: the public API
// reference names the field (present while a rate limit blocks the user)
// but not its members, so these are ours. Name "login" is the emulator's
// only per-user limit, on login requests without a device signature
// (WithLoginRateLimit, --login-limit): Limit of them per Period (a Go
// duration). It is listed while the user's next such request would be
// answered 429; that request is allowed again at RetryAt.
type RateLimit struct {
	Name    string    `json:"name"`
	Limit   int       `json:"limit"`
	Period  string    `json:"period"`
	RetryAt time.Time `json:"retryAt"`
}

// RateLimitLogin is the Name of the login rate limit.
const RateLimitLogin = "login"

// User is a user, and (with Enrollment) the enroll response.
// LastLoginDateSuccess and LastLoginDateFailure (public API reference) are
// when an approval of the user last succeeded and failed; absent: never.
type User struct {
	UserID               string          `json:"userId"`
	Username             string          `json:"username,omitempty"`
	Status               string          `json:"status"`
	CreatedAt            time.Time       `json:"createdAt"`
	UpdatedAt            time.Time       `json:"updatedAt"`
	LastLoginDateSuccess time.Time       `json:"lastLoginDateSuccess,omitzero"`
	LastLoginDateFailure time.Time       `json:"lastLoginDateFailure,omitzero"`
	ExceededRateLimits   []RateLimit     `json:"exceededRateLimits,omitempty"`
	Authenticators       []Authenticator `json:"authenticators"`
	Enrollment           *Enrollment     `json:"enrollment,omitempty"`
}

// UserList is the answer of GET /api/v1/users without a username (ours).
type UserList struct {
	Users []User `json:"users"`
}

// PatchUserRequest is the body of PATCH /api/v1/users/{userId} (ours).
type PatchUserRequest struct {
	Username string `json:"username"`
}

// ApprovalRequest is the body of POST /api/v1/approval.
type ApprovalRequest struct {
	Username            string `json:"username,omitempty"`
	UserID              string `json:"userId,omitempty"`
	Channel             string `json:"channel,omitempty"`
	Message             string `json:"message,omitempty"`
	NotificationMessage string `json:"notificationMessage,omitempty"`
	AuthenticatorID     string `json:"authenticatorId,omitempty"` // "*": any of the user's
	Prompt              bool   `json:"prompt,omitempty"`          // a JSON boolean, as in the public API reference
	// NumberMatching (ours) asks for number matching: the answer carries a
	// two-digit Number to show the user, and the phone must pick it from
	// the three numbers it offers.
	NumberMatching bool `json:"numberMatching,omitempty"`
}

// ApprovalResponse answers POST /api/v1/approval.
type ApprovalResponse struct {
	TransactionID string    `json:"transactionId"`
	StatusToken   string    `json:"statusToken"`
	UserID        string    `json:"userId"`
	Username      string    `json:"username,omitempty"`
	CreatedAt     time.Time `json:"createdAt"`
	QRCode        *QRCode   `json:"qrCode,omitempty"`
	AppLinkURI    string    `json:"appLinkUri,omitempty"`
	// Number is the number to show the user when NumberMatching was asked.
	Number int `json:"number,omitempty"`
}

// ReasonWrongNumber is the Reason of an approval the user answered with the
// wrong number (number matching).
const ReasonWrongNumber = "wrong number"

// StatusRequest is the body of POST /api/v1/status.
type StatusRequest struct {
	StatusToken string `json:"statusToken"`
}

// StatusResponse answers POST /api/v1/status.
type StatusResponse struct {
	TransactionID string    `json:"transactionId,omitempty"`
	Status        string    `json:"status"`
	UserID        string    `json:"userId,omitempty"`
	Username      string    `json:"username,omitempty"`
	Token         string    `json:"token,omitempty"`
	CreatedAt     time.Time `json:"createdAt,omitzero"`
	LastUpdatedAt time.Time `json:"lastUpdatedAt,omitzero"`
	// Reason (ours) says why a transaction failed: ReasonExpired, or the
	// phone's or the cloud's words ("user declined", "wrong PIN", ...).
	Reason string `json:"reason,omitempty"`
}

// ReasonExpired is the Reason of a transaction nobody answered in time.
const ReasonExpired = "expired"

// IntentRequest is the body of POST /api/v1/intent.
type IntentRequest struct {
	Username  string `json:"username,omitempty"`
	UserID    string `json:"userId,omitempty"`
	Operation string `json:"operation"`
	// Channels limits the token to operations on these channels (app,
	// push, sms); empty means every channel, as in the public API reference.
	Channels []string `json:"channels,omitempty"`
}

// IntentResponse answers POST /api/v1/intent.
type IntentResponse struct {
	Token string `json:"token"`
}

// Introspection is an RFC 7662 answer.
type Introspection struct {
	Active bool   `json:"active"`
	Iat    int64  `json:"iat,omitempty"`
	Exp    int64  `json:"exp,omitempty"`
	Sub    string `json:"sub,omitempty"`
	Aud    string `json:"aud,omitempty"`
	Iss    string `json:"iss,omitempty"`
	Jti    string `json:"jti,omitempty"`
	Scope  string `json:"scope,omitempty"`
}

// ErrInput is matched (errors.Is) by every validation error.
var ErrInput = errors.New("invalid input")

// InputError is a validation error; its message is fit to show a user.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// Is makes errors.Is(err, ErrInput) true.
func (e *InputError) Is(target error) bool { return target == ErrInput }

func inputErr(format string, a ...any) error { return &InputError{Msg: fmt.Sprintf(format, a...)} }

var usernameRE = regexp.MustCompile(`^[a-zA-Z0-9_.@-]{1,300}$`)

// UsernameRule says what a username may contain.
const UsernameRule = "username must be 1-300 characters of a-z A-Z 0-9 _ - . @"

// ValidateUsername applies the enroll rule for usernames.
func ValidateUsername(u string) error {
	if !usernameRE.MatchString(u) {
		return inputErr("%s", UsernameRule)
	}
	return nil
}

var tagRE = regexp.MustCompile(`<\s*(/?)\s*([^\s>/]*)([^>]*)>`)

var allowedTags = map[string]bool{"html": true, "b": true, "br": true, "em": true, "i": true, "strong": true, "u": true}

// ValidateMessage applies the approval rule for transaction text: only the
// tags html, b, br, em, i, strong and u, without attributes.
func ValidateMessage(m string) error {
	for _, t := range tagRE.FindAllStringSubmatch(m, -1) {
		name := strings.ToLower(t[2])
		if !allowedTags[name] {
			return inputErr("message may only contain the tags <html> <b> <br> <em> <i> <strong> <u>; found <%s>", t[2])
		}
		if attrs := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(t[3]), "/")); attrs != "" {
			return inputErr("message tags may not have attributes; found <%s %s>", t[2], attrs)
		}
	}
	return nil
}

// PlainText strips the allowed tags, turning <br> into a line break, for
// showing a message in a terminal.
func PlainText(m string) string {
	return tagRE.ReplaceAllStringFunc(m, func(t string) string {
		s := tagRE.FindStringSubmatch(t)
		if strings.ToLower(s[2]) == "br" {
			return "\n"
		}
		return ""
	})
}

// ClockRequest is the body of POST /api/v1/admin/clock (ours, the
// emulator's test hook): Advance, a Go duration such as "90s", moves the
// emulator's clock forward, so a test expires an operation at once instead
// of sleeping past its TTL.
type ClockRequest struct {
	Advance string `json:"advance"`
}

// ClockResponse is the emulator's time after the call, and how far ahead of
// its system clock it runs (a Go duration).
type ClockResponse struct {
	Now    time.Time `json:"now"`
	Offset string    `json:"offset"`
}
