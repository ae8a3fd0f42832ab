package emulator_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/trustapi"
)

func (c *cloud) loginRequest(identifier string) trustapi.LoginRequestCreated {
	c.t.Helper()
	var out trustapi.LoginRequestCreated
	body := mustJSON(trustapi.CreateLoginRequest{Identifier: identifier, CodeChallenge: trustapi.CodeChallenge(trustapi.NewCodeVerifier())})
	if code := c.do("POST", trustapi.PathLoginRequests, nil, body, &out); code != 201 {
		c.t.Fatalf("login request: %d", code)
	}
	return out
}

// respond answers a login request as device d; it returns the HTTP status
// and the signed headers (to replay).
func (c *cloud) respond(t *testing.T, d *device, userID, requestID string, approved bool, hdr map[string]string) (int, map[string]string, []byte) {
	ts := time.Now().Unix()
	sig, _ := trustapi.Sign(d.key, trustapi.SignedFacts(userID, requestID, trustapi.EventLogin, ts, approved))
	body := mustJSON(trustapi.Respond{Approved: approved, Timestamp: ts, Signature: sig})
	path := trustapi.PathLoginRequests + "/" + requestID + "/respond"
	if hdr == nil {
		hdr = d.sign(t, "POST", path, body, time.Now())
	}
	return c.do("POST", path, hdr, body, nil), hdr, body
}

func (c *cloud) userID(name string) string {
	var u struct{ UserID string }
	c.do("GET", "/api/v1/users?username="+name, backendAuth, nil, &u)
	return u.UserID
}

func TestLoginRequestResponses(t *testing.T) {
	c := newCloud(t, emulator.WithLoginTTL(30*time.Second))
	alice, bob := newDevice(), newDevice()
	c.enrolled(alice, "alice")
	c.enrolled(bob, "bob")
	aliceID := c.userID("alice")

	lr := c.loginRequest("alice")
	// Signed by a device of another user: refused.
	if code, _, _ := c.respond(t, bob, aliceID, lr.RequestID, true, nil); code != http.StatusForbidden {
		t.Fatalf("another user's device: %d", code)
	}
	// A signature over other facts (approved=false signed, true sent): refused.
	ts := time.Now().Unix()
	sig, _ := trustapi.Sign(alice.key, trustapi.SignedFacts(aliceID, lr.RequestID, trustapi.EventLogin, ts, false))
	body := mustJSON(trustapi.Respond{Approved: true, Timestamp: ts, Signature: sig})
	path := trustapi.PathLoginRequests + "/" + lr.RequestID + "/respond"
	if code := c.do("POST", path, alice.sign(t, "POST", path, body, time.Now()), body, nil); code != http.StatusUnauthorized {
		t.Fatalf("mismatched signature: %d", code)
	}
	// The honest approval, then its replay and a second answer.
	code, hdr, _ := c.respond(t, alice, aliceID, lr.RequestID, true, nil)
	if code != 200 {
		t.Fatalf("approval: %d", code)
	}
	if code, _, _ := c.respond(t, alice, aliceID, lr.RequestID, true, hdr); code != http.StatusUnauthorized {
		t.Fatalf("replayed approval: %d", code)
	}
	if code, _, _ := c.respond(t, alice, aliceID, lr.RequestID, false, nil); code != http.StatusConflict {
		t.Fatalf("second answer: %d", code)
	}
	// An expired request cannot be approved.
	late := c.loginRequest("alice")
	if _, err := c.srv.AdvanceClock(31 * time.Second); err != nil { // past the TTL, within a signature's age
		t.Fatal(err)
	}
	if code, _, _ := c.respond(t, alice, aliceID, late.RequestID, true, nil); code != http.StatusGone {
		t.Fatalf("expired request: %d", code)
	}
	var oe trustapi.OAuthError
	if code := c.do("POST", trustapi.PathLoginRequests+"/"+late.RequestID+"/token", nil,
		mustJSON(trustapi.PollRequest{PollToken: late.PollToken}), &oe); code != 400 || oe.Code != trustapi.ErrCodeExpired {
		t.Fatalf("expired poll: %d %+v", code, oe)
	}
	// A wrong PKCE verifier gets nothing.
	if code := c.do("POST", trustapi.PathLoginRequests+"/"+lr.RequestID+"/token", nil,
		mustJSON(trustapi.PollRequest{PollToken: lr.PollToken, CodeVerifier: "wrong"}), &oe); code != 400 || oe.Code != trustapi.ErrCodeInvalidGrant {
		t.Fatalf("wrong verifier: %d %+v", code, oe)
	}
	// A user with no trusted device: a clear conflict.
	var eb struct{ Message string }
	c.do("POST", "/api/v1/users/enroll", backendAuth, mustJSON(map[string]string{"username": "carol"}), nil)
	if code := c.do("POST", trustapi.PathLoginRequests, nil, mustJSON(trustapi.CreateLoginRequest{Identifier: "carol",
		CodeChallenge: trustapi.CodeChallenge("v")}), &eb); code != http.StatusConflict {
		t.Fatalf("no trusted device: %d %s", code, eb.Message)
	}
}

func TestDiscoveryDocument(t *testing.T) {
	c := newCloud(t)
	var d trustapi.Discovery
	if code := c.do("GET", trustapi.PathDiscovery, nil, nil, &d); code != 200 {
		t.Fatal(code)
	}
	if d.Issuer != c.url || d.JWKSURI != c.url+trustapi.PathJWKS || d.TokenEndpoint != c.url+trustapi.PathOAuthToken {
		t.Fatalf("discovery %+v", d)
	}
}
