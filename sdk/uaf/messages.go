// Package uaf implements the parts of FIDO UAF 1.1 that the virtual phone and
// the emulated cloud exchange: the JSON protocol messages, the final
// challenge, and building, parsing and verifying registration and
// authentication assertions (UAFV1TLV). It does no I/O.
package uaf

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Operation names a UAF operation.
type Operation string

// The three operations the phone supports.
const (
	OpReg   Operation = "Reg"
	OpAuth  Operation = "Auth"
	OpDereg Operation = "Dereg"
)

// Version is the UAF protocol version.
type Version struct {
	Major int `json:"major"`
	Minor int `json:"minor"`
}

// V1_1 is the protocol version of every message authphone starts.
var V1_1 = Version{Major: 1, Minor: 1}

// V1_0 is UAF 1.0, whose Reg, Auth and Dereg formats authphone uses are the
// same as 1.1's; the phone answers a 1.0 request in 1.0.
var V1_0 = Version{Major: 1, Minor: 0}

// Supported reports whether the phone speaks v (1.0 or 1.1).
func (v Version) Supported() bool { return v == V1_0 || v == V1_1 }

// Header is the OperationHeader of every UAF message.
type Header struct {
	UPV        Version   `json:"upv"`
	Op         Operation `json:"op"`
	AppID      string    `json:"appID,omitempty"`
	ServerData string    `json:"serverData,omitempty"`
}

// MatchCriteria selects authenticators in a policy (UAF 1.1 protocol,
// MatchCriteria dictionary). Every member that is present must hold for an
// authenticator to match; absent members do not constrain. Bit-flag members
// (userVerification, keyProtection, …) match when the authenticator has at
// least one of the flags, except that userVerification with
// UserVerifyAll set needs every listed method.
type MatchCriteria struct {
	AAID                     []string `json:"aaid,omitempty"`
	VendorID                 []string `json:"vendorID,omitempty"`
	KeyIDs                   []string `json:"keyIDs,omitempty"`
	UserVerification         uint32   `json:"userVerification,omitempty"`
	KeyProtection            uint16   `json:"keyProtection,omitempty"`
	MatcherProtection        uint16   `json:"matcherProtection,omitempty"`
	AttachmentHint           uint32   `json:"attachmentHint,omitempty"`
	TCDisplay                uint16   `json:"tcDisplay,omitempty"`
	AuthenticationAlgorithms []uint16 `json:"authenticationAlgorithms,omitempty"`
	AssertionSchemes         []string `json:"assertionSchemes,omitempty"`
	AttestationTypes         []uint16 `json:"attestationTypes,omitempty"`
	AuthenticatorVersion     uint16   `json:"authenticatorVersion,omitempty"`
}

// Flags and values from the FIDO registry of predefined values that
// authenticator descriptions and policies use.
const (
	UserVerifyPresence    uint32 = 0x01
	UserVerifyFingerprint uint32 = 0x02
	UserVerifyPasscode    uint32 = 0x04
	UserVerifyNone        uint32 = 0x400
	UserVerifyAll         uint32 = 0x80000000

	KeyProtectionSoftware     uint16 = 0x01
	MatcherProtectionSoftware uint16 = 0x01
	AttachmentHintInternal    uint32 = 0x01

	AttestationBasicFull      uint16 = 0x3E07
	AttestationBasicSurrogate uint16 = 0x3E08

	SchemeUAFV1TLV = "UAFV1TLV"
)

// Authenticator describes one authenticator (and, for authentication, one
// of its keys) as a policy sees it.
type Authenticator struct {
	AAID                    string
	KeyID                   string // base64url; empty for a key not made yet
	UserVerification        uint32 // the method(s) it uses, UserVerify* flags
	KeyProtection           uint16
	MatcherProtection       uint16
	AttachmentHint          uint32
	TCDisplay               uint16
	AuthenticationAlgorithm uint16
	AssertionScheme         string
	AttestationType         uint16
	Version                 uint16
}

