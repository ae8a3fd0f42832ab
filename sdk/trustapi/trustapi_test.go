package trustapi_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"

	"github.com/authphone/authphone/sdk/trustapi"
)

func TestSignedFactsSignature(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	facts := trustapi.SignedFacts("u1", "r1", trustapi.EventLogin, 1700000000, true)
	want := `{"userId":"u1","subject":"r1","event":"LOGIN","timestamp":1700000000,"method":"TRUSTED_DEVICE","approved":true}`
	if string(facts) != want {
		t.Fatalf("canonical facts\n got %s\nwant %s", facts, want)
	}
	sig, err := trustapi.Sign(key, facts)
	if err != nil {
		t.Fatal(err)
	}
	if !trustapi.Verify(&key.PublicKey, facts, sig) {
		t.Fatal("signature does not verify")
	}
	if trustapi.Verify(&key.PublicKey, trustapi.SignedFacts("u1", "r1", trustapi.EventLogin, 1700000000, false), sig) {
		t.Fatal("a signature for approved=true verified for approved=false")
	}
}

func TestPKCE(t *testing.T) {
	// RFC 7636 appendix B.
	if got := trustapi.CodeChallenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"); got != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" {
		t.Fatalf("S256 challenge %s", got)
	}
}

func TestParsePairingQR(t *testing.T) {
	good := trustapi.PairingQR{Type: trustapi.PairingQRType, Cloud: "http://127.0.0.1:1", PairingID: "p", UserID: "u",
		PublicKey: "BAAA", Algorithm: "ES256", Timestamp: 1}
	b, _ := json.Marshal(good)
	if q, err := trustapi.ParsePairingQR(string(b)); err != nil || q != good {
		t.Fatalf("%+v %v", q, err)
	}
	for _, bad := range []string{"", "hello", `{"type":"other"}`, `{"type":"authphone-pairing"}`,
		`{"type":"authphone-pairing","cloud":"c","pairingId":"p","userId":"u","publicKey":"k","algorithm":"RS256","timestamp":1}`} {
		if _, err := trustapi.ParsePairingQR(bad); !errors.Is(err, trustapi.ErrNotPairing) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzParsePairingQR(f *testing.F) {
	f.Add(`{"type":"authphone-pairing","cloud":"http://x","pairingId":"p","userId":"u","publicKey":"k","algorithm":"ES256","timestamp":1}`)
	f.Add(`{"type":1}`)
	f.Fuzz(func(t *testing.T, s string) {
		q, err := trustapi.ParsePairingQR(s)
		if err == nil && (q.Type != trustapi.PairingQRType || q.Algorithm != "ES256" || q.PairingID == "") {
			t.Fatalf("accepted %+v", q)
		}
	})
}
