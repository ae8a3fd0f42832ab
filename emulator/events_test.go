package emulator_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/authphone/authphone/sdk/uaf"
)

// events reads the log after since through the admin API.
func (c *cloud) events(since int64) adminapi.EventsResponse {
	c.t.Helper()
	var out adminapi.EventsResponse
	if code := c.do("GET", fmt.Sprintf("%s?since=%d", adminapi.PathEvents, since), backendAuth, nil, &out); code != 200 {
		c.t.Fatalf("events: HTTP %d", code)
	}
	return out
}

func types(evs []adminapi.Event) string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return strings.Join(out, " ")
}

// TestEventLogOfAFlow: an enrolment, an approval with a forged answer
// refused and then the honest one, and an approval left to expire, each
// appear in the log, in order, with who and why.
func TestEventLogOfAFlow(t *testing.T) {
	var offset atomic.Int64
	c := newCloud(t, emulator.WithClock(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }))
	d := newDevice()
	c.enrolled(d, "ann")
	ap := c.approve(cloudapi.ApprovalRequest{Username: "ann", Message: "Pay 10 EUR"})
	p, _ := dispatch.Decode([]byte(c.inbox(d)[0].Payload))
	var req uaf.AuthenticationRequest
	c.redeem(p, &req)
	forged := newDevice()
	forged.keyID = d.keyID
	if code, _ := c.postUAF(deviceapi.PathAuthentication, forged.authResponse(t, req, 1, "Pay 10 EUR")); code < 400 {
		t.Fatalf("forged answer: %d", code)
	}
	if code, sb := c.postUAF(deviceapi.PathAuthentication, d.authResponse(t, req, 1, "Pay 10 EUR")); code != 200 {
		t.Fatalf("answer: %d %+v", code, sb)
	}
	log := c.events(0)
	want := "enroll.created enroll.succeeded authenticator.registered approval.created request.refused approval.succeeded"
	if got := types(log.Events); got != want {
		t.Fatalf("log:\n got %s\nwant %s", got, want)
	}
	for i, e := range log.Events {
		if e.ID != int64(i+1) {
			t.Fatalf("event %d has ID %d", i, e.ID)
		}
	}
	if log.LastID != int64(len(log.Events)) {
		t.Fatalf("lastId %d", log.LastID)
	}
	refused, ok := log.Events[4], log.Events[5]
	if refused.Reason == "" || refused.Data["path"] != deviceapi.PathAuthentication || refused.Data["status"] == "" {
		t.Fatalf("refusal without its reason: %+v", refused)
	}
	if ok.Username != "ann" || ok.OperationID != ap.TransactionID || ok.Status != cloudapi.StatusSucceeded || ok.AuthenticatorID == "" {
		t.Fatalf("approval event: %+v", ok)
	}

	// An approval nobody answers expires when the clock passes its TTL.
	ap2 := c.approve(cloudapi.ApprovalRequest{Username: "ann"})
	offset.Add(int64(3 * time.Minute))
	tail := c.events(log.LastID)
	if got := types(tail.Events); got != "approval.created approval.expired" {
		t.Fatalf("tail: %s", got)
	}
	if e := tail.Events[1]; e.OperationID != ap2.TransactionID || e.Reason != cloudapi.ReasonExpired {
		t.Fatalf("expiry event: %+v", e)
	}
	if s := c.status(ap2.StatusToken); s != cloudapi.StatusFailed {
		t.Fatalf("expired approval reads %s", s)
	}
}

