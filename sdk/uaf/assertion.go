package uaf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/authphone/authphone/internal/ecdsasig"
	"github.com/authphone/authphone/sdk/tlv"
)

// Signature algorithms (UAF registry, ALG_SIGN_*).
const (
	AlgSecp256r1SHA256Raw uint16 = 0x0001
	AlgSecp256r1SHA256DER uint16 = 0x0002
)

// Public key encodings (UAF registry, ALG_KEY_*).
const (
	KeyECCX962Raw uint16 = 0x0100
	KeyECCX962DER uint16 = 0x0101
)

// Authentication modes in ASSERTION_INFO.
const (
	ModeUserVerified       uint8 = 1
	ModeTransactionConfirm uint8 = 2
)

// Errors callers branch on.
var (
	// ErrAssertion is wrapped by every structural problem with an assertion.
	ErrAssertion = errors.New("malformed UAF assertion")
	// ErrSignature means an assertion's signature does not verify.
	ErrSignature = errors.New("UAF assertion signature does not verify")
	// ErrUntrustedAttestation means a full basic attestation certificate is
	// not in the verifier's metadata.
	ErrUntrustedAttestation = errors.New("UAF attestation certificate is not trusted")
)

// AAIDLen is the length of an AAID, "VVVV#MMMM".
const AAIDLen = 9

// MinKeyIDLen is the shortest key id authphone accepts.
const MinKeyIDLen = 32

// KRD is the Key Registration Data of a registration assertion.
type KRD struct {
	AAID           string
	AuthVersion    uint16
	Mode           uint8
	SignAlg        uint16
	PubKeyFormat   uint16
	FinalChallenge []byte
	KeyID          []byte
	SignCounter    uint32
	RegCounter     uint32
	PubKey         []byte
}

// RegAssertion is a parsed UAFV1_REG_ASSERTION.
type RegAssertion struct {
	KRD KRD
	// KRDRaw is the whole KRD element, header included: what is signed.
	KRDRaw []byte
	// Attestation is TagAttestationSurrogate or TagAttestationBasicFull.
	Attestation tlv.Tag
	Signature   []byte
	// Certs holds the DER attestation certificates of full basic attestation.
	Certs [][]byte
}

// SignedData is the signed part of an authentication assertion.
type SignedData struct {
	AAID            string
	AuthVersion     uint16
	Mode            uint8
	SignAlg         uint16
	Nonce           []byte
	FinalChallenge  []byte
	TransactionHash []byte
	KeyID           []byte
	SignCounter     uint32
}

// AuthAssertion is a parsed UAFV1_AUTH_ASSERTION.
type AuthAssertion struct {
	SignedData SignedData
	// SignedDataRaw is the whole SIGNED_DATA element, header included.
	SignedDataRaw []byte
	Signature     []byte
}

// leaves are the elements of a KRD or SIGNED_DATA, read without a map:
// each tag at most once (as tlv.Fields requires), the ones authphone reads
// kept by tag.
type leaves struct {
	v   [tlv.TagTransactionContentHash - tlv.TagKeyID + 1][]byte
	has uint16
}

// readLeaves reads the elements of b, refusing a tag that appears twice.
func readLeaves(b []byte) (leaves, error) {
	var l leaves
	var otherBuf [4]tlv.Tag
	other := otherBuf[:0]
	for off := 0; off < len(b); {
		e, err := tlv.At(b, off)
		if err != nil {
			return l, err
		}
		off += len(e.Raw)
		if e.Tag >= tlv.TagKeyID && e.Tag <= tlv.TagTransactionContentHash {
			bit := uint16(1) << (e.Tag - tlv.TagKeyID)
			if l.has&bit != 0 {
				return l, fmt.Errorf("%w: %s appears twice", tlv.ErrMalformed, e.Tag)
			}
			l.has |= bit
			l.v[e.Tag-tlv.TagKeyID] = e.Value
			continue
		}
		if slices.Contains(other, e.Tag) {
			return l, fmt.Errorf("%w: %s appears twice", tlv.ErrMalformed, e.Tag)
		}
		other = append(other, e.Tag)
	}
	return l, nil
}

// one is the value of the element with tag t (one of the leaves kept).
func (l *leaves) one(t tlv.Tag, where string) ([]byte, error) {
	if l.has&(1<<(t-tlv.TagKeyID)) == 0 {
		return nil, fmt.Errorf("%w: %s lacks %s", ErrAssertion, where, t)
	}
	return l.v[t-tlv.TagKeyID], nil
}

