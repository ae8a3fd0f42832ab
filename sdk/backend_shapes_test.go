package sdk_test

import (
	"testing"
	"time"

	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/google/uuid"
)

// TestBackendSeesLoginsAndDevice: what a backend reads of a user through
// the backend client once a real phone has used it, in the public API
// reference's shape: the last successful and failed login, and each
// authenticator's uaf object with one deviceRef per phone.
func TestBackendSeesLoginsAndDevice(t *testing.T) {
	e := newEnv(t)
	p := e.phone("phone1")
	for _, name := range []string{"alice", "bob"} {
		u, _, err := e.be.Enroll(e.ctx, cloudapi.EnrollRequest{Username: name})
		if err != nil {
			t.Fatal(err)
		}
		f, err := p.Scan(e.ctx, []byte(u.Enrollment.AppLinkURI))
		if _, last := run(t, f, err, flows.Answers{NewPIN: "1234"}); last.State != flows.Done {
			t.Fatalf("enrol %s: %v", name, last.Err)
		}
	}
	alice, err := e.be.User(e.ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !alice.LastLoginDateSuccess.IsZero() || !alice.LastLoginDateFailure.IsZero() || len(alice.ExceededRateLimits) != 0 {
		t.Fatalf("a user who never logged in: %+v", alice)
	}
	bob, err := e.be.User(e.ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	au, bu := alice.Authenticators[0].UAF, bob.Authenticators[0].UAF
	if au == nil || bu == nil || au.UserDisabledPushNotification {
		t.Fatalf("uaf objects %+v %+v", au, bu)
	}
	if _, err := uuid.Parse(au.DeviceRef); err != nil || au.DeviceRef != bu.DeviceRef {
		t.Fatalf("one phone's deviceRef: %q and %q", au.DeviceRef, bu.DeviceRef)
	}

	before := time.Now().Add(-time.Second)
	if _, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	req, err := p.Next(e.ctx, sdk.Select{Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.Approve(e.ctx, req)
	if _, last := run(t, f, err, flows.Answers{Confirm: true, PIN: "1234"}); last.State != flows.Done {
		t.Fatalf("login: %v", last.Err)
	}
	alice, _ = e.be.User(e.ctx, "alice")
	if alice.LastLoginDateSuccess.Before(before) || !alice.LastLoginDateFailure.IsZero() {
		t.Fatalf("after a login: success %s, failure %s", alice.LastLoginDateSuccess, alice.LastLoginDateFailure)
	}

	if _, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	if req, err = p.Next(e.ctx, sdk.Select{Wait: time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := p.Deny(e.ctx, req, ""); err != nil {
		t.Fatal(err)
	}
	ok := alice.LastLoginDateSuccess
	alice, _ = e.be.User(e.ctx, "alice")
	if !alice.LastLoginDateSuccess.Equal(ok) || alice.LastLoginDateFailure.Before(ok) {
		t.Fatalf("after a denial: success %s (was %s), failure %s", alice.LastLoginDateSuccess, ok, alice.LastLoginDateFailure)
	}
	if bob, _ = e.be.User(e.ctx, "bob"); !bob.LastLoginDateSuccess.IsZero() || !bob.LastLoginDateFailure.IsZero() {
		t.Fatalf("bob never logged in: %+v", bob)
	}
}
