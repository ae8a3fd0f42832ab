// Package deviceapi holds what the phone and the cloud say to each other
// outside UAF itself (device-api.md): paths, the redeem exchange, UAF
// response bodies, dispatch targets, the inbox and decline. Shared by the
// phone SDK and the emulator; it does no I/O.
package deviceapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/authphone/authphone/sdk/devsig"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/authphone/authphone/sdk/uaf"
)

// Paths of the device API.
const (
	PathRedeem          = "/_app/token/redeem/" // + registration|authentication|deregistration
	PathRegistration    = "/_app/uaf/1.1/registration"
	PathAuthentication  = "/_app/uaf/1.1/authentication"
	PathDeregistration  = "/_app/uaf/1.1/deregistration"
	PathDispatchTargets = "/_app/token/dispatch/targets"
	PathInbox           = "/_app/inbox"
	PathInboxes         = "/_app/inboxes"
	PathDecline         = "/_app/token/decline"
	PathFacets          = "/_app/facets"
	PathData            = "/_app/data"
	PathHeadless        = "/_app/headless"
	PathUpgrade         = "/_app/headless/upgrade"
	PathVersions        = "/_app/versions"
)

// DataRelayedHeader marks a getData answer that comes unchanged from the
// data service ("relayed", or "builtin" for the emulator's own), as opposed
// to the cloud's own error (ours).
const DataRelayedHeader = "Authphone-Data-Service"

// ProtocolV1_2 is the second-factor server protocol version headless
// accounts need.
const ProtocolV1_2 = "v1_2"

// HeadlessRequest asks the cloud for a device-only registration (ours).
type HeadlessRequest struct {
	ProtocolVersion string `json:"protocolVersion"`
}

// ContentTypeUAF is the content type of UAF bodies.
const ContentTypeUAF = "application/fido+uaf;charset=UTF-8"

// UAF status codes.
const (
	StatusOK                     = 1200
	StatusAccepted               = 1202
	StatusBadRequest             = 1400
	StatusUnauthorized           = 1401
	StatusForbidden              = 1403
	StatusNotFound               = 1404
	StatusTimeout                = 1408
	StatusUnknownAAID            = 1480
	StatusUnknownKeyID           = 1481
	StatusChannelBindingRefused  = 1490
	StatusRequestInvalid         = 1491
	StatusUnacceptableAuthn      = 1492
	StatusRevokedAuthenticator   = 1493
	StatusUnacceptableKey        = 1494
	StatusUnacceptableAlgorithm  = 1495
	StatusUnacceptableAttest     = 1496
	StatusUnacceptableClientCaps = 1497
	StatusUnacceptableContent    = 1498
	StatusInternal               = 1500
)

// StatusUntrustedFacet answers a response whose fcParams facetID is not in
// the cloud's trusted facet list (the number the UAF registry gives
// UNACCEPTABLE_ATTESTATION; UAF defines no server status for facets).
const StatusUntrustedFacet = 1496

// DefaultFacetID is the facet ID the virtual phone reports unless told
// otherwise, and one the emulator trusts by default.
const DefaultFacetID = "ios:bundle-id:dev.authphone.cli"

// ContentTypeTrustedFacets is the content type of the trusted facet list
// served at the appID URL.
const ContentTypeTrustedFacets = "application/fido.trusted-apps+json"

// AAIDs the virtual phone uses.
const (
	AAIDHeadless  = "F1D0#0000"
	AAIDPIN       = "F1D0#0001"
	AAIDBiometric = "F1D0#0003"
)

// Describe is how a policy sees the virtual phone's authenticator with the
// given AAID and key (keyID empty for a key not made yet) when it signs raw:
// a software key (P-256 ECDSA, UAFV1TLV, surrogate attestation) inside the
// phone, which
// verifies the user by passcode (F1D0#0001), fingerprint (F1D0#0003) or not
// at all (headless, F1D0#0000).
func Describe(aaid, keyID string) uaf.Authenticator {
	return DescribeAlg(aaid, keyID, uaf.AlgSecp256r1SHA256Raw)
}

// signatureAlgorithms are the UAF signature algorithms the virtual phone
// signs with, in the order it prefers them: ECDSA P-256 SHA-256 as raw r‖s,
// then in DER (the encoding the real SDK and nevisFIDO policies name).
var signatureAlgorithms = []uint16{uaf.AlgSecp256r1SHA256Raw, uaf.AlgSecp256r1SHA256DER}