func one(f map[tlv.Tag][]tlv.Element, t tlv.Tag, where string) ([]byte, error) {
	e := f[t]
	if len(e) == 0 {
		return nil, fmt.Errorf("%w: %s lacks %s", ErrAssertion, where, t)
	}
	return e[0].Value, nil
}

// parseOne is tlv.ParseOne without a slice for the one element.
func parseOne(b []byte, want tlv.Tag) (tlv.Element, error) {
	if len(b) > 0 {
		if e, err := tlv.At(b, 0); err == nil && len(e.Raw) == len(b) && e.Tag == want {
			return e, nil
		}
	}
	return tlv.ParseOne(b, want) // its error
}

// parsePair reads b as exactly two elements.
func parsePair(b []byte) (first, second tlv.Element, n int, err error) {
	if len(b) == 0 {
		return first, second, 0, nil
	}
	if first, err = tlv.At(b, 0); err != nil {
		return first, second, 0, err
	}
	if len(first.Raw) == len(b) {
		return first, second, 1, nil
	}
	if second, err = tlv.At(b, len(first.Raw)); err != nil {
		return first, second, 0, err
	}
	if len(first.Raw)+len(second.Raw) == len(b) {
		return first, second, 2, nil
	}
	els, err := tlv.Parse(b)
	return first, second, len(els), err
}

// ParseRegAssertion parses the TLV bytes of a registration assertion.
func ParseRegAssertion(b []byte) (*RegAssertion, error) {
	top, err := parseOne(b, tlv.TagRegAssertion)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAssertion, err)
	}
	krd, attEl, n, err := parsePair(top.Value)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAssertion, err)
	}
	if n != 2 || krd.Tag != tlv.TagKRD {
		return nil, fmt.Errorf("%w: %s must hold a KRD and an attestation", ErrAssertion, tlv.TagRegAssertion)
	}
	ra := &RegAssertion{KRDRaw: krd.Raw, Attestation: attEl.Tag}
	if ra.KRD, err = parseKRD(krd.Value); err != nil {
		return nil, err
	}
	att, err := tlv.Parse(attEl.Value)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAssertion, err)
	}
	af, err := tlv.Fields(att, tlv.TagAttestationCert)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAssertion, err)
	}
	if ra.Signature, err = one(af, tlv.TagSignature, "attestation"); err != nil {
		return nil, err
	}
	switch ra.Attestation {
	case tlv.TagAttestationSurrogate:
		if len(af[tlv.TagAttestationCert]) > 0 {
			return nil, fmt.Errorf("%w: surrogate attestation carries a certificate", ErrAssertion)
		}
	case tlv.TagAttestationBasicFull:
		for _, c := range af[tlv.TagAttestationCert] {
			ra.Certs = append(ra.Certs, c.Value)
		}
		if len(ra.Certs) == 0 {
			return nil, fmt.Errorf("%w: full basic attestation without a certificate", ErrAssertion)
		}
	default:
		return nil, fmt.Errorf("%w: unknown attestation %s", ErrAssertion, ra.Attestation)
	}
	return ra, nil
}

func parseKRD(b []byte) (KRD, error) {
	var k KRD
	f, err := readLeaves(b)
	if err != nil {
		return k, fmt.Errorf("%w: KRD: %w", ErrAssertion, err)
	}
	aaid, err := f.one(tlv.TagAAID, "KRD")
	if err != nil {
		return k, err
	}
	info, err := f.one(tlv.TagAssertionInfo, "KRD")
	if err != nil {
		return k, err
	}
	if k.FinalChallenge, err = f.one(tlv.TagFinalChallenge, "KRD"); err != nil {
		return k, err
	}
	if k.KeyID, err = f.one(tlv.TagKeyID, "KRD"); err != nil {
		return k, err
	}
	ctr, err := f.one(tlv.TagCounters, "KRD")
	if err != nil {
		return k, err
	}
	if k.PubKey, err = f.one(tlv.TagPubKey, "KRD"); err != nil {
		return k, err
	}
	if len(aaid) != AAIDLen || aaid[4] != '#' {
		return k, fmt.Errorf("%w: AAID %q is not VVVV#MMMM", ErrAssertion, aaid)
	}
	k.AAID = string(aaid)
	if len(info) != 7 {
		return k, fmt.Errorf("%w: registration ASSERTION_INFO is %d bytes, want 7", ErrAssertion, len(info))
	}
	k.AuthVersion = binary.LittleEndian.Uint16(info)
	k.Mode = info[2]
	k.SignAlg = binary.LittleEndian.Uint16(info[3:])
	k.PubKeyFormat = binary.LittleEndian.Uint16(info[5:])
	if len(ctr) != 8 {
		return k, fmt.Errorf("%w: registration COUNTERS is %d bytes, want 8", ErrAssertion, len(ctr))
	}
	k.SignCounter = binary.LittleEndian.Uint32(ctr)
	k.RegCounter = binary.LittleEndian.Uint32(ctr[4:])
	if len(k.FinalChallenge) == 0 || len(k.KeyID) == 0 {
		return k, fmt.Errorf("%w: empty FINAL_CHALLENGE or KEYID", ErrAssertion)
	}
	return k, nil
}

