// Package trustapi holds the wire formats of signing in a new device from a
// trusted one (trusted-device.md, after Cotter and OpenID CIBA / RFC 8628):
// login requests, the trusted device's signed answer, the token poll and its
// OAuth errors, token responses, and pairing a new trusted device by QR. It
// is shared by the phone SDK, the backend client and the emulator; it does
// no I/O.
package trustapi

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Paths (ours, under the cloud's device prefix) and the OAuth endpoints.
const (
	PathLoginRequests  = "/_app/login-requests"
	PathPairings       = "/_app/pairings"
	PathTrustedDevices = "/_app/trusted-devices"
	PathOAuthToken     = "/oauth/token"
	PathOAuthRevoke    = "/oauth/revoke" // RFC 7009
	PathJWKS           = "/.well-known/jwks.json"
	PathDiscovery      = "/.well-known/openid-configuration"
	PathRotateKey      = "/api/v1/keys/rotate"
)

// Events a trusted device signs.
const (
	EventLogin               = "LOGIN"
	EventEnrollTrustedDevice = "ENROLL_NEW_TRUSTED_DEVICE"
	EventRemoveTrustedDevice = "REMOVE_TRUSTED_DEVICE"
	// EventCancelPairing (ours) is signed by a new device that stops
	// waiting for its pairing to be approved.
	EventCancelPairing         = "CANCEL_PAIRING"
	MethodTrustedDevice        = "TRUSTED_DEVICE"
	AlgorithmES256             = "ES256"
	PairingQRType              = "authphone-pairing"
	DefaultRequestTTL          = 180 * time.Second
	DefaultPollInterval        = time.Second
	PairingMaxAge              = 3 * time.Minute
	DefaultClientID            = "authphone-app"
	DefaultAccessTokenLifetime = time.Hour
)

// OAuth error codes of the token poll (RFC 8628 §3.5, RFC 6749 §5.2).
const (
	ErrCodePending      = "authorization_pending"
	ErrCodeSlowDown     = "slow_down"
	ErrCodeAccessDenied = "access_denied"
	ErrCodeExpired      = "expired_token"
	ErrCodeInvalidGrant = "invalid_grant"
	ErrCodeInvalidReq   = "invalid_request"
)

// OAuthError is an RFC 6749 error body.
type OAuthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *OAuthError) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

// CreateLoginRequest is the body of POST /_app/login-requests.
type CreateLoginRequest struct {
	Identifier          string `json:"identifier"`
	CodeChallenge       string `json:"codeChallenge"`
	CodeChallengeMethod string `json:"codeChallengeMethod,omitempty"`
	DeviceName          string `json:"deviceName,omitempty"`
}

// LoginRequestCreated answers it.
type LoginRequestCreated struct {
	RequestID   string `json:"requestId"`
	PollToken   string `json:"pollToken"`
	ExpiresIn   int    `json:"expiresIn"`
	Interval    int    `json:"interval"`
	BindingCode string `json:"bindingCode"`
	// Approved is true when the requesting device is itself trusted for
	// the user (Cotter's "case 1").
	Approved bool `json:"approved,omitempty"`
}

// LoginRequestInfo is what a trusted device sees of a request.
type LoginRequestInfo struct {
	RequestID   string    `json:"requestId"`
	UserID      string    `json:"userId"`
	Identifier  string    `json:"identifier"`
	DeviceName  string    `json:"deviceName,omitempty"`
	IP          string    `json:"ip"`
	BindingCode string    `json:"bindingCode"`
	CreatedAt   time.Time `json:"createdAt"`
}

// Respond is the body of POST /_app/login-requests/{id}/respond.
type Respond struct {
	Approved  bool   `json:"approved"`
	Timestamp int64  `json:"timestamp"`
	Signature string `json:"signature"`
}

// PollRequest is the body of POST /_app/login-requests/{id}/token.
type PollRequest struct {
	PollToken    string `json:"pollToken"`
	CodeVerifier string `json:"codeVerifier"`
}

// CancelPairing is the body of POST /_app/pairings/{id}/cancel (ours): the
// new device's ES256 signature, with its pairing key, over
// SignedFacts(userId, pairingId, EventCancelPairing, timestamp, false).
// A login request is cancelled with POST /_app/login-requests/{id}/cancel
// and its PollRequest (the poll token and the PKCE verifier prove the
// caller made it).
type CancelPairing struct {
	Timestamp int64  `json:"timestamp"`
	Signature string `json:"signature"`
}

// OAuthToken holds the tokens.
type OAuthToken struct {
	AccessToken  string `json:"access_token"`
	AuthMethod   string `json:"auth_method"`
	ExpiresIn    int    `json:"expires_in"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
}

// TokenResponse is the successful token poll (Cotter's shape).
type TokenResponse struct {
	OAuthToken   OAuthToken `json:"oauth_token"`
	ID           string     `json:"ID"`
	CreatedAt    time.Time  `json:"CreatedAt"`
	UpdatedAt    time.Time  `json:"UpdatedAt"`
	Approved     bool       `json:"approved"`
	ClientUserID string     `json:"client_user_id"`
	Event        string     `json:"event"`
	IP           string     `json:"ip"`
	Method       string     `json:"method"`
	New          bool       `json:"new"`
	Signature    string     `json:"signature"`
	Timestamp    string     `json:"timestamp"`
	UserID       string     `json:"user_id"`
}

// RefreshResponse answers POST /oauth/token (RFC 6749 §5.1).
type RefreshResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token,omitempty"`
}

