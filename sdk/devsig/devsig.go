// Package devsig signs and checks the Device-Signature header: a compact JWS
// (ES256, kid = the account's UAF keyID) whose payload binds the request's
// method, path and body with a time and a nonce (device-api.md §4). The phone
// signs; the cloud verifies and keeps the nonces to refuse replays.
package devsig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/authphone/authphone/sdk/internal/ecdsasig"
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
	var d [32]byte
	digest(&d, method, path, body)
	return base64.RawURLEncoding.EncodeToString(d[:])
}

func digest(out *[32]byte, method, path string, body []byte) {
	h := sha256.New()
	var line [256]byte
	b := append(append(append(append(line[:0], method...), ' '), path...), '\n')
	h.Write(b)
	h.Write(body)
	h.Sum(out[:0])
}

// The JWS is made and checked here rather than with a JOSE library: it is
// one fixed shape (compact, ES256, a kid and three claims), and the
// request's hot path pays for nothing else. The output is a plain RFC 7515
// compact JWS; the tests check it against github.com/lestrrat-go/jwx both
// ways.

var b64 = base64.RawURLEncoding

// Sign makes the header value for a request signed by key (P-256), whose
// UAF keyID (base64url) is keyID.
func Sign(key *ecdsa.PrivateKey, keyID, method, path string, body []byte, now time.Time) (string, error) {
	if key == nil || key.Curve != elliptic.P256() {
		return "", fmt.Errorf("sign request: ES256 needs a P-256 key")
	}
	if keyID == "" {
		return "", fmt.Errorf("sign request: no key id")
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", err
	}
	var d [32]byte
	digest(&d, method, path, body)
	kid, err := json.Marshal(keyID)
	if err != nil {
		return "", err
	}
	// {"sha256":"<43>","iat":N,"nonce":"<22>"}
	var pl [128]byte
	claims := append(pl[:0], `{"sha256":"`...)
	claims = b64.AppendEncode(claims, d[:])
	claims = append(claims, `","iat":`...)
	claims = strconv.AppendInt(claims, now.Unix(), 10)
	claims = append(claims, `,"nonce":"`...)
	claims = b64.AppendEncode(claims, nonce[:])
	claims = append(claims, `"}`...)

	var hb [128]byte
	hdr := append(append(append(hb[:0], `{"alg":"ES256","kid":`...), kid...), '}')

	out := make([]byte, 0, b64.EncodedLen(len(hdr))+b64.EncodedLen(len(claims))+2+86)
	out = b64.AppendEncode(out, hdr)
	out = append(out, '.')
	out = b64.AppendEncode(out, claims)
	h := sha256.Sum256(out)
	der, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		return "", fmt.Errorf("sign request: %w", err)
	}
	var raw [64]byte
	if !ecdsasig.DERToRaw(der, raw[:]) {
		return "", fmt.Errorf("sign request: unexpected signature encoding")
	}
	out = append(out, '.')
	out = b64.AppendEncode(out, raw[:])
	return string(out), nil
}

// Signature is a parsed, not yet verified, Device-Signature.
type Signature struct {
	KeyID  string
	Claims Claims
	signed string   // the JWS signing input: header.payload
	sig    [64]byte // r || s
}

// protected is the JWS protected header as read. Crit is refused (no
// extension is understood), b64 too (RFC 7797 would change what is signed).
type protected struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
	B64  json.RawMessage `json:"b64"`
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
	h, rest, ok1 := strings.Cut(header, ".")
	p, sg, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sg, ".") {
		return nil, fmt.Errorf("%w: not a compact JWS (three base64url parts)", ErrMalformed)
	}
	hj, err := b64.DecodeString(h)
	if err != nil {
		return nil, fmt.Errorf("%w: protected header is not base64url", ErrMalformed)
	}
	var ph protected
	if err := json.Unmarshal(hj, &ph); err != nil {
		return nil, fmt.Errorf("%w: protected header: %v", ErrMalformed, err)
	}
	if ph.Alg != "ES256" {
		return nil, fmt.Errorf("%w: alg must be ES256", ErrMalformed)
	}
	if ph.Kid == "" {
		return nil, fmt.Errorf("%w: no kid", ErrMalformed)
	}
	if ph.Crit != nil || ph.B64 != nil {
		return nil, fmt.Errorf("%w: crit and b64 headers are not supported", ErrMalformed)
	}
	pj, err := b64.DecodeString(p)
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not base64url", ErrMalformed)
	}
	var c Claims
	if err := json.Unmarshal(pj, &c); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if c.Digest == "" || c.Nonce == "" || c.IssuedAt == 0 {
		return nil, fmt.Errorf("%w: payload lacks sha256, iat or nonce", ErrMalformed)
	}
	out := &Signature{KeyID: ph.Kid, Claims: c, signed: header[:len(h)+1+len(p)]}
	if b64.DecodedLen(len(sg)) != len(out.sig) {
		return nil, fmt.Errorf("%w: an ES256 signature is 64 bytes", ErrMalformed)
	}
	if n, err := b64.Decode(out.sig[:], []byte(sg)); err != nil || n != len(out.sig) {
		return nil, fmt.Errorf("%w: signature is not base64url", ErrMalformed)
	}
	return out, nil
}

// Verify checks the signature with pub, that it covers this request, and that
// it was made within maxAge of now. Replays are the caller's to refuse, by
// remembering Claims.Nonce for maxAge.
func (s *Signature) Verify(pub *ecdsa.PublicKey, method, path string, body []byte, now time.Time, maxAge time.Duration) error {
	if pub == nil || pub.Curve != elliptic.P256() {
		return ErrSignature
	}
	h := sha256.Sum256([]byte(s.signed))
	r, ss := new(big.Int).SetBytes(s.sig[:32]), new(big.Int).SetBytes(s.sig[32:])
	if !ecdsa.Verify(pub, h[:], r, ss) {
		return ErrSignature
	}
	var d [32]byte
	digest(&d, method, path, body)
	var want [43]byte
	b64.Encode(want[:], d[:])
	if s.Claims.Digest != string(want[:]) {
		return ErrMismatch
	}
	iat := time.Unix(s.Claims.IssuedAt, 0)
	if now.Sub(iat) > maxAge || iat.Sub(now) > 5*time.Second {
		return ErrStale
	}
	return nil
}