// ParseAuthAssertion parses the TLV bytes of an authentication assertion.
func ParseAuthAssertion(b []byte) (*AuthAssertion, error) {
	top, err := parseOne(b, tlv.TagAuthAssertion)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAssertion, err)
	}
	sdEl, sigEl, n, err := parsePair(top.Value)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAssertion, err)
	}
	if n != 2 || sdEl.Tag != tlv.TagSignedData || sigEl.Tag != tlv.TagSignature {
		return nil, fmt.Errorf("%w: %s must hold SIGNED_DATA then SIGNATURE", ErrAssertion, tlv.TagAuthAssertion)
	}
	aa := &AuthAssertion{SignedDataRaw: sdEl.Raw, Signature: sigEl.Value}
	f, err := readLeaves(sdEl.Value)
	if err != nil {
		return nil, fmt.Errorf("%w: SIGNED_DATA: %w", ErrAssertion, err)
	}
	sd := &aa.SignedData
	aaid, err := f.one(tlv.TagAAID, "SIGNED_DATA")
	if err != nil {
		return nil, err
	}
	info, err := f.one(tlv.TagAssertionInfo, "SIGNED_DATA")
	if err != nil {
		return nil, err
	}
	if sd.Nonce, err = f.one(tlv.TagAuthenticatorNonce, "SIGNED_DATA"); err != nil {
		return nil, err
	}
	if sd.FinalChallenge, err = f.one(tlv.TagFinalChallenge, "SIGNED_DATA"); err != nil {
		return nil, err
	}
	if sd.TransactionHash, err = f.one(tlv.TagTransactionContentHash, "SIGNED_DATA"); err != nil {
		return nil, err
	}
	if sd.KeyID, err = f.one(tlv.TagKeyID, "SIGNED_DATA"); err != nil {
		return nil, err
	}
	ctr, err := f.one(tlv.TagCounters, "SIGNED_DATA")
	if err != nil {
		return nil, err
	}
	if len(aaid) != AAIDLen || aaid[4] != '#' {
		return nil, fmt.Errorf("%w: AAID %q is not VVVV#MMMM", ErrAssertion, aaid)
	}
	sd.AAID = string(aaid)
	if len(info) != 5 {
		return nil, fmt.Errorf("%w: authentication ASSERTION_INFO is %d bytes, want 5", ErrAssertion, len(info))
	}
	sd.AuthVersion = binary.LittleEndian.Uint16(info)
	sd.Mode = info[2]
	sd.SignAlg = binary.LittleEndian.Uint16(info[3:])
	if len(ctr) != 4 {
		return nil, fmt.Errorf("%w: authentication COUNTERS is %d bytes, want 4", ErrAssertion, len(ctr))
	}
	sd.SignCounter = binary.LittleEndian.Uint32(ctr)
	if len(sd.Nonce) < 8 {
		return nil, fmt.Errorf("%w: AUTHENTICATOR_NONCE is %d bytes, want at least 8", ErrAssertion, len(sd.Nonce))
	}
	if len(sd.FinalChallenge) == 0 || len(sd.KeyID) == 0 {
		return nil, fmt.Errorf("%w: empty FINAL_CHALLENGE or KEYID", ErrAssertion)
	}
	return aa, nil
}

// PublicKeyECDSA decodes the KRD's public key.
func (k KRD) PublicKeyECDSA() (*ecdsa.PublicKey, error) {
	return ParsePublicKey(k.PubKeyFormat, k.PubKey)
}

