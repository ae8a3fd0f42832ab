package emulator_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/devsig"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// phoneKey is a phone's device key, which its accounts bind their push
// targets to.
type phoneKey struct {
	key *ecdsa.PrivateKey
	id  string
	jwk json.RawMessage
}

func newPhoneKey(t testing.TB) *phoneKey {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id, err := deviceapi.DeviceKeyID(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	jk, _ := jwk.Import(&k.PublicKey)
	b, _ := json.Marshal(jk)
	return &phoneKey{key: k, id: id, jwk: b}
}

// bind registers d's push target with the phone key pk (signed by d).
func (c *cloud) bind(d *device, pk *phoneKey, deviceID string) int {
	c.t.Helper()
	body := mustJSON(deviceapi.DispatchTarget{Name: "phone", DeviceID: deviceID, Dispatcher: "inbox", SignatureKey: pk.jwk})
	return c.do("POST", deviceapi.PathDispatchTargets, d.sign(c.t, "POST", deviceapi.PathDispatchTargets, body, time.Now()), body, nil)
}

func (pk *phoneKey) request(t *testing.T, keyIDs ...string) ([]byte, map[string]string) {
	body := mustJSON(deviceapi.InboxesRequest{DeviceKey: pk.jwk, KeyIDs: keyIDs})
	h, err := devsig.Sign(pk.key, pk.id, "POST", deviceapi.PathInboxes, body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return body, map[string]string{devsig.HeaderName: h}
}

func TestInboxesSignedOnceForEveryAccount(t *testing.T) {
	c := newCloud(t)
	pk := newPhoneKey(t)
	d1, d2, loose := newDevice(), newDevice(), newDevice()
	c.enrolled(d1, "alice")
	c.enrolled(d2, "bob")
	c.enrolled(loose, "carol")
	if code := c.bind(d1, pk, "not-its-thumbprint"); code != 400 {
		t.Fatalf("a device key under another id: %d, want 400", code)
	}
	for _, d := range []*device{d1, d2} {
		if code := c.bind(d, pk, pk.id); code != 200 {
			t.Fatalf("bind: %d", code)
		}
	}

	// An account not bound to the key is answered as unknown, at once.
	body, hdr := pk.request(t, d1.kid(), d2.kid(), loose.kid())
	var r deviceapi.InboxesResponse
	t0 := time.Now()
	if code := c.do("POST", deviceapi.PathInboxes+"?wait=20s", hdr, body, &r); code != 200 {
		t.Fatalf("inboxes: %d", code)
	}
	if len(r.Messages) != 0 || len(r.Unknown) != 1 || r.Unknown[0] != loose.kid() || time.Since(t0) > 15*time.Second {
		t.Fatalf("%+v", r)
	}
	// The same signature again is a replay.
	if code := c.do("POST", deviceapi.PathInboxes, hdr, body, nil); code != 401 {
		t.Fatalf("replay: %d", code)
	}

	// One long-poll for both accounts wakes on an approval for either.
	c.approve(cloudapi.ApprovalRequest{Username: "bob", Message: "for bob"})
	body, hdr = pk.request(t, d1.kid(), d2.kid())
	r = deviceapi.InboxesResponse{}
	if code := c.do("POST", deviceapi.PathInboxes, hdr, body, &r); code != 200 || len(r.Messages) != 1 || r.Messages[0].KeyID != d2.kid() || r.Messages[0].Message != "for bob" {
		t.Fatalf("%d %+v", code, r)
	}
	done := make(chan deviceapi.InboxesResponse, 1)
	go func() {
		// bob's request is still pending: ask for alice's inbox alone.
		body, hdr := pk.request(t, d1.kid())
		var r deviceapi.InboxesResponse
		c.do("POST", deviceapi.PathInboxes+"?wait=60s", hdr, body, &r)
		done <- r
	}()
	// Whether the approval lands before or during the long-poll, it is answered.
	c.approve(cloudapi.ApprovalRequest{Username: "alice", Message: "for alice"})
	select {
	case r := <-done:
		if len(r.Messages) != 1 || r.Messages[0].KeyID != d1.kid() {
			t.Fatalf("%+v", r)
		}
	case <-time.After(50 * time.Second):
		t.Fatal("the long-poll was not woken")
	}
}

func TestInboxesRejectsBadRequests(t *testing.T) {
	c := newCloud(t)
	pk, other := newPhoneKey(t), newPhoneKey(t)
	d := newDevice()
	c.enrolled(d, "alice")
	if code := c.bind(d, pk, pk.id); code != 200 {
		t.Fatalf("bind: %d", code)
	}
	check := func(name string, body []byte, hdr map[string]string, want int, says string) {
		t.Helper()
		var sb deviceapi.StatusBody
		if code := c.do("POST", deviceapi.PathInboxes, hdr, body, &sb); code != want || !strings.Contains(sb.Description, says) {
			t.Errorf("%s: %d %q, want %d %q", name, code, sb.Description, want, says)
		}
	}
	body, _ := pk.request(t, d.kid())
	_, otherHdr := other.request(t, d.kid())
	check("signed by another key", body, otherHdr, 401, "deviceKey of the body")
	check("no signature", body, nil, 401, "Device-Signature")
	_, hdr := pk.request(t, d.kid())
	tampered := mustJSON(deviceapi.InboxesRequest{DeviceKey: pk.jwk, KeyIDs: []string{d.kid(), "x"}})
	check("body changed after signing", tampered, hdr, 401, "")
	// The account's own key cannot stand in for the device key.
	h, _ := devsig.Sign(d.key, d.kid(), "POST", deviceapi.PathInboxes, body, time.Now())
	check("signed by the account key", body, map[string]string{devsig.HeaderName: h}, 401, "deviceKey of the body")
	// Another phone's key reads nothing of this account.
	body, hdr = other.request(t, d.kid())
	var r deviceapi.InboxesResponse
	if code := c.do("POST", deviceapi.PathInboxes, hdr, body, &r); code != 200 || len(r.Unknown) != 1 {
		t.Errorf("another phone's key: %d %+v", code, r)
	}
	body, hdr = pk.request(t)
	check("no accounts", body, hdr, 400, "keyIds must name 1 to")
	many := make([]string, deviceapi.MaxInboxKeys+1)
	for i := range many {
		many[i] = d.kid()
	}
	body, hdr = pk.request(t, many...)
	check("too many accounts", body, hdr, 400, "keyIds must name 1 to")
	bad := mustJSON(map[string]any{"deviceKey": map[string]string{"kty": "oct", "k": "AAAA"}, "keyIds": []string{d.kid()}})
	check("not an EC key", bad, hdr, 400, "deviceKey")
	check("not JSON", []byte("{"), hdr, 400, "")
}
