// Package flows is the flow state machine of the phone (after the nextAuth
// Mobile SDK): every user-visible operation is a Flow of a Type that moves
// through the States PROCESSING, WAIT_FOR_INPUT, DONE and ERROR, reporting
// each step as an Update and blocking for the user's answer (Confirm,
// InputSecondFactor, Cancel) when it waits for input. It knows nothing of
// HTTP or storage: the SDK supplies the work as a function.
package flows

import (
	"errors"
	"fmt"
)

// Type is the kind of a flow.
type Type int

// Flow types.
const (
	Enrol Type = iota + 1
	Login
	SignTransaction
	ChangePIN
	HeadlessUpgrade
	Deregister
	ApproveDevice
)

var typeNames = map[Type]string{Enrol: "ENROL", Login: "LOGIN", SignTransaction: "SIGN_TRANSACTION",
	ChangePIN: "CHANGE_PIN", HeadlessUpgrade: "HEADLESS_UPGRADE", Deregister: "DEREGISTER", ApproveDevice: "APPROVE_DEVICE"}

func (t Type) String() string { return nameOr(typeNames, t, "TYPE") }

// MarshalText renders the type as its name.
func (t Type) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// State is where a flow is.
type State int

// States. DONE and ERROR are final.
const (
	Processing State = iota + 1
	WaitForInput
	Done
	Error
)

var stateNames = map[State]string{Processing: "PROCESSING", WaitForInput: "WAIT_FOR_INPUT", Done: "DONE", Error: "ERROR"}

func (s State) String() string { return nameOr(stateNames, s, "STATE") }

// MarshalText renders the state as its name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Final reports whether no update follows this state.
func (s State) Final() bool { return s == Done || s == Error }

// InteractionType is what a flow waiting for input asks.
type InteractionType int

// Interaction types.
const (
	Confirm InteractionType = iota + 1
	ConfirmTransaction
	VerifySecondFactor
	SetSecondFactor
)

var interactionNames = map[InteractionType]string{Confirm: "CONFIRM", ConfirmTransaction: "CONFIRM_TRANSACTION",
	VerifySecondFactor: "VERIFY_SECOND_FACTOR", SetSecondFactor: "SET_SECOND_FACTOR"}

func (t InteractionType) String() string { return nameOr(interactionNames, t, "INTERACTION") }

// MarshalText renders the interaction type as its name.
func (t InteractionType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// Result is the outcome of the previous interaction.
type Result int

// Interaction results; zero means none yet.
const (
	Success Result = iota + 1
	PINFail
)

var resultNames = map[Result]string{Success: "SUCCESS", PINFail: "PIN_FAIL"}

func (r Result) String() string { return nameOr(resultNames, r, "RESULT") }

// MarshalText renders the result as its name.
func (r Result) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

func nameOr[K ~int](m map[K]string, k K, kind string) string {
	if n, ok := m[k]; ok {
		return n
	}
	return fmt.Sprintf("%s(%d)", kind, int(k))
}

// Interaction describes what the user is asked.
type Interaction struct {
	Type InteractionType `json:"type"`
	// TransactionText is the text to confirm (CONFIRM_TRANSACTION).
	TransactionText string `json:"transactionText,omitempty"`
	// RetriesLeft is the number of PIN attempts left (VERIFY_SECOND_FACTOR).
	RetriesLeft int `json:"retriesLeft,omitempty"`
	// Numbers are the numbers a number-matching CONFIRM offers: the user
	// picks the one the service shows (Flow.ConfirmNumber).
	Numbers []int `json:"numbers,omitempty"`
	// Details carries anything else worth showing (a requesting device, a
	// binding code).
	Details map[string]string `json:"details,omitempty"`
}

// Account names the account a flow concerns.
type Account struct {
	ID       string `json:"id"`
	Username string `json:"username,omitempty"`
	UserID   string `json:"userId,omitempty"`
	Cloud    string `json:"cloud,omitempty"`
	Headless bool   `json:"headless,omitempty"`
}

// Update is one step of a flow.
type Update struct {
	Type               Type         `json:"type"`
	State              State        `json:"state"`
	CurrentInteraction *Interaction `json:"interaction,omitempty"`
	PreviousResult     Result       `json:"previousResult,omitempty"`
	Account            *Account     `json:"account,omitempty"`
	// Err is set when State is ERROR.
	Err error `json:"-"`
}

// Errors a flow can end with; the SDK wraps them with detail.
var (
	ErrCancelled   = errors.New("cancelled by the user")
	ErrDeclined    = errors.New("declined by the user")
	ErrLocked      = errors.New("the second factor is locked after too many wrong PINs")
	ErrWrongPIN    = errors.New("wrong PIN")
	ErrFlowActive  = errors.New("another flow is already active on this phone")
	ErrNotWaiting  = errors.New("the flow is not waiting for that input")
	ErrFlowEnded   = errors.New("the flow has ended")
	ErrBadSequence = errors.New("invalid flow transition")
	// ErrBiometricRequired: the account's second factor is a biometric,
	// and the answer was a PIN.
	ErrBiometricRequired = errors.New("this account's second factor is a biometric, not a PIN")
	// ErrPINRequired: the account's second factor is a PIN, and the answer
	// was a biometric.
	ErrPINRequired = errors.New("this account's second factor is a PIN, not a biometric")
	// ErrNumberRequired: a number-matching CONFIRM was approved without
	// picking a number.
	ErrNumberRequired = errors.New("this approval uses number matching: pick the number the service shows")
	// ErrNotOffered: the number picked is not one of those offered.
	ErrNotOffered = errors.New("that number is not one of those offered")
	// ErrWrongNumber: the cloud refused the number picked; the approval
	// failed, like a denial.
	ErrWrongNumber = errors.New("wrong number")
)