// ParsePublicKey decodes a P-256 public key in one of the UAF encodings.
func ParsePublicKey(format uint16, b []byte) (*ecdsa.PublicKey, error) {
	switch format {
	case KeyECCX962Raw:
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), b)
		if err != nil {
			return nil, fmt.Errorf("%w: public key: %v", ErrAssertion, err)
		}
		return pub, nil
	case KeyECCX962DER:
		k, err := x509.ParsePKIXPublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("%w: public key: %v", ErrAssertion, err)
		}
		pub, ok := k.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: public key is not P-256", ErrAssertion)
		}
		return pub, nil
	default:
		return nil, fmt.Errorf("%w: unsupported public key format 0x%04X", ErrAssertion, format)
	}
}

// Verify checks the attestation signature over the KRD: with the new key
// itself for surrogate attestation, with the first certificate's key for full
// basic attestation. Full basic attestation is accepted only when that
// certificate is one of trusted or is signed by one of them (the metadata a
// UAF server keeps); otherwise Verify returns ErrUntrustedAttestation.
func (r *RegAssertion) Verify(trusted ...*x509.Certificate) error {
	var pub *ecdsa.PublicKey
	switch r.Attestation {
	case tlv.TagAttestationSurrogate:
		p, err := r.KRD.PublicKeyECDSA()
		if err != nil {
			return err
		}
		pub = p
	case tlv.TagAttestationBasicFull:
		cert, err := x509.ParseCertificate(r.Certs[0])
		if err != nil {
			return fmt.Errorf("%w: attestation certificate: %v", ErrAssertion, err)
		}
		if !isTrusted(cert, trusted) {
			return ErrUntrustedAttestation
		}
		p, ok := cert.PublicKey.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: attestation certificate key is not ECDSA", ErrAssertion)
		}
		pub = p
	default:
		return fmt.Errorf("%w: unknown attestation %s", ErrAssertion, r.Attestation)
	}
	if _, err := r.KRD.PublicKeyECDSA(); err != nil {
		return err
	}
	return VerifySignature(pub, r.KRD.SignAlg, r.KRDRaw, r.Signature)
}

func isTrusted(cert *x509.Certificate, trusted []*x509.Certificate) bool {
	for _, t := range trusted {
		if cert.Equal(t) || cert.CheckSignatureFrom(t) == nil {
			return true
		}
	}
	return false
}

// Verify checks the assertion's signature with the registered key.
func (a *AuthAssertion) Verify(pub *ecdsa.PublicKey) error {
	return VerifySignature(pub, a.SignedData.SignAlg, a.SignedDataRaw, a.Signature)
}

// VerifySignature checks an ECDSA P-256 SHA-256 signature in either UAF
// encoding.
func VerifySignature(pub *ecdsa.PublicKey, alg uint16, data, sig []byte) error {
	h := sha256.Sum256(data)
	switch alg {
	case AlgSecp256r1SHA256Raw:
		if len(sig) != 64 {
			return fmt.Errorf("%w: raw signature is %d bytes, want 64", ErrSignature, len(sig))
		}
		var der [72]byte
		if !ecdsa.VerifyASN1(pub, h[:], rawToDER(der[:0], sig)) {
			return ErrSignature
		}
	case AlgSecp256r1SHA256DER:
		if !ecdsa.VerifyASN1(pub, h[:], sig) {
			return ErrSignature
		}
	default:
		return fmt.Errorf("%w: unsupported signature algorithm 0x%04X", ErrAssertion, alg)
	}
	return nil
}

// SignAs signs data with key in the encoding of alg: AlgSecp256r1SHA256Raw
// (64-byte r‖s) or AlgSecp256r1SHA256DER (ASN.1 DER).
func SignAs(key *ecdsa.PrivateKey, alg uint16, data []byte) ([]byte, error) {
	switch alg {
	case AlgSecp256r1SHA256Raw:
		return Sign(key, data)
	case AlgSecp256r1SHA256DER:
		h := sha256.Sum256(data)
		sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
		if err != nil {
			return nil, fmt.Errorf("sign: %w", err)
		}
		return sig, nil
	}
	return nil, fmt.Errorf("%w: cannot sign with algorithm 0x%04X", ErrAssertion, alg)
}

// Sign signs data with key as a raw 64-byte r‖s (AlgSecp256r1SHA256Raw).
func Sign(key *ecdsa.PrivateKey, data []byte) ([]byte, error) {
	h := sha256.Sum256(data)
	der, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	out := make([]byte, 64)
	if !derToRaw(der, out) {
		return nil, fmt.Errorf("sign: unexpected signature encoding")
	}
	return out, nil
}