// Discovery is the OpenID configuration document (the parts served).
type Discovery struct {
	Issuer                 string   `json:"issuer"`
	JWKSURI                string   `json:"jwks_uri"`
	TokenEndpoint          string   `json:"token_endpoint"`
	IntrospectionEndpoint  string   `json:"introspection_endpoint"`
	RevocationEndpoint     string   `json:"revocation_endpoint"`
	TokenEndpointAuth      []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	ClaimsSupported        []string `json:"claims_supported,omitempty"`
	GrantTypesSupported    []string `json:"grant_types_supported"`
	IDTokenSigningAlgs     []string `json:"id_token_signing_alg_values_supported"`
	ResponseTypesSupported []string `json:"response_types_supported"`
	SubjectTypesSupported  []string `json:"subject_types_supported"`
}

// CreatePairing is the body of POST /_app/pairings: the new device's key.
type CreatePairing struct {
	Identifier string `json:"identifier"`
	PublicKey  string `json:"publicKey"` // base64url, 65-byte uncompressed P-256
	KeyID      string `json:"keyId"`
	Algorithm  string `json:"algorithm"`
	DeviceName string `json:"deviceName,omitempty"`
}

// PairingCreated answers it.
type PairingCreated struct {
	PairingID string `json:"pairingId"`
	UserID    string `json:"userId"`
	Username  string `json:"username"`
	Timestamp int64  `json:"timestamp"`
	ExpiresIn int    `json:"expiresIn"`
}

// PairingQR is what the new device's QR code holds (JSON).
type PairingQR struct {
	Type      string `json:"type"`
	Cloud     string `json:"cloud"`
	PairingID string `json:"pairingId"`
	UserID    string `json:"userId"`
	PublicKey string `json:"publicKey"`
	Algorithm string `json:"algorithm"`
	Timestamp int64  `json:"timestamp"`
}

// ErrNotPairing means a scanned text is not a pairing QR.
var ErrNotPairing = errors.New("not a pairing QR code")

// ParsePairingQR reads a pairing QR's text.
func ParsePairingQR(s string) (PairingQR, error) {
	var q PairingQR
	if err := json.Unmarshal([]byte(strings.TrimSpace(s)), &q); err != nil || q.Type != PairingQRType {
		return q, fmt.Errorf("%w: expected the JSON an `authphone trust qr` shows", ErrNotPairing)
	}
	if q.PairingID == "" || q.UserID == "" || q.PublicKey == "" || q.Cloud == "" || q.Timestamp == 0 {
		return q, fmt.Errorf("%w: it lacks pairingId, userId, publicKey, cloud or timestamp", ErrNotPairing)
	}
	if q.Algorithm != AlgorithmES256 {
		return q, fmt.Errorf("%w: algorithm %q, want ES256", ErrNotPairing, q.Algorithm)
	}
	return q, nil
}

// ApprovePairing is the body of POST /_app/pairings/{id}/approve.
type ApprovePairing struct {
	PublicKey string `json:"publicKey"`
	Timestamp int64  `json:"timestamp"`
	Signature string `json:"signature"`
}

// PairingStatus answers GET /_app/pairings/{id}.
type PairingStatus struct {
	Status          string `json:"status"` // pending, approved, expired
	AuthenticatorID string `json:"authenticatorId,omitempty"`
	UserID          string `json:"userId"`
	Username        string `json:"username,omitempty"`
}

// TrustedDevice is one of a user's trusted devices.
type TrustedDevice struct {
	AuthenticatorID string    `json:"authenticatorId"`
	Name            string    `json:"name"`
	AAID            string    `json:"aaid"`
	CreatedAt       time.Time `json:"createdAt"`
}

// Pairing and login-request states.
const (
	StatusPending  = "pending"
	StatusApproved = "approved"
	StatusRejected = "rejected"
	StatusExpired  = "expired"
	// StatusCancelled (ours): the device that asked stopped waiting.
	StatusCancelled = "cancelled"
)

// approvalFacts is the canonical JSON a trusted device signs (field order is
// fixed by the struct).
type approvalFacts struct {
	UserID    string `json:"userId"`
	Subject   string `json:"subject"` // the request id, or the new key
	Event     string `json:"event"`
	Timestamp int64  `json:"timestamp"`
	Method    string `json:"method"`
	Approved  bool   `json:"approved"`
}

// SignedFacts is the canonical message of an approval: user, subject (the
// login request's id or the new device's public key), event, time and
// decision.
func SignedFacts(userID, subject, event string, timestamp int64, approved bool) []byte {
	b, _ := json.Marshal(approvalFacts{UserID: userID, Subject: subject, Event: event, Timestamp: timestamp,
		Method: MethodTrustedDevice, Approved: approved})
	return b
}

// Sign signs msg with ES256 (raw r‖s, base64url).
func Sign(key *ecdsa.PrivateKey, msg []byte) (string, error) {
	h := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		return "", err
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// Verify checks a Sign signature.
func Verify(pub *ecdsa.PublicKey, msg []byte, sig string) bool {
	b, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || len(b) != 64 {
		return false
	}
	h := sha256.Sum256(msg)
	return ecdsa.Verify(pub, h[:], new(big.Int).SetBytes(b[:32]), new(big.Int).SetBytes(b[32:]))
}

// NewCodeVerifier makes a PKCE code verifier (RFC 7636).
func NewCodeVerifier() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// CodeChallenge is the S256 challenge of a verifier.
func CodeChallenge(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}
