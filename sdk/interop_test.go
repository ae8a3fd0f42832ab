package sdk_test

import (
	"strings"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/uaf"
)

// TestUAF10Server: against a cloud that speaks UAF 1.0 (requests with upv
// 1.0, and only 1.0 answers accepted), the phone enrols and logs in,
// answering in 1.0.
func TestUAF10Server(t *testing.T) {
	e := newEnv(t, emulator.WithUAFVersion(uaf.V1_0))
	p := e.phone("phone1")
	e.enrol(p, "alice", "1234")
	ap, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := p.Next(e.ctx, sdk.Select{Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.Approve(e.ctx, req)
	if _, last := run(t, f, err, flows.Answers{Confirm: true, PIN: "1234"}); last.State != flows.Done {
		t.Fatalf("login on a UAF 1.0 cloud: %v", last.Err)
	}
	if st, err := e.be.Status(e.ctx, ap.StatusToken, 0); err != nil || st.Status != cloudapi.StatusSucceeded {
		t.Fatalf("status %+v %v", st, err)
	}
}

// TestUAFUnknownVersionRefused: a cloud speaking a UAF version the phone does
// not know is refused with a clear error, and the enrolment stays pending.
func TestUAFUnknownVersionRefused(t *testing.T) {
	e := newEnv(t, emulator.WithUAFVersion(uaf.Version{Major: 2, Minor: 0}))
	p := e.phone("phone1")
	u, _, err := e.be.Enroll(e.ctx, cloudapi.EnrollRequest{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.Scan(e.ctx, []byte(u.Enrollment.AppLinkURI))
	_, last := run(t, f, err, flows.Answers{NewPIN: "1234"})
	if last.State == flows.Done || last.Err == nil || !strings.Contains(last.Err.Error(), "UAF 2.0") {
		t.Fatalf("UAF 2.0 cloud: %+v", last)
	}
	if _, err := p.Account("alice"); err == nil {
		t.Fatal("an account was made")
	}
}
