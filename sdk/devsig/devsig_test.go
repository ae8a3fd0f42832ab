package devsig_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/authphone/authphone/sdk/devsig"
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
