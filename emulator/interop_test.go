package emulator_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/uaf"
)

// TestApproveAnyAuthenticator: authenticatorId "*" pushes to every
// authenticator of the user; the first answer wins and the others' inbox
// items are withdrawn (their tokens then refused).
func TestApproveAnyAuthenticator(t *testing.T) {
	c := newCloud(t)
	d1, d2 := newDevice(), newDevice()
	c.enrolled(d1, "dora")
	c.enrolled(d2, "dora")
	ap := c.approve(cloudapi.ApprovalRequest{Username: "dora", AuthenticatorID: "*", Prompt: true, Message: "Sign in?"})
	m1, m2 := c.inbox(d1), c.inbox(d2)
	if len(m1) != 1 || len(m2) != 1 || m1[0].Payload == m2[0].Payload {
		t.Fatalf("inboxes %+v %+v", m1, m2)
	}
	p2, _ := dispatch.Decode([]byte(m2[0].Payload))
	var req uaf.AuthenticationRequest
	c.redeem(p2, &req)
	if !req.Policy.Matches(deviceapi.Describe(d2.aaid, d2.kid())) || req.Policy.Matches(deviceapi.Describe(d1.aaid, d1.kid())) {
		t.Fatalf("policy of d2's request %+v", req.Policy)
	}
	if n := len(c.inbox(d1)); n != 1 {
		t.Fatalf("d1's item withdrawn before anyone answered (%d left)", n)
	}
	// d1 cannot answer d2's request with its own key.
	if code, sb := c.postUAF(deviceapi.PathAuthentication, d1.authResponse(t, req, 0, "Sign in?")); code == 200 {
		t.Fatalf("d1 answered d2's request: %+v", sb)
	}
	if code, sb := c.postUAF(deviceapi.PathAuthentication, d2.authResponse(t, req, 0, "Sign in?")); code != 200 {
		t.Fatalf("d2 answers: %d %+v", code, sb)
	}
	if s := c.status(ap.StatusToken); s != cloudapi.StatusSucceeded {
		t.Fatalf("status %s", s)
	}
	if n := len(c.inbox(d1)); n != 0 {
		t.Fatalf("d1's item not withdrawn after d2 answered (%d left)", n)
	}
	p1, _ := dispatch.Decode([]byte(m1[0].Payload))
	var rr deviceapi.RedeemResponse
	u, _ := url.Parse(p1.RedeemURL)
	if code := c.do("POST", u.Path, nil, mustJSON(deviceapi.RedeemRequest{Token: p1.Token}), &rr); code != 410 {
		t.Fatalf("d1 redeems after the answer: %d %+v", code, rr)
	}

	// Without authenticatorId: the last registered one only.
	c.approve(cloudapi.ApprovalRequest{Username: "dora"})
	if n1, n2 := len(c.inbox(d1)), len(c.inbox(d2)); n1 != 0 || n2 != 1 {
		t.Fatalf("default target: inboxes %d %d", n1, n2)
	}
}

// TestApprovalCredentialsFirst: without valid credentials an approval for an
// unknown user is 401, like one for a known user (no username enumeration).
func TestApprovalCredentialsFirst(t *testing.T) {
	c := newCloud(t)
	c.enrolled(newDevice(), "erin")
	for _, auth := range []map[string]string{nil, {"Authorization": "Bearer wrong"}} {
		for _, user := range []string{"erin", "nobody"} {
			if code := c.do("POST", cloudapi.PathApproval, auth, mustJSON(cloudapi.ApprovalRequest{Username: user}), nil); code != 401 {
				t.Errorf("approval for %s with %v: %d, want 401", user, auth, code)
			}
		}
	}
	if code := c.do("POST", cloudapi.PathApproval, backendAuth, mustJSON(cloudapi.ApprovalRequest{Username: "nobody"}), nil); code != 404 {
		t.Errorf("authorised approval for an unknown user: %d, want 404", code)
	}
	if code := c.do("POST", cloudapi.PathApproval, backendAuth, []byte(`{"username":"erin","prompt":"yes"}`), nil); code != 400 {
		t.Errorf("prompt as a string: %d, want 400", code)
	}
	var eb cloudapi.ErrorBody
	if code := c.do("POST", cloudapi.PathApproval, backendAuth, []byte(`{"username":"erin","prompt":true}`), &eb); code != 400 || !strings.Contains(eb.Message, "give the message") {
		t.Errorf("prompt without a message: %d %+v, want 400", code, eb)
	}
}

