// Package ecdsasig converts P-256 ECDSA signatures between ASN.1 DER and the
// fixed 64-byte r‖s form (JWS ES256, UAF's raw encoding) without big
// integers. It is shared by sdk/uaf, sdk/devsig and the emulator's token signer.
package ecdsasig

import (
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// DERToRaw writes the ASN.1 DER ECDSA P-256 signature der as r‖s into out
// (64 bytes). It reports false for anything but one SEQUENCE of two
// INTEGERs of at most 32 significant bytes each.
func DERToRaw(der, out []byte) bool {
	in := cryptobyte.String(der)
	var seq, r, s cryptobyte.String
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1(&r, asn1.INTEGER) || !seq.ReadASN1(&s, asn1.INTEGER) || !seq.Empty() {
		return false
	}
	for i, v := range [][]byte{r, s} {
		for len(v) > 0 && v[0] == 0 {
			v = v[1:]
		}
		if len(v) > 32 {
			return false
		}
		clear(out[i*32 : (i+1)*32])
		copy(out[(i+1)*32-len(v):(i+1)*32], v)
	}
	return true
}

// RawToDER appends the ASN.1 DER form of a 64-byte r‖s signature to dst
// (every length fits one byte).
func RawToDER(dst, raw []byte) []byte {
	var ints [2][]byte
	n := 0
	for i, v := range [][]byte{raw[:32], raw[32:]} {
		for len(v) > 1 && v[0] == 0 {
			v = v[1:]
		}
		ints[i] = v
		n += 2 + len(v)
		if v[0]&0x80 != 0 {
			n++
		}
	}
	dst = append(dst, 0x30, byte(n))
	for _, v := range ints {
		if v[0]&0x80 != 0 {
			dst = append(dst, 0x02, byte(len(v)+1), 0)
		} else {
			dst = append(dst, 0x02, byte(len(v)))
		}
		dst = append(dst, v...)
	}
	return dst
}
