package emulator_test

import (
	"context"
	"testing"

	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/uaf"
)

// A registration may carry the new authenticator's dispatch target (ours):
// registered with it, with the checks of POST PathDispatchTargets; a bad
// target refuses the whole registration and changes nothing.
func TestRegistrationCarriesDispatchTarget(t *testing.T) {
	c := newCloud(t)
	pk := newPhoneKey(t)
	p, st := c.enroll("alice")
	var req uaf.RegistrationRequest
	c.redeem(p, &req)
	d := newDevice()
	msg, _ := uaf.Encode(d.regResponse(t, req))
	post := func(target *deviceapi.DispatchTarget) (int, deviceapi.StatusBody) {
		var sb deviceapi.StatusBody
		code := c.do("POST", deviceapi.PathRegistration, nil, mustJSON(deviceapi.UAFBody{UAFResponse: msg, DispatchTarget: target}), &sb)
		return code, sb
	}
	for name, bad := range map[string]deviceapi.DispatchTarget{
		"another device id":  {Name: "phone", DeviceID: "not-its-thumbprint", Dispatcher: "inbox", SignatureKey: pk.jwk},
		"another dispatcher": {Name: "phone", DeviceID: pk.id, Dispatcher: "fcm", SignatureKey: pk.jwk},
		"no key":             {Name: "phone", DeviceID: pk.id, Dispatcher: "inbox", SignatureKey: []byte(`{"kty":"EC"}`)},
	} {
		if code, sb := post(&bad); code != 400 || sb.StatusCode != deviceapi.StatusBadRequest || sb.DispatchTarget {
			t.Fatalf("%s: %d %+v, want 400", name, code, sb)
		}
		if s := c.status(st); s != cloudapi.StatusPending {
			t.Fatalf("%s: the refused registration left the enrolment %s", name, s)
		}
	}
	code, sb := post(&deviceapi.DispatchTarget{Name: "phone", DeviceID: pk.id, Dispatcher: "inbox", SignatureKey: pk.jwk})
	if code != 200 || !sb.DispatchTarget || sb.AuthenticatorID == "" {
		t.Fatalf("register: %d %+v", code, sb)
	}
	if s := c.status(st); s != cloudapi.StatusSucceeded {
		t.Fatalf("enrol status %s", s)
	}
	// The account is bound: the device key reads its inbox.
	body, hdr := pk.request(t, d.kid())
	var r deviceapi.InboxesResponse
	if code := c.do("POST", deviceapi.PathInboxes, hdr, body, &r); code != 200 || len(r.Unknown) != 0 {
		t.Fatalf("inboxes: %d %+v", code, r)
	}
	doc, err := c.srv.Export(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if a := doc.Users[0].Authenticators[0]; a.Name != "phone" || a.DeviceID != pk.id {
		t.Fatalf("authenticator %+v, want the target's name and device id", a)
	}

	// Without a target, the answer says none was registered.
	d2 := newDevice()
	p, _ = c.enroll("bob")
	c.redeem(p, &req)
	if code, sb := c.postUAF(deviceapi.PathRegistration, d2.regResponse(t, req)); code != 200 || sb.DispatchTarget {
		t.Fatalf("register without a target: %d %+v", code, sb)
	}
	body, hdr = pk.request(t, d2.kid())
	r = deviceapi.InboxesResponse{}
	if code := c.do("POST", deviceapi.PathInboxes, hdr, body, &r); code != 200 || len(r.Unknown) != 1 {
		t.Fatalf("an account registered without a target: %d %+v", code, r)
	}
}
