package emulator_test

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/devsig"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/uaf"
)

// read asks for the inboxes of ds with one request signed by pk; with
// deliver, for each approval's UAF request too.
func (pk *phoneKey) read(c *cloud, deliver bool, ds ...*device) []deviceapi.InboxMessage {
	c.t.Helper()
	var kids []string
	for _, d := range ds {
		kids = append(kids, d.kid())
	}
	body := mustJSON(deviceapi.InboxesRequest{DeviceKey: pk.jwk, KeyIDs: kids, UAF: deliver})
	h, err := devsig.Sign(pk.key, pk.id, "POST", deviceapi.PathInboxes, body, time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	hdr := map[string]string{devsig.HeaderName: h}
	var r deviceapi.InboxesResponse
	if code := c.do("POST", deviceapi.PathInboxes, hdr, body, &r); code != 200 {
		c.t.Fatalf("inboxes: %d", code)
	}
	return r.Messages
}

// bound enrols a device for username and binds it to pk.
func (c *cloud) bound(pk *phoneKey, username string) *device {
	c.t.Helper()
	d := newDevice()
	c.enrolled(d, username)
	if code := c.bind(d, pk, pk.id); code != 200 {
		c.t.Fatalf("bind: %d", code)
	}
	return d
}

// delivered reads d's one message with its UAF request.
func (pk *phoneKey) delivered(c *cloud, d *device) (deviceapi.InboxMessage, uaf.AuthenticationRequest) {
	c.t.Helper()
	msgs := pk.read(c, true, d)
	if len(msgs) != 1 || msgs[0].UAF == nil {
		c.t.Fatalf("want one message with its UAF request: %+v", msgs)
	}
	m := msgs[0]
	if m.UAF.StatusCode != deviceapi.StatusOK || m.UAF.Op != "Auth" || m.UAF.LifetimeMillis <= 0 {
		c.t.Fatalf("delivered %+v", m.UAF)
	}
	var req uaf.AuthenticationRequest
	if err := uaf.Decode(m.UAF.UAFRequest, &req); err != nil {
		c.t.Fatal(err)
	}
	return m, req
}

func payloadOf(t *testing.T, m deviceapi.InboxMessage) dispatch.Payload {
	p, err := dispatch.Decode([]byte(m.Payload))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestInboxDeliversTheUAFRequest: asked for, the inbox answer carries the
// request a redeem would answer; the phone answers it without the redeem,
// once. A lost answer read again gives the same request; the token is
// then spent: a redeem, a replay, a decline are refused.
func TestInboxDeliversTheUAFRequest(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testInboxDelivers(t, newCloud(t)) })
	t.Run("sqlite", func(t *testing.T) { testInboxDelivers(t, sqliteCloud(t)) })
}

// sqliteCloud is a cloud on a SQLite file.
func sqliteCloud(t *testing.T) *cloud {
	st, err := emulator.OpenSQLite(filepath.Join(t.TempDir(), "cloud.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return newCloud(t, emulator.WithStore(st))
}

func testInboxDelivers(t *testing.T, c *cloud) {
	pk := newPhoneKey(t)
	d := c.bound(pk, "alice")
	ap := c.approve(cloudapi.ApprovalRequest{Username: "alice", Message: "Pay <b>5</b> EUR"})

	// An older phone does not ask: nothing is prepared for it.
	if msgs := pk.read(c, false, d); len(msgs) != 1 || msgs[0].UAF != nil {
		t.Fatalf("not asked for: %+v", msgs)
	}
	m, req := pk.delivered(c, d)
	if len(req.Transaction) != 1 || !req.Policy.Matches(deviceapi.Describe(d.aaid, d.kid())) || req.Header.Op != uaf.OpAuth {
		t.Fatalf("request %+v", req)
	}
	if text, _ := uaf.B64.DecodeString(req.Transaction[0].Content); string(text) != "Pay <b>5</b> EUR" {
		t.Fatalf("transaction text %q", text)
	}
	// The answer was lost: the same request again, the operation pending.
	if m2, again := pk.delivered(c, d); again.Header.ServerData != req.Header.ServerData || again.Challenge != req.Challenge || m2.ID != m.ID {
		t.Fatalf("read again: %+v, first %+v", again.Header, req.Header)
	}
	if s := c.status(ap.StatusToken); s != cloudapi.StatusPending {
		t.Fatalf("delivery changed the approval: %s", s)
	}
	d.counter++
	resp := d.authResponse(t, req, d.counter, "Pay <b>5</b> EUR")
	if code, sb := c.postUAF(deviceapi.PathAuthentication, resp); code != 200 {
		t.Fatalf("answer: %d %+v", code, sb)
	}
	if s := c.status(ap.StatusToken); s != cloudapi.StatusSucceeded {
		t.Fatalf("status %s", s)
	}
	if code, sb := c.postUAF(deviceapi.PathAuthentication, resp); code == 200 || sb.StatusCode != deviceapi.StatusRequestInvalid {
		t.Fatalf("replay: %d %+v", code, sb)
	}
	var sb deviceapi.StatusBody
	if code := c.do("POST", deviceapi.PathRedeem+"authentication", nil, mustJSON(deviceapi.RedeemRequest{Token: payloadOf(t, m).Token}), &sb); code != 410 || !strings.Contains(sb.Description, "already redeemed") {
		t.Fatalf("redeem after the answer: %d %+v", code, sb)
	}
	if msgs := pk.read(c, true, d); len(msgs) != 0 {
		t.Fatalf("inbox after the answer: %+v", msgs)
	}
}

// TestRedeemWithdrawsTheDeliveredRequest: a scan of the token (the spec's
// redeem) spends it: the delivered request is refused, the redeemed one
// answers.
func TestRedeemWithdrawsTheDeliveredRequest(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testRedeemWithdraws(t, newCloud(t)) })
	t.Run("sqlite", func(t *testing.T) { testRedeemWithdraws(t, sqliteCloud(t)) })
}

