package devsig

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// TestFastPartsAreEncodingJSON: whatever fastHeader and fastClaims take,
// encoding/json reads the same, on mutations of what Sign writes.
func TestFastPartsAreEncodingJSON(t *testing.T) {
	hdr := []byte(`{"alg":"ES256","kid":"a2V5LWlkLW9mLXRoZS1hY2NvdW50"}`)
	claims := []byte(`{"sha256":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU","iat":1796371200,"nonce":"bm9uY2Utbm9uY2Utbm9u"}`)
	if _, ok := fastHeader(hdr); !ok {
		t.Fatal("fastHeader refused what Sign writes")
	}
	if _, ok := fastClaims(claims); !ok {
		t.Fatal("fastClaims refused what Sign writes")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const alphabet = `{}":,\ 0123456789-+.eEaé` + "\x00\x7f"
	mutate := func(s []byte) []byte {
		b := []byte(string(s))
		i := rng.IntN(len(b))
		switch rng.IntN(3) {
		case 0:
			b[i] = alphabet[rng.IntN(len(alphabet))]
		case 1:
			b = append(b[:i], b[i+1:]...)
		default:
			b = append(b[:i+1], b[i:]...)
		}
		return b
	}
	for range 20000 {
		if b := mutate(hdr); true {
			if kid, ok := fastHeader(b); ok {
				var ph protected
				if err := json.Unmarshal(b, &ph); err != nil || ph.Alg != "ES256" || ph.Kid != kid || ph.Crit != nil || ph.B64 != nil {
					t.Fatalf("%s: fast kid %q, encoding/json %+v %v", b, kid, ph, err)
				}
			}
		}
		if b := mutate(claims); true {
			if c, ok := fastClaims(b); ok {
				var want Claims
				if err := json.Unmarshal(b, &want); err != nil || want != c {
					t.Fatalf("%s: fast %+v, encoding/json %+v %v", b, c, want, err)
				}
			}
		}
	}
}
