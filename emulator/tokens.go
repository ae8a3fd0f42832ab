package emulator

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"time"

	"github.com/authphone/authphone/internal/jsonfast"
	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// signingKey is one of the cloud's ES256 keys.
type signingKey struct {
	kid     string
	priv    *ecdsa.PrivateKey
	jwk     jwk.Key // private, with kid and alg
	pub     jwk.Key
	retired time.Time // zero while current; old keys stay published until their tokens expire
	// headerJWT is a transaction token's header (typ JWT) for this key,
	// base64url.
	headerJWT string
}

// issuer signs and checks the cloud's tokens.
type issuer struct {
	mu     sync.RWMutex
	keys   []*signingKey // last is current
	secret []byte        // HMAC key for status tokens

	tokMu  sync.Mutex
	signed map[string]string // Server.signedToken's last answers, by what the transaction keeps
	gen    uint64            // counts the times signed was emptied because a key went away
}

// signedCacheSize bounds issuer.signed (it is emptied when full): a
// backend reads a succeeded status once or a few times.
const signedCacheSize = 64

// current is the current signing key.
func (is *issuer) current() *signingKey {
	is.mu.RLock()
	defer is.mu.RUnlock()
	return is.keys[len(is.keys)-1]
}

// keyWithHeader is the key whose compact header (typ JWT) is hdr, nil if
// none is.
func (is *issuer) keyWithHeader(hdr string) *signingKey {
	is.mu.RLock()
	defer is.mu.RUnlock()
	for i := len(is.keys) - 1; i >= 0; i-- {
		if is.keys[i].headerJWT == hdr {
			return is.keys[i]
		}
	}
	return nil
}

// cachedToken is the signed token cached for tok, if any, and the cache's
// generation, which cacheToken is given back.
func (is *issuer) cachedToken(tok string) (signed string, ok bool, gen uint64) {
	is.tokMu.Lock()
	defer is.tokMu.Unlock()
	v, ok := is.signed[tok]
	return v, ok, is.gen
}

// cacheToken keeps signed as tok's token unless the keys were replaced
// since cachedToken gave gen (it may have been signed with a key now gone).
func (is *issuer) cacheToken(tok, signed string, gen uint64) {
	is.tokMu.Lock()
	defer is.tokMu.Unlock()
	if gen != is.gen {
		return
	}
	if is.signed == nil || len(is.signed) >= signedCacheSize {
		is.signed = make(map[string]string, signedCacheSize)
	}
	is.signed[tok] = signed
}

func newIssuer() (*issuer, error) {
	is := &issuer{secret: make([]byte, 32)}
	if _, err := rand.Read(is.secret); err != nil {
		return nil, err
	}
	if _, err := is.rotate(time.Time{}); err != nil {
		return nil, err
	}
	return is, nil
}

// IssuerState is the issuer's secret material as a Store keeps it, so a
// restarted emulator still verifies the tokens it issued before.
type IssuerState struct {
	Secret []byte            `json:"secret"`
	Keys   []SigningKeyState `json:"keys"`
}

// SigningKeyState is one signing key, private part as PKCS #8.
type SigningKeyState struct {
	Kid     string    `json:"kid"`
	Private []byte    `json:"private"`
	Retired time.Time `json:"retired,omitzero"`
}

// export returns the issuer's state.
func (is *issuer) export() *IssuerState {
	is.mu.RLock()
	defer is.mu.RUnlock()
	out := &IssuerState{Secret: is.secret}
	for _, k := range is.keys {
		der, _ := x509.MarshalPKCS8PrivateKey(k.priv)
		out.Keys = append(out.Keys, SigningKeyState{Kid: k.kid, Private: der, Retired: k.retired})
	}
	return out
}

// issuerFrom rebuilds an issuer from its state.
func issuerFrom(st *IssuerState) (*issuer, error) {
	is := &issuer{secret: st.Secret}
	for _, ks := range st.Keys {
		k, err := x509.ParsePKCS8PrivateKey(ks.Private)
		if err != nil {
			return nil, fmt.Errorf("stored signing key %s: %w", ks.Kid, err)
		}
		priv, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("stored signing key %s is not ECDSA", ks.Kid)
		}
		sk, err := newSigningKey(ks.Kid, priv)
		if err != nil {
			return nil, err
		}
		sk.retired = ks.Retired
		is.keys = append(is.keys, sk)
	}
	if len(is.keys) == 0 || len(is.secret) == 0 {
		return nil, errors.New("the stored issuer has no signing key")
	}
	return is, nil
}

func newSigningKey(kid string, priv *ecdsa.PrivateKey) (*signingKey, error) {
	k, err := jwk.Import(priv)
	if err != nil {
		return nil, err
	}
	_ = k.Set(jwk.KeyIDKey, kid)
	_ = k.Set(jwk.AlgorithmKey, jwa.ES256())
	pub, err := k.PublicKey()
	if err != nil {
		return nil, err
	}
	_ = pub.Set(jwk.KeyUsageKey, "sig")
	hdr, err := compactHeader(kid, "JWT")
	if err != nil {
		return nil, err
	}
	return &signingKey{kid: kid, priv: priv, jwk: k, pub: pub, headerJWT: hdr}, nil
}