func testRedeemWithdraws(t *testing.T, c *cloud) {
	pk := newPhoneKey(t)
	d := c.bound(pk, "alice")
	ap := c.approve(cloudapi.ApprovalRequest{Username: "alice"})
	m, delivered := pk.delivered(c, d)
	var redeemed uaf.AuthenticationRequest
	c.redeem(payloadOf(t, m), &redeemed)
	if redeemed.Header.ServerData == delivered.Header.ServerData {
		t.Fatal("the redeem handed out the delivered request")
	}
	d.counter++
	if code, sb := c.postUAF(deviceapi.PathAuthentication, d.authResponse(t, delivered, d.counter, "")); code == 200 || sb.StatusCode != deviceapi.StatusRequestInvalid {
		t.Fatalf("delivered after a redeem: %d %+v", code, sb)
	}
	if code, sb := c.postUAF(deviceapi.PathAuthentication, d.authResponse(t, redeemed, d.counter, "")); code != 200 {
		t.Fatalf("redeemed: %d %+v", code, sb)
	}
	if s := c.status(ap.StatusToken); s != cloudapi.StatusSucceeded {
		t.Fatalf("status %s", s)
	}
}

// TestDeliveredRequestRaces: two answers at once — the delivered request's
// and a redeem's, or the same delivered answer twice — one wins, and the
// token is spent once.
func TestDeliveredRequestRaces(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testDeliveredRaces(t, newCloud(t)) })
	t.Run("sqlite", func(t *testing.T) { testDeliveredRaces(t, sqliteCloud(t)) })
}

