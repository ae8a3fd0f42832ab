package uaf_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/authphone/authphone/sdk/tlv"
	"github.com/authphone/authphone/sdk/uaf"
)

func vectorPath(name string) string {
	return filepath.Join("..", "..", "testdata", "fido-uaf", name)
}

func loadVector(t testing.TB, name string) (uaf.Response, []byte) {
	t.Helper()
	b, err := os.ReadFile(vectorPath(name))
	if err != nil {
		t.Fatal(err)
	}
	var r uaf.Response
	if err := uaf.Decode(string(b), &r); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	if len(r.Assertions) != 1 || r.Assertions[0].AssertionScheme != uaf.SchemeTLV {
		t.Fatalf("%s: want one UAFV1TLV assertion, got %+v", name, r.Assertions)
	}
	raw, err := uaf.B64.DecodeString(r.Assertions[0].Assertion)
	if err != nil {
		t.Fatal(err)
	}
	return r, raw
}

func trustedCert(t testing.TB) *x509.Certificate {
	t.Helper()
	der, err := os.ReadFile(vectorPath("attestation_cert.der"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVectorRegistration(t *testing.T) {
	r, raw := loadVector(t, "registration_response.json")
	if r.Header.Op != uaf.OpReg || r.Header.UPV != uaf.V1_1 {
		t.Fatalf("header = %+v", r.Header)
	}
	ra, err := uaf.ParseRegAssertion(raw)
	if err != nil {
		t.Fatal(err)
	}
	if ra.KRD.AAID != "ABCD#ABCD" || ra.Attestation != tlv.TagAttestationBasicFull {
		t.Fatalf("AAID %q attestation %s", ra.KRD.AAID, ra.Attestation)
	}
	if ra.KRD.SignAlg != uaf.AlgSecp256r1SHA256Raw || ra.KRD.PubKeyFormat != uaf.KeyECCX962Raw {
		t.Fatalf("alg %x format %x", ra.KRD.SignAlg, ra.KRD.PubKeyFormat)
	}
	if !bytes.Equal(ra.KRD.FinalChallenge, uaf.FinalChallenge(r.FCParams)) {
		t.Fatal("final challenge is not SHA-256 of fcParams")
	}
	fc, err := uaf.DecodeFCParams(r.FCParams)
	if err != nil || fc.Challenge != "H9iW9yA9aAXF_lelQoi_DhUk514Ad8Tqv0zCnCqKDpo" {
		t.Fatalf("fcParams %+v %v", fc, err)
	}
	if err := ra.Verify(trustedCert(t)); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := ra.Verify(); !errors.Is(err, uaf.ErrUntrustedAttestation) {
		t.Fatalf("without metadata: %v, want ErrUntrustedAttestation", err)
	}
}

func TestVectorAuthentication(t *testing.T) {
	_, regRaw := loadVector(t, "registration_response.json")
	ra, err := uaf.ParseRegAssertion(regRaw)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ra.KRD.PublicKeyECDSA()
	if err != nil {
		t.Fatal(err)
	}
	r, raw := loadVector(t, "authentication_response.json")
	aa, err := uaf.ParseAuthAssertion(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(aa.SignedData.KeyID, ra.KRD.KeyID) {
		t.Fatal("auth keyID differs from registered keyID")
	}
	if !bytes.Equal(aa.SignedData.FinalChallenge, uaf.FinalChallenge(r.FCParams)) {
		t.Fatal("final challenge mismatch")
	}
	if len(aa.SignedData.TransactionHash) != 0 {
		t.Fatal("unexpected transaction hash")
	}
	if err := aa.Verify(pub); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

// TestVectorsRejectEveryChangedByte flips each byte of both real assertions
// and requires parsing or verification to fail.
func TestVectorsRejectEveryChangedByte(t *testing.T) {
	_, regRaw := loadVector(t, "registration_response.json")
	_, authRaw := loadVector(t, "authentication_response.json")
	ra, _ := uaf.ParseRegAssertion(regRaw)
	pub, _ := ra.KRD.PublicKeyECDSA()
	cert := trustedCert(t)
	for i := range regRaw {
		b := bytes.Clone(regRaw)
		b[i] ^= 0x01
		if got, err := uaf.ParseRegAssertion(b); err == nil {
			if err := got.Verify(cert); err == nil {
				t.Errorf("registration with byte %d changed was accepted", i)
			}
		}
	}
	for i := range authRaw {
		b := bytes.Clone(authRaw)
		b[i] ^= 0x01
		if got, err := uaf.ParseAuthAssertion(b); err == nil {
			if err := got.Verify(pub); err == nil {
				t.Errorf("authentication with byte %d changed was accepted", i)
			}
		}
	}
}
