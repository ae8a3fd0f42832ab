package uaf

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	mrand "math/rand/v2"
	"testing"

	"github.com/authphone/authphone/sdk/tlv"
)

// refLeaves is what the assertion parsers read before they read without a
// map: tlv.Parse, then tlv.Fields (no tag twice).
func refLeaves(b []byte) (map[tlv.Tag][]byte, bool) {
	els, err := tlv.Parse(b)
	if err != nil {
		return nil, false
	}
	f, err := tlv.Fields(els)
	if err != nil {
		return nil, false
	}
	m := map[tlv.Tag][]byte{}
	for t, e := range f {
		m[t] = e[0].Value
	}
	return m, true
}

// TestReadLeavesIsFields compares readLeaves with tlv.Parse + tlv.Fields
// on mutated SIGNED_DATA and KRD contents: the same accepted, the same
// values, a tag twice (known or not) refused.
func TestReadLeavesIsFields(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keyID := bytes.Repeat([]byte{3}, 32)
	sd := EncodeSignedData(SignedData{AAID: "F1D0#0001", Mode: 1, SignAlg: 1, Nonce: make([]byte, 16), FinalChallenge: FinalChallenge("x"), KeyID: keyID, SignCounter: 7})
	krd := EncodeKRD(KRD{AAID: "F1D0#0001", Mode: 1, SignAlg: 1, PubKeyFormat: KeyECCX962Raw, FinalChallenge: FinalChallenge("x"), KeyID: keyID, PubKey: PublicKeyRaw(&key.PublicKey)})
	extra := tlv.Append(nil, 0x2F01, []byte("unknown"))
	rng := mrand.New(mrand.NewPCG(13, 14))
	for _, base := range [][]byte{sd[tlv.HeaderLen:], krd[tlv.HeaderLen:], append(bytes.Clone(sd[tlv.HeaderLen:]), extra...)} {
		els, _ := tlv.Parse(base)
		for range 5000 {
			var b []byte
			switch rng.IntN(3) {
			case 0: // one element repeated, or dropped
				i := rng.IntN(len(els))
				for j, e := range els {
					if j != i || rng.IntN(2) == 0 {
						b = append(b, e.Raw...)
					}
					if j == i {
						b = append(b, e.Raw...)
					}
				}
			case 1: // the unknown element, once or twice, somewhere
				for j, e := range els {
					b = append(b, e.Raw...)
					if j == rng.IntN(len(els)) {
						b = append(b, extra...)
					}
				}
			default: // a byte changed (a tag, a length, a value)
				b = bytes.Clone(base)
				b[rng.IntN(len(b))] = byte(rng.IntN(256))
				if rng.IntN(4) == 0 {
					binary.LittleEndian.PutUint16(b, uint16(tlv.TagKeyID)+uint16(rng.IntN(9)))
				}
			}
			want, ok := refLeaves(b)
			got, err := readLeaves(b)
			if ok != (err == nil) {
				t.Fatalf("%x: Fields ok %v, readLeaves %v", b, ok, err)
			}
			if !ok {
				continue
			}
			for tag := tlv.TagKeyID; tag <= tlv.TagTransactionContentHash; tag++ {
				v, err := got.one(tag, "test")
				w, has := want[tag]
				if has != (err == nil) || !bytes.Equal(v, w) {
					t.Fatalf("%x: %s: %x %v, want %x %v", b, tag, v, err, w, has)
				}
			}
		}
	}
}
