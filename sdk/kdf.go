package sdk

import (
	"crypto/rand"
	"encoding/json"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// KDF is the Argon2id cost of a phone's PIN verifiers. The cost is recorded
// with each verifier, so a verifier made at one cost is checked at that
// cost whatever the phone's setting is later.
type KDF struct {
	Name    string // "standard" or "test"
	Time    uint32
	Memory  uint32 // KiB
	Threads uint8
}

var (
	// KDFStandard is the default: Argon2id t=2, m=19 MiB, p=1 (OWASP's
	// minimum for Argon2id).
	KDFStandard = KDF{Name: "standard", Time: pinTime, Memory: pinMemory, Threads: pinThreads}
	// KDFTest is t=1, m=64 KiB, p=1: about a thousand times cheaper, for
	// load tests with PIN phones. NOT FOR REAL KEYS: a PIN behind it can
	// be brute-forced in seconds from a copy of the keystore.
	KDFTest = KDF{Name: "test", Time: 1, Memory: 64, Threads: 1}
)

// ParseKDF reads "standard" or "test".
func ParseKDF(s string) (KDF, error) {
	switch s {
	case "standard", "":
		return KDFStandard, nil
	case "test":
		return KDFTest, nil
	}
	return KDF{}, fmt.Errorf("kdf %q: use standard, or test (load tests only, not for real keys)", s)
}

// WithKDF sets the Argon2id cost of the PIN verifiers this phone makes
// (default KDFStandard). KDFTest is for load tests only.
func WithKDF(k KDF) Option { return func(o *options) { o.kdf = k } }

// KDF is the cost this phone gives new PIN verifiers.
func (p *Phone) KDF() KDF { return p.kdf }

func (p *Phone) newPINVerifier(pin string) ([]byte, error) {
	k := p.kdf
	if k.Time == 0 {
		k = KDFStandard
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	v := pinVerifier{Alg: "argon2id", Time: k.Time, Memory: k.Memory, Threads: k.Threads, Salt: salt, KDF: k.Name,
		Hash: argon2.IDKey([]byte(pin), salt, k.Time, k.Memory, k.Threads, 32)}
	return json.Marshal(v)
}
