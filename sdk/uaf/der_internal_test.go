package uaf

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"math/big"
	"testing"
)

// TestRawDER: the hand-made DER of a raw r‖s is what encoding/asn1 makes,
// for values with leading zero bytes and high bits, and back.
func TestRawDER(t *testing.T) {
	cases := [][]byte{make([]byte, 64), bytes.Repeat([]byte{0xFF}, 64)}
	mixed := make([]byte, 64)
	mixed[2], mixed[31], mixed[32] = 0x80, 1, 0x7F
	cases = append(cases, mixed)
	for range 50 {
		r := make([]byte, 64)
		_, _ = rand.Read(r)
		cases = append(cases, r)
	}
	for _, raw := range cases {
		want, _ := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])})
		if got := rawToDER(nil, raw); !bytes.Equal(got, want) {
			t.Fatalf("rawToDER(%x) = %x, want %x", raw, got, want)
		}
		back := make([]byte, 64)
		if !derToRaw(want, back) || !bytes.Equal(back, raw) {
			t.Fatalf("derToRaw(%x) = %x, want %x", want, back, raw)
		}
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sig, err := Sign(key, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("data"))
	if !ecdsa.Verify(&key.PublicKey, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("a raw signature does not verify with math/big")
	}
	if VerifySignature(&key.PublicKey, AlgSecp256r1SHA256Raw, []byte("data"), sig) != nil ||
		VerifySignature(&key.PublicKey, AlgSecp256r1SHA256Raw, []byte("other"), sig) == nil {
		t.Fatal("VerifySignature")
	}
	if derToRaw([]byte{0x30, 0x02, 0x02, 0x00}, make([]byte, 64)) {
		t.Fatal("derToRaw took a truncated signature")
	}
}
