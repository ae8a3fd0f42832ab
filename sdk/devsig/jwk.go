package devsig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
)

// The public key a Device-Signature is checked with travels as a JWK. A
// P-256 public JWK is one fixed shape, written here as
// github.com/lestrrat-go/jwx writes it (members in lexicographic order, no
// white space, 32-byte coordinates), which is also the RFC 7638 thumbprint
// input; the tests check both against jwx.

const (
	jwkPrefix = `{"crv":"P-256","kty":"EC","x":"`
	jwkMiddle = `","y":"`
	jwkSuffix = `"}`
	coordLen  = 43 // base64url of 32 bytes
	jwkLen    = len(jwkPrefix) + coordLen + len(jwkMiddle) + coordLen + len(jwkSuffix)
)

// JWK is the public JWK of a P-256 key:
// {"crv":"P-256","kty":"EC","x":"…","y":"…"}.
func JWK(pub *ecdsa.PublicKey) ([]byte, error) {
	return appendJWK(make([]byte, 0, jwkLen), pub)
}

func appendJWK(dst []byte, pub *ecdsa.PublicKey) ([]byte, error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, ErrKey
	}
	pt, err := pub.Bytes() // 0x04 ‖ X ‖ Y
	if err != nil {
		return nil, ErrKey
	}
	dst = append(dst, jwkPrefix...)
	dst = b64.AppendEncode(dst, pt[1:33])
	dst = append(dst, jwkMiddle...)
	dst = b64.AppendEncode(dst, pt[33:])
	return append(dst, jwkSuffix...), nil
}

// ParseJWK reads a P-256 public JWK in exactly the form JWK writes; ok is
// false for anything else (another member order, other members, white
// space, a point not on the curve), which the caller leaves to a JOSE
// library.
func ParseJWK(b []byte) (pub *ecdsa.PublicKey, ok bool) {
	if len(b) != jwkLen || string(b[:len(jwkPrefix)]) != jwkPrefix {
		return nil, false
	}
	x := b[len(jwkPrefix):][:coordLen]
	mid := b[len(jwkPrefix)+coordLen:][:len(jwkMiddle)]
	y := b[len(jwkPrefix)+coordLen+len(jwkMiddle):][:coordLen]
	if string(mid) != jwkMiddle || string(b[jwkLen-len(jwkSuffix):]) != jwkSuffix {
		return nil, false
	}
	var pt [65]byte
	pt[0] = 4
	strict := b64.Strict()
	if n, err := strict.Decode(pt[1:33], x); err != nil || n != 32 {
		return nil, false
	}
	if n, err := strict.Decode(pt[33:], y); err != nil || n != 32 {
		return nil, false
	}
	k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pt[:])
	if err != nil {
		return nil, false
	}
	return k, true
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of a P-256 public key,
// base64url.
func Thumbprint(pub *ecdsa.PublicKey) (string, error) {
	var buf [jwkLen]byte
	j, err := appendJWK(buf[:0], pub)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(j)
	return b64.EncodeToString(h[:]), nil
}
