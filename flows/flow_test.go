package flows_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/authphone/authphone/flows"
)

// seq renders updates as "STATE[/INTERACTION][(RESULT)]" joined by " → ".
func seq(us []flows.Update) string {
	var parts []string
	for _, u := range us {
		s := u.State.String()
		if u.CurrentInteraction != nil {
			s += "/" + u.CurrentInteraction.Type.String()
		}
		if u.PreviousResult == flows.PINFail && u.CurrentInteraction != nil {
			s += fmt.Sprintf("(PIN_FAIL,%d)", u.CurrentInteraction.RetriesLeft)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " → ")
}

func collect(f *flows.Flow, a flows.Answerer) ([]flows.Update, flows.Update) {
	var us []flows.Update
	last := flows.Drive(f, a, func(u flows.Update) { us = append(us, u) })
	return us, last
}

// pinStore simulates the SDK's persisted PIN attempts.
type pinStore struct {
	pin      string
	failures int
}

func (p *pinStore) check(_ context.Context, pin string) (bool, int, error) {
	if pin == p.pin {
		p.failures = 0
		return true, 5, nil
	}
	p.failures++
	return false, 5 - p.failures, nil
}

func loginWork(ps *pinStore, text string) flows.Work {
	return func(ctx context.Context, s *flows.Step) error {
		s.Processing()
		if err := s.Confirm(ctx, text, nil); err != nil {
			return err
		}
		return s.VerifyPIN(ctx, 5-ps.failures, ps.check)
	}
}

func TestLoginSequence(t *testing.T) {
	var r flows.Runner
	f, err := r.Start(context.Background(), flows.Login, &flows.Account{ID: "a"}, loginWork(&pinStore{pin: "1234"}, ""))
	if err != nil {
		t.Fatal(err)
	}
	us, last := collect(f, flows.Answers{Confirm: true, PIN: "1234"}.Answer)
	want := "PROCESSING → WAIT_FOR_INPUT/CONFIRM → PROCESSING → WAIT_FOR_INPUT/VERIFY_SECOND_FACTOR → PROCESSING → DONE"
	if got := seq(us); got != want {
		t.Fatalf("sequence\n got %s\nwant %s", got, want)
	}
	if last.State != flows.Done || last.Err != nil || last.Type != flows.Login {
		t.Fatalf("last = %+v", last)
	}
}

func TestSignTransactionShowsText(t *testing.T) {
	var r flows.Runner
	f, _ := r.Start(context.Background(), flows.SignTransaction, nil, loginWork(&pinStore{pin: "1"}, "Pay 10 EUR"))
	us, last := collect(f, flows.Answers{Confirm: true, PIN: "1"}.Answer)
	if !strings.Contains(seq(us), "WAIT_FOR_INPUT/CONFIRM_TRANSACTION") || us[1].CurrentInteraction.TransactionText != "Pay 10 EUR" {
		t.Fatalf("sequence %s", seq(us))
	}
	if last.State != flows.Done {
		t.Fatal(last.Err)
	}
}

func TestWrongPINThenRightPIN(t *testing.T) {
	var r flows.Runner
	ps := &pinStore{pin: "1234"}
	f, _ := r.Start(context.Background(), flows.Login, nil, loginWork(ps, ""))
	attempts := []string{"0000", "1111", "1234"}
	us, last := collect(f, func(f *flows.Flow, u flows.Update) {
		if u.CurrentInteraction.Type == flows.Confirm {
			_ = f.Confirm(true)
			return
		}
		_ = f.InputSecondFactor(attempts[0])
		attempts = attempts[1:]
	})
	want := "PROCESSING → WAIT_FOR_INPUT/CONFIRM → PROCESSING → WAIT_FOR_INPUT/VERIFY_SECOND_FACTOR → PROCESSING → " +
		"WAIT_FOR_INPUT/VERIFY_SECOND_FACTOR(PIN_FAIL,4) → PROCESSING → WAIT_FOR_INPUT/VERIFY_SECOND_FACTOR(PIN_FAIL,3) → PROCESSING → DONE"
	if got := seq(us); got != want {
		t.Fatalf("sequence\n got %s\nwant %s", got, want)
	}
	if last.State != flows.Done || ps.failures != 0 {
		t.Fatalf("last %+v failures %d", last, ps.failures)
	}
}

func TestLockOutAfterFiveWrongPINs(t *testing.T) {
	var r flows.Runner
	ps := &pinStore{pin: "1234"}
	f, _ := r.Start(context.Background(), flows.Login, nil, loginWork(ps, ""))
	us, last := collect(f, flows.Answers{Confirm: true, PIN: "9999", Retry: true}.Answer)
	if last.State != flows.Error || !errors.Is(last.Err, flows.ErrLocked) {
		t.Fatalf("last = %+v", last)
	}
	if n := strings.Count(seq(us), "VERIFY_SECOND_FACTOR"); n != 5 {
		t.Fatalf("asked for the PIN %d times, want 5: %s", n, seq(us))
	}
	// Locked stays locked: the next flow fails without asking.
	f, _ = r.Start(context.Background(), flows.Login, nil, loginWork(ps, ""))
	us, last = collect(f, flows.Answers{Confirm: true, PIN: "1234"}.Answer)
	if !errors.Is(last.Err, flows.ErrLocked) || strings.Contains(seq(us), "VERIFY_SECOND_FACTOR") {
		t.Fatalf("after lock-out: %s %v", seq(us), last.Err)
	}
}

func TestScriptedUserGivesUpAfterWrongPIN(t *testing.T) {
	var r flows.Runner
	f, _ := r.Start(context.Background(), flows.Login, nil, loginWork(&pinStore{pin: "1234"}, ""))
	_, last := collect(f, flows.Answers{Confirm: true, PIN: "9999"}.Answer)
	if !errors.Is(last.Err, flows.ErrWrongPIN) {
		t.Fatalf("err = %v, want ErrWrongPIN", last.Err)
	}
}

func TestDeclineAndCancel(t *testing.T) {
	var r flows.Runner
	f, _ := r.Start(context.Background(), flows.Login, nil, loginWork(&pinStore{pin: "1"}, ""))
	_, last := collect(f, flows.Answers{Confirm: false}.Answer)
	if last.State != flows.Error || !errors.Is(last.Err, flows.ErrDeclined) {
		t.Fatalf("decline: %+v", last)
	}
	f, _ = r.Start(context.Background(), flows.Login, nil, loginWork(&pinStore{pin: "1"}, ""))
	_, last = collect(f, func(f *flows.Flow, u flows.Update) { f.Cancel() })
	if last.State != flows.Error || !errors.Is(last.Err, flows.ErrCancelled) {
		t.Fatalf("cancel: %+v", last)
	}
}

func TestEnrolSequenceAndOneFlowAtATime(t *testing.T) {
	var r flows.Runner
	release := make(chan struct{})
	f, err := r.Start(context.Background(), flows.Enrol, nil, func(ctx context.Context, s *flows.Step) error {
		s.Processing()
		<-release
		if _, err := s.SetPIN(ctx, func(string) error { return nil }); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start(context.Background(), flows.Login, nil, loginWork(&pinStore{}, "")); !errors.Is(err, flows.ErrFlowActive) {
		t.Fatalf("second flow: %v, want ErrFlowActive", err)
	}
	if err := f.Confirm(true); !errors.Is(err, flows.ErrNotWaiting) {
		t.Fatalf("answer while processing: %v", err)
	}
	close(release)
	us, last := collect(f, flows.Answers{NewPIN: "1234"}.Answer)
	if got, want := seq(us), "PROCESSING → WAIT_FOR_INPUT/SET_SECOND_FACTOR → PROCESSING → DONE"; got != want {
		t.Fatalf("sequence\n got %s\nwant %s", got, want)
	}
	if last.State != flows.Done {
		t.Fatal(last.Err)
	}
	if _, err := r.Start(context.Background(), flows.Login, nil, loginWork(&pinStore{}, "")); err != nil {
		t.Fatalf("a flow after the first ended: %v", err)
	}
}

// TestNextFlowRightAfterTheLast starts a flow as soon as the last one's final
// update arrives, many times: the runner must never still see it active.
func TestNextFlowRightAfterTheLast(t *testing.T) {
	var r flows.Runner
	for i := range 2000 {
		f, err := r.Start(context.Background(), flows.Login, nil, func(ctx context.Context, s *flows.Step) error {
			s.Processing()
			return nil
		})
		if err != nil {
			t.Fatalf("flow %d: %v", i, err)
		}
		for u := range f.Updates() {
			if u.State.Final() {
				break
			}
		}
	}
}

func TestBiometricSecondFactor(t *testing.T) {
	var r flows.Runner
	work := func(ctx context.Context, s *flows.Step) error {
		s.Processing()
		if err := s.Confirm(ctx, "", nil); err != nil {
			return err
		}
		return s.VerifyBiometric(ctx)
	}
	f, _ := r.Start(context.Background(), flows.Login, nil, work)
	us, last := collect(f, flows.Answers{Confirm: true, Biometric: true}.Answer)
	if last.State != flows.Done || us[3].CurrentInteraction.Details["method"] != flows.MethodBiometric {
		t.Fatalf("%s %v", seq(us), last.Err)
	}
	f, _ = r.Start(context.Background(), flows.Login, nil, work)
	if _, last := collect(f, flows.Answers{Confirm: true, PIN: "1234"}.Answer); !errors.Is(last.Err, flows.ErrBiometricRequired) {
		t.Fatalf("a PIN for a biometric: %v", last.Err)
	}
	// A biometric does not answer a PIN prompt.
	f, _ = r.Start(context.Background(), flows.Login, nil, loginWork(&pinStore{pin: "1"}, ""))
	_, last = collect(f, func(f *flows.Flow, u flows.Update) {
		if u.CurrentInteraction.Type == flows.Confirm {
			_ = f.Confirm(true)
			return
		}
		_ = f.Biometric()
	})
	if !errors.Is(last.Err, flows.ErrPINRequired) {
		t.Fatalf("a biometric for a PIN: %v", last.Err)
	}
}

// TestDriveAnswersFromAnotherGoroutine: Drive runs the work in its own
// goroutine, yet an Answerer that answers later from another goroutine is
// still heard.
func TestDriveAnswersFromAnotherGoroutine(t *testing.T) {
	var r flows.Runner
	f, _ := r.Start(context.Background(), flows.Login, nil, loginWork(&pinStore{pin: "1"}, ""))
	us, last := collect(f, func(f *flows.Flow, u flows.Update) {
		a := flows.Answers{Confirm: true, PIN: "1"}
		go a.Answer(f, u)
	})
	if last.State != flows.Done {
		t.Fatalf("%s: %v", seq(us), last.Err)
	}
	if got, want := seq(us), "PROCESSING → WAIT_FOR_INPUT/CONFIRM → PROCESSING → WAIT_FOR_INPUT/VERIFY_SECOND_FACTOR → PROCESSING → DONE"; got != want {
		t.Fatalf("sequence\n got %s\nwant %s", got, want)
	}
}

// TestUnreadFlowEndsWhenCancelled: a flow nobody reads still runs to its
// end once it is cancelled (so the SDK's work can decline), by Cancel or
// by its context; the runner is then free.
func TestUnreadFlowEndsWhenCancelled(t *testing.T) {
	var r flows.Runner
	ran := make(chan error, 1)
	work := func(ctx context.Context, s *flows.Step) error {
		err := s.Confirm(ctx, "", nil)
		ran <- err
		return err
	}
	f, _ := r.Start(context.Background(), flows.Login, nil, work)
	f.Cancel()
	if err := <-ran; !errors.Is(err, flows.ErrCancelled) {
		t.Fatalf("the work saw %v, want ErrCancelled", err)
	}
	<-f.Done()
	ctx, cancel := context.WithCancel(context.Background())
	f, err := r.Start(ctx, flows.Login, nil, work)
	if err != nil {
		t.Fatalf("a flow after a cancelled one: %v", err)
	}
	cancel()
	if err := <-ran; !errors.Is(err, flows.ErrCancelled) {
		t.Fatalf("the work saw %v, want ErrCancelled", err)
	}
	<-f.Done()
	for range f.Updates() {
	}
}

// TestUnreadFlowRunsWhenTheNextStarts: a flow its caller never read (one
// that needs no answer, such as a removal notice's) runs once another flow
// is started, and then frees the runner.
func TestUnreadFlowRunsWhenTheNextStarts(t *testing.T) {
	var r flows.Runner
	ran := make(chan struct{})
	f, _ := r.Start(context.Background(), flows.Deregister, nil, func(ctx context.Context, s *flows.Step) error {
		s.Processing()
		close(ran)
		return nil
	})
	if g, err := r.Start(context.Background(), flows.Login, nil, loginWork(&pinStore{}, "")); err == nil {
		g.Cancel() // it had ended already: end this one too
		<-g.Done()
	} else if !errors.Is(err, flows.ErrFlowActive) {
		t.Fatal(err)
	}
	<-ran
	<-f.Done()
	if _, err := r.Start(context.Background(), flows.Login, nil, loginWork(&pinStore{}, "")); err != nil {
		t.Fatalf("a flow after an unread one ended: %v", err)
	}
}