// TestTrustedFacets: the trusted facet list is served at the appID URL with
// its content type; a response from an untrusted facet gets UAF 1496 and
// changes nothing, so the honest answer still succeeds.
func TestTrustedFacets(t *testing.T) {
	c := newCloud(t, emulator.WithTrustedFacets("android:apk-key-hash:Zm9vYmFy", deviceapi.DefaultFacetID))
	resp, err := http.Get(c.url + deviceapi.PathFacets)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		TrustedFacets []struct {
			Version uaf.Version `json:"version"`
			IDs     []string    `json:"ids"`
		} `json:"trustedFacets"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.Header.Get("Content-Type") != deviceapi.ContentTypeTrustedFacets ||
		len(list.TrustedFacets) != 2 || !slices.Contains(list.TrustedFacets[1].IDs, "android:apk-key-hash:Zm9vYmFy") {
		t.Fatalf("facet list %s %+v %v", resp.Header.Get("Content-Type"), list, err)
	}
	p, st := c.enroll("frank")
	var req uaf.RegistrationRequest
	c.redeem(p, &req)
	if req.Header.AppID != c.url+deviceapi.PathFacets {
		t.Fatalf("appID %s", req.Header.AppID)
	}
	d := newDevice()
	evil := *d
	evil.facet = "https://evil.example"
	if code, sb := c.postUAF(deviceapi.PathRegistration, evil.regResponse(t, req)); code == 200 || sb.StatusCode != deviceapi.StatusUntrustedFacet || !strings.Contains(sb.Description, "untrusted facet") {
		t.Fatalf("untrusted facet: %d %+v", code, sb)
	}
	if s := c.status(st); s != cloudapi.StatusPending {
		t.Fatalf("status after an untrusted facet: %s", s)
	}
	d.facet = "android:apk-key-hash:Zm9vYmFy" // the same key from a configured facet
	if code, sb := c.postUAF(deviceapi.PathRegistration, d.regResponse(t, req)); code != 200 {
		t.Fatalf("trusted facet: %d %+v", code, sb)
	}
	var u cloudapi.User
	if c.do("GET", "/api/v1/users?username=frank", backendAuth, nil, &u); len(u.Authenticators) != 1 || u.Authenticators[0].Type != "android" {
		t.Fatalf("authenticator type after an Android facet: %+v", u.Authenticators)
	}
	if _, err := emulator.New(emulator.WithTrustedFacets("authphone:cli")); !errors.Is(err, uaf.ErrFacetID) {
		t.Fatalf("a malformed trusted facet: %v", err)
	}
}

// TestRegistrationDisallowsExistingKeys: a second enrolment of a user asks
// with the user's key disallowed by AAID and keyID, as UAF servers do; the
// phone's policy matching lets a new key of that AAID register, and the
// cloud still refuses the old key a second time.
func TestRegistrationDisallowsExistingKeys(t *testing.T) {
	c := newCloud(t)
	d1, d2 := newDevice(), newDevice()
	c.enrolled(d1, "hank")
	p, st := c.enroll("hank")
	var req uaf.RegistrationRequest
	c.redeem(p, &req)
	if len(req.Policy.Disallowed) != 1 || !slices.Equal(req.Policy.Disallowed[0].KeyIDs, []string{d1.kid()}) ||
		!slices.Equal(req.Policy.Disallowed[0].AAID, []string{d1.aaid}) {
		t.Fatalf("disallowed %+v, want hank's key %s", req.Policy.Disallowed, d1.kid())
	}
	if !req.Policy.Accepts(deviceapi.Describe(d2.aaid, "")) || req.Policy.Matches(deviceapi.Describe(d1.aaid, d1.kid())) {
		t.Fatalf("policy %+v: a new key must match, hank's key must not", req.Policy)
	}
	if code, sb := c.postUAF(deviceapi.PathRegistration, d1.regResponse(t, req)); code == 200 || sb.StatusCode != deviceapi.StatusUnacceptableKey {
		t.Fatalf("the disallowed key again: %d %+v", code, sb)
	}
	if code, sb := c.postUAF(deviceapi.PathRegistration, d2.regResponse(t, req)); code != 200 {
		t.Fatalf("a second key: %d %+v", code, sb)
	}
	if s := c.status(st); s != cloudapi.StatusSucceeded {
		t.Fatalf("status %s", s)
	}

	// The user as the public API reference shows it: each authenticator
	// with enrolledAt and updatedAt.
	var u struct {
		Authenticators []map[string]any `json:"authenticators"`
	}
	c.do("GET", "/api/v1/users?username=hank", backendAuth, nil, &u)
	if len(u.Authenticators) != 2 {
		t.Fatalf("authenticators %+v", u.Authenticators)
	}
	for _, a := range u.Authenticators {
		for _, k := range []string{"authenticatorId", "name", "type", "authenticatorType", "state", "enrolledAt", "updatedAt"} {
			if _, ok := a[k]; !ok {
				t.Errorf("authenticator without %s: %v", k, a)
			}
		}
	}
}

// TestRegistrationPolicyOption: a cloud configured with a policy that wants
// DER signatures sends it (with the user's keys disallowed) and refuses a
// raw-signing authenticator with UAF 1492, changing nothing; the same key
// signing in DER registers and logs in.
func TestRegistrationPolicyOption(t *testing.T) {
	var pol uaf.Policy
	if err := json.Unmarshal([]byte(`{"accepted":[[{"aaid":["F1D0#0001"],"authenticationAlgorithms":[2]}]]}`), &pol); err != nil {
		t.Fatal(err)
	}
	c := newCloud(t, emulator.WithRegistrationPolicy(pol))
	p, st := c.enroll("ivan")
	var req uaf.RegistrationRequest
	c.redeem(p, &req)
	if len(req.Policy.Accepted) != 1 || !slices.Equal(req.Policy.Accepted[0][0].AuthenticationAlgorithms, []uint16{2}) {
		t.Fatalf("policy sent %+v", req.Policy)
	}
	d := newDevice()
	if code, sb := c.postUAF(deviceapi.PathRegistration, d.regResponse(t, req)); code == 200 || sb.StatusCode != deviceapi.StatusUnacceptableAuthn {
		t.Fatalf("raw signatures under a DER policy: %d %+v", code, sb)
	}
	if s := c.status(st); s != cloudapi.StatusPending {
		t.Fatalf("status after the refusal: %s", s)
	}
	d.alg = uaf.AlgSecp256r1SHA256DER
	if code, sb := c.postUAF(deviceapi.PathRegistration, d.regResponse(t, req)); code != 200 {
		t.Fatalf("DER registration: %d %+v", code, sb)
	}
	ap := c.approve(cloudapi.ApprovalRequest{Username: "ivan"})
	m, _ := dispatch.Decode([]byte(c.inbox(d)[0].Payload))
	var areq uaf.AuthenticationRequest
	c.redeem(m, &areq)
	if code, sb := c.postUAF(deviceapi.PathAuthentication, d.authResponse(t, areq, 0, "")); code != 200 {
		t.Fatalf("DER authentication: %d %+v", code, sb)
	}
	if s := c.status(ap.StatusToken); s != cloudapi.StatusSucceeded {
		t.Fatalf("login status %s", s)
	}
}

// TestIntentChannels: an intent token limited to channels (the public API
// reference's "channels") is refused, unconsumed, on another channel, and
// works on its own; an unknown channel is a 400.
func TestIntentChannels(t *testing.T) {
	c := newCloud(t)
	c.enrolled(newDevice(), "jane")
	intent := func(op string, channels ...string) map[string]string {
		var r cloudapi.IntentResponse
		if code := c.do("POST", cloudapi.PathIntent, backendAuth, mustJSON(cloudapi.IntentRequest{Username: "jane", Operation: op, Channels: channels}), &r); code != 200 {
			t.Fatalf("intent %s %v: %d", op, channels, code)
		}
		return map[string]string{"Authorization": "Bearer " + r.Token}
	}
	tok := intent("approve", "app")
	var eb cloudapi.ErrorBody
	if code := c.do("POST", cloudapi.PathApproval, tok, mustJSON(cloudapi.ApprovalRequest{Username: "jane"}), &eb); code != 403 || !strings.Contains(eb.Message, `not "push"`) {
		t.Fatalf("app-only intent on push: %d %+v", code, eb)
	}
	if code := c.do("POST", cloudapi.PathApproval, tok, mustJSON(cloudapi.ApprovalRequest{Username: "jane", Channel: "app"}), nil); code != 200 {
		t.Fatalf("app-only intent on app (not consumed by the refusal): %d", code)
	}
	if code := c.do("POST", cloudapi.PathEnroll, intent("enroll", "sms"), mustJSON(cloudapi.EnrollRequest{Username: "jane"}), nil); code != 403 {
		t.Fatalf("sms-only enroll intent on app: %d", code)
	}
	if code := c.do("POST", cloudapi.PathEnroll, intent("enroll", "push", "app"), mustJSON(cloudapi.EnrollRequest{Username: "jane"}), nil); code != 201 {
		t.Fatalf("enroll intent for app and push: %d", code)
	}
	if code := c.do("POST", cloudapi.PathApproval, intent("approve"), mustJSON(cloudapi.ApprovalRequest{Username: "jane"}), nil); code != 200 {
		t.Fatalf("intent without channels: %d", code)
	}
	if code := c.do("POST", cloudapi.PathIntent, backendAuth, mustJSON(cloudapi.IntentRequest{Username: "jane", Operation: "approve", Channels: []string{"fax"}}), &eb); code != 400 || !strings.Contains(eb.Message, `"fax"`) {
		t.Fatalf("unknown channel: %d %+v", code, eb)
	}
}
