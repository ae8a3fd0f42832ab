package sdk

import (
	"errors"
	"fmt"
	"strings"

	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk/devsig"
)

// Errors callers branch on (with errors.Is).
var (
	// ErrUnreachable means the cloud could not be reached at all.
	ErrUnreachable = errors.New("cannot reach the cloud")
	// ErrNoAnswer means the cloud took the request but did not answer
	// within the time limit (WithTimeout).
	ErrNoAnswer = errors.New("the cloud did not answer in time")
	// ErrNoAccount means no account matches.
	ErrNoAccount = errors.New("no such account")
	// ErrNoPending means nothing is waiting for this phone.
	ErrNoPending = errors.New("no pending request")
	// ErrTokenRedeemed means a dispatch token was already used.
	ErrTokenRedeemed = errors.New("token already redeemed")
	// ErrTokenExpired means a dispatch token or its operation expired.
	ErrTokenExpired = errors.New("token expired")
	// ErrTokenUnknown means the cloud does not know a dispatch token.
	ErrTokenUnknown = errors.New("unknown dispatch token")
	// ErrRejected means the cloud refused what the phone sent.
	ErrRejected = errors.New("the cloud rejected the request")
	// ErrPINRequired means a PIN is needed and none was given.
	ErrPINRequired = errors.New("a PIN is required")
	// ErrPINFormat means a chosen PIN does not follow the rules.
	ErrPINFormat = errors.New("the PIN must be 4 to 64 characters")
)

// CloudError is a refusal from the cloud: the HTTP status, the UAF status
// code (device API) and the cloud's own words.
type CloudError struct {
	HTTPStatus int
	StatusCode int
	Message    string
}

func (e *CloudError) Error() string {
	if e.StatusCode != 0 {
		return fmt.Sprintf("the cloud refused (%d, UAF %d): %s", e.HTTPStatus, e.StatusCode, e.Message)
	}
	return fmt.Sprintf("the cloud refused (%d): %s", e.HTTPStatus, e.Message)
}

// Is maps the cloud's answers onto the sentinel errors.
func (e *CloudError) Is(target error) bool {
	switch target {
	case ErrRejected:
		return true
	case ErrTokenRedeemed:
		return e.HTTPStatus == 410 && e.Message == "token already redeemed"
	case ErrTokenExpired:
		return e.HTTPStatus == 410 && e.Message != "token already redeemed"
	case ErrTokenUnknown:
		return e.HTTPStatus == 404 && e.StatusCode == 1491
	case errStaleSignature:
		return e.HTTPStatus == 401 && strings.Contains(e.Message, devsig.ErrStale.Error())
	}
	return false
}

var keystoreNotFound = keystore.ErrNotFound

// errStaleSignature matches the cloud's refusal of a Device-Signature made
// at a time too far from its own (a skewed clock).
var errStaleSignature = devsig.ErrStale

// attemptsLeft is "1 attempt" or "N attempts".
func attemptsLeft(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return fmt.Sprintf("%d attempts", n)
}