func testDeliveredRaces(t *testing.T, c *cloud) {
	pk := newPhoneKey(t)
	d := c.bound(pk, "alice")
	for i := range 10 {
		ap := c.approve(cloudapi.ApprovalRequest{Username: "alice"})
		m, req := pk.delivered(c, d)
		d.counter++
		delivered := d.authResponse(t, req, d.counter, "")
		var wg sync.WaitGroup
		codes := make([]int, 3)
		for j := range 2 { // the same answer twice
			wg.Go(func() { codes[j], _ = c.postUAF(deviceapi.PathAuthentication, delivered) })
		}
		wg.Go(func() { // a scan of the same token, answered
			var rr deviceapi.RedeemResponse
			if code := c.do("POST", deviceapi.PathRedeem+"authentication", nil, mustJSON(deviceapi.RedeemRequest{Token: payloadOf(t, m).Token}), &rr); code != 200 {
				codes[2] = code
				return
			}
			var r uaf.AuthenticationRequest
			if err := uaf.Decode(rr.UAFRequest, &r); err != nil {
				t.Error(err)
				return
			}
			codes[2], _ = c.postUAF(deviceapi.PathAuthentication, d.authResponse(t, r, d.counter+1, ""))
		})
		wg.Wait()
		d.counter++
		won := 0
		for _, code := range codes {
			if code == 200 {
				won++
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d answers won (%v), want 1", i, won, codes)
		}
		if s := c.status(ap.StatusToken); s != cloudapi.StatusSucceeded {
			t.Fatalf("round %d: status %s", i, s)
		}
	}
}

// TestDeliveredRequestDeclinedOrWrongKey: a decline spends the token (the
// delivered request is then refused); another key cannot answer a
// delivered request, which the right one still can.
func TestDeliveredRequestDeclinedOrWrongKey(t *testing.T) {
	c := newCloud(t)
	pk := newPhoneKey(t)
	d := c.bound(pk, "alice")
	ap := c.approve(cloudapi.ApprovalRequest{Username: "alice"})
	m, req := pk.delivered(c, d)
	body := mustJSON(deviceapi.DeclineRequest{Token: payloadOf(t, m).Token})
	if code := c.do("POST", deviceapi.PathDecline, d.sign(t, "POST", deviceapi.PathDecline, body, time.Now()), body, nil); code != 200 {
		t.Fatalf("decline: %d", code)
	}
	if s := c.status(ap.StatusToken); s != cloudapi.StatusFailed {
		t.Fatalf("status %s", s)
	}
	d.counter++
	if code, sb := c.postUAF(deviceapi.PathAuthentication, d.authResponse(t, req, d.counter, "")); code == 200 || sb.StatusCode != deviceapi.StatusRequestInvalid {
		t.Fatalf("answer after the decline: %d %+v", code, sb)
	}

	// Another user's key, registered with this cloud.
	mallory := c.bound(pk, "mallory")
	ap = c.approve(cloudapi.ApprovalRequest{Username: "alice"})
	_, req = pk.delivered(c, d)
	mallory.counter++
	if code, sb := c.postUAF(deviceapi.PathAuthentication, mallory.authResponse(t, req, mallory.counter, "")); code == 200 {
		t.Fatalf("another key answered: %d %+v", code, sb)
	}
	if s := c.status(ap.StatusToken); s != cloudapi.StatusPending {
		t.Fatalf("a refused answer changed the approval: %s", s)
	}
	if code, sb := c.postUAF(deviceapi.PathAuthentication, d.authResponse(t, req, d.counter+1, "")); code != 200 {
		t.Fatalf("the right key: %d %+v", code, sb)
	}
}

// TestDeliveredRequestExpires: a delivered request past its lifetime is
// refused and the approval stays pending; the next read delivers a new one.
// A token past its operation's expiry gets none.
func TestDeliveredRequestExpires(t *testing.T) {
	c := newCloud(t, emulator.WithClockControl(), emulator.WithApprovalTTL(10*time.Minute))
	pk := newPhoneKey(t)
	d := c.bound(pk, "alice")
	ap := c.approve(cloudapi.ApprovalRequest{Username: "alice"})
	_, old := pk.delivered(c, d)
	if _, err := c.srv.AdvanceClock(3 * time.Minute); err != nil { // a UAF request lives 2 minutes
		t.Fatal(err)
	}
	d.counter++
	if code, sb := c.postUAF(deviceapi.PathAuthentication, d.authResponse(t, old, d.counter, "")); code == 200 || !strings.Contains(sb.Description, "expired") {
		t.Fatalf("expired request: %d %+v", code, sb)
	}
	_, fresh := pk.delivered(c, d)
	if fresh.Header.ServerData == old.Header.ServerData || fresh.Challenge == old.Challenge {
		t.Fatal("an expired request was delivered again")
	}
	if code, sb := c.postUAF(deviceapi.PathAuthentication, d.authResponse(t, fresh, d.counter, "")); code != 200 {
		t.Fatalf("fresh request: %d %+v", code, sb)
	}
	if s := c.status(ap.StatusToken); s != cloudapi.StatusSucceeded {
		t.Fatalf("status %s", s)
	}

	ap = c.approve(cloudapi.ApprovalRequest{Username: "alice"})
	if _, err := c.srv.AdvanceClock(11 * time.Minute); err != nil {
		t.Fatal(err)
	}
	if msgs := pk.read(c, true, d); len(msgs) != 0 {
		t.Fatalf("an expired approval delivered: %+v", msgs)
	}
}

// TestDeliveredToEachOfTheUsersDevices: an approval any of the user's
// devices may answer delivers one request to each; the first answer wins,
// the other device's is refused.
func TestDeliveredToEachOfTheUsersDevices(t *testing.T) {
	c := newCloud(t)
	pk1, pk2 := newPhoneKey(t), newPhoneKey(t)
	d1 := c.bound(pk1, "alice")
	// A second device of alice, on its own phone.
	d2 := c.bound(pk2, "alice")
	ap := c.approve(cloudapi.ApprovalRequest{Username: "alice", AuthenticatorID: emulator.AnyAuthenticator})
	_, r1 := pk1.delivered(c, d1)
	_, r2 := pk2.delivered(c, d2)
	if r1.Header.ServerData == r2.Header.ServerData || !r2.Policy.Matches(deviceapi.Describe(d2.aaid, d2.kid())) || r2.Policy.Matches(deviceapi.Describe(d1.aaid, d1.kid())) {
		t.Fatalf("requests %+v / %+v", r1, r2)
	}
	d2.counter++
	if code, sb := c.postUAF(deviceapi.PathAuthentication, d2.authResponse(t, r2, d2.counter, "")); code != 200 {
		t.Fatalf("second device answers: %d %+v", code, sb)
	}
	d1.counter++
	if code, sb := c.postUAF(deviceapi.PathAuthentication, d1.authResponse(t, r1, d1.counter, "")); code == 200 || sb.StatusCode != deviceapi.StatusRequestInvalid {
		t.Fatalf("first device after the second: %d %+v", code, sb)
	}
	if s := c.status(ap.StatusToken); s != cloudapi.StatusSucceeded {
		t.Fatalf("status %s", s)
	}
}
