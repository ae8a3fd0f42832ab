package devsig_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/authphone/authphone/sdk/devsig"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

func TestSignVerify(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	body := []byte(`{"token":"x"}`)
	h, err := devsig.Sign(key, "kid1", "POST", "/_app/token/decline", body, now)
	if err != nil {
		t.Fatal(err)
	}
	s, err := devsig.Parse(h)
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyID != "kid1" {
		t.Fatalf("kid %q", s.KeyID)
	}
	if err := s.Verify(&key.PublicKey, "POST", "/_app/token/decline", body, now, devsig.MaxAge); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		err  error
		want error
	}{
		{"other key", s.Verify(&other.PublicKey, "POST", "/_app/token/decline", body, now, devsig.MaxAge), devsig.ErrSignature},
		{"other body", s.Verify(&key.PublicKey, "POST", "/_app/token/decline", []byte("{}"), now, devsig.MaxAge), devsig.ErrMismatch},
		{"other path", s.Verify(&key.PublicKey, "POST", "/_app/data", body, now, devsig.MaxAge), devsig.ErrMismatch},
		{"too old", s.Verify(&key.PublicKey, "POST", "/_app/token/decline", body, now.Add(61*time.Second), devsig.MaxAge), devsig.ErrStale},
	}
	for _, c := range checks {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	tampered := h[:len(h)-3] + "AAA"
	if s2, err := devsig.Parse(tampered); err == nil {
		if err := s2.Verify(&key.PublicKey, "POST", "/_app/token/decline", body, now, devsig.MaxAge); err == nil {
			t.Error("tampered signature verified")
		}
	}
	for _, bad := range []string{"", "a.b", "a.b.c", "eyJhbGciOiJub25lIn0.e30."} {
		if _, err := devsig.Parse(bad); !errors.Is(err, devsig.ErrMalformed) {
			t.Errorf("Parse(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	h, _ := devsig.Sign(key, "kid", "GET", "/_app/inbox", nil, time.Now())
	f.Add(h)
	f.Add("eyJhbGciOiJFUzI1NiJ9.e30.AA")
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := devsig.Parse(s)
		if err != nil {
			return
		}
		if sig.KeyID == "" || sig.Claims.Nonce == "" {
			t.Fatal("parsed signature lacks kid or nonce")
		}
		_ = sig.Verify(&key.PublicKey, "GET", "/_app/inbox", nil, time.Now(), devsig.MaxAge)
	})
}

// TestJOSEInterop checks the hand-made JWS against a JOSE library both
// ways: jwx verifies what Sign makes, and Parse/Verify accept what jwx
// signs, and refuse what jwx signs with another algorithm.
func TestJOSEInterop(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	body := []byte(`{"keyIds":["a"]}`)
	h, err := devsig.Sign(key, "kid-1", "POST", "/_app/inboxes", body, now)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := jws.Verify([]byte(h), jws.WithKey(jwa.ES256(), &key.PublicKey))
	if err != nil {
		t.Fatalf("jwx does not verify the Device-Signature: %v", err)
	}
	var c devsig.Claims
	if err := json.Unmarshal(payload, &c); err != nil || c.Digest != devsig.Digest("POST", "/_app/inboxes", body) || c.IssuedAt != now.Unix() || c.Nonce == "" {
		t.Fatalf("claims %+v %v", c, err)
	}
	msg, _ := jws.Parse([]byte(h))
	if kid, _ := msg.Signatures()[0].ProtectedHeaders().KeyID(); kid != "kid-1" {
		t.Fatalf("kid %q", kid)
	}

	claims, _ := json.Marshal(devsig.Claims{Digest: devsig.Digest("GET", "/_app/inbox", nil), IssuedAt: now.Unix(), Nonce: "n1"})
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, "kid-2")
	_ = hdr.Set(jws.TypeKey, "JOSE")
	signed, err := jws.Sign(claims, jws.WithKey(jwa.ES256(), key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := devsig.Parse(string(signed))
	if err != nil {
		t.Fatalf("Parse of a jwx-signed JWS: %v", err)
	}
	if s.KeyID != "kid-2" || s.Claims.Nonce != "n1" {
		t.Fatalf("parsed %+v", s)
	}
	if err := s.Verify(&key.PublicKey, "GET", "/_app/inbox", nil, now, devsig.MaxAge); err != nil {
		t.Fatalf("Verify of a jwx-signed JWS: %v", err)
	}

	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	es384, _ := jws.Sign(claims, jws.WithKey(jwa.ES384(), p384, jws.WithProtectedHeaders(hdr)))
	if _, err := devsig.Parse(string(es384)); !errors.Is(err, devsig.ErrMalformed) {
		t.Errorf("ES384 JWS: %v, want ErrMalformed", err)
	}
	if _, err := devsig.Sign(p384, "kid", "GET", "/", nil, now); err == nil {
		t.Error("Sign with a P-384 key worked")
	}
	crit := jws.NewHeaders()
	_ = crit.Set(jws.KeyIDKey, "kid-3")
	_ = crit.Set("crit", []string{"exp"})
	_ = crit.Set("exp", 1)
	critSigned, _ := jws.Sign(claims, jws.WithKey(jwa.ES256(), key, jws.WithProtectedHeaders(crit)))
	if _, err := devsig.Parse(string(critSigned)); !errors.Is(err, devsig.ErrMalformed) {
		t.Errorf("JWS with crit: %v, want ErrMalformed", err)
	}
	// A signature over the same input by another key, or with s flipped, fails.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := s.Verify(&other.PublicKey, "GET", "/_app/inbox", nil, now, devsig.MaxAge); !errors.Is(err, devsig.ErrSignature) {
		t.Errorf("other key: %v", err)
	}
	if err := s.Verify(&p384.PublicKey, "GET", "/_app/inbox", nil, now, devsig.MaxAge); !errors.Is(err, devsig.ErrSignature) {
		t.Errorf("P-384 key: %v", err)
	}
}
