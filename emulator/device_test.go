package emulator_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/devsig"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/authphone/authphone/sdk/uaf"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// cloud is an emulator on loopback plus raw HTTP helpers: the tests speak
// the wire formats directly, so they can forge what a phone never would.
type cloud struct {
	t   testing.TB
	srv *emulator.Server
	url string
}

// waitLongPolls waits (up to 20 s) until s holds n long-polls, so a test
// acts on a request that is surely waiting, however slow the machine.
func waitLongPolls(t testing.TB, s *emulator.Server, n int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); s.LongPolls() < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d long-polls waiting after 20s, want %d", s.LongPolls(), n)
		}
	}
}

func newCloud(t *testing.T, opts ...emulator.Option) *cloud {
	t.Helper()
	s, err := emulator.New(append([]emulator.Option{emulator.WithAccessKey("test-key")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return &cloud{t: t, srv: s, url: s.URL()}
}

// do sends a request and decodes the JSON answer into out (if not nil).
func (c *cloud) do(method, path string, hdr map[string]string, body []byte, out any) int {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.url+path, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

var backendAuth = map[string]string{"Authorization": "Bearer test-key"}

func (c *cloud) enroll(username string) (dispatch.Payload, string) {
	c.t.Helper()
	var u cloudapi.User
	if code := c.do("POST", cloudapi.PathEnroll, backendAuth, mustJSON(cloudapi.EnrollRequest{Username: username}), &u); code != 201 {
		c.t.Fatalf("enroll: %d", code)
	}
	p, err := dispatch.Decode([]byte(u.Enrollment.AppLinkURI))
	if err != nil {
		c.t.Fatal(err)
	}
	return p, u.Enrollment.StatusToken
}

func (c *cloud) status(st string) string {
	c.t.Helper()
	var r cloudapi.StatusResponse
	c.do("POST", cloudapi.PathStatus, nil, mustJSON(cloudapi.StatusRequest{StatusToken: st}), &r)
	return r.Status
}

// redeem returns the UAF request of a dispatch token.
func (c *cloud) redeem(p dispatch.Payload, out any) {
	c.t.Helper()
	var rr deviceapi.RedeemResponse
	u, _ := url.Parse(p.RedeemURL) // the public URL may name a proxy
	path := u.Path
	if code := c.do("POST", path, nil, mustJSON(deviceapi.RedeemRequest{Token: p.Token}), &rr); code != 200 {
		c.t.Fatalf("redeem: %d", code)
	}
	if err := uaf.Decode(rr.UAFRequest, out); err != nil {
		c.t.Fatal(err)
	}
}

// postUAF posts a UAF response and returns the HTTP status and UAF code.
func (c *cloud) postUAF(path string, r uaf.Response) (int, deviceapi.StatusBody) {
	c.t.Helper()
	msg, _ := uaf.Encode(r)
	var sb deviceapi.StatusBody
	code := c.do("POST", path, nil, mustJSON(deviceapi.UAFBody{UAFResponse: msg}), &sb)
	return code, sb
}

// device is a minimal authenticator built from the wire packages.
type device struct {
	key     *ecdsa.PrivateKey
	keyID   []byte
	aaid    string
	counter uint32
	facet   string // the facet ID in fcParams; "" is deviceapi.DefaultFacetID
	alg     uint16 // signature algorithm; 0 is raw
}

func newDevice() *device {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	return &device{key: k, keyID: id, aaid: deviceapi.AAIDPIN}
}

func (d *device) kid() string { return uaf.B64.EncodeToString(d.keyID) }

func (d *device) fcParams(h uaf.Header, challenge string) string {
	facet := d.facet
	if facet == "" {
		facet = deviceapi.DefaultFacetID
	}
	return uaf.EncodeFCParams(uaf.FinalChallengeParams{AppID: h.AppID, Challenge: challenge, FacetID: facet})
}

func (d *device) regResponse(t testing.TB, req uaf.RegistrationRequest) uaf.Response {
	fc := d.fcParams(req.Header, req.Challenge)
	a, err := uaf.BuildRegAssertion(d.key, uaf.KRD{AAID: d.aaid, Mode: 1, FinalChallenge: uaf.FinalChallenge(fc), KeyID: d.keyID, SignCounter: d.counter, SignAlg: d.alg})
	if err != nil {
		t.Fatal(err)
	}
	h := req.Header
	return uaf.Response{Header: uaf.Header{UPV: uaf.V1_1, Op: uaf.OpReg, AppID: h.AppID, ServerData: h.ServerData}, FCParams: fc,
		Assertions: []uaf.Assertion{{AssertionScheme: uaf.SchemeTLV, Assertion: uaf.B64.EncodeToString(a)}}}
}

func (d *device) authResponse(t testing.TB, req uaf.AuthenticationRequest, counter uint32, text string) uaf.Response {
	fc := d.fcParams(req.Header, req.Challenge)
	var th []byte
	if text != "" {
		th, _ = uaf.TransactionHash([]uaf.Transaction{{Content: uaf.B64.EncodeToString([]byte(text))}})
	}
	a, err := uaf.BuildAuthAssertion(d.key, uaf.SignedData{AAID: d.aaid, Mode: 1, FinalChallenge: uaf.FinalChallenge(fc),
		TransactionHash: th, KeyID: d.keyID, SignCounter: counter, SignAlg: d.alg})
	if err != nil {
		t.Fatal(err)
	}
	h := req.Header
	return uaf.Response{Header: uaf.Header{UPV: uaf.V1_1, Op: uaf.OpAuth, AppID: h.AppID, ServerData: h.ServerData}, FCParams: fc,
		Assertions: []uaf.Assertion{{AssertionScheme: uaf.SchemeTLV, Assertion: uaf.B64.EncodeToString(a)}}}
}

func (d *device) sign(t testing.TB, method, path string, body []byte, at time.Time) map[string]string {
	h, err := devsig.Sign(d.key, d.kid(), method, path, body, at)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{devsig.HeaderName: h}
}

// enrolled registers d for username and returns it.
func (c *cloud) enrolled(d *device, username string) {
	c.t.Helper()
	p, st := c.enroll(username)
	var req uaf.RegistrationRequest
	c.redeem(p, &req)
	if code, sb := c.postUAF(deviceapi.PathRegistration, d.regResponse(c.t, req)); code != 200 {
		c.t.Fatalf("register: %d %+v", code, sb)
	}
	if s := c.status(st); s != cloudapi.StatusSucceeded {
		c.t.Fatalf("enrol status %s", s)
	}
}

func TestRegistrationChecks(t *testing.T) {
	c := newCloud(t)
	p, st := c.enroll("alice")
	var req uaf.RegistrationRequest
	c.redeem(p, &req)
	if req.Username != "alice" || !req.Policy.Accepts(deviceapi.Describe(deviceapi.AAIDPIN, "")) || req.Policy.Accepts(deviceapi.Describe(deviceapi.AAIDHeadless, "")) {
		t.Fatalf("registration request %+v", req)
	}
	d := newDevice()
	good := d.regResponse(t, req)

	// A forged attestation signature.
	forged := good
	raw, _ := uaf.B64.DecodeString(good.Assertions[0].Assertion)
	bad := bytes.Clone(raw)
	bad[len(bad)-1] ^= 1
	forged.Assertions = []uaf.Assertion{{AssertionScheme: uaf.SchemeTLV, Assertion: uaf.B64.EncodeToString(bad)}}
	// Another challenge than the cloud's.
	wrongChallenge := d.regResponse(t, uaf.RegistrationRequest{Header: req.Header, Challenge: "AAAAAAAAAAAAAAAA"})
	// An AAID the policy does not accept.
	headless := newDevice()
	headless.aaid = deviceapi.AAIDHeadless
	// serverData the cloud never issued.
	unknown := good
	unknown.Header.ServerData = "made-up"

	for _, tc := range []struct {
		name string
		r    uaf.Response
		want int
	}{
		{"forged signature", forged, deviceapi.StatusUnacceptableAttest},
		{"wrong challenge", wrongChallenge, deviceapi.StatusRequestInvalid},
		{"unacceptable AAID", headless.regResponse(t, req), deviceapi.StatusUnacceptableAuthn},
		{"unknown serverData", unknown, deviceapi.StatusRequestInvalid},
	} {
		code, sb := c.postUAF(deviceapi.PathRegistration, tc.r)
		if code < 400 || sb.StatusCode != tc.want {
			t.Errorf("%s: HTTP %d UAF %d (%s), want UAF %d", tc.name, code, sb.StatusCode, sb.Description, tc.want)
		}
		if s := c.status(st); s != cloudapi.StatusPending {
			t.Fatalf("%s changed the enrolment to %s", tc.name, s)
		}
	}
	// The honest response still works, once.
	if code, sb := c.postUAF(deviceapi.PathRegistration, good); code != 200 || sb.UserID == "" {
		t.Fatalf("honest registration: %d %+v", code, sb)
	}
	if code, sb := c.postUAF(deviceapi.PathRegistration, good); code == 200 || sb.StatusCode != deviceapi.StatusRequestInvalid {
		t.Fatalf("replayed registration: %d %+v", code, sb)
	}
	// The same key for a second enrolment: a keyID registers once.
	p2, _ := c.enroll("alice")
	var req2 uaf.RegistrationRequest
	c.redeem(p2, &req2)
	if code, sb := c.postUAF(deviceapi.PathRegistration, d.regResponse(t, req2)); code == 200 || sb.StatusCode != deviceapi.StatusUnacceptableKey {
		t.Fatalf("keyID twice: %d %+v", code, sb)
	}
}

func (c *cloud) approve(req cloudapi.ApprovalRequest) cloudapi.ApprovalResponse {
	c.t.Helper()
	var ap cloudapi.ApprovalResponse
	if code := c.do("POST", cloudapi.PathApproval, backendAuth, mustJSON(req), &ap); code != 200 {
		c.t.Fatalf("approval: %d", code)
	}
	return ap
}

// inbox reads d's inbox with a fresh signature.
func (c *cloud) inbox(d *device) []deviceapi.InboxMessage {
	c.t.Helper()
	var msgs []deviceapi.InboxMessage
	if code := c.do("GET", deviceapi.PathInbox, d.sign(c.t, "GET", deviceapi.PathInbox, nil, time.Now()), nil, &msgs); code != 200 {
		c.t.Fatalf("inbox: %d", code)
	}
	return msgs
}

func TestAuthenticationChecks(t *testing.T) {
	c := newCloud(t)
	d := newDevice()
	d.counter = 1 // registers with a counter in use
	c.enrolled(d, "bob")
	ap := c.approve(cloudapi.ApprovalRequest{Username: "bob", Message: "Pay 10 EUR"})
	msgs := c.inbox(d)
	if len(msgs) != 1 || msgs[0].Message != "Pay 10 EUR" {
		t.Fatalf("inbox %+v", msgs)
	}
	p, _ := dispatch.Decode([]byte(msgs[0].Payload))
	var req uaf.AuthenticationRequest
	c.redeem(p, &req)
	if len(req.Transaction) != 1 || !req.Policy.Matches(deviceapi.Describe(d.aaid, d.kid())) {
		t.Fatalf("authentication request %+v", req)
	}
	other := newDevice()
	other.keyID = d.keyID // same keyID, another key: a forged signature
	elsewhere := *d
	elsewhere.facet = "https://evil.example" // the right key, an untrusted facet
	for _, tc := range []struct {
		name string
		r    uaf.Response
		want int
	}{
		{"forged signature", other.authResponse(t, req, 2, "Pay 10 EUR"), deviceapi.StatusBadRequest},
		{"counter did not grow", d.authResponse(t, req, 1, "Pay 10 EUR"), deviceapi.StatusRequestInvalid},
		{"untrusted facet", elsewhere.authResponse(t, req, 2, "Pay 10 EUR"), deviceapi.StatusUntrustedFacet},
		{"counter back to zero", d.authResponse(t, req, 0, "Pay 10 EUR"), deviceapi.StatusRequestInvalid},
		{"other transaction text", d.authResponse(t, req, 2, "Pay 10000 EUR"), deviceapi.StatusUnacceptableContent},
		{"no transaction hash", d.authResponse(t, req, 2, ""), deviceapi.StatusUnacceptableContent},
	} {
		code, sb := c.postUAF(deviceapi.PathAuthentication, tc.r)
		if code < 400 || sb.StatusCode != tc.want {
			t.Errorf("%s: HTTP %d UAF %d (%s), want UAF %d", tc.name, code, sb.StatusCode, sb.Description, tc.want)
		}
		if s := c.status(ap.StatusToken); s != cloudapi.StatusPending {
			t.Fatalf("%s changed the approval to %s", tc.name, s)
		}
	}
	good := d.authResponse(t, req, 2, "Pay 10 EUR")
	if code, sb := c.postUAF(deviceapi.PathAuthentication, good); code != 200 {
		t.Fatalf("honest authentication: %d %+v", code, sb)
	}
	if s := c.status(ap.StatusToken); s != cloudapi.StatusSucceeded {
		t.Fatalf("status %s", s)
	}
	if code, sb := c.postUAF(deviceapi.PathAuthentication, good); code == 200 || sb.StatusCode != deviceapi.StatusRequestInvalid {
		t.Fatalf("replayed assertion: %d %+v", code, sb)
	}

	// A cloned authenticator: a new approval answered with a used counter.
	c.approve(cloudapi.ApprovalRequest{Username: "bob"})
	p, _ = dispatch.Decode([]byte(c.inbox(d)[0].Payload))
	c.redeem(p, &req)
	if code, sb := c.postUAF(deviceapi.PathAuthentication, d.authResponse(t, req, 2, "")); code == 200 || !strings.Contains(sb.Description, "counter") {
		t.Fatalf("repeated counter: %d %+v", code, sb)
	}
	if code, _ := c.postUAF(deviceapi.PathAuthentication, d.authResponse(t, req, 3, "")); code != 200 {
		t.Fatalf("growing counter refused: %d", code)
	}
}

// TestCounterlessAuthenticator: an authenticator without a signature counter
// (a hand-built assertion whose counter is always 0) registers and logs in
// twice; once it has used a counter, 0 is refused again.
func TestCounterlessAuthenticator(t *testing.T) {
	c := newCloud(t)
	d := newDevice() // counter 0 in the registration
	c.enrolled(d, "carol")
	login := func(counter uint32) (int, deviceapi.StatusBody, string) {
		ap := c.approve(cloudapi.ApprovalRequest{Username: "carol"})
		msgs := c.inbox(d)
		if len(msgs) != 1 {
			t.Fatalf("inbox %+v", msgs)
		}
		p, _ := dispatch.Decode([]byte(msgs[0].Payload))
		var req uaf.AuthenticationRequest
		c.redeem(p, &req)
		code, sb := c.postUAF(deviceapi.PathAuthentication, d.authResponse(t, req, counter, ""))
		return code, sb, c.status(ap.StatusToken)
	}
	for i := range 2 {
		if code, sb, st := login(0); code != 200 || st != cloudapi.StatusSucceeded {
			t.Fatalf("counter-less login %d: HTTP %d %+v, status %s", i+1, code, sb, st)
		}
	}
	if code, sb, _ := login(5); code != 200 {
		t.Fatalf("first counter in use: %d %+v", code, sb)
	}
	if code, sb, st := login(0); code == 200 || sb.StatusCode != deviceapi.StatusRequestInvalid || st != cloudapi.StatusPending {
		t.Fatalf("counter 0 after 5: HTTP %d %+v, status %s", code, sb, st)
	}
}

func TestDispatchTokensAreSingleUse(t *testing.T) {
	c := newCloud(t, emulator.WithEnrollTTL(30*time.Second))
	p, _ := c.enroll("carol")
	path := strings.TrimPrefix(p.RedeemURL, c.url)
	var sb deviceapi.StatusBody
	if code := c.do("POST", path, nil, mustJSON(deviceapi.RedeemRequest{Token: p.Token}), nil); code != 200 {
		t.Fatalf("first redeem %d", code)
	}
	if code := c.do("POST", path, nil, mustJSON(deviceapi.RedeemRequest{Token: p.Token}), &sb); code != 410 || sb.Description != "token already redeemed" {
		t.Fatalf("second redeem %d %+v", code, sb)
	}
	if code := c.do("POST", path, nil, mustJSON(deviceapi.RedeemRequest{Token: "00000000-0000-4000-8000-000000000000"}), &sb); code != 404 {
		t.Fatalf("unknown token %d", code)
	}
	p2, st := c.enroll("carol2")
	if _, err := c.srv.AdvanceClock(31 * time.Second); err != nil {
		t.Fatal(err)
	}
	if code := c.do("POST", path, nil, mustJSON(deviceapi.RedeemRequest{Token: p2.Token}), &sb); code != 410 || sb.Description != "token expired" {
		t.Fatalf("expired redeem %d %+v", code, sb)
	}
	if s := c.status(st); s != cloudapi.StatusFailed {
		t.Fatalf("expired enrolment is %s", s)
	}
}

func TestDeviceSignatureChecks(t *testing.T) {
	c := newCloud(t)
	d := newDevice()
	c.enrolled(d, "dave")
	hdr := d.sign(t, "GET", deviceapi.PathInbox, nil, time.Now())
	if code := c.do("GET", deviceapi.PathInbox, hdr, nil, nil); code != 200 {
		t.Fatalf("signed inbox: %d", code)
	}
	if code := c.do("GET", deviceapi.PathInbox, hdr, nil, nil); code != 401 {
		t.Fatalf("replayed signature: %d", code)
	}
	if code := c.do("GET", deviceapi.PathInbox, d.sign(t, "GET", deviceapi.PathInbox, nil, time.Now().Add(-2*time.Minute)), nil, nil); code != 401 {
		t.Fatalf("stale signature: %d", code)
	}
	if code := c.do("GET", deviceapi.PathInbox, newDevice().sign(t, "GET", deviceapi.PathInbox, nil, time.Now()), nil, nil); code != 401 {
		t.Fatalf("unknown key: %d", code)
	}
	if code := c.do("GET", deviceapi.PathInbox, d.sign(t, "GET", deviceapi.PathDecline, nil, time.Now()), nil, nil); code != 401 {
		t.Fatalf("signature for another path: %d", code)
	}
	if code := c.do("GET", deviceapi.PathInbox, nil, nil, nil); code != 401 {
		t.Fatalf("no signature: %d", code)
	}
	// A decline signed by another user's device is refused.
	e := newDevice()
	c.enrolled(e, "erin")
	ap := c.approve(cloudapi.ApprovalRequest{Username: "dave"})
	p, _ := dispatch.Decode([]byte(c.inbox(d)[0].Payload))
	body := mustJSON(deviceapi.DeclineRequest{Token: p.Token})
	if code := c.do("POST", deviceapi.PathDecline, e.sign(t, "POST", deviceapi.PathDecline, body, time.Now()), body, nil); code != 403 {
		t.Fatalf("decline by another device: %d", code)
	}
	if s := c.status(ap.StatusToken); s != cloudapi.StatusPending {
		t.Fatalf("status after a refused decline: %s", s)
	}
	if code := c.do("POST", deviceapi.PathDecline, d.sign(t, "POST", deviceapi.PathDecline, body, time.Now()), body, nil); code != 200 {
		t.Fatalf("decline by its device: %d", code)
	}
	if s := c.status(ap.StatusToken); s != cloudapi.StatusFailed {
		t.Fatalf("status after decline: %s", s)
	}
}

func TestBackendAPIChecks(t *testing.T) {
	c := newCloud(t)
	d := newDevice()
	c.enrolled(d, "frank")
	big := append([]byte(`{"username":"`), bytes.Repeat([]byte("a"), 70<<10)...)
	big = append(big, `"}`...)
	var eb cloudapi.ErrorBody
	for _, tc := range []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		body   []byte
		want   int
	}{
		{"no access key", "GET", "/ping", nil, nil, 401},
		{"wrong access key", "GET", "/ping", map[string]string{"Authorization": "Bearer nope"}, nil, 401},
		{"illegal username", "POST", cloudapi.PathEnroll, backendAuth, mustJSON(cloudapi.EnrollRequest{Username: "a b"}), 400},
		{"body over 64 KiB", "POST", cloudapi.PathEnroll, backendAuth, big, 413},
		{"unknown channel", "POST", cloudapi.PathEnroll, backendAuth, mustJSON(cloudapi.EnrollRequest{Username: "x", Channel: "sms"}), 400},
		{"script tag", "POST", cloudapi.PathApproval, backendAuth, mustJSON(cloudapi.ApprovalRequest{Username: "frank", Message: "<script>"}), 400},
		{"attribute", "POST", cloudapi.PathApproval, backendAuth, mustJSON(cloudapi.ApprovalRequest{Username: "frank", Message: `<b onclick="x">hi</b>`}), 400},
		{"unknown user", "POST", cloudapi.PathApproval, backendAuth, mustJSON(cloudapi.ApprovalRequest{Username: "nobody"}), 404},
		{"no authenticator", "POST", cloudapi.PathApproval, backendAuth, mustJSON(cloudapi.ApprovalRequest{UserID: "00000000-0000-4000-8000-000000000000"}), 404},
		{"forged status token", "POST", cloudapi.PathStatus, nil, mustJSON(cloudapi.StatusRequest{StatusToken: "st.00000000-0000-4000-8000-000000000000.AAAA"}), 400},
		{"malformed status token", "POST", cloudapi.PathStatus, nil, mustJSON(cloudapi.StatusRequest{StatusToken: "hello"}), 400},
		{"wrong method", "DELETE", "/ping", backendAuth, nil, 405},
	} {
		eb = cloudapi.ErrorBody{}
		code := c.do(tc.method, tc.path, tc.hdr, tc.body, &eb)
		if code != tc.want || eb.Status != code || eb.Message == "" {
			t.Errorf("%s: %d %+v, want %d with an error body", tc.name, code, eb, tc.want)
		}
	}
	// Allowed tags pass.
	c.approve(cloudapi.ApprovalRequest{Username: "frank", Message: "<html><b>Pay</b><br/><em>10</em> <i>EUR</i> <strong>now</strong> <u>ok</u></html>"})
}

func TestIntentTokens(t *testing.T) {
	c := newCloud(t)
	d := newDevice()
	c.enrolled(d, "gina")
	c.enrolled(newDevice(), "hank")
	intent := func(username, op string) map[string]string {
		var r cloudapi.IntentResponse
		if code := c.do("POST", cloudapi.PathIntent, backendAuth, mustJSON(cloudapi.IntentRequest{Username: username, Operation: op}), &r); code != 200 {
			t.Fatalf("intent: %d", code)
		}
		return map[string]string{"Authorization": "Bearer " + r.Token}
	}
	tok := intent("gina", "approve")
	if code := c.do("POST", cloudapi.PathApproval, tok, mustJSON(cloudapi.ApprovalRequest{Username: "hank"}), nil); code != 403 {
		t.Fatalf("intent for another user: %d", code)
	}
	if code := c.do("POST", cloudapi.PathEnroll, tok, mustJSON(cloudapi.EnrollRequest{Username: "gina"}), nil); code != 403 {
		t.Fatalf("intent for another operation: %d", code)
	}
	if code := c.do("POST", cloudapi.PathApproval, tok, mustJSON(cloudapi.ApprovalRequest{Username: "gina"}), nil); code != 200 {
		t.Fatalf("intent used right: %d", code)
	}
	if code := c.do("POST", cloudapi.PathApproval, tok, mustJSON(cloudapi.ApprovalRequest{Username: "gina"}), nil); code != 403 {
		t.Fatalf("intent used twice: %d", code)
	}
	var in cloudapi.Introspection
	form := []byte("token=" + strings.TrimPrefix(tok["Authorization"], "Bearer "))
	req, _ := http.NewRequest("POST", c.url+cloudapi.PathIntrospect, bytes.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer test-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&in)
	resp.Body.Close()
	if in.Active {
		t.Fatal("a used intent token introspects as active")
	}
}

func TestAuthenticatorLimitAndRemoval(t *testing.T) {
	c := newCloud(t)
	devs := make([]*device, 10)
	for i := range devs {
		devs[i] = newDevice()
		c.enrolled(devs[i], "ivy")
	}
	var eb cloudapi.ErrorBody
	if code := c.do("POST", cloudapi.PathEnroll, backendAuth, mustJSON(cloudapi.EnrollRequest{Username: "ivy"}), &eb); code != 409 {
		t.Fatalf("11th authenticator: %d %+v", code, eb)
	}
	var u cloudapi.User
	c.do("GET", cloudapi.PathUsers+"?username=ivy", backendAuth, nil, &u)
	if len(u.Authenticators) != 10 || u.Status != cloudapi.UserActive {
		t.Fatalf("user %+v", u)
	}
	// Removing one puts a deregistration notice in its inbox.
	id := u.Authenticators[len(u.Authenticators)-1].AuthenticatorID
	if code := c.do("DELETE", cloudapi.PathAuthenticators+"/"+id, backendAuth, nil, nil); code != 204 {
		t.Fatalf("delete authenticator: %d", code)
	}
	msgs := c.inbox(devs[9])
	if len(msgs) != 1 || msgs[0].Kind != deviceapi.InboxDeregistration {
		t.Fatalf("removal notice %+v", msgs)
	}
	p, _ := dispatch.Decode([]byte(msgs[0].Payload))
	var dr uaf.DeregistrationRequest
	c.redeem(p, &dr)
	if len(dr.Authenticators) != 1 || dr.Authenticators[0].KeyID != devs[9].kid() {
		t.Fatalf("dereg request %+v", dr)
	}
	c.do("GET", cloudapi.PathUsers+"?username=ivy", backendAuth, nil, &u)
	if len(u.Authenticators) != 9 {
		t.Fatalf("after removal: %d authenticators", len(u.Authenticators))
	}
	if code := c.do("DELETE", cloudapi.PathUsers+"/"+u.UserID, backendAuth, nil, nil); code != 204 {
		t.Fatalf("delete user %d", code)
	}
	if code := c.do("GET", cloudapi.PathUsers+"/"+u.UserID, backendAuth, nil, nil); code != 404 {
		t.Fatalf("deleted user still there: %d", code)
	}
}

func TestHandlerWithoutStart(t *testing.T) {
	s, _ := emulator.New(emulator.WithAccessKey("k"))
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	req, _ := http.NewRequest("GET", ts.URL+"/ping", nil)
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "PONG" {
		t.Fatalf("ping: %s", b)
	}
}

// TestCloseEndsLongPolls: stopping the emulator answers a waiting status
// long-poll at once instead of holding shutdown for its whole wait.
func TestCloseEndsLongPolls(t *testing.T) {
	s, _ := emulator.New(emulator.WithAccessKey("test-key"))
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	c := &cloud{t: t, srv: s, url: s.URL()}
	_, st := c.enroll("alice")
	done := make(chan string, 1)
	go func() {
		var r cloudapi.StatusResponse
		c.do("POST", cloudapi.PathStatus+"?wait=30s", nil, mustJSON(cloudapi.StatusRequest{StatusToken: st}), &r)
		done <- r.Status
	}()
	waitLongPolls(t, s, 1)
	start := time.Now()
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case status := <-done:
		if status != cloudapi.StatusPending || time.Since(start) > 2*time.Second {
			t.Fatalf("long-poll answered %q after %v", status, time.Since(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the long-poll held the shutdown")
	}
}

// TestPurgedTransactionsReadUnknown: after the retention period the cloud
// forgets a transaction; its genuine status token then reads "unknown".
func TestPurgedTransactionsReadUnknown(t *testing.T) {
	var offset atomic.Int64
	c := newCloud(t, emulator.WithClock(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }))
	_, st := c.enroll("old")
	if s := c.status(st); s != cloudapi.StatusPending {
		t.Fatalf("fresh: %s", s)
	}
	offset.Store(int64(emulator.Retention + 10*time.Minute))
	if s := c.status(st); s != cloudapi.StatusFailed {
		t.Fatalf("expired: %s", s)
	}
	if n, err := c.srv.Sweep(context.Background()); err != nil || n == 0 {
		t.Fatalf("sweep removed %d (%v)", n, err)
	}
	if s := c.status(st); s != cloudapi.StatusUnknown {
		t.Fatalf("purged: %s", s)
	}
}

// TestTransactionTokenVerifies: the token of a succeeded approval, signed
// without a JOSE library, verifies with jwx against the published JWKS and
// carries the registered claims, the scope and the transaction id.
func TestTransactionTokenVerifies(t *testing.T) {
	c := newCloud(t)
	d := newDevice()
	c.enrolled(d, "erin")
	ap := c.approve(cloudapi.ApprovalRequest{Username: "erin"})
	if code, sb := c.authenticate(d, 1); code != 200 {
		t.Fatalf("authenticate: %d %+v", code, sb)
	}
	var sr cloudapi.StatusResponse
	c.do("POST", cloudapi.PathStatus, nil, mustJSON(cloudapi.StatusRequest{StatusToken: ap.StatusToken}), &sr)
	if sr.Status != cloudapi.StatusSucceeded || sr.Token == "" {
		t.Fatalf("status %+v", sr)
	}
	req, _ := http.NewRequest("GET", c.url+trustapi.PathJWKS, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	set, err := jwk.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseString(sr.Token, jwt.WithKeySet(set), jwt.WithValidate(true), jwt.WithIssuer(c.url), jwt.WithAudience("backend"))
	if err != nil {
		t.Fatalf("jwx refuses the transaction token: %v", err)
	}
	var txn, scope string
	if err := tok.Get("txn", &txn); err != nil || txn != ap.TransactionID {
		t.Errorf("txn %q (%v), want %s", txn, err, ap.TransactionID)
	}
	if err := tok.Get("scope", &scope); err != nil || scope == "" {
		t.Errorf("scope %q (%v)", scope, err)
	}
	if sub, _ := tok.Subject(); sub != c.userID("erin") {
		t.Errorf("sub %q", sub)
	}
	if jti, _ := tok.JwtID(); jti == "" {
		t.Error("no jti")
	}
	exp, _ := tok.Expiration()
	iat, _ := tok.IssuedAt()
	if d := exp.Sub(iat); d != 10*time.Minute {
		t.Errorf("exp - iat = %s", d)
	}
	if h := jwtHeader(t, sr.Token); h["typ"] != "JWT" || h["alg"] != "ES256" || h["kid"] == "" {
		t.Errorf("header %v", h)
	}
	// A flipped byte of the signature is refused.
	i := strings.LastIndexByte(sr.Token, '.') + 5
	flip := byte('A')
	if sr.Token[i] == 'A' {
		flip = 'B'
	}
	bad := sr.Token[:i] + string(flip) + sr.Token[i+1:]
	if _, err := jwt.ParseString(bad, jwt.WithKeySet(set)); err == nil {
		t.Error("a tampered transaction token verified")
	}
}
