// Package dispatch encodes and decodes the dispatch payload that starts every
// phone operation: the JSON object {nma_data:{token, redeem_url}, …},
// base64url-encoded, carried by a QR code, an app link or a push message
// (device-api.md §1). Decode accepts every form a user may hand the phone.
package dispatch

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/authphone/authphone/sdk/qr"
	"github.com/google/uuid"
)

// Kind is the operation a payload starts, read from its redeem URL.
type Kind string

// The three kinds of dispatch payload.
const (
	Registration   Kind = "registration"
	Authentication Kind = "authentication"
	Deregistration Kind = "deregistration"
)

// RedeemPrefix is the path before the kind in every redeem URL.
const RedeemPrefix = "/_app/token/redeem/"

// ContentTypeJSON is the only payload content type authphone handles; the
// encrypted application/jose form is rejected with ErrEncrypted.
const ContentTypeJSON = "application/json"

// Errors callers branch on.
var (
	// ErrNotDispatch means the input is not a dispatch payload in any form.
	ErrNotDispatch = errors.New("not a dispatch token")
	// ErrInvalid means the input looks like a payload but is truncated,
	// tampered or incomplete.
	ErrInvalid = errors.New("invalid dispatch payload")
	// ErrEncrypted means the payload is encrypted to a device (application/jose).
	ErrEncrypted = errors.New("encrypted dispatch payloads (application/jose) are not supported")
)

// Expected lists the accepted forms, for error messages.
const Expected = "expected a base64url dispatch payload, an app link (…/open?dispatchTokenResponse=…), its JSON, a data:image/png;base64 URI, or a PNG/JPEG image of the QR code"

// Payload is a decoded dispatch payload.
type Payload struct {
	Token     string `json:"token"`
	RedeemURL string `json:"redeem_url"`
}

type wire struct {
	Data        json.RawMessage `json:"nma_data"`
	ContentType string          `json:"nma_data_content_type"`
	Version     string          `json:"nma_data_version"`
}

// New makes a payload for token, redeemable at base+RedeemPrefix+kind.
func New(base string, kind Kind, token string) Payload {
	return Payload{Token: token, RedeemURL: strings.TrimRight(base, "/") + RedeemPrefix + string(kind)}
}

// JSON is the payload's JSON form.
func (p Payload) JSON() []byte {
	d, _ := json.Marshal(p)
	b, _ := json.Marshal(wire{Data: d, ContentType: ContentTypeJSON, Version: "1"})
	return b
}

// Encode is the payload's base64url form: the content of a QR code.
func (p Payload) Encode() string { return base64.RawURLEncoding.EncodeToString(p.JSON()) }

// AppLink is the payload as an app link on the cloud at base.
func (p Payload) AppLink(base string) string {
	return strings.TrimRight(base, "/") + "/open?dispatchTokenResponse=" + p.Encode()
}

// Kind is the operation the payload starts.
func (p Payload) Kind() Kind {
	i := strings.LastIndex(p.RedeemURL, RedeemPrefix)
	return Kind(p.RedeemURL[i+len(RedeemPrefix):])
}

// Base is the cloud's base URL, derived from the redeem URL.
func (p Payload) Base() string {
	return p.RedeemURL[:strings.LastIndex(p.RedeemURL, RedeemPrefix)]
}

// Validate checks the fields of a decoded payload.
func (p Payload) Validate() error {
	if _, err := uuid.Parse(p.Token); err != nil || len(p.Token) != 36 {
		return fmt.Errorf("%w: token %q is not a UUID", ErrInvalid, p.Token)
	}
	u, err := url.Parse(p.RedeemURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: redeem_url %q is not an http(s) URL", ErrInvalid, p.RedeemURL)
	}
	i := strings.LastIndex(p.RedeemURL, RedeemPrefix)
	if i < 0 {
		return fmt.Errorf("%w: redeem_url %q does not contain %s", ErrInvalid, p.RedeemURL, RedeemPrefix)
	}
	switch p.Kind() {
	case Registration, Authentication, Deregistration:
	default:
		return fmt.Errorf("%w: redeem_url %q ends in %q, want registration, authentication or deregistration", ErrInvalid, p.RedeemURL, p.Kind())
	}
	return nil
}

