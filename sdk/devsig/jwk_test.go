package devsig_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	mrand "math/rand/v2"
	"testing"

	"github.com/authphone/authphone/sdk/devsig"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// jwxJWK is what the phone sent before: jwk.Import then json.Marshal.
func jwxJWK(t testing.TB, pub *ecdsa.PublicKey) []byte {
	jk, err := jwk.Import(pub)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jk)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestJWKIsJWX: JWK writes what jwx writes, ParseJWK reads it back,
// Thumbprint is jwx's, for random keys and keys with a leading zero byte
// in a coordinate.
func TestJWKIsJWX(t *testing.T) {
	zeroX, zeroY := 0, 0
	for i := 0; i < 300 || zeroX < 2 || zeroY < 2; i++ {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pt, _ := k.PublicKey.Bytes()
		switch {
		case pt[1] == 0:
			zeroX++
		case pt[33] == 0:
			zeroY++
		case i >= 300:
			continue
		}
		want := jwxJWK(t, &k.PublicKey)
		got, err := devsig.JWK(&k.PublicKey)
		if err != nil || string(got) != string(want) {
			t.Fatalf("JWK %s %v, jwx %s", got, err, want)
		}
		pub, ok := devsig.ParseJWK(got)
		if !ok || !pub.Equal(&k.PublicKey) {
			t.Fatalf("ParseJWK(%s) = %v %v", got, pub, ok)
		}
		jk, _ := jwk.Import(&k.PublicKey)
		tp, _ := jk.Thumbprint(crypto.SHA256)
		if id, err := devsig.Thumbprint(&k.PublicKey); err != nil || id != base64.RawURLEncoding.EncodeToString(tp) {
			t.Fatalf("Thumbprint %s %v, jwx %s", id, err, base64.RawURLEncoding.EncodeToString(tp))
		}
	}
	if _, err := devsig.JWK(nil); err == nil {
		t.Fatal("JWK(nil)")
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := devsig.Thumbprint(&p384.PublicKey); err == nil {
		t.Fatal("a P-384 key has a thumbprint")
	}
}

// TestParseJWKTakesOnlyItsShape: every input ParseJWK takes, jwx reads as
// the same P-256 key; changed bytes, other members and points off the
// curve are refused (left to jwx).
func TestParseJWKTakesOnlyItsShape(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good, _ := devsig.JWK(&k.PublicKey)
	rng := mrand.New(mrand.NewPCG(1, 2))
	const alphabet = `{}":, -_AZaz09+/=é`
	taken := 0
	for range 20000 {
		b := []byte(string(good))
		i := rng.IntN(len(b))
		switch rng.IntN(3) {
		case 0:
			b[i] = alphabet[rng.IntN(len(alphabet))]
		case 1:
			b = append(b[:i], b[i+1:]...)
		default:
			b = append(b[:i+1], b[i:]...)
		}
		pub, ok := devsig.ParseJWK(b)
		if !ok {
			continue
		}
		taken++
		jk, err := jwk.ParseKey(b)
		if err != nil {
			t.Fatalf("ParseJWK took %s, jwx refuses it: %v", b, err)
		}
		var want ecdsa.PublicKey
		if err := jwk.Export(jk, &want); err != nil || !want.Equal(pub) {
			t.Fatalf("%s: ParseJWK %v, jwx %v %v", b, pub, want, err)
		}
	}
	if taken == 0 {
		t.Log("no mutation was taken (each changes the point or the shape)")
	}
	for _, bad := range []string{
		`{"kty":"EC","crv":"P-256","x":"` + string(good[31:74]) + `","y":"` + string(good[81:124]) + `"}`,
		string(good[:len(good)-1]) + `,"kid":"k"}`,
		string(good[:31]) + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" + string(good[74:]),
	} {
		if _, ok := devsig.ParseJWK([]byte(bad)); ok {
			t.Errorf("ParseJWK took %s", bad)
		}
	}
}
