package sdk_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/backend"
	"github.com/authphone/authphone/sdk/cloudapi"
)

type env struct {
	t   testing.TB
	emu *emulator.Server
	be  *backend.Client
	ctx context.Context
}

func newEnv(t testing.TB, opts ...emulator.Option) *env {
	t.Helper()
	emu, err := emulator.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close(context.Background()) })
	return &env{t: t, emu: emu, be: backend.New(emu.URL(), backend.WithAccessKey(emu.AccessKey())), ctx: context.Background()}
}

func (e *env) phone(profile string) *sdk.Phone {
	e.t.Helper()
	p, err := sdk.New(profile, keystore.NewMemory(), sdk.WithStateDir(e.t.TempDir()), sdk.WithCloud(e.emu.URL()))
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// seq renders flow updates as the spec writes them.
func seq(us []flows.Update) string {
	var parts []string
	for _, u := range us {
		s := u.State.String()
		if u.CurrentInteraction != nil {
			s += "/" + u.CurrentInteraction.Type.String()
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " → ")
}

func run(t testing.TB, f *flows.Flow, err error, a flows.Answers) ([]flows.Update, flows.Update) {
	t.Helper()
	if err != nil {
		t.Fatalf("start flow: %v", err)
	}
	var us []flows.Update
	last := flows.Drive(f, a.Answer, func(u flows.Update) { us = append(us, u) })
	return us, last
}

// enrol enrols username on phone by scanning the QR image of the enrolment.
func (e *env) enrol(p *sdk.Phone, username, pin string) *sdk.Account {
	e.t.Helper()
	u, _, err := e.be.Enroll(e.ctx, cloudapi.EnrollRequest{Username: username})
	if err != nil {
		e.t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(u.Enrollment.QRCode.DataURI, "data:image/png;base64,"))
	if err != nil {
		e.t.Fatal(err)
	}
	f, err := p.Scan(e.ctx, png)
	_, last := run(e.t, f, err, flows.Answers{NewPIN: pin})
	if last.State != flows.Done {
		e.t.Fatalf("enrol: %v", last.Err)
	}
	st, err := e.be.Status(e.ctx, u.Enrollment.StatusToken, 0)
	if err != nil || st.Status != cloudapi.StatusSucceeded {
		e.t.Fatalf("enrol status %+v %v", st, err)
	}
	a, err := p.Account(username)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func TestEnrolApproveSignDeny(t *testing.T) {
	e := newEnv(t)
	p := e.phone("phone1")

	// ENROL by scanning the real PNG QR code.
	u, _, err := e.be.Enroll(e.ctx, cloudapi.EnrollRequest{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if u.Status != cloudapi.UserNew || u.Enrollment.QRCode.Type != "image/png" {
		t.Fatalf("enroll response %+v", u)
	}
	f, err := p.Scan(e.ctx, []byte(u.Enrollment.AppLinkURI))
	us, last := run(t, f, err, flows.Answers{NewPIN: "1234"})
	if got, want := seq(us), "PROCESSING → WAIT_FOR_INPUT/SET_SECOND_FACTOR → PROCESSING → DONE"; got != want {
		t.Fatalf("ENROL\n got %s\nwant %s", got, want)
	}
	if last.Type != flows.Enrol || last.Account == nil || last.Account.Username != "alice" {
		t.Fatalf("last %+v", last)
	}
	user, err := e.be.User(e.ctx, "alice")
	if err != nil || user.Status != cloudapi.UserActive || len(user.Authenticators) != 1 {
		t.Fatalf("user after enrol %+v %v", user, err)
	}

	// LOGIN by push.
	ap, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "alice", NotificationMessage: "Log in?"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := p.Next(e.ctx, sdk.Select{Wait: time.Second})
	if err != nil || req.Notification != "Log in?" {
		t.Fatalf("pending %+v %v", req, err)
	}
	f, err = p.Approve(e.ctx, req)
	us, last = run(t, f, err, flows.Answers{Confirm: true, PIN: "1234"})
	want := "PROCESSING → WAIT_FOR_INPUT/CONFIRM → PROCESSING → WAIT_FOR_INPUT/VERIFY_SECOND_FACTOR → PROCESSING → DONE"
	if got := seq(us); got != want {
		t.Fatalf("LOGIN\n got %s\nwant %s (%v)", got, want, last.Err)
	}
	st, err := e.be.Status(e.ctx, ap.StatusToken, 0)
	if err != nil || st.Status != cloudapi.StatusSucceeded || st.Token == "" {
		t.Fatalf("status %+v %v", st, err)
	}
	if in, err := e.be.Introspect(e.ctx, st.Token); err != nil || !in.Active || in.Sub != user.UserID {
		t.Fatalf("introspect transaction token %+v %v", in, err)
	}

	// SIGN_TRANSACTION shows the text.
	ap, _, err = e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "alice", Message: "Pay <b>100 EUR</b> to Bob"})
	if err != nil {
		t.Fatal(err)
	}
	req, err = p.Next(e.ctx, sdk.Select{Match: "100 EUR"})
	if err != nil {
		t.Fatal(err)
	}
	f, err = p.Approve(e.ctx, req)
	us, last = run(t, f, err, flows.Answers{Confirm: true, PIN: "1234"})
	if last.Type != flows.SignTransaction || last.State != flows.Done || us[1].CurrentInteraction.Type != flows.ConfirmTransaction ||
		us[1].CurrentInteraction.TransactionText != "Pay 100 EUR to Bob" {
		t.Fatalf("SIGN_TRANSACTION %s %+v %v", seq(us), us[1].CurrentInteraction, last.Err)
	}
	if st, _ := e.be.Status(e.ctx, ap.StatusToken, 0); st.Status != cloudapi.StatusSucceeded {
		t.Fatalf("transaction status %s", st.Status)
	}

	// Deny.
	ap, _, _ = e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "alice"})
	req, err = p.Next(e.ctx, sdk.Select{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Deny(e.ctx, req, ""); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.be.Status(e.ctx, ap.StatusToken, 0); st.Status != cloudapi.StatusFailed {
		t.Fatalf("denied status %s", st.Status)
	}
	if _, err := p.Next(e.ctx, sdk.Select{}); !errors.Is(err, sdk.ErrNoPending) {
		t.Fatalf("after deny: %v", err)
	}
}

func TestWrongPINDeclinesAndLocksAfterFive(t *testing.T) {
	e := newEnv(t)
	p := e.phone("p")
	e.enrol(p, "bob", "1234")
	for i := 1; i <= 5; i++ {
		ap, _, _ := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "bob"})
		req, err := p.Next(e.ctx, sdk.Select{Wait: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		f, err := p.Approve(e.ctx, req)
		us, last := run(t, f, err, flows.Answers{Confirm: true, PIN: "0000"})
		if last.State != flows.Error {
			t.Fatalf("attempt %d: %s", i, seq(us))
		}
		want := flows.ErrWrongPIN
		if i == 5 {
			want = flows.ErrLocked
		}
		if !errors.Is(last.Err, want) {
			t.Fatalf("attempt %d: %v, want %v", i, last.Err, want)
		}
		if st, _ := e.be.Status(e.ctx, ap.StatusToken, 0); st.Status != cloudapi.StatusFailed {
			t.Fatalf("attempt %d left the approval %s", i, st.Status)
		}
	}
	a, _ := p.Account("bob")
	if !a.Locked() {
		t.Fatal("account not locked after 5 wrong PINs")
	}
	// Even the right PIN no longer helps, and the cloud's operation fails.
	ap, _, _ := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "bob"})
	req, _ := p.Next(e.ctx, sdk.Select{Wait: time.Second})
	f, err := p.Approve(e.ctx, req)
	_, last := run(t, f, err, flows.Answers{Confirm: true, PIN: "1234"})
	if !errors.Is(last.Err, flows.ErrLocked) {
		t.Fatalf("locked account: %v", last.Err)
	}
	if st, _ := e.be.Status(e.ctx, ap.StatusToken, 0); st.Status != cloudapi.StatusFailed {
		t.Fatalf("locked approval left %s", st.Status)
	}
}

func TestScanRejectsReusedAndExpiredTokens(t *testing.T) {
	e := newEnv(t)
	short := newEnv(t, emulator.WithEnrollTTL(30*time.Second))
	p := e.phone("p")
	u, _, _ := e.be.Enroll(e.ctx, cloudapi.EnrollRequest{Username: "carol"})
	link := []byte(u.Enrollment.AppLinkURI)
	f, err := p.Scan(e.ctx, link)
	if _, last := run(t, f, err, flows.Answers{NewPIN: "1234"}); last.State != flows.Done {
		t.Fatal(last.Err)
	}
	f, err = p.Scan(e.ctx, link)
	_, last := run(t, f, err, flows.Answers{NewPIN: "1234"})
	if !errors.Is(last.Err, sdk.ErrTokenRedeemed) {
		t.Fatalf("reused: %v", last.Err)
	}
	u, _, _ = short.be.Enroll(e.ctx, cloudapi.EnrollRequest{Username: "carol2"})
	if _, err := short.emu.AdvanceClock(31 * time.Second); err != nil {
		t.Fatal(err)
	}
	f, err = p.Scan(e.ctx, []byte(u.Enrollment.AppLinkURI))
	_, last = run(t, f, err, flows.Answers{NewPIN: "1234"})
	if !errors.Is(last.Err, sdk.ErrTokenExpired) {
		t.Fatalf("expired: %v", last.Err)
	}
	if st, _ := short.be.Status(e.ctx, u.Enrollment.StatusToken, 0); st.Status != cloudapi.StatusFailed {
		t.Fatalf("expired enrolment status %s", st.Status)
	}
	if accts, _ := p.Accounts(); len(accts) != 1 {
		t.Fatalf("accounts after failures: %d, want 1", len(accts))
	}
}

func TestUnreachableCloud(t *testing.T) {
	e := newEnv(t)
	p := e.phone("p")
	u, _, _ := e.be.Enroll(e.ctx, cloudapi.EnrollRequest{Username: "dave"})
	_ = e.emu.Close(context.Background())
	f, err := p.Scan(e.ctx, []byte(u.Enrollment.AppLinkURI))
	_, last := run(t, f, err, flows.Answers{NewPIN: "1234"})
	if !errors.Is(last.Err, sdk.ErrUnreachable) || !strings.Contains(last.Err.Error(), "emulator") {
		t.Fatalf("unreachable: %v", last.Err)
	}
	if accts, _ := p.Accounts(); len(accts) != 0 {
		t.Fatal("a failed enrolment left an account")
	}
}

func TestStatusLongPollWakesOnApproval(t *testing.T) {
	e := newEnv(t)
	p := e.phone("p")
	e.enrol(p, "erin", "1234")
	ap, _, _ := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "erin"})
	type result struct {
		st  *cloudapi.StatusResponse
		at  time.Time
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := e.be.Status(e.ctx, ap.StatusToken, 30*time.Second)
		done <- result{st, time.Now(), err}
	}()
	// Approve only once the long-poll is waiting: it must be woken.
	for deadline := time.Now().Add(20 * time.Second); e.emu.LongPolls() < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the status long-poll is not waiting after 20s")
		}
	}
	req, err := p.Next(e.ctx, sdk.Select{Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.Approve(e.ctx, req)
	_, last := run(t, f, err, flows.Answers{Confirm: true, PIN: "1234"})
	approvedAt := time.Now()
	if last.State != flows.Done {
		t.Fatal(last.Err)
	}
	r := <-done
	if r.err != nil || r.st.Status != cloudapi.StatusSucceeded {
		t.Fatalf("long-poll: %+v %v", r.st, r.err)
	}
	// The long-poll answered with the decision, not at the end of its 30 s.
	if lag := r.at.Sub(approvedAt); lag > 5*time.Second {
		t.Fatalf("long-poll returned %v after the approval", lag)
	}
}

func ExamplePhone_Scan() {
	emu, _ := emulator.New()
	_ = emu.Start("127.0.0.1:0")
	defer emu.Close(context.Background())
	ctx := context.Background()

	be := backend.New(emu.URL(), backend.WithAccessKey(emu.AccessKey()))
	user, _, _ := be.Enroll(ctx, cloudapi.EnrollRequest{Username: "alice"})

	phone, _ := sdk.New("example", keystore.NewMemory(), sdk.WithStateDir(exampleDir()))
	flow, _ := phone.Scan(ctx, []byte(user.Enrollment.AppLinkURI))
	final := flows.Drive(flow, flows.Answers{NewPIN: "1234"}.Answer, func(u flows.Update) {
		fmt.Println(u.Type, u.State)
	})
	fmt.Println("enrolled:", final.Account.Username)
	// Output:
	// ENROL PROCESSING
	// ENROL WAIT_FOR_INPUT
	// ENROL PROCESSING
	// ENROL DONE
	// enrolled: alice
}

func TestBiometricAccount(t *testing.T) {
	e := newEnv(t)
	p := e.phone("p")
	u, _, _ := e.be.Enroll(e.ctx, cloudapi.EnrollRequest{Username: "bio"})
	f, err := p.Scan(e.ctx, []byte(u.Enrollment.AppLinkURI), sdk.WithBiometric())
	us, last := run(t, f, err, flows.Answers{Biometric: true})
	if last.State != flows.Done || us[1].CurrentInteraction.Details["method"] != flows.MethodBiometric {
		t.Fatalf("biometric enrol %s: %v", seq(us), last.Err)
	}
	a, _ := p.Account("bio")
	if a.AAID != "F1D0#0003" || !a.Biometric {
		t.Fatalf("account %+v", a)
	}
	if _, err := p.Keystore().Get(e.ctx, "pin/"+a.KeyID); err == nil {
		t.Fatal("a biometric account has a PIN verifier")
	}
	// A PIN does not answer a biometric; the biometric does.
	for _, tc := range []struct {
		ans  flows.Answers
		want string
	}{
		{flows.Answers{Confirm: true, PIN: "1234"}, cloudapi.StatusFailed},
		{flows.Answers{Confirm: true, Biometric: true}, cloudapi.StatusSucceeded},
	} {
		ap, _, _ := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "bio"})
		r, err := p.Next(e.ctx, sdk.Select{Wait: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		f, err := p.Approve(e.ctx, r)
		_, last := run(t, f, err, tc.ans)
		if (tc.want == cloudapi.StatusSucceeded) != (last.State == flows.Done) {
			t.Fatalf("%+v: %v", tc.ans, last.Err)
		}
		if st, _ := e.be.Status(e.ctx, ap.StatusToken, 0); st.Status != tc.want {
			t.Fatalf("%+v: status %s", tc.ans, st.Status)
		}
	}
	if _, err := p.ChangePIN(e.ctx, "bio"); !errors.Is(err, sdk.ErrNoSecondFactor) {
		t.Fatalf("change PIN of a biometric account: %v", err)
	}
}