// Decode reads a dispatch payload from any accepted form: raw base64url
// text, an app link, the JSON itself, a data: URI of a QR image, or the bytes
// of a PNG/JPEG image of the QR code. Surrounding white space is ignored.
func Decode(input []byte) (Payload, error) {
	if qr.IsImage(input) {
		text, err := qr.Read(input)
		if err != nil {
			return Payload{}, fmt.Errorf("%w: %w", ErrNotDispatch, err)
		}
		return decodeText(text, 0)
	}
	return decodeText(string(input), 0)
}

func decodeText(s string, depth int) (Payload, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Payload{}, fmt.Errorf("%w: the input is empty; %s", ErrNotDispatch, Expected)
	}
	if depth > 2 {
		return Payload{}, fmt.Errorf("%w: nested too deeply", ErrNotDispatch)
	}
	switch {
	case strings.HasPrefix(s, "data:"):
		img, err := decodeDataURI(s)
		if err != nil {
			return Payload{}, err
		}
		text, err := qr.Read(img)
		if err != nil {
			return Payload{}, fmt.Errorf("%w: data: URI: %w", ErrNotDispatch, err)
		}
		return decodeText(text, depth+1)
	case strings.HasPrefix(s, "{"):
		return decodeJSON([]byte(s))
	case strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") || strings.Contains(s, "dispatchTokenResponse="):
		u, err := url.Parse(s)
		if err != nil {
			return Payload{}, fmt.Errorf("%w: app link: %v", ErrNotDispatch, err)
		}
		v := u.Query().Get("dispatchTokenResponse")
		if v == "" {
			return Payload{}, fmt.Errorf("%w: the link has no dispatchTokenResponse parameter; %s", ErrNotDispatch, Expected)
		}
		return decodeBase64(v)
	default:
		return decodeBase64(s)
	}
}

func decodeBase64(s string) (Payload, error) {
	s = strings.TrimRight(s, "=")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return Payload{}, fmt.Errorf("%w: not base64url; %s", ErrNotDispatch, Expected)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		return Payload{}, fmt.Errorf("%w: decodes to something other than JSON; %s", ErrNotDispatch, Expected)
	}
	return decodeJSON(b)
}

func decodeJSON(b []byte) (Payload, error) {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return Payload{}, fmt.Errorf("%w: truncated or malformed JSON: %v", ErrInvalid, err)
	}
	if len(w.Data) == 0 {
		return Payload{}, fmt.Errorf("%w: JSON without nma_data; %s", ErrNotDispatch, Expected)
	}
	switch w.ContentType {
	case ContentTypeJSON:
	case "application/jose":
		return Payload{}, ErrEncrypted
	default:
		return Payload{}, fmt.Errorf("%w: nma_data_content_type %q, want %s", ErrInvalid, w.ContentType, ContentTypeJSON)
	}
	if w.Version != "1" {
		return Payload{}, fmt.Errorf("%w: nma_data_version %q, want \"1\"", ErrInvalid, w.Version)
	}
	var p Payload
	if err := json.Unmarshal(w.Data, &p); err != nil {
		return Payload{}, fmt.Errorf("%w: nma_data: %v", ErrInvalid, err)
	}
	if err := p.Validate(); err != nil {
		return Payload{}, err
	}
	return p, nil
}

func decodeDataURI(s string) ([]byte, error) {
	comma := strings.IndexByte(s, ',')
	if comma < 0 {
		return nil, fmt.Errorf("%w: data: URI without a comma", ErrNotDispatch)
	}
	meta := s[len("data:"):comma]
	if !strings.HasSuffix(meta, ";base64") {
		return nil, fmt.Errorf("%w: data: URI is not base64", ErrNotDispatch)
	}
	mt := strings.TrimSuffix(meta, ";base64")
	if mt != "image/png" && mt != "image/jpeg" {
		return nil, fmt.Errorf("%w: data: URI of type %q, want image/png or image/jpeg", ErrNotDispatch, mt)
	}
	b, err := base64.StdEncoding.DecodeString(s[comma+1:])
	if err != nil {
		return nil, fmt.Errorf("%w: data: URI: bad base64: %v", ErrNotDispatch, err)
	}
	return b, nil
}

// DataURI renders a PNG as a data: URI.
func DataURI(png []byte) string {
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
}
