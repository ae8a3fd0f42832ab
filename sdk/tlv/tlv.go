// Package tlv reads and writes the tag-length-value encoding of FIDO UAF 1.1
// authenticator assertions (UAFV1TLV): a uint16 little-endian tag, a uint16
// little-endian length, then the value. Tags with bit 0x1000 set are
// composite: their value is itself a sequence of elements.
package tlv

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Tag identifies a TLV element.
type Tag uint16

// The UAF 1.1 tags authphone reads and writes.
const (
	TagRegAssertion           Tag = 0x3E01
	TagAuthAssertion          Tag = 0x3E02
	TagKRD                    Tag = 0x3E03
	TagSignedData             Tag = 0x3E04
	TagAttestationCert        Tag = 0x2E05
	TagSignature              Tag = 0x2E06
	TagAttestationBasicFull   Tag = 0x3E07
	TagAttestationSurrogate   Tag = 0x3E08
	TagKeyID                  Tag = 0x2E09
	TagFinalChallenge         Tag = 0x2E0A
	TagAAID                   Tag = 0x2E0B
	TagPubKey                 Tag = 0x2E0C
	TagCounters               Tag = 0x2E0D
	TagAssertionInfo          Tag = 0x2E0E
	TagAuthenticatorNonce     Tag = 0x2E0F
	TagTransactionContentHash Tag = 0x2E10
)

// Composite reports whether elements with this tag contain other elements.
func (t Tag) Composite() bool { return t&0x1000 != 0 }

// String names the tag as the UAF specification does.
func (t Tag) String() string {
	if n, ok := tagNames[t]; ok {
		return n
	}
	return fmt.Sprintf("tag 0x%04X", uint16(t))
}

var tagNames = map[Tag]string{
	TagRegAssertion: "UAFV1_REG_ASSERTION", TagAuthAssertion: "UAFV1_AUTH_ASSERTION",
	TagKRD: "UAFV1_KRD", TagSignedData: "UAFV1_SIGNED_DATA",
	TagAttestationCert: "ATTESTATION_CERT", TagSignature: "SIGNATURE",
	TagAttestationBasicFull: "ATTESTATION_BASIC_FULL", TagAttestationSurrogate: "ATTESTATION_BASIC_SURROGATE",
	TagKeyID: "KEYID", TagFinalChallenge: "FINAL_CHALLENGE", TagAAID: "AAID",
	TagPubKey: "PUB_KEY", TagCounters: "COUNTERS", TagAssertionInfo: "ASSERTION_INFO",
	TagAuthenticatorNonce: "AUTHENTICATOR_NONCE", TagTransactionContentHash: "TRANSACTION_CONTENT_HASH",
}

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("malformed TLV")

// HeaderLen is the size of a tag plus a length.
const HeaderLen = 4

// MaxValueLen is the largest value a uint16 length can describe.
const MaxValueLen = 0xFFFF

// Element is one parsed element. Raw covers the header and the value, so a
// signature over "the whole element" can be checked against it.
type Element struct {
	Tag   Tag
	Value []byte
	Raw   []byte
}

// Parse splits b into a sequence of elements. It requires the elements to
// fill b exactly; the returned slices alias b.
func Parse(b []byte) ([]Element, error) {
	var out []Element
	for off := 0; off < len(b); {
		e, err := At(b, off)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		off += len(e.Raw)
	}
	return out, nil
}

// At parses the element that starts at offset off of b (off < len(b)), as
// Parse does: for reading a sequence without making a slice of it.
func At(b []byte, off int) (Element, error) {
	if len(b)-off < HeaderLen {
		return Element{}, fmt.Errorf("%w: %d trailing bytes at offset %d, too short for a header", ErrMalformed, len(b)-off, off)
	}
	tag := Tag(binary.LittleEndian.Uint16(b[off:]))
	n := int(binary.LittleEndian.Uint16(b[off+2:]))
	end := off + HeaderLen + n
	if end > len(b) {
		return Element{}, fmt.Errorf("%w: %s at offset %d claims %d bytes, only %d left", ErrMalformed, tag, off, n, len(b)-off-HeaderLen)
	}
	return Element{Tag: tag, Value: b[off+HeaderLen : end], Raw: b[off:end]}, nil
}

// ParseOne parses b as exactly one element with the wanted tag.
func ParseOne(b []byte, want Tag) (Element, error) {
	els, err := Parse(b)
	if err != nil {
		return Element{}, err
	}
	if len(els) != 1 {
		return Element{}, fmt.Errorf("%w: want one %s, found %d elements", ErrMalformed, want, len(els))
	}
	if els[0].Tag != want {
		return Element{}, fmt.Errorf("%w: want %s, found %s", ErrMalformed, want, els[0].Tag)
	}
	return els[0], nil
}

// Fields indexes a sequence of elements by tag, rejecting duplicates of the
// same tag (except where allowMulti lists it).
func Fields(els []Element, allowMulti ...Tag) (map[Tag][]Element, error) {
	m := make(map[Tag][]Element, len(els))
	for _, e := range els {
		if len(m[e.Tag]) > 0 && !contains(allowMulti, e.Tag) {
			return nil, fmt.Errorf("%w: %s appears twice", ErrMalformed, e.Tag)
		}
		m[e.Tag] = append(m[e.Tag], e)
	}
	return m, nil
}

func contains(ts []Tag, t Tag) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// Append appends one element to dst. It panics if value is longer than
// MaxValueLen, which only a programming error can cause.
func Append(dst []byte, tag Tag, value []byte) []byte {
	if len(value) > MaxValueLen {
		panic(fmt.Sprintf("tlv: %s value of %d bytes exceeds %d", tag, len(value), MaxValueLen))
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(tag))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(value)))
	return append(dst, value...)
}
