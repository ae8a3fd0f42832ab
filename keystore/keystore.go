// Package keystore keeps the phone's secrets — device private keys and PIN
// verifiers — out of the clear: in the OS keyring (through
// github.com/zalando/go-keyring), in an age-encrypted file, or in memory.
// Every store is namespaced by profile, so several simulated phones can share
// a machine.
package keystore

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Store holds named secrets. Implementations are safe for concurrent use.
type Store interface {
	// Kind names the store: "os", "file" or "memory".
	Kind() string
	// Get returns the secret, or an error wrapping ErrNotFound.
	Get(ctx context.Context, name string) ([]byte, error)
	// Set stores the secret, replacing any previous one.
	Set(ctx context.Context, name string, secret []byte) error
	// Delete removes the secret; deleting a missing one wraps ErrNotFound.
	Delete(ctx context.Context, name string) error
}

// Errors callers branch on.
var (
	ErrNotFound    = errors.New("secret not found in the keystore")
	ErrUnavailable = errors.New("keystore unavailable")
	ErrPassphrase  = errors.New("wrong keystore passphrase")
)

// Kinds of store, as the --keystore flag names them.
const (
	KindAuto   = "auto"
	KindOS     = "os"
	KindFile   = "file"
	KindMemory = "memory"
)

// PassphraseEnv is where the file store's passphrase comes from.
const PassphraseEnv = "AUTHPHONE_KEYSTORE_PASSPHRASE"

// causeOf strips the ErrUnavailable prefix for a shorter message.
func causeOf(err error) string {
	return strings.TrimPrefix(err.Error(), ErrUnavailable.Error()+": ")
}

// Config says how Open builds a store.
type Config struct {
	Kind    string // auto, os, file, memory
	Profile string
	// FilePath is the encrypted file of the file store.
	FilePath string
	// Passphrase unlocks the file store.
	Passphrase string
}

// Open returns the store cfg names. "auto" is the OS keyring when one
// answers, and otherwise an error naming the other choices: it never falls
// back to anything that would keep a key in the clear.
func Open(ctx context.Context, cfg Config) (Store, error) {
	switch cfg.Kind {
	case KindOS:
		return NewOS(cfg.Profile), nil
	case KindAuto, "":
		s := NewOS(cfg.Profile)
		if err := s.Probe(ctx); err != nil {
			return nil, fmt.Errorf("%w: no OS keyring answers (%v): use --keystore file with %s set (an age-encrypted file in the profile)", ErrUnavailable, causeOf(err), PassphraseEnv)
		}
		return s, nil
	case KindFile:
		if cfg.Passphrase == "" {
			return nil, fmt.Errorf("%w: the file keystore needs a passphrase in %s", ErrUnavailable, PassphraseEnv)
		}
		return NewFile(cfg.FilePath, cfg.Passphrase), nil
	case KindMemory:
		return NewMemory(), nil
	default:
		return nil, fmt.Errorf("unknown keystore %q: choose auto, os, file or memory", cfg.Kind)
	}
}
