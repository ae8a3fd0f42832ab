package sdk

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/dispatch"
)

// Factor is the second factor a caller is going to answer a flow with.
type Factor int

// Second factors, for the offline checks.
const (
	// FactorAny is a caller that can answer either (a UI, a terminal).
	FactorAny Factor = iota
	// FactorPIN answers PIN prompts only.
	FactorPIN
	// FactorBiometric answers biometric prompts only.
	FactorBiometric
)

// ErrWrongFactor means the caller's second factor is not the one the
// account uses (a PIN for a biometric account, or the reverse).
var ErrWrongFactor = errors.New("wrong kind of second factor")

// CheckRequest checks, before anything is redeemed, that a pending request
// can be answered with f: its account's key is in the keystore and its
// second factor is f. A request that fails the check stays pending.
func (p *Phone) CheckRequest(ctx context.Context, r Request, f Factor) error {
	if r.Account == nil {
		return nil
	}
	if _, err := p.loadKey(ctx, r.Account); err != nil {
		return err
	}
	if r.Kind == deviceapi.InboxDeregistration {
		return nil // a removal notice asks for no second factor
	}
	return p.checkFactor(r.Account, f)
}

func (p *Phone) checkFactor(a *Account, f Factor) error {
	switch {
	case f == FactorPIN && a.Biometric:
		return fmt.Errorf("%w (%s): pass --biometric; the request is still pending", flows.ErrBiometricRequired, a.Name())
	case f == FactorBiometric && !a.Biometric && !a.Headless:
		return fmt.Errorf("%w: %s has a PIN, not a biometric: pass --pin instead of --biometric", ErrWrongFactor, a.Name())
	}
	return nil
}

// CheckScan decodes input as Scan would and checks, before any token is
// redeemed, what the phone can check offline: a new PIN (when f is
// FactorPIN and newPIN is not empty) follows the rules at enrolment, and
// for an approval the phone holds an account on that cloud whose second
// factor is f. It returns the payload's kind. Nothing is sent.
func (p *Phone) CheckScan(ctx context.Context, input []byte, f Factor, newPIN string) (dispatch.Kind, error) {
	pl, err := dispatch.Decode(input)
	if err != nil {
		return "", err
	}
	switch pl.Kind() {
	case dispatch.Registration:
		if f == FactorPIN && newPIN != "" {
			if err := ValidatePIN(newPIN); err != nil {
				return pl.Kind(), fmt.Errorf("%w: choose another --pin; nothing was sent, the QR code can still be scanned", err)
			}
		}
	case dispatch.Authentication:
		accts, err := p.Accounts()
		if err != nil {
			return pl.Kind(), err
		}
		var on []*Account
		for _, a := range accts {
			if strings.TrimRight(a.Cloud, "/") == pl.Base() && !a.Headless {
				on = append(on, a)
			}
		}
		if len(on) == 0 {
			return pl.Kind(), fmt.Errorf("%w: this phone (profile %s) has no account on %s; enrol there first or use the right --profile", ErrNoAccount, p.profile, pl.Base())
		}
		var firstErr error
		for _, a := range on {
			err := p.checkFactor(a, f)
			if err == nil {
				_, err = p.loadKey(ctx, a)
			}
			if err == nil {
				return pl.Kind(), nil
			}
			if firstErr == nil {
				firstErr = err
			}
		}
		return pl.Kind(), firstErr
	}
	return pl.Kind(), nil
}

// keyGoneError is a device key that is no longer in the keystore: the
// account's record outlived its secrets (a memory keystore, a wiped
// keyring). It matches keystore.ErrNotFound.
type keyGoneError struct {
	account *Account
	kind    string
}

func (e *keyGoneError) Error() string {
	return fmt.Sprintf("the device key of %s is gone from the %s keystore (a memory keystore keeps nothing; or the keyring was wiped, or the account was made with another --keystore): forget it with `authphone accounts remove %s --force` and enrol again",
		e.account.Name(), e.kind, e.account.ID)
}

func (e *keyGoneError) Is(target error) bool {
	return target == keystore.ErrNotFound || target == ErrKeyGone
}

// ErrKeyGone means an account's device key is not in the keystore.
var ErrKeyGone = errors.New("the device key is gone from the keystore")