// AcceptedAlgorithm returns the first of the phone's signature algorithms (raw, then DER) with which a
// new key of aaid satisfies p; false if none does.
func AcceptedAlgorithm(p uaf.Policy, aaid string) (uint16, bool) {
	for _, alg := range signatureAlgorithms {
		if p.Accepts(DescribeAlg(aaid, "", alg)) {
			return alg, true
		}
	}
	return 0, false
}

// DescribeAlg is Describe for a key that signs with alg (zero: raw).
func DescribeAlg(aaid, keyID string, alg uint16) uaf.Authenticator {
	if alg == 0 {
		alg = uaf.AlgSecp256r1SHA256Raw
	}
	uv := uaf.UserVerifyNone
	switch aaid {
	case AAIDPIN:
		uv = uaf.UserVerifyPasscode
	case AAIDBiometric:
		uv = uaf.UserVerifyFingerprint
	}
	return uaf.Authenticator{AAID: aaid, KeyID: keyID, UserVerification: uv,
		KeyProtection: uaf.KeyProtectionSoftware, MatcherProtection: uaf.MatcherProtectionSoftware,
		AttachmentHint: uaf.AttachmentHintInternal, AuthenticationAlgorithm: alg,
		AssertionScheme: uaf.SchemeUAFV1TLV, AttestationType: uaf.AttestationBasicSurrogate, Version: 1}
}

// RedeemRequest is the body of a redeem.
type RedeemRequest struct {
	Token string `json:"token"`
}

// RedeemResponse answers a redeem.
type RedeemResponse struct {
	StatusCode     int    `json:"statusCode"`
	UAFRequest     string `json:"uafRequest"`
	Op             string `json:"op"`
	LifetimeMillis int64  `json:"lifetimeMillis"`
	// NumberChoices (ours) are the numbers a number-matching approval
	// offers the user; the one the backend shows is among them.
	NumberChoices []int `json:"numberChoices,omitempty"`
}

// AuthContext is the context of an authentication response (ours): the
// number the user picked, for a number-matching approval.
type AuthContext struct {
	Number int `json:"number,omitempty"`
}

// WrongNumber starts the description of the cloud's refusal of a
// number-matching answer with the wrong number.
const WrongNumber = "wrong number"

// StatusBody is the cloud's answer to UAF posts and device API errors.
type StatusBody struct {
	StatusCode  int    `json:"statusCode"`
	Description string `json:"description,omitempty"`
	// UserID and AuthenticatorID name what a registration created (ours).
	UserID          string `json:"userId,omitempty"`
	AuthenticatorID string `json:"authenticatorId,omitempty"`
	// DispatchTarget (ours) says the registration also registered the
	// dispatch target its body carried (UAFBody.DispatchTarget); a cloud
	// that leaves it false did not, and the phone registers the target
	// with its own call.
	DispatchTarget bool `json:"dispatchTarget,omitempty"`
}

// UAFBody carries a UAF response message to the cloud.
type UAFBody struct {
	UAFResponse string          `json:"uafResponse"`
	Context     json.RawMessage `json:"context,omitempty"`
	// DispatchTarget (ours, registrations only) is the new
	// authenticator's dispatch target, registered with it in the same
	// transaction, as POST PathDispatchTargets would (the same checks):
	// the phone spares that call, its signature and the cloud's check of
	// it. The registration that proves the new key binds the target; a
	// target the cloud refuses fails the registration.
	DispatchTarget *DispatchTarget `json:"dispatchTarget,omitempty"`
}

// DispatchTarget registers where the cloud delivers push messages. Its
// signatureKey is the account's own key, or the phone's device key with
// deviceId its DeviceKey id (ours), which lets the phone read every
// account's inbox with one signed POST /_app/inboxes.
type DispatchTarget struct {
	Name         string          `json:"name"`
	DeviceID     string          `json:"deviceId"`
	Dispatcher   string          `json:"dispatcher"`
	Username     string          `json:"username,omitempty"`
	SignatureKey json.RawMessage `json:"signatureKey"`
}

// DispatchTargetResponse answers a dispatch target registration.
type DispatchTargetResponse struct {
	ID string `json:"id"`
}

// InboxKind says what an inbox message asks for (ours).
type InboxKind string

