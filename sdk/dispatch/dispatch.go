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
	"sync"
	"unsafe"

	"github.com/authphone/authphone/internal/jsonfast"
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
	if b, ok := p.appendJSON(nil); ok {
		return b
	}
	return p.jsonStd()
}

// jsonStd is the JSON form written by encoding/json.
func (p Payload) jsonStd() []byte {
	d, _ := json.Marshal(p)
	b, _ := json.Marshal(wire{Data: d, ContentType: ContentTypeJSON, Version: "1"})
	return b
}

// appendJSON appends the JSON form written by hand: exactly jsonStd's
// bytes, or false for fields encoding/json would escape otherwise.
func (p Payload) appendJSON(b []byte) ([]byte, bool) {
	w := jsonfast.NewWriter(b)
	w.Raw(`{"nma_data":{"token":`)
	w.String(p.Token)
	w.Raw(`,"redeem_url":`)
	w.String(p.RedeemURL)
	w.Raw(`},"nma_data_content_type":"` + ContentTypeJSON + `","nma_data_version":"1"}`)
	return w.B, w.OK
}

// Encode is the payload's base64url form: the content of a QR code.
func (p Payload) Encode() string { return p.appendEncoded("") }

// AppLink is the payload as an app link on the cloud at base.
func (p Payload) AppLink(base string) string {
	return p.appendEncoded(strings.TrimRight(base, "/") + "/open?dispatchTokenResponse=")
}

// appendEncoded is prefix followed by the base64url form, built in one
// string (the JSON in a pooled buffer).
func (p Payload) appendEncoded(prefix string) string {
	bp := jsonBufs.Get().(*[]byte)
	js, ok := p.appendJSON((*bp)[:0])
	if !ok {
		js = p.jsonStd()
	}
	out := make([]byte, len(prefix)+base64.RawURLEncoding.EncodedLen(len(js)))
	copy(out, prefix)
	base64.RawURLEncoding.Encode(out[len(prefix):], js)
	if ok && cap(js) <= 4<<10 {
		*bp = js[:0]
		jsonBufs.Put(bp)
	}
	return unsafe.String(unsafe.SliceData(out), len(out)) // out is not kept: the string owns it
}

// jsonBufs holds the buffers payloads' JSON is written in before base64.
var jsonBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

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

// decodeJSON reads the JSON form: by hand when it is plain (decodeFast),
// else with encoding/json (decodeJSONStd); the two give the same payload
// or error (tested).
func decodeJSON(b []byte) (Payload, error) {
	w, p, ok := decodeFast(b)
	if !ok {
		return decodeJSONStd(b)
	}
	if err := w.check(); err != nil {
		return Payload{}, err
	}
	if err := p.Validate(); err != nil {
		return Payload{}, err
	}
	return p, nil
}

// check checks the content type and version of a payload's JSON.
func (w *wire) check() error {
	if len(w.Data) == 0 {
		return fmt.Errorf("%w: JSON without nma_data; %s", ErrNotDispatch, Expected)
	}
	switch w.ContentType {
	case ContentTypeJSON:
	case "application/jose":
		return ErrEncrypted
	default:
		return fmt.Errorf("%w: nma_data_content_type %q, want %s", ErrInvalid, w.ContentType, ContentTypeJSON)
	}
	if w.Version != "1" {
		return fmt.Errorf("%w: nma_data_version %q, want \"1\"", ErrInvalid, w.Version)
	}
	return nil
}

// decodeJSONStd is decodeJSON with encoding/json.
func decodeJSONStd(b []byte) (Payload, error) {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return Payload{}, fmt.Errorf("%w: truncated or malformed JSON: %v", ErrInvalid, err)
	}
	if err := w.check(); err != nil {
		return Payload{}, err
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

// decodeFast reads b by hand as encoding/json reads it into a wire and its
// nma_data into a Payload, when b is plain: known keys each at most once,
// strings without escapes or bytes past ASCII, nma_data an object of
// strings. False for anything else, which decodeJSONStd then reads. (Of
// the wire's Data it only says whether it is there: the Payload is read
// from it.)
func decodeFast(b []byte) (wire, Payload, bool) {
	var w wire
	var p Payload
	r := jsonfast.NewReader(b)
	r.Object(func(k []byte) int {
		switch string(k) {
		case "nma_data":
			r.Object(func(k []byte) int {
				switch string(k) {
				case "token":
					r.String(&p.Token)
					return 0
				case "redeem_url":
					r.String(&p.RedeemURL)
					return 1
				}
				return -1
			})
			w.Data = json.RawMessage("{}") // there, and an object
			return 0
		case "nma_data_content_type":
			r.String(&w.ContentType)
			return 1
		case "nma_data_version":
			r.String(&w.Version)
			return 2
		}
		return -1
	})
	r.End()
	return w, p, r.OK
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
