package keystore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/zalando/go-keyring"
)

// Service is the keyring service every entry is filed under.
const Service = "authphone"

// DefaultTimeout bounds each keyring call: a D-Bus call to a broken or
// locked Secret Service can otherwise hang.
const DefaultTimeout = 3 * time.Second

// OS keeps secrets in the OS keyring (Secret Service on Linux, Keychain on
// macOS, Credential Manager on Windows), service "authphone", user
// "PROFILE/NAME".
type OS struct {
	profile string
	timeout time.Duration
}

// NewOS returns the OS keyring store of a profile.
func NewOS(profile string) *OS { return &OS{profile: profile, timeout: DefaultTimeout} }

// Kind is "os".
func (*OS) Kind() string { return KindOS }

func (s *OS) user(name string) string { return s.profile + "/" + name }

// call runs f with the store's timeout and ctx; an error other than
// "not found" means the keyring is unavailable.
func (s *OS) call(ctx context.Context, what string, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		switch {
		case err == nil:
			return nil
		case errors.Is(err, keyring.ErrNotFound):
			return fmt.Errorf("%w: %s", ErrNotFound, what)
		default:
			return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
		}
	case <-ctx.Done():
		return fmt.Errorf("%w: %s: no answer from the OS keyring within %s", ErrUnavailable, what, s.timeout)
	}
}

// Probe checks that a keyring answers.
func (s *OS) Probe(ctx context.Context) error {
	err := s.call(ctx, "probe", func() error { _, err := keyring.Get(Service, s.user(".probe")); return err })
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// Get implements Store.
func (s *OS) Get(ctx context.Context, name string) ([]byte, error) {
	var v string
	err := s.call(ctx, name, func() (err error) { v, err = keyring.Get(Service, s.user(name)); return err })
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("keyring entry %s is not authphone's: %w", name, err)
	}
	return b, nil
}

// Set implements Store.
func (s *OS) Set(ctx context.Context, name string, secret []byte) error {
	v := base64.StdEncoding.EncodeToString(secret)
	return s.call(ctx, name, func() error { return keyring.Set(Service, s.user(name), v) })
}

// Delete implements Store.
func (s *OS) Delete(ctx context.Context, name string) error {
	return s.call(ctx, name, func() error { return keyring.Delete(Service, s.user(name)) })
}
