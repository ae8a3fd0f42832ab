package deviceapi_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"testing"

	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

func TestDeviceKeyIDIsTheThumbprint(t *testing.T) {
	// The id is the same from the JWK and from the key; a private JWK is
	// refused (a phone never sends its private key).
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := jwk.Import(&k.PublicKey)
	priv, _ := jwk.Import(k)
	pb, _ := json.Marshal(pub)
	kb, _ := json.Marshal(priv)
	p1, id1, err1 := deviceapi.DeviceKey(pb)
	_, _, err2 := deviceapi.DeviceKey(kb)
	id3, err3 := deviceapi.DeviceKeyID(&k.PublicKey)
	if err1 != nil || err2 == nil || err3 != nil || id1 != id3 || len(id1) != 43 || !p1.Equal(&k.PublicKey) {
		t.Fatalf("%q %q %v %v %v", id1, id3, err1, err2, err3)
	}
	for _, bad := range []string{`{}`, `{"kty":"oct","k":"AAAA"}`, `not json`, `{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}`} {
		if _, _, err := deviceapi.DeviceKey([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func FuzzDeviceKey(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := jwk.Import(&k.PublicKey)
	b, _ := json.Marshal(pub)
	f.Add(b)
	f.Add([]byte(`{"kty":"EC","crv":"P-256","x":"","y":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, id, err := deviceapi.DeviceKey(b)
		if err != nil {
			return
		}
		if again, _ := deviceapi.DeviceKeyID(p); again != id || p.Curve != elliptic.P256() {
			t.Fatalf("id %q then %q", id, again)
		}
	})
}
