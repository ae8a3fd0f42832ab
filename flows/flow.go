package flows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Work is the body of a flow, supplied by the SDK. It reports progress and
// asks for input through s, and returns nil for DONE or an error for ERROR.
type Work func(ctx context.Context, s *Step) error

// Flow is a running flow. Read its Updates until a final one; answer while
// it waits for input.
type Flow struct {
	typ     Type
	updates chan Update
	answers chan answer
	cancel  context.CancelCauseFunc

	mu      sync.Mutex
	waiting InteractionType // zero unless waiting for input
	numbers []int           // what a number-matching CONFIRM offers
	state   State
	account *Account
	ended   chan struct{}

	// The work runs once, either in its own goroutine (the first call of
	// Updates, Done, Cancel or CancelWith, or the flow's context ending)
	// or inline in the goroutine of Drive, which then gets the updates
	// directly and its Answerer's answers without a hand-off.
	start    sync.Once
	ctx      context.Context
	work     Work
	stopWake func() bool // stops the start on the context's end
	inline   func(Update)
	// collecting is set while inline hands a WAIT_FOR_INPUT to the
	// Answerer: an answer given then is kept in pending for ask.
	collecting bool
	pending    *answer
}

type answer struct {
	number    int // a number-matching CONFIRM: the number picked
	confirm   *bool
	pin       *string
	biometric bool
}

// Runner starts flows, one at a time. The zero value is ready to use.
type Runner struct {
	mu     sync.Mutex
	active *Flow
}