// TestEventLogWaitAndErrors: ?wait= returns as soon as an event is logged;
// bad input is one clear 400; no access key is a 401.
func TestEventLogWaitAndErrors(t *testing.T) {
	c := newCloud(t)
	got := make(chan adminapi.EventsResponse, 1)
	go func() {
		var out adminapi.EventsResponse
		c.do("GET", adminapi.PathEvents+"?since=0&wait=30s", backendAuth, nil, &out)
		got <- out
	}()
	waitLongPolls(t, c.srv, 1) // the wait has begun: the event wakes it
	c.enroll("bo")
	select {
	case out := <-got:
		if types(out.Events) != "enroll.created" {
			t.Fatalf("woken with %+v", out)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the wait did not end when an event was logged")
	}
	for _, q := range []string{"since=-1", "since=x", "limit=0", "limit=1001", "wait=forever"} {
		var eb cloudapi.ErrorBody
		if code := c.do("GET", adminapi.PathEvents+"?"+q, backendAuth, nil, &eb); code != 400 || eb.Message == "" {
			t.Errorf("%s: HTTP %d %+v", q, code, eb)
		}
	}
	if code := c.do("GET", adminapi.PathEvents, nil, nil, nil); code != 401 {
		t.Fatalf("no access key: %d", code)
	}
}

// TestEventLogAcrossReplicas: two emulators on one PostgreSQL database
// keep one log: a wait on B ends when A logs, and both read the same IDs.
func TestEventLogAcrossReplicas(t *testing.T) {
	rs := replicas(t, 2)
	a, b := rs[0], rs[1]
	got := make(chan adminapi.EventsResponse, 1)
	go func() {
		var out adminapi.EventsResponse
		b.do("GET", adminapi.PathEvents+"?since=0&wait=30s", backendAuth, nil, &out)
		got <- out
	}()
	waitLongPolls(t, b.srv, 1)
	a.enroll("cy")
	select {
	case out := <-got:
		if types(out.Events) != "enroll.created" || out.Events[0].ID != 1 {
			t.Fatalf("B woken with %+v", out)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("B's wait did not end when A logged")
	}
	b.enroll("dee")
	la, lb := a.events(0), b.events(0)
	if types(la.Events) != "enroll.created enroll.created" || fmt.Sprint(la) != fmt.Sprint(lb) {
		t.Fatalf("A reads %+v, B reads %+v", la, lb)
	}
}

// TestWebhooksAcrossReplicas: two replicas started with the same webhook
// deliver each event once between them, signed.
func TestWebhooksAcrossReplicas(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts, _ := strconv.ParseInt(r.Header.Get(adminapi.HeaderTimestamp), 10, 64)
		if r.Header.Get(adminapi.HeaderSignature) != adminapi.Sign("k", time.Unix(ts, 0), body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		seen[r.Header.Get(adminapi.HeaderEventID)]++
		mu.Unlock()
	}))
	defer hook.Close()
	rs := replicas(t, 2, emulator.WithWebhook(hook.URL, "k"))
	for i := range 6 {
		rs[i%2].enroll(fmt.Sprintf("u%d", i))
	}
	// Every delivery is logged too: wait for both.
	delivered := 0
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		delivered = 0
		for _, e := range rs[0].events(0).Events {
			if e.Type == adminapi.EventWebhookDelivered {
				delivered++
			}
		}
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == 6 && delivered == 6 {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
	if len(seen) != 6 || delivered != 6 {
		t.Fatalf("delivered %v; %d in the log", seen, delivered)
	}
}

// TestEventLogOfTokensAndData: a sign-in with a trusted device logs the
// login request and the tokens issued; a refresh, a revocation and a
// reused refresh token (which revokes its chain) are logged with why; a
// getData call is logged as relayed.
func TestEventLogOfTokensAndData(t *testing.T) {
	c := newCloud(t)
	d := newDevice()
	c.enrolled(d, "ann")
	start := c.events(0).LastID
	tok := c.signIn(t, d, "ann")
	var refreshed trustapi.RefreshResponse
	if code := c.form(trustapi.PathOAuthToken, nil, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, &refreshed); code != 200 {
		t.Fatalf("refresh: %d", code)
	}
	if code := c.form(trustapi.PathOAuthToken, nil, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, nil); code != 400 {
		t.Fatalf("reused refresh token: %d", code)
	}
	other := c.signIn(t, d, "ann")
	if code := c.form(trustapi.PathOAuthRevoke, nil, url.Values{"token": {other.AccessToken}}, nil); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	body := []byte(`{"hello":"data"}`)
	if code := c.do("POST", deviceapi.PathData, d.sign(t, "POST", deviceapi.PathData, body, time.Now()), body, nil); code != 200 {
		t.Fatalf("getData: %d", code)
	}
	log := c.events(start)
	want := "login.created login.approved token.issued token.refreshed token.revoked " +
		"login.created login.approved token.issued token.revoked data.relayed"
	if got := types(log.Events); got != want {
		t.Fatalf("log:\n got %s\nwant %s", got, want)
	}
	byType := map[string][]adminapi.Event{}
	for _, e := range log.Events {
		byType[e.Type] = append(byType[e.Type], e)
	}
	if e := byType["token.issued"][0]; e.Username != "ann" || e.Data["chain"] == "" {
		t.Fatalf("token.issued %+v", e)
	}
	if r := byType["token.revoked"]; r[0].Reason != "a used refresh token came back" || r[1].Reason != "revoked by the client" {
		t.Fatalf("revocations %+v", r)
	}
	if e := byType["data.relayed"][0]; e.AuthenticatorID == "" || e.Data["service"] != "builtin" || e.Data["bytes"] != fmt.Sprint(len(body)) {
		t.Fatalf("data.relayed %+v", e)
	}
}
