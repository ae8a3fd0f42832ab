package sdk

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"
)

// TestMarshalKeyIsX509: marshalKey writes what x509.MarshalPKCS8PrivateKey
// writes (keystores hold it), and x509 reads it back as the same key.
func TestMarshalKeyIsX509(t *testing.T) {
	for i := range 2000 {
		curve := elliptic.P256()
		if i%500 == 0 {
			curve = elliptic.P384() // left to x509
		}
		k, _ := ecdsa.GenerateKey(curve, rand.Reader)
		want, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		got, err := marshalKey(k)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("marshalKey %x %v\nx509 %x", got, err, want)
		}
		back, err := x509.ParsePKCS8PrivateKey(got)
		if err != nil || !back.(*ecdsa.PrivateKey).Equal(k) {
			t.Fatalf("parse back: %v", err)
		}
	}
}