// rotate adds a new current key and returns its kid; the previous key stays
// in the JWKS until retiredUntil.
func (is *issuer) rotate(retiredUntil time.Time) (string, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	kid := "emu-" + uuid.NewString()[:8]
	sk, err := newSigningKey(kid, priv)
	if err != nil {
		return "", err
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	if n := len(is.keys); n > 0 {
		is.keys[n-1].retired = retiredUntil
	}
	is.keys = append(is.keys, sk)
	return kid, nil
}

// jwks returns the public keys still in use.
func (is *issuer) jwks(now time.Time) jwk.Set {
	set := jwk.NewSet()
	is.mu.RLock()
	defer is.mu.RUnlock()
	// The current key first (some libraries read keys[0]), then older
	// ones, newest first, until their tokens have expired.
	for i := len(is.keys) - 1; i >= 0; i-- {
		if k := is.keys[i]; k.retired.IsZero() || now.Before(k.retired) {
			_ = set.AddKey(k.pub)
		}
	}
	return set
}

// sign signs a JWT with the current key, header typ "JWT".
func (is *issuer) sign(tok jwt.Token) (string, error) { return is.signTyped(tok, "JWT") }

// signTyped signs a JWT with the current key and the header typ given
// ("at+jwt" for RFC 9068 access tokens).
func (is *issuer) signTyped(tok jwt.Token, typ string) (string, error) {
	is.mu.RLock()
	k := is.keys[len(is.keys)-1].jwk
	is.mu.RUnlock()
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, typ)
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), k, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return string(b), nil
}

// parse verifies a JWT with the published keys and validates its times.
func (is *issuer) parse(s string, now time.Time) (jwt.Token, error) {
	return jwt.ParseString(s, jwt.WithKeySet(is.jwks(now)), jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })))
}

// newJWT builds a token with the registered claims every cloud token has.
func newJWT(iss, sub, aud, scope string, now time.Time, ttl time.Duration) (jwt.Token, string) {
	jti := uuid.NewString()
	b := jwt.NewBuilder().Issuer(iss).Subject(sub).IssuedAt(now).NotBefore(now).
		Expiration(now.Add(ttl)).JwtID(jti)
	if aud != "" {
		b = b.Audience([]string{aud})
	}
	tok, _ := b.Build()
	if scope != "" {
		_ = tok.Set("scope", scope)
	}
	return tok, jti
}

const statusTokenPrefix = "st."

// statusToken is "st." + transactionId + "." + base64url(HMAC(transactionId)):
// the cloud can tell a forged token (400) from one it forgot (unknown).
func (is *issuer) statusToken(txID string) string {
	return statusTokenPrefix + txID + "." + is.mac("status", txID)
}

// checkStatusToken returns the transaction id of a genuine status token.
func (is *issuer) checkStatusToken(tok string) (string, bool) {
	rest, ok := strings.CutPrefix(tok, statusTokenPrefix)
	if !ok {
		return "", false
	}
	id, mac, ok := strings.Cut(rest, ".")
	if !ok || uuid.Validate(id) != nil {
		return "", false
	}
	return id, hmac.Equal([]byte(mac), []byte(is.mac("status", id)))
}

func (is *issuer) mac(purpose, s string) string {
	is.mu.RLock()
	secret := is.secret // replace swaps it when another replica (or an import) brings new keys
	is.mu.RUnlock()
	m, _ := macs.Get().(*keyedMAC)
	if m == nil || !bytes.Equal(m.secret, secret) {
		m = &keyedMAC{secret: bytes.Clone(secret), h: hmac.New(sha256.New, secret)}
	}
	m.h.Reset()
	m.h.Write([]byte(purpose))
	m.h.Write([]byte{0})
	m.h.Write([]byte(s))
	var sum [sha256.Size]byte
	out := base64.RawURLEncoding.EncodeToString(m.h.Sum(sum[:0]))
	macs.Put(m)
	return out
}

// keyedMAC is an HMAC-SHA256 keyed with secret, kept for the next mac of
// the same secret (a reset HMAC does not hash its key again).
type keyedMAC struct {
	secret []byte
	h      hash.Hash
}

var macs sync.Pool

// randomToken returns a prefixed random opaque token.
func randomToken(prefix string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// accessKeyJWT makes an HS512 JWT like the real cloud's access keys.
func accessKeyJWT(iss string, now time.Time) (string, error) {
	secret := make([]byte, 64)
	if _, err := rand.Read(secret); err != nil {
		return "", err
	}
	tok, _ := jwt.NewBuilder().Issuer(iss).Subject("authphone-emulator").IssuedAt(now).
		JwtID(uuid.NewString()).Claim("scope", "backend").Build()
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.HS512(), secret))
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// jwtClaims reads a JWT's claims without verifying it (for introspecting the
// access key, which the emulator compares by value).
func jwtClaims(s string) map[string]any {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// appendTransactionClaims appends json.Marshal(c), written by hand.
func appendTransactionClaims(b []byte, c *transactionClaims) ([]byte, error) {
	w := jsonfast.NewWriter(b)
	w.Raw(`{"aud":`)
	if c.Aud == nil {
		w.Raw("null")
	} else {
		w.Byte('[')
		for i, a := range c.Aud {
			if i > 0 {
				w.Byte(',')
			}
			w.String(a)
		}
		w.Byte(']')
	}
	w.Raw(`,"exp":`)
	w.Int(c.Exp)
	w.Raw(`,"iat":`)
	w.Int(c.Iat)
	w.Raw(`,"iss":`)
	w.String(c.Iss)
	w.Raw(`,"jti":`)
	w.String(c.Jti)
	w.Raw(`,"nbf":`)
	w.Int(c.Nbf)
	if c.Scope != "" {
		w.Raw(`,"scope":`)
		w.String(c.Scope)
	}
	w.Raw(`,"sub":`)
	w.String(c.Sub)
	w.Raw(`,"txn":`)
	w.String(c.Txn)
	w.Byte('}')
	if !w.OK {
		j, err := json.Marshal(c)
		return append(b, j...), err
	}
	return w.B, nil
}

// compactHeader is the base64url JOSE header of a transaction token.
func compactHeader(kid, typ string) (string, error) {
	hdr, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{"ES256", kid, typ})
	return base64.RawURLEncoding.EncodeToString(hdr), err
}
