package uaf_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"

	"github.com/authphone/authphone/sdk/deviceapi"
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
		if got := p.Accepts(deviceapi.Describe(aaid, "")); got != want {
			t.Errorf("Accepts(%s) = %v, want %v", aaid, got, want)
		}
	}
	p.Disallowed = []uaf.MatchCriteria{{AAID: []string{"F1D0#0003"}}}
	if p.Accepts(deviceapi.Describe("F1D0#0003", "")) {
		t.Error("disallowed AAID accepted")
	}
}

// TestPolicyRules checks each UAF 1.1 MatchCriteria rule, with policies in
// the shapes real UAF servers send (JSON as on the wire).
func TestPolicyRules(t *testing.T) {
	const k1, k2 = "a2V5LW9uZS1vZi10aGUtdXNlci0xMjM0NTY3ODkwMTI", "a2V5LXR3by1vZi10aGUtdXNlci0xMjM0NTY3ODkwMTI"
	pin, bio, headless := deviceapi.AAIDPIN, deviceapi.AAIDBiometric, deviceapi.AAIDHeadless
	tests := []struct {
		name   string
		policy string
		aaid   string
		keyID  string // "" = registering a new key
		want   bool
	}{
		{"aaid list", `{"accepted":[[{"aaid":["F1D0#0001","F1D0#0003"]}]]}`, pin, "", true},
		{"aaid not listed", `{"accepted":[[{"aaid":["ABCD#0001"]}]]}`, pin, "", false},
		// A server that already has key k1 for the user disallows it, so the
		// same phone cannot register twice; a second phone may.
		{"user has one key: new key registers", `{"accepted":[[{"aaid":["F1D0#0001"]}]],"disallowed":[{"aaid":["F1D0#0001"],"keyIDs":["` + k1 + `"]}]}`, pin, "", true},
		{"user has one key: that key is refused", `{"accepted":[[{"aaid":["F1D0#0001"]}]],"disallowed":[{"aaid":["F1D0#0001"],"keyIDs":["` + k1 + `"]}]}`, pin, k1, false},
		{"disallowed aaid without keyIDs blocks the AAID", `{"accepted":[[{"aaid":["F1D0#0001"]}]],"disallowed":[{"aaid":["F1D0#0001"]}]}`, pin, "", false},
		{"authentication names the key", `{"accepted":[[{"aaid":["F1D0#0001"],"keyIDs":["` + k1 + `"]}]]}`, pin, k1, true},
		{"authentication names another key", `{"accepted":[[{"aaid":["F1D0#0001"],"keyIDs":["` + k2 + `"]}]]}`, pin, k1, false},
		// Servers that select by capability, with no aaid at all.
		{"only userVerification passcode", `{"accepted":[[{"userVerification":4}]]}`, pin, "", true},
		{"only userVerification fingerprint, PIN phone", `{"accepted":[[{"userVerification":2}]]}`, pin, "", false},
		{"userVerification fingerprint or passcode", `{"accepted":[[{"userVerification":6}]]}`, bio, "", true},
		{"userVerification all of fingerprint and passcode", `{"accepted":[[{"userVerification":2147483654}]]}`, bio, "", false},
		{"headless has no user verification", `{"accepted":[[{"userVerification":1023}]]}`, headless, "", false},
		{"capabilities all hold", `{"accepted":[[{"userVerification":4,"keyProtection":1,"authenticationAlgorithms":[1,2],"assertionSchemes":["UAFV1TLV"],"attestationTypes":[15880,15879]}]]}`, pin, "", true},
		{"hardware key protection required", `{"accepted":[[{"userVerification":4,"keyProtection":6}]]}`, pin, "", false},
		{"DER algorithm only", `{"accepted":[[{"authenticationAlgorithms":[2]}]]}`, pin, "", false},
		{"basic full attestation only", `{"accepted":[[{"attestationTypes":[15879]}]]}`, pin, "", false},
		{"other assertion scheme", `{"accepted":[[{"assertionSchemes":["UAFV1CBOR"]}]]}`, pin, "", false},
		{"vendorID", `{"accepted":[[{"vendorID":["F1D0"]}]]}`, pin, "", true},
		{"other vendor", `{"accepted":[[{"vendorID":["4E4E"]}]]}`, pin, "", false},
		{"transaction display needed", `{"accepted":[[{"aaid":["F1D0#0001"],"tcDisplay":1}]]}`, pin, "", false},
		{"newer authenticator version needed", `{"accepted":[[{"aaid":["F1D0#0001"],"authenticatorVersion":2}]]}`, pin, "", false},
		// accepted: OR of alternatives, each an AND of criteria.
		{"second alternative holds", `{"accepted":[[{"aaid":["ABCD#0001"]}],[{"userVerification":4}]]}`, pin, "", true},
		{"AND: one criterion fails", `{"accepted":[[{"aaid":["F1D0#0001"]},{"aaid":["ABCD#0001"]}]]}`, pin, "", false},
		{"empty alternative matches nothing", `{"accepted":[[]]}`, pin, "", false},
		{"disallowed by capability", `{"accepted":[[{"aaid":["F1D0#0001"]}]],"disallowed":[{"keyProtection":1}]}`, pin, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p uaf.Policy
			if err := json.Unmarshal([]byte(tc.policy), &p); err != nil {
				t.Fatal(err)
			}
			if got := p.Matches(deviceapi.Describe(tc.aaid, tc.keyID)); got != tc.want {
				t.Errorf("Matches(%s, key %q) = %v, want %v", tc.aaid, tc.keyID, got, tc.want)
			}
		})
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

// TestDERAssertions: with SignAlg AlgSecp256r1SHA256DER both assertions carry
// an ASN.1 signature and say so in ASSERTION_INFO; they verify, and fail
// when the algorithm in the signed data is changed to raw.
func TestDERAssertions(t *testing.T) {
	key := newKey(t)
	keyID := bytes.Repeat([]byte{9}, 32)
	fc := uaf.FinalChallenge("fc")
	reg, err := uaf.BuildRegAssertion(key, uaf.KRD{AAID: "F1D0#0001", Mode: uaf.ModeUserVerified, FinalChallenge: fc, KeyID: keyID, SignAlg: uaf.AlgSecp256r1SHA256DER})
	if err != nil {
		t.Fatal(err)
	}
	ra, err := uaf.ParseRegAssertion(reg)
	if err != nil || ra.KRD.SignAlg != uaf.AlgSecp256r1SHA256DER {
		t.Fatalf("parse: %+v %v", ra, err)
	}
	if err := ra.Verify(); err != nil {
		t.Fatalf("DER surrogate attestation: %v", err)
	}
	if len(ra.Signature) == 64 || ra.Signature[0] != 0x30 {
		t.Fatalf("not a DER signature: %x", ra.Signature)
	}
	pub, _ := ra.KRD.PublicKeyECDSA()
	auth, err := uaf.BuildAuthAssertion(key, uaf.SignedData{AAID: "F1D0#0001", Mode: uaf.ModeUserVerified, FinalChallenge: fc, KeyID: keyID, SignCounter: 1, SignAlg: uaf.AlgSecp256r1SHA256DER})
	if err != nil {
		t.Fatal(err)
	}
	aa, err := uaf.ParseAuthAssertion(auth)
	if err != nil || aa.SignedData.SignAlg != uaf.AlgSecp256r1SHA256DER {
		t.Fatalf("parse: %+v %v", aa, err)
	}
	if err := aa.Verify(pub); err != nil {
		t.Fatalf("DER authentication: %v", err)
	}
	if err := uaf.VerifySignature(pub, uaf.AlgSecp256r1SHA256Raw, aa.SignedDataRaw, aa.Signature); err == nil {
		t.Fatal("a DER signature verified as raw")
	}
	if _, err := uaf.BuildAuthAssertion(key, uaf.SignedData{AAID: "F1D0#0001", KeyID: keyID, SignAlg: 0x0009}); !errors.Is(err, uaf.ErrAssertion) {
		t.Fatalf("RSA-PSS asked of a P-256 key: %v", err)
	}
}
