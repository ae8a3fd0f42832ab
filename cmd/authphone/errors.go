package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/backend"
	"github.com/authphone/authphone/sdk/qr"
)

// Exit codes (cli.md).
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitRefused  = 3
	exitTimedOut = 4
)

// codedError carries its exit code.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func usageErrorf(format string, a ...any) error {
	return &codedError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

func refused(err error) error  { return &codedError{code: exitRefused, err: err} }
func timedOut(err error) error { return &codedError{code: exitTimedOut, err: err} }

// exitCode maps an error to the exit code cli.md gives it.
func exitCode(err error) int {
	var ce *codedError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ce):
		return ce.code
	case errors.Is(err, sdk.ErrPINRequired), errors.Is(err, flows.ErrBiometricRequired), errors.Is(err, flows.ErrPINRequired):
		return exitUsage
	case errors.Is(err, flows.ErrNumberRequired):
		return exitUsage
	case errors.Is(err, flows.ErrDeclined), errors.Is(err, flows.ErrLocked), errors.Is(err, flows.ErrWrongPIN),
		errors.Is(err, flows.ErrWrongNumber), errors.Is(err, flows.ErrNotOffered):
		return exitRefused
	case errors.Is(err, sdk.ErrLoginRejected):
		return exitRefused
	case errors.Is(err, sdk.ErrTokenExpired), errors.Is(err, sdk.ErrNoPending), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, sdk.ErrLoginExpired), errors.Is(err, sdk.ErrLoginPending), errors.Is(err, sdk.ErrPairingExpired):
		return exitTimedOut
	default:
		return exitError
	}
}

// reworded says err in other words, keeping it for errors.Is and As.
type reworded struct {
	msg string
	err error
}

func (e *reworded) Error() string { return e.msg }
func (e *reworded) Unwrap() error { return e.err }

// explain adds what to do to errors whose cause the command line knows
// better than the library that returned them.
func (a *app) explain(err error) error {
	var be *backend.Error
	if errors.As(err, &be) {
		if strings.TrimSpace(be.Message) == "" {
			return &reworded{err: err, msg: fmt.Sprintf("%s answered %d %s without the API's error body: check --cloud (is it an authphone cloud?)",
				a.cloud, be.Status, be.Text)}
		}
		if be.Status == 404 && strings.HasPrefix(be.Message, "no user") {
			return fmt.Errorf("%w: `authphone backend users` lists the users", err)
		}
	}
	switch {
	case errors.Is(err, sdk.ErrNoAnswer), errors.Is(err, backend.ErrNoAnswer):
		return fmt.Errorf("%w: is the cloud stuck? raise --timeout (now %s) if it is only slow", err, a.timeout)
	case errors.Is(err, qr.ErrBadImage):
		return fmt.Errorf("%w: give a PNG or JPEG of the QR code, or its text", err)
	case errors.Is(err, qr.ErrNoQRCode):
		return fmt.Errorf("%w: give an image where the QR code is sharp and whole, or its text", err)
	}
	return err
}

// message renders an error as the one line after "authphone: ".
func message(err error) string {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	return msg
}
