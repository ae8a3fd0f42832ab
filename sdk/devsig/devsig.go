// Package devsig signs and checks the Device-Signature header: a compact JWS
// (ES256, kid = the account's UAF keyID) whose payload binds the request's
// method, path and body with a time and a nonce (device-api.md §4). The phone
// signs; the cloud verifies and keeps the nonces to refuse replays.
package devsig

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/authphone/authphone/internal/ecdsasig"
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
	ErrKey       = errors.New("not a P-256 public key")
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
	if kid, ok := fastHeader(hj); ok {
		ph.Alg, ph.Kid = "ES256", kid
	} else if err := json.Unmarshal(hj, &ph); err != nil {
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
	c, ok := fastClaims(pj)
	if !ok {
		if err := json.Unmarshal(pj, &c); err != nil {
			return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
		}
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
	var der [72]byte
	if !ecdsa.VerifyASN1(pub, h[:], ecdsasig.RawToDER(der[:0], s.sig[:])) {
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

// fastHeader reads the protected header exactly as Sign writes it,
// {"alg":"ES256","kid":"…"} with a kid of printable ASCII but '"' and '\\'
// (what encoding/json reads as it is); ok is false for anything else,
// which Parse gives to encoding/json.
func fastHeader(b []byte) (kid string, ok bool) {
	const pre, post = `{"alg":"ES256","kid":"`, `"}`
	if len(b) < len(pre)+len(post)+1 || string(b[:len(pre)]) != pre || string(b[len(b)-len(post):]) != post {
		return "", false
	}
	k := b[len(pre) : len(b)-len(post)]
	if !plain(k) {
		return "", false
	}
	return string(k), true
}

// fastClaims reads the claims exactly as Sign writes them,
// {"sha256":"…","iat":N,"nonce":"…"}; ok is false for anything else.
func fastClaims(b []byte) (Claims, bool) {
	var c Claims
	const p1, p2, p3, p4 = `{"sha256":"`, `","iat":`, `,"nonce":"`, `"}`
	if len(b) < len(p1) || string(b[:len(p1)]) != p1 {
		return c, false
	}
	b = b[len(p1):]
	i := bytes.IndexByte(b, '"')
	if i <= 0 || !plain(b[:i]) || len(b)-i < len(p2) || string(b[i:i+len(p2)]) != p2 {
		return c, false
	}
	c.Digest, b = string(b[:i]), b[i+len(p2):]
	n := 0
	for n < len(b) && n < 18 && b[n] >= '0' && b[n] <= '9' {
		c.IssuedAt = c.IssuedAt*10 + int64(b[n]-'0')
		n++
	}
	if n == 0 || (n > 1 && b[0] == '0') || len(b)-n < len(p3) || string(b[n:n+len(p3)]) != p3 {
		return Claims{}, false
	}
	b = b[n+len(p3):]
	i = bytes.IndexByte(b, '"')
	if i <= 0 || !plain(b[:i]) || string(b[i:]) != p4 {
		return Claims{}, false
	}
	c.Nonce = string(b[:i])
	return c, true
}

// plain reports whether b is printable ASCII without '"' or '\\': a JSON
// string's content that means itself.
func plain(b []byte) bool {
	for _, x := range b {
		if x < 0x20 || x >= 0x7f || x == '"' || x == '\\' {
			return false
		}
	}
	return true
}