// Inbox message kinds.
const (
	InboxAuthentication InboxKind = "authentication"
	InboxDeregistration InboxKind = "deregistration"
	InboxLoginRequest   InboxKind = "login-request"
)

// InboxMessage is one simulated push message.
type InboxMessage struct {
	ID                  string    `json:"id"`
	CreatedAt           time.Time `json:"createdAt"`
	ExpiresAt           time.Time `json:"expiresAt"`
	Payload             string    `json:"payload"`
	NotificationMessage string    `json:"notificationMessage,omitempty"`
	// Kind and Message (the transaction text) are ours: they let the phone
	// list a request without redeeming its token.
	Kind    InboxKind `json:"kind,omitempty"`
	Message string    `json:"message,omitempty"`
	// TransactionID (ours) is the backend's transactionId of an approval,
	// so the phone shows the id the backend knows.
	TransactionID string `json:"transactionId,omitempty"`
	// NumberChoices (ours): a number-matching approval's choices.
	NumberChoices []int `json:"numberChoices,omitempty"`
	// LoginRequest describes another device's login request (kind
	// login-request), which has no dispatch payload.
	LoginRequest *trustapi.LoginRequestInfo `json:"loginRequest,omitempty"`
	// KeyID names the account the message is for, in answers to
	// POST /_app/inboxes (ours).
	KeyID string `json:"keyId,omitempty"`
	// UAF (ours) is, in answers to POST /_app/inboxes that asked for it
	// (InboxesRequest.UAF), what redeeming the approval's token would
	// answer: the UAF AuthenticationRequest (its transaction text, the
	// number choices), so the phone answers without the redeem. The token
	// is not spent by the delivery: the first of the assertion, a decline
	// or a redeem of the token spends it, and the others are then refused.
	// Absent (an older cloud, a removal notice, a login request, a token
	// already redeemed): the phone redeems the payload's token as usual.
	UAF *RedeemResponse `json:"uaf,omitempty"`
}

// MaxInboxKeys is how many accounts one POST /_app/inboxes may name.
const MaxInboxKeys = 1000

// InboxesRequest is the body of POST /_app/inboxes[?wait=DURATION] (ours):
// one long-poll for the inboxes of every account of a phone, signed once.
// The Device-Signature is made with the phone's device key (its kid is
// DeviceKeyID of DeviceKey), and each account named must have registered
// its dispatch target with that key (signatureKey) and its id (deviceId).
type InboxesRequest struct {
	DeviceKey json.RawMessage `json:"deviceKey"` // the device key, a JWK
	KeyIDs    []string        `json:"keyIds"`    // the accounts' UAF keyIDs
	// UAF asks the cloud to deliver each approval's UAF request with its
	// message (InboxMessage.UAF). A cloud without the feature ignores it.
	UAF bool `json:"uaf,omitempty"`
}

// InboxesResponse answers POST /_app/inboxes: the messages of every
// account named, oldest first, each with its KeyID, and the keyIDs the
// cloud does not know or that are not bound to the device key.
type InboxesResponse struct {
	Messages []InboxMessage `json:"messages"`
	Unknown  []string       `json:"unknown,omitempty"`
}

// DeviceKey reads a device key JWK (P-256) and returns it with its id,
// DeviceKeyID.
func DeviceKey(jwkJSON []byte) (*ecdsa.PublicKey, string, error) {
	if pub, ok := devsig.ParseJWK(jwkJSON); ok { // the phone's form, without jwx
		id, err := DeviceKeyID(pub)
		return pub, id, err
	}
	k, err := jwk.ParseKey(jwkJSON)
	if err != nil {
		return nil, "", fmt.Errorf("the device key is not a JWK: %w", err)
	}
	var pub ecdsa.PublicKey
	if err := jwk.Export(k, &pub); err != nil || pub.Curve != elliptic.P256() {
		return nil, "", fmt.Errorf("the device key is not a P-256 public key")
	}
	id, err := DeviceKeyID(&pub)
	return &pub, id, err
}

// DeviceKeyID is the id of a device key: its RFC 7638 JWK thumbprint
// (SHA-256, base64url).
func DeviceKeyID(pub *ecdsa.PublicKey) (string, error) {
	return devsig.Thumbprint(pub)
}

// DeclineRequest is the body of POST /_app/token/decline.
type DeclineRequest struct {
	Token  string `json:"token"`
	Reason string `json:"reason,omitempty"`
}
