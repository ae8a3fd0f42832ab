package uaf_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/authphone/authphone/sdk/uaf"
)

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestBuildAndVerifyRoundTrip(t *testing.T) {
	key := newKey(t)
	keyID := bytes.Repeat([]byte{7}, 32)
	fc := uaf.FinalChallenge("fc")
	reg, err := uaf.BuildRegAssertion(key, uaf.KRD{AAID: "F1D0#0001", Mode: uaf.ModeUserVerified, FinalChallenge: fc, KeyID: keyID, SignCounter: 0, RegCounter: 1})
	if err != nil {
		t.Fatal(err)
	}
	ra, err := uaf.ParseRegAssertion(reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ra.Verify(); err != nil {
		t.Fatalf("surrogate attestation: %v", err)
	}
	pub, _ := ra.KRD.PublicKeyECDSA()
	if !pub.Equal(&key.PublicKey) || ra.KRD.RegCounter != 1 {
		t.Fatal("KRD did not round-trip")
	}

	tx := []uaf.Transaction{{ContentType: "text/plain", Content: uaf.B64.EncodeToString([]byte("Pay 10 EUR"))}}
	th, _ := uaf.TransactionHash(tx)
	auth, err := uaf.BuildAuthAssertion(key, uaf.SignedData{AAID: "F1D0#0001", Mode: uaf.ModeTransactionConfirm, FinalChallenge: fc, TransactionHash: th, KeyID: keyID, SignCounter: 5})
	if err != nil {
		t.Fatal(err)
	}
	aa, err := uaf.ParseAuthAssertion(auth)
	if err != nil {
		t.Fatal(err)
	}
	if err := aa.Verify(pub); err != nil {
		t.Fatal(err)
	}
	if aa.SignedData.SignCounter != 5 || !bytes.Equal(aa.SignedData.TransactionHash, th) {
		t.Fatalf("signed data did not round-trip: %+v", aa.SignedData)
	}
	if err := aa.Verify(&newKey(t).PublicKey); !errors.Is(err, uaf.ErrSignature) {
		t.Fatalf("other key: %v, want ErrSignature", err)
	}
}

func TestPolicyAccepts(t *testing.T) {
	p := uaf.Policy{Accepted: [][]uaf.MatchCriteria{{{AAID: []string{"F1D0#0001"}}}, {{AAID: []string{"F1D0#0003"}}}}}
	for aaid, want := range map[string]bool{"F1D0#0001": true, "F1D0#0003": true, "F1D0#0000": false, "ABCD#ABCD": false} {
		if got := p.Accepts(aaid); got != want {
			t.Errorf("Accepts(%s) = %v, want %v", aaid, got, want)
		}
	}
	p.Disallowed = []uaf.MatchCriteria{{AAID: []string{"F1D0#0003"}}}
	if p.Accepts("F1D0#0003") {
		t.Error("disallowed AAID accepted")
	}
}

func FuzzParseAssertions(f *testing.F) {
	_, reg := loadVector(f, "registration_response.json")
	_, auth := loadVector(f, "authentication_response.json")
	f.Add(reg)
	f.Add(auth)
	f.Fuzz(func(t *testing.T, b []byte) {
		if ra, err := uaf.ParseRegAssertion(b); err == nil {
			_ = ra.Verify()
			_ = uaf.EncodeKRD(ra.KRD)
		}
		if aa, err := uaf.ParseAuthAssertion(b); err == nil {
			_ = uaf.EncodeSignedData(aa.SignedData)
		}
	})
}