// Matches reports whether a satisfies every member of mc that is present.
func (mc MatchCriteria) Matches(a Authenticator) bool {
	switch {
	case len(mc.AAID) > 0 && !containsString(mc.AAID, a.AAID):
		return false
	case len(mc.VendorID) > 0 && !containsString(mc.VendorID, vendorOf(a.AAID)):
		return false
	case len(mc.KeyIDs) > 0 && !containsString(mc.KeyIDs, a.KeyID):
		return false
	case mc.UserVerification != 0 && !userVerificationMatches(mc.UserVerification, a.UserVerification):
		return false
	case mc.KeyProtection != 0 && mc.KeyProtection&a.KeyProtection == 0:
		return false
	case mc.MatcherProtection != 0 && mc.MatcherProtection&a.MatcherProtection == 0:
		return false
	case mc.AttachmentHint != 0 && mc.AttachmentHint&a.AttachmentHint == 0:
		return false
	case mc.TCDisplay != 0 && mc.TCDisplay&a.TCDisplay == 0:
		return false
	case len(mc.AuthenticationAlgorithms) > 0 && !slices.Contains(mc.AuthenticationAlgorithms, a.AuthenticationAlgorithm):
		return false
	case len(mc.AssertionSchemes) > 0 && !containsString(mc.AssertionSchemes, a.AssertionScheme):
		return false
	case len(mc.AttestationTypes) > 0 && !slices.Contains(mc.AttestationTypes, a.AttestationType):
		return false
	case mc.AuthenticatorVersion != 0 && a.Version < mc.AuthenticatorVersion:
		return false
	}
	return true
}

func userVerificationMatches(want, have uint32) bool {
	if want&UserVerifyAll != 0 {
		need := want &^ UserVerifyAll
		return have&need == need
	}
	return want&have != 0
}

// vendorOf is the vendor part of an AAID ("F1D0#0001" → "F1D0").
func vendorOf(aaid string) string {
	v, _, _ := strings.Cut(aaid, "#")
	return v
}

// Policy says which authenticators the server accepts: Accepted is a list of
// alternatives, each a list of criteria that must all hold; an authenticator
// (key) matching any Disallowed criteria is refused.
type Policy struct {
	Accepted   [][]MatchCriteria `json:"accepted"`
	Disallowed []MatchCriteria   `json:"disallowed,omitempty"`
}

