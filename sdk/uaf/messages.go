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

// V1_1 is the protocol version of every message authphone sends.
var V1_1 = Version{Major: 1, Minor: 1}

// Header is the OperationHeader of every UAF message.
type Header struct {
	UPV        Version   `json:"upv"`
	Op         Operation `json:"op"`
	AppID      string    `json:"appID,omitempty"`
	ServerData string    `json:"serverData,omitempty"`
}

// MatchCriteria selects authenticators in a policy; authphone uses AAIDs.
type MatchCriteria struct {
	AAID   []string `json:"aaid,omitempty"`
	KeyIDs []string `json:"keyIDs,omitempty"`
}

// Policy says which authenticators the server accepts: the outer slice is
// OR, the inner AND.
type Policy struct {
	Accepted   [][]MatchCriteria `json:"accepted"`
	Disallowed []MatchCriteria   `json:"disallowed,omitempty"`
}

// Accepts reports whether an authenticator with the given AAID satisfies the
// policy on its own, whatever its key.
func (p Policy) Accepts(aaid string) bool { return p.AcceptsKey(aaid, "") }

// AcceptsKey reports whether the key keyID (base64url) of an authenticator
// with the given AAID satisfies the policy; criteria that list keyIDs match
// only those keys (an empty keyID matches none of them).
func (p Policy) AcceptsKey(aaid, keyID string) bool {
	for _, d := range p.Disallowed {
		if containsString(d.AAID, aaid) {
			return false
		}
	}
	for _, and := range p.Accepted {
		ok := len(and) > 0
		for _, mc := range and {
			if !containsString(mc.AAID, aaid) || (len(mc.KeyIDs) > 0 && !containsString(mc.KeyIDs, keyID)) {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func containsString(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}

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

// Encode renders a message as the one-element JSON array UAF sends.
func Encode(msg any) (string, error) {
	b, err := json.Marshal([]any{msg})
	if err != nil {
		return "", fmt.Errorf("encode UAF message: %w", err)
	}
	return string(b), nil
}

// Decode parses a one-element UAF message array into out (a pointer to one
// of the message structs).
func Decode(s string, out any) error {
	var arr []json.RawMessage
	if err := json.Unmarshal([]byte(s), &arr); err != nil {
		return fmt.Errorf("%w: %v", ErrMessage, err)
	}
	if len(arr) != 1 {
		return fmt.Errorf("%w: want an array of one message, got %d", ErrMessage, len(arr))
	}
	if err := json.Unmarshal(arr[0], out); err != nil {
		return fmt.Errorf("%w: %v", ErrMessage, err)
	}
	return nil
}

// PeekOp returns the operation of a one-element UAF message array.
func PeekOp(s string) (Operation, error) {
	var m struct {
		Header Header `json:"header"`
	}
	if err := Decode(s, &m); err != nil {
		return "", err
	}
	if m.Header.UPV != V1_1 {
		return "", fmt.Errorf("%w: unsupported protocol version %d.%d", ErrMessage, m.Header.UPV.Major, m.Header.UPV.Minor)
	}
	return m.Header.Op, nil
}

// EncodeFCParams returns fcParams: base64url of the JSON of p.
func EncodeFCParams(p FinalChallengeParams) string {
	b, _ := json.Marshal(p) // plain strings: cannot fail
	return B64.EncodeToString(b)
}

// DecodeFCParams parses fcParams.
func DecodeFCParams(s string) (FinalChallengeParams, error) {
	var p FinalChallengeParams
	b, err := B64.DecodeString(s)
	if err != nil {
		return p, fmt.Errorf("%w: fcParams is not base64url: %v", ErrMessage, err)
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