// derToRaw writes an ASN.1 DER ECDSA P-256 signature as r‖s into out (64
// bytes), without big integers.
var derToRaw = ecdsasig.DERToRaw

// rawToDER appends the ASN.1 DER form of a 64-byte r‖s signature to dst.
var rawToDER = ecdsasig.RawToDER

// PublicKeyRaw is the 65-byte uncompressed encoding of a P-256 key.
func PublicKeyRaw(pub *ecdsa.PublicKey) []byte {
	b, err := pub.Bytes()
	if err != nil {
		panic("uaf: invalid public key: " + err.Error())
	}
	return b
}

func le16(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// EncodeKRD renders a KRD element (header included).
func EncodeKRD(k KRD) []byte {
	info := append(le16(k.AuthVersion), k.Mode)
	info = append(info, le16(k.SignAlg)...)
	info = append(info, le16(k.PubKeyFormat)...)
	var v []byte
	v = tlv.Append(v, tlv.TagAAID, []byte(k.AAID))
	v = tlv.Append(v, tlv.TagAssertionInfo, info)
	v = tlv.Append(v, tlv.TagFinalChallenge, k.FinalChallenge)
	v = tlv.Append(v, tlv.TagKeyID, k.KeyID)
	v = tlv.Append(v, tlv.TagCounters, append(le32(k.SignCounter), le32(k.RegCounter)...))
	v = tlv.Append(v, tlv.TagPubKey, k.PubKey)
	return tlv.Append(nil, tlv.TagKRD, v)
}

// BuildRegAssertion builds a registration assertion for key with surrogate
// basic attestation (signed by the new key itself), as the real SDK does.
// It fills in PubKey and PubKeyFormat; SignAlg zero means
// AlgSecp256r1SHA256Raw, and AlgSecp256r1SHA256DER signs in DER.
func BuildRegAssertion(key *ecdsa.PrivateKey, k KRD) ([]byte, error) {
	k.PubKey = PublicKeyRaw(&key.PublicKey)
	k.PubKeyFormat = KeyECCX962Raw
	if k.SignAlg == 0 {
		k.SignAlg = AlgSecp256r1SHA256Raw
	}
	krd := EncodeKRD(k)
	sig, err := SignAs(key, k.SignAlg, krd)
	if err != nil {
		return nil, err
	}
	att := tlv.Append(nil, tlv.TagSignature, sig)
	v := append(krd, tlv.Append(nil, tlv.TagAttestationSurrogate, att)...)
	return tlv.Append(nil, tlv.TagRegAssertion, v), nil
}

// EncodeSignedData renders a SIGNED_DATA element (header included).
func EncodeSignedData(sd SignedData) []byte {
	info := append(le16(sd.AuthVersion), sd.Mode)
	info = append(info, le16(sd.SignAlg)...)
	var v []byte
	v = tlv.Append(v, tlv.TagAAID, []byte(sd.AAID))
	v = tlv.Append(v, tlv.TagAssertionInfo, info)
	v = tlv.Append(v, tlv.TagAuthenticatorNonce, sd.Nonce)
	v = tlv.Append(v, tlv.TagFinalChallenge, sd.FinalChallenge)
	v = tlv.Append(v, tlv.TagTransactionContentHash, sd.TransactionHash)
	v = tlv.Append(v, tlv.TagKeyID, sd.KeyID)
	v = tlv.Append(v, tlv.TagCounters, le32(sd.SignCounter))
	return tlv.Append(nil, tlv.TagSignedData, v)
}

// BuildAuthAssertion signs sd with key, raw unless sd.SignAlg is
// AlgSecp256r1SHA256DER. A nil Nonce gets 16 random bytes.
func BuildAuthAssertion(key *ecdsa.PrivateKey, sd SignedData) ([]byte, error) {
	if sd.SignAlg == 0 {
		sd.SignAlg = AlgSecp256r1SHA256Raw
	}
	if sd.Nonce == nil {
		sd.Nonce = make([]byte, 16)
		if _, err := rand.Read(sd.Nonce); err != nil {
			return nil, err
		}
	}
	raw := EncodeSignedData(sd)
	sig, err := SignAs(key, sd.SignAlg, raw)
	if err != nil {
		return nil, err
	}
	v := append(raw, tlv.Append(nil, tlv.TagSignature, sig)...)
	return tlv.Append(nil, tlv.TagAuthAssertion, v), nil
}