// Matches reports whether the authenticator a satisfies the policy. A
// disallowed entry with keyIDs blocks only those keys, so a new key (empty
// KeyID) of the same AAID may still register.
func (p Policy) Matches(a Authenticator) bool {
	for _, d := range p.Disallowed {
		if d.Matches(a) {
			return false
		}
	}
	for _, and := range p.Accepted {
		ok := len(and) > 0
		for _, mc := range and {
			if !mc.Matches(a) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// Accepts reports whether a new key of the authenticator a (KeyID ignored)
// satisfies the policy.
func (p Policy) Accepts(a Authenticator) bool {
	a.KeyID = ""
	return p.Matches(a)
}

func containsString(xs []string, x string) bool { return slices.Contains(xs, x) }

// Transaction is transaction content shown to the user.
type Transaction struct {
	ContentType string `json:"contentType"`
	Content     string `json:"content"` // base64url
}

// RegistrationRequest asks the phone to register a new key.
type RegistrationRequest struct {
	Header    Header `json:"header"`
	Challenge string `json:"challenge"`
	Username  string `json:"username"`
	Policy    Policy `json:"policy"`
}

// AuthenticationRequest asks the phone to sign a challenge, optionally with
// transaction text.
type AuthenticationRequest struct {
	Header      Header        `json:"header"`
	Challenge   string        `json:"challenge"`
	Transaction []Transaction `json:"transaction,omitempty"`
	Policy      Policy        `json:"policy"`
}

// DeregisterAuthenticator names a key to delete.
type DeregisterAuthenticator struct {
	AAID  string `json:"aaid"`
	KeyID string `json:"keyID"`
}

// DeregistrationRequest asks the phone (or the server) to forget keys.
type DeregistrationRequest struct {
	Header         Header                    `json:"header"`
	Authenticators []DeregisterAuthenticator `json:"authenticators"`
}

// Assertion is one authenticator assertion in a response.
type Assertion struct {
	AssertionScheme string `json:"assertionScheme"`
	Assertion       string `json:"assertion"` // base64url TLV
}

// SchemeTLV is the only assertion scheme of UAF 1.1.
const SchemeTLV = "UAFV1TLV"

// Response is a RegistrationResponse or an AuthenticationResponse; they have
// the same shape.
type Response struct {
	Header     Header      `json:"header"`
	FCParams   string      `json:"fcParams"`
	Assertions []Assertion `json:"assertions"`
}

// ChannelBinding is empty for the phone: it has no TLS channel ID to bind.
type ChannelBinding struct {
	ServerEndPoint       string `json:"serverEndPoint,omitempty"`
	TLSServerCertificate string `json:"tlsServerCertificate,omitempty"`
	TLSUnique            string `json:"tlsUnique,omitempty"`
	CIDPubkey            string `json:"cid_pubkey,omitempty"`
}

// FinalChallengeParams is what fcParams encodes.
type FinalChallengeParams struct {
	AppID          string         `json:"appID"`
	Challenge      string         `json:"challenge"`
	FacetID        string         `json:"facetID"`
	ChannelBinding ChannelBinding `json:"channelBinding"`
}

// ErrMessage is wrapped by errors about malformed UAF JSON messages.
var ErrMessage = errors.New("malformed UAF message")

// Encode renders a message as the one-element JSON array UAF sends: what
// encoding/json writes (a Response, AuthenticationRequest or
// RegistrationRequest of plain strings is written by hand, byte for byte
// the same).
func Encode(msg any) (string, error) {
	if s, ok := encodeFast(msg); ok {
		return s, nil
	}
	b, err := json.Marshal([]any{msg})
	if err != nil {
		return "", fmt.Errorf("encode UAF message: %w", err)
	}
	return string(b), nil
}

// Decode parses a one-element UAF message array into out (a pointer to one
// of the message structs), in one pass: the array is decoded into a slice
// whose first element already holds out, so encoding/json fills out in
// place (it decodes into a non-nil pointer an interface holds).
//
// A Response, AuthenticationRequest or RegistrationRequest in exactly the
// form Encode writes is read by hand (into a zero value only), everything
// else by encoding/json; both read the same.
func Decode(s string, out any) error {
	switch r := out.(type) {
	case *Response:
		if r.Header == (Header{}) && r.FCParams == "" && r.Assertions == nil {
			if fast, ok := decodeResponseFast(s); ok {
				*r = fast
				return nil
			}
		}
	case *AuthenticationRequest:
		if r.Header == (Header{}) && r.Challenge == "" && r.Transaction == nil && r.Policy.Accepted == nil && r.Policy.Disallowed == nil {
			if fast, ok := decodeAuthRequestFast(s); ok {
				*r = fast
				return nil
			}
		}
	case *RegistrationRequest:
		if r.Header == (Header{}) && r.Challenge == "" && r.Username == "" && r.Policy.Accepted == nil && r.Policy.Disallowed == nil {
			if fast, ok := decodeRegRequestFast(s); ok {
				*r = fast
				return nil
			}
		}
	}
	arr := []any{out}
	if err := json.Unmarshal([]byte(s), &arr); err != nil {
		return fmt.Errorf("%w: %v", ErrMessage, err)
	}
	if len(arr) != 1 {
		return fmt.Errorf("%w: want an array of one message, got %d", ErrMessage, len(arr))
	}
	if arr[0] != out {
		return fmt.Errorf("%w: the message is not an object", ErrMessage)
	}
	return nil
}

// PeekOp returns the operation of a one-element UAF message array of a
// version the phone speaks (1.0 or 1.1).
func PeekOp(s string) (Operation, error) {
	var m struct {
		Header Header `json:"header"`
	}
	if err := Decode(s, &m); err != nil {
		return "", err
	}
	if !m.Header.UPV.Supported() {
		return "", fmt.Errorf("%w: unsupported protocol version %d.%d", ErrMessage, m.Header.UPV.Major, m.Header.UPV.Minor)
	}
	return m.Header.Op, nil
}

// EncodeFCParams returns fcParams: base64url of the JSON of p.
func EncodeFCParams(p FinalChallengeParams) string {
	bp := scratch.Get().(*[]byte)
	defer scratch.Put(bp)
	e := enc{b: (*bp)[:0], ok: true}
	e.fcParams(&p)
	b := e.b
	if !e.ok {
		b, _ = json.Marshal(p) // strings only: cannot fail
	} else if cap(e.b) <= 64<<10 {
		*bp = e.b
	}
	return B64.EncodeToString(b)
}

// DecodeFCParams parses fcParams.
func DecodeFCParams(s string) (FinalChallengeParams, error) {
	var p FinalChallengeParams
	b, err := B64.DecodeString(s)
	if err != nil {
		return p, fmt.Errorf("%w: fcParams is not base64url: %v", ErrMessage, err)
	}
	if fast, ok := decodeFCParamsFast(b); ok {
		return fast, nil
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: fcParams: %v", ErrMessage, err)
	}
	return p, nil
}

// FinalChallenge is SHA-256 over the ASCII bytes of the fcParams string, the
// value an authenticator signs.
func FinalChallenge(fcParams string) []byte {
	h := sha256.Sum256([]byte(fcParams))
	return h[:]
}

// TransactionHash is SHA-256 of the decoded transaction content; it returns
// nil for no transaction.
func TransactionHash(tx []Transaction) ([]byte, error) {
	if len(tx) == 0 {
		return nil, nil
	}
	c, err := B64.DecodeString(tx[0].Content)
	if err != nil {
		return nil, fmt.Errorf("%w: transaction content is not base64url: %v", ErrMessage, err)
	}
	h := sha256.Sum256(c)
	return h[:], nil
}

// B64 is base64url without padding, the encoding of every UAF binary field.
var B64 = base64.RawURLEncoding
