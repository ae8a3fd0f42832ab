// Package devsig signs and checks the Device-Signature header: a compact JWS
// (ES256, kid = the account's UAF keyID) whose payload binds the request's
// method, path and body with a time and a nonce (device-api.md §4). The phone
// signs; the cloud verifies and keeps the nonces to refuse replays.
package devsig

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// HeaderName is the HTTP header that carries the signature.
const HeaderName = "Device-Signature"

// MaxAge is how old a signature may be when the cloud receives it.
const MaxAge = 60 * time.Second

// maxLen bounds the header before any parsing.
const maxLen = 4096

// Errors callers branch on.
var (
	ErrMalformed = errors.New("malformed Device-Signature")
	ErrSignature = errors.New("Device-Signature does not verify")
	ErrMismatch  = errors.New("Device-Signature was made for another request")
	ErrStale     = errors.New("Device-Signature is too old or from the future")
)

// Claims is the signed payload.
type Claims struct {
	// Digest is base64url(SHA-256(method ␠ path ␤ body)).
	Digest   string `json:"sha256"`
	IssuedAt int64  `json:"iat"`
	Nonce    string `json:"nonce"`
}

// Digest binds a request: SHA-256 over "METHOD PATH\n" and the body.
func Digest(method, path string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(method + " " + path + "\n"))
	h.Write(body)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// Sign makes the header value for a request signed by key, whose UAF keyID
// (base64url) is keyID.
func Sign(key *ecdsa.PrivateKey, keyID, method, path string, body []byte, now time.Time) (string, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	payload, _ := json.Marshal(Claims{
		Digest:   Digest(method, path, body),
		IssuedAt: now.Unix(),
		Nonce:    base64.RawURLEncoding.EncodeToString(nonce),
	})
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, keyID); err != nil {
		return "", err
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256(), key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("sign request: %w", err)
	}
	return string(out), nil
}

// Signature is a parsed, not yet verified, Device-Signature.
type Signature struct {
	KeyID  string
	Claims Claims
	raw    []byte
}

// Parse reads the header without checking the signature, so the verifier can
// look up the key named by KeyID.
func Parse(header string) (*Signature, error) {
	if header == "" {
		return nil, fmt.Errorf("%w: the header is missing", ErrMalformed)
	}
	if len(header) > maxLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxLen)
	}
	msg, err := jws.Parse([]byte(header), jws.WithCompact())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 {
		return nil, fmt.Errorf("%w: want one signature", ErrMalformed)
	}
	ph := sigs[0].ProtectedHeaders()
	alg, ok := ph.Algorithm()
	if !ok || alg != jwa.ES256() {
		return nil, fmt.Errorf("%w: alg must be ES256", ErrMalformed)
	}
	kid, ok := ph.KeyID()
	if !ok || kid == "" {
		return nil, fmt.Errorf("%w: no kid", ErrMalformed)
	}
	var c Claims
	if err := json.Unmarshal(msg.Payload(), &c); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if c.Digest == "" || c.Nonce == "" || c.IssuedAt == 0 {
		return nil, fmt.Errorf("%w: payload lacks sha256, iat or nonce", ErrMalformed)
	}
	return &Signature{KeyID: kid, Claims: c, raw: []byte(header)}, nil
}

// Verify checks the signature with pub, that it covers this request, and that
// it was made within maxAge of now. Replays are the caller's to refuse, by
// remembering Claims.Nonce for maxAge.
func (s *Signature) Verify(pub *ecdsa.PublicKey, method, path string, body []byte, now time.Time, maxAge time.Duration) error {
	if _, err := jws.Verify(s.raw, jws.WithKey(jwa.ES256(), pub)); err != nil {
		return ErrSignature
	}
	if s.Claims.Digest != Digest(method, path, body) {
		return ErrMismatch
	}
	iat := time.Unix(s.Claims.IssuedAt, 0)
	if now.Sub(iat) > maxAge || iat.Sub(now) > 5*time.Second {
		return ErrStale
	}
	return nil
}
