package sdk_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
)

// noTargetCloud makes the emulator take a registration as a cloud that
// does not know UAFBody.DispatchTarget does: the target is not sent on.
type noTargetCloud struct{ next http.RoundTripper }

func (o noTargetCloud) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == deviceapi.PathRegistration && r.Body != nil {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		var body deviceapi.UAFBody
		if err := json.Unmarshal(b, &body); err != nil {
			return nil, err
		}
		body.DispatchTarget = nil
		b, _ = json.Marshal(body)
		r = r.Clone(r.Context())
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	}
	return o.next.RoundTrip(r)
}

// strictCloud refuses a registration that carries UAFBody.DispatchTarget
// as a server that fails on unknown properties does (HTTP 400 naming it).
type strictCloud struct{ next http.RoundTripper }

func (o strictCloud) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == deviceapi.PathRegistration && r.Body != nil {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		if bytes.Contains(b, []byte(`"dispatchTarget"`)) {
			msg := `{"message":"Unrecognized field \"dispatchTarget\" (class UafBody), not marked as ignorable"}`
			return &http.Response{StatusCode: 400, Status: "400 Bad Request", Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(strings.NewReader(msg)), ContentLength: int64(len(msg)), Request: r}, nil
		}
		r = r.Clone(r.Context())
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	}
	return o.next.RoundTrip(r)
}

// TestEnrolRegistersTargetWithKey: the registration carries the account's
// dispatch target (bound to the phone's device key), so the enrolment
// makes no dispatch-target call of its own, and the next approval is read
// with the device key's one signed request. Against a cloud that does not
// take the target, or refuses a registration that carries it, the phone
// registers it with its own call, as before.
func TestEnrolRegistersTargetWithKey(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		name  string
		calls int
		rt    func(*counting) http.RoundTripper
	}{
		{"with-the-registration", 0, func(c *counting) http.RoundTripper { return c }},
		{"cloud-without-it", 1, func(c *counting) http.RoundTripper { return noTargetCloud{c} }},
		{"strict-cloud", 1, func(c *counting) http.RoundTripper { return strictCloud{c} }},
	} {
		tr := &counting{}
		p := e.phoneVia(c.name, c.rt(tr))
		user := "user-" + c.name[:1]
		a := e.enrol(p, user, "1234")
		if n := tr.count(deviceapi.PathDispatchTargets); n != c.calls {
			t.Fatalf("%s: %d dispatch-target calls, want %d", c.name, n, c.calls)
		}
		if a.InboxKey == "" {
			t.Fatalf("%s: the account is not bound to the device key", c.name)
		}
		doc, err := e.emu.Export(e.ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, u := range doc.Users {
			for _, au := range u.Authenticators {
				if au.AuthenticatorID == a.ID {
					found = au.DeviceID == a.InboxKey && strings.Contains(au.Name, c.name)
				}
			}
		}
		if !found {
			t.Fatalf("%s: the cloud's authenticator is not bound to the phone's device key %s: %+v", c.name, a.InboxKey, doc.Users)
		}
		ap, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: user})
		if err != nil {
			t.Fatal(err)
		}
		tr.reset()
		r, err := p.Next(e.ctx, sdk.Select{Wait: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if n, one := tr.count(deviceapi.PathInboxes), tr.count(deviceapi.PathInbox); n != 1 || one != 0 {
			t.Fatalf("%s: %d batched and %d single inbox reads, want 1 and 0", c.name, n, one)
		}
		if last := e.approveNext(p, r, flows.Answers{Confirm: true, PIN: "1234"}); last.State != flows.Done {
			t.Fatalf("%s: %+v", c.name, last)
		}
		e.statusIs(ap.StatusToken, cloudapi.StatusSucceeded)
	}
}
