package sdk

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk/uaf"
	"golang.org/x/crypto/argon2"
)

func keyName(keyID string) string { return "device-key/" + keyID }
func pinName(keyID string) string { return "pin/" + keyID }

func newDeviceKey() (*ecdsa.PrivateKey, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return nil, "", err
	}
	return key, uaf.B64.EncodeToString(id), nil
}

// p256PKCS8Prefix and p256PKCS8Middle frame a P-256 key's 32-byte scalar and
// 65-byte public point in the PKCS #8 DER that x509.MarshalPKCS8PrivateKey
// writes (RFC 5915 ECPrivateKey, the curve named once, in the algorithm).
var (
	p256PKCS8Prefix = []byte{0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
		0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d, 0x30, 0x6b, 0x02, 0x01, 0x01, 0x04, 0x20}
	p256PKCS8Middle = []byte{0xa1, 0x44, 0x03, 0x42, 0x00}
)

// marshalKey is x509.MarshalPKCS8PrivateKey, the same bytes, for a P-256
// key without encoding/asn1's reflection (what every enrolment stores).
func marshalKey(key *ecdsa.PrivateKey) ([]byte, error) {
	if key.Curve == elliptic.P256() {
		d, err1 := key.Bytes()
		pt, err2 := key.PublicKey.Bytes()
		if err1 == nil && err2 == nil && len(d) == 32 && len(pt) == 65 {
			out := make([]byte, 0, len(p256PKCS8Prefix)+32+len(p256PKCS8Middle)+65)
			out = append(append(append(append(out, p256PKCS8Prefix...), d...), p256PKCS8Middle...), pt...)
			return out, nil
		}
	}
	return x509.MarshalPKCS8PrivateKey(key)
}

func (p *Phone) storeKey(ctx context.Context, keyID string, key *ecdsa.PrivateKey) error {
	der, err := marshalKey(key)
	if err != nil {
		return err
	}
	if err := p.keys.Set(ctx, keyName(keyID), der); err != nil {
		return fmt.Errorf("keep the device key in the %s keystore: %w", p.keys.Kind(), err)
	}
	// Kept parsed as loadKey would keep it (its first read would only
	// parse what was just written, a scalar multiplication to check it).
	p.dkMu.Lock()
	defer p.dkMu.Unlock()
	if p.keyCache == nil {
		p.keyCache = map[string]*ecdsa.PrivateKey{}
	}
	p.keyCache[keyID] = key
	return nil
}

// loadKey returns an account's private key: from the keystore the first
// time, then from memory (forget drops it).
func (p *Phone) loadKey(ctx context.Context, a *Account) (*ecdsa.PrivateKey, error) {
	p.dkMu.Lock()
	k, ok := p.keyCache[a.KeyID]
	p.dkMu.Unlock()
	if ok {
		return k, nil
	}
	k, err := p.readKey(ctx, a)
	if err != nil {
		return nil, err
	}
	p.dkMu.Lock()
	defer p.dkMu.Unlock()
	if p.keyCache == nil {
		p.keyCache = map[string]*ecdsa.PrivateKey{}
	}
	p.keyCache[a.KeyID] = k
	return k, nil
}

// dropKey forgets a cached private key.
func (p *Phone) dropKey(keyID string) {
	p.dkMu.Lock()
	defer p.dkMu.Unlock()
	delete(p.keyCache, keyID)
}

func (p *Phone) readKey(ctx context.Context, a *Account) (*ecdsa.PrivateKey, error) {
	der, err := p.keys.Get(ctx, keyName(a.KeyID))
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, &keyGoneError{account: a, kind: p.keys.Kind()}
	}
	if err != nil {
		return nil, fmt.Errorf("the device key of %s is not in the %s keystore (%w); was the account made with another --keystore?", a.Name(), p.keys.Kind(), err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("the device key of %s is damaged: %w", a.Name(), err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the device key of %s is not a P-256 key", a.Name())
	}
	return key, nil
}

// pinVerifier is a salted Argon2id hash of a PIN: the PIN itself is never
// stored.
type pinVerifier struct {
	Alg     string `json:"alg"`
	Time    uint32 `json:"t"`
	Memory  uint32 `json:"m"`
	Threads uint8  `json:"p"`
	Salt    []byte `json:"salt"`
	Hash    []byte `json:"hash"`
	KDF     string `json:"kdf,omitempty"` // the profile's setting it was made with: standard or test
}

// Argon2id parameters (RFC 9106's second recommended option, lighter memory).
const (
	pinTime    = 2
	pinMemory  = 19 * 1024
	pinThreads = 1
)

// ValidatePIN checks the rule for new PINs.
func ValidatePIN(pin string) error {
	if len(pin) < 4 || len(pin) > 64 {
		return ErrPINFormat
	}
	return nil
}

func checkPIN(verifier []byte, pin string) (bool, error) {
	var v pinVerifier
	if err := json.Unmarshal(verifier, &v); err != nil || v.Alg != "argon2id" {
		return false, fmt.Errorf("the PIN verifier is damaged")
	}
	h := argon2.IDKey([]byte(pin), v.Salt, v.Time, v.Memory, v.Threads, uint32(len(v.Hash)))
	return subtle.ConstantTimeCompare(h, v.Hash) == 1, nil
}

// pinCheck returns the flow's PIN check for account a: it counts failures in
// the phone's state so a lock-out survives restarts.
func (p *Phone) pinCheck(a *Account) func(ctx context.Context, pin string) (bool, int, error) {
	return func(ctx context.Context, pin string) (bool, int, error) {
		ver, err := p.keys.Get(ctx, pinName(a.KeyID))
		if err != nil {
			return false, 0, fmt.Errorf("the PIN verifier of %s is not in the %s keystore: %w", a.Name(), p.keys.Kind(), err)
		}
		ok, err := checkPIN(ver, pin)
		if err != nil {
			return false, 0, err
		}
		if ok && a.PINFailures == 0 {
			return true, MaxPINAttempts, nil // nothing to record
		}
		err = p.updateAccount(a.ID, func(s *Account) {
			if ok {
				s.PINFailures = 0
			} else {
				s.PINFailures++
			}
			a.PINFailures = s.PINFailures
		})
		if err != nil {
			return false, 0, err
		}
		return ok, MaxPINAttempts - a.PINFailures, nil
	}
}