// Start runs work as a flow of type typ. It fails with ErrFlowActive
// while another flow of this runner has not ended. The work starts when
// the flow is first read (Updates, Done, Drive), cancelled, or when the
// runner is asked to start another: Drive runs it in its own goroutine, so
// driving a flow costs no goroutine hand-offs.
func (r *Runner) Start(ctx context.Context, typ Type, account *Account, work Work) (*Flow, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active != nil {
		// A flow its caller never read runs now, in its own goroutine:
		// one that needs no answer ends, and frees the runner.
		r.active.goStart()
		select {
		case <-r.active.ended:
		default:
			return nil, fmt.Errorf("%w (%s); finish or cancel it first", ErrFlowActive, r.active.typ)
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	// f.updates is made when the work starts: buffered for a flow that
	// runs in its own goroutine, unbuffered (nothing is sent on it, it is
	// closed at the end) for one Drive runs.
	f := &Flow{typ: typ, answers: make(chan answer), cancel: cancel, account: account, ended: make(chan struct{})}
	f.ctx, f.work = ctx, work
	r.active = f
	f.stopWake = context.AfterFunc(ctx, func() {
		// Cancelled before anyone read it: run it here, so it ends.
		claimed := false
		f.start.Do(func() { f.updates, claimed = make(chan Update, updatesBuffer), true })
		if claimed {
			f.run(nil)
		}
	})
	return f, nil
}

// updatesBuffer is the Updates buffer of a flow that runs in its own
// goroutine.
const updatesBuffer = 16

// goStart runs the work in its own goroutine unless it has started.
func (f *Flow) goStart() {
	f.start.Do(func() {
		f.stopWake()
		f.updates = make(chan Update, updatesBuffer)
		go f.run(nil)
	})
}

// claim reports whether the caller may run the work inline, delivering
// its updates to deliver; false if it has started already.
func (f *Flow) claim(deliver func(Update)) bool {
	claimed := false
	f.start.Do(func() {
		f.stopWake()
		f.inline, f.updates, claimed = deliver, make(chan Update), true
	})
	return claimed
}

// run runs the work; inline (Drive's goroutine) is the updates' receiver,
// or nil for the channel.
func (f *Flow) run(inline func(Update)) {
	defer f.cancel(nil)
	ctx, work := f.ctx, f.work
	f.ctx, f.work = nil, nil
	s := &Step{f: f}
	err := work(ctx, s)
	if err == nil && ctx.Err() != nil {
		err = cancelled(ctx)
	}
	f.mu.Lock()
	final := Update{Type: f.typ, State: Done, Account: f.account, PreviousResult: s.prev}
	if err != nil {
		final.State, final.Err = Error, err
	}
	f.state = final.State
	f.waiting = 0
	f.mu.Unlock()
	// The flow has ended before anyone can read its final update, so a
	// caller that reacts to it can start the next flow at once.
	close(f.ended)
	if inline != nil {
		inline(final)
	} else {
		f.updates <- final
	}
	close(f.updates)
}

// emit delivers u: to the channel, or inline to Drive. For a
// WAIT_FOR_INPUT delivered inline it returns the answer the Answerer gave
// while handling it, if any.
func (f *Flow) emit(u Update) (answer, bool) {
	if f.inline == nil {
		f.updates <- u
		return answer{}, false
	}
	if u.State != WaitForInput {
		f.inline(u)
		return answer{}, false
	}
	f.mu.Lock()
	f.collecting, f.pending = true, nil
	f.mu.Unlock()
	f.inline(u)
	f.mu.Lock()
	a := f.pending
	f.collecting, f.pending = false, nil
	f.mu.Unlock()
	if a == nil {
		return answer{}, false
	}
	return *a, true
}

// Type is the flow's type.
func (f *Flow) Type() Type {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.typ
}

// Updates delivers every update, the final one last; then it is closed.
// It starts the flow's work if Drive has not (a flow Drive runs delivers
// its updates to Drive alone, and this channel is closed at its end).
func (f *Flow) Updates() <-chan Update {
	f.goStart()
	return f.updates
}

// Done is closed when the flow has ended. It starts the flow's work if
// nothing has.
func (f *Flow) Done() <-chan struct{} {
	f.goStart()
	return f.ended
}

// Confirm answers CONFIRM or CONFIRM_TRANSACTION: yes approves, no declines.
func (f *Flow) Confirm(yes bool) error {
	return f.answer(answer{confirm: &yes}, Confirm, ConfirmTransaction)
}

// ConfirmNumber approves a number-matching CONFIRM or CONFIRM_TRANSACTION
// with the number the user picked; it must be one of the interaction's
// Numbers (else ErrNotOffered, and the flow still waits).
func (f *Flow) ConfirmNumber(n int) error {
	f.mu.Lock()
	offered := f.numbers
	f.mu.Unlock()
	if !slices.Contains(offered, n) {
		return fmt.Errorf("%w: %d (offered: %s)", ErrNotOffered, n, JoinNumbers(offered))
	}
	yes := true
	return f.answer(answer{confirm: &yes, number: n}, Confirm, ConfirmTransaction)
}

// JoinNumbers renders numbers as "12, 42, 77".
func JoinNumbers(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ", ")
}

// InputSecondFactor answers VERIFY_SECOND_FACTOR or SET_SECOND_FACTOR.
func (f *Flow) InputSecondFactor(pin string) error {
	return f.answer(answer{pin: &pin}, VerifySecondFactor, SetSecondFactor)
}

// Biometric answers VERIFY_SECOND_FACTOR or SET_SECOND_FACTOR as "verified
// by biometrics" (a simulated fingerprint or face).
func (f *Flow) Biometric() error {
	return f.answer(answer{biometric: true}, VerifySecondFactor, SetSecondFactor)
}

// Cancel ends the flow in ERROR (cancelled); where a transaction was pending
// the SDK declines it.
func (f *Flow) Cancel() { f.CancelWith(ErrCancelled) }

// CancelWith ends the flow in ERROR with cause (e.g. ErrWrongPIN when a
// scripted user has no other PIN to try).
func (f *Flow) CancelWith(cause error) {
	f.cancel(cause)
	f.goStart() // a flow nobody reads still ends (and declines)
}

func (f *Flow) answer(a answer, accepted ...InteractionType) error {
	f.mu.Lock()
	w := f.waiting
	f.mu.Unlock()
	select {
	case <-f.ended:
		return ErrFlowEnded
	default:
	}
	ok := false
	for _, t := range accepted {
		ok = ok || t == w
	}
	if !ok {
		return fmt.Errorf("%w (waiting for %s)", ErrNotWaiting, w)
	}
	f.mu.Lock()
	if f.collecting && f.pending == nil { // Drive's Answerer, inline
		f.pending = &a
		f.mu.Unlock()
		return nil
	}
	f.mu.Unlock()
	select {
	case f.answers <- a:
		return nil
	case <-f.ended:
		return ErrFlowEnded
	}
}

// Step is the flow's side of the conversation, given to Work.
type Step struct {
	f    *Flow
	prev Result
}

// SetType sets the flow's type; call it before the first update (a flow
// whose type depends on what the cloud sends, LOGIN or SIGN_TRANSACTION,
// learns it before it reports anything).
func (s *Step) SetType(t Type) {
	s.f.mu.Lock()
	s.f.typ = t
	s.f.mu.Unlock()
}

// SetAccount names the account the flow concerns from now on.
func (s *Step) SetAccount(a *Account) {
	s.f.mu.Lock()
	s.f.account = a
	s.f.mu.Unlock()
}

// Processing reports that the flow is working. Repeated calls without an
// interaction between them report once.
func (s *Step) Processing() {
	f := s.f
	f.mu.Lock()
	if f.state == Processing {
		f.mu.Unlock()
		return
	}
	f.state = Processing
	u := Update{Type: f.typ, State: Processing, Account: f.account, PreviousResult: s.prev}
	f.mu.Unlock()
	f.emit(u)
}

// ask reports WAIT_FOR_INPUT and blocks for the answer.
func (s *Step) ask(ctx context.Context, in Interaction) (answer, error) {
	f := s.f
	f.mu.Lock()
	f.state, f.waiting, f.numbers = WaitForInput, in.Type, in.Numbers
	u := Update{Type: f.typ, State: WaitForInput, CurrentInteraction: &in, Account: f.account, PreviousResult: s.prev}
	f.mu.Unlock()
	if a, ok := f.emit(u); ok {
		f.mu.Lock()
		f.waiting = 0
		f.mu.Unlock()
		s.Processing()
		return a, nil
	}
	select {
	case a := <-f.answers:
		f.mu.Lock()
		f.waiting = 0
		f.mu.Unlock()
		s.Processing()
		return a, nil
	case <-ctx.Done():
		return answer{}, cancelled(ctx)
	}
}

// Confirm asks the user to approve (CONFIRM, or CONFIRM_TRANSACTION when
// text is not empty). A "no" returns ErrDeclined.
// ConfirmNumber asks like Confirm, offering numbers to pick from (number
// matching), and returns the number picked. A "yes" without a number
// returns ErrNumberRequired.
func (s *Step) ConfirmNumber(ctx context.Context, text string, details map[string]string, numbers []int) (int, error) {
	in := Interaction{Type: Confirm, Details: details, Numbers: slices.Clone(numbers)}
	if text != "" {
		in.Type, in.TransactionText = ConfirmTransaction, text
	}
	a, err := s.ask(ctx, in)
	if err != nil {
		return 0, err
	}
	if !*a.confirm {
		return 0, ErrDeclined
	}
	if a.number == 0 {
		return 0, ErrNumberRequired
	}
	s.prev = Success
	return a.number, nil
}

func (s *Step) Confirm(ctx context.Context, text string, details map[string]string) error {
	in := Interaction{Type: Confirm, Details: details}
	if text != "" {
		in.Type, in.TransactionText = ConfirmTransaction, text
	}
	a, err := s.ask(ctx, in)
	if err != nil {
		return err
	}
	if !*a.confirm {
		return ErrDeclined
	}
	s.prev = Success
	return nil
}

// SetPIN asks the user to choose a PIN (SET_SECOND_FACTOR); valid checks it
// and may return an error to ask again.
func (s *Step) SetPIN(ctx context.Context, valid func(string) error) (string, error) {
	for {
		a, err := s.ask(ctx, Interaction{Type: SetSecondFactor})
		if err != nil {
			return "", err
		}
		if a.pin == nil {
			return "", ErrPINRequired
		}
		if err := valid(*a.pin); err != nil {
			return "", err
		}
		s.prev = Success
		return *a.pin, nil
	}
}

// PINCheck checks one PIN attempt: whether it was right, and how many
// attempts are left afterwards (it persists the count). A check that returns
// retriesLeft 0 on a wrong PIN locks the flow.
type PINCheck func(ctx context.Context, pin string) (ok bool, retriesLeft int, err error)

// VerifyPIN asks for the PIN (VERIFY_SECOND_FACTOR) until check accepts one;
// after a wrong one it asks again with PIN_FAIL and the retries left; when
// none are left it returns ErrLocked.
func (s *Step) VerifyPIN(ctx context.Context, retriesLeft int, check PINCheck) error {
	if retriesLeft <= 0 {
		return ErrLocked
	}
	for {
		a, err := s.ask(ctx, Interaction{Type: VerifySecondFactor, RetriesLeft: retriesLeft})
		if err != nil {
			return err
		}
		if a.pin == nil {
			return ErrPINRequired
		}
		ok, left, err := check(ctx, *a.pin)
		if err != nil {
			return err
		}
		if ok {
			s.prev = Success
			return nil
		}
		s.prev = PINFail
		if left <= 0 {
			return ErrLocked
		}
		retriesLeft = left
	}
}

// cancelled is the error of a flow whose context ended: the cause given to
// CancelWith, ErrCancelled, or the parent's reason (deadline, interrupt).
func cancelled(ctx context.Context) error {
	cause := context.Cause(ctx)
	if errors.Is(cause, context.Canceled) || errors.Is(cause, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrCancelled, cause)
	}
	return cause
}

// MethodBiometric is Interaction.Details["method"] when the second factor is
// a biometric.
const MethodBiometric = "biometric"

// SetBiometric asks the user to enrol a biometric (SET_SECOND_FACTOR with
// method biometric); only Flow.Biometric answers it.
func (s *Step) SetBiometric(ctx context.Context) error {
	return s.biometric(ctx, SetSecondFactor)
}

// VerifyBiometric asks for the biometric (VERIFY_SECOND_FACTOR with method
// biometric); only Flow.Biometric answers it.
func (s *Step) VerifyBiometric(ctx context.Context) error {
	return s.biometric(ctx, VerifySecondFactor)
}

func (s *Step) biometric(ctx context.Context, t InteractionType) error {
	a, err := s.ask(ctx, Interaction{Type: t, Details: map[string]string{"method": MethodBiometric}})
	if err != nil {
		return err
	}
	if !a.biometric {
		return ErrBiometricRequired
	}
	s.prev = Success
	return nil
}
