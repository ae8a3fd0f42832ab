package emulator_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/uaf"
)

// numberAnswer posts an authentication response with the number picked in
// its context (0: none).
func (c *cloud) numberAnswer(r uaf.Response, number int) (int, deviceapi.StatusBody) {
	c.t.Helper()
	msg, _ := uaf.Encode(r)
	body := deviceapi.UAFBody{UAFResponse: msg}
	if number != 0 {
		body.Context = mustJSON(deviceapi.AuthContext{Number: number})
	}
	var sb deviceapi.StatusBody
	code := c.do("POST", deviceapi.PathAuthentication, nil, mustJSON(body), &sb)
	return code, sb
}

// redeemChoices redeems a pushed approval and returns its request and the
// numbers it offers.
func (c *cloud) redeemChoices(d *device) (uaf.AuthenticationRequest, []int) {
	c.t.Helper()
	msgs := c.inbox(d)
	if len(msgs) != 1 {
		c.t.Fatalf("inbox %+v", msgs)
	}
	p, _ := dispatch.Decode([]byte(msgs[0].Payload))
	var rr deviceapi.RedeemResponse
	if code := c.do("POST", deviceapi.PathRedeem+"authentication", nil, mustJSON(deviceapi.RedeemRequest{Token: p.Token}), &rr); code != 200 {
		c.t.Fatalf("redeem: %d", code)
	}
	if !slices.Equal(rr.NumberChoices, msgs[0].NumberChoices) {
		c.t.Fatalf("redeem offers %v, the inbox %v", rr.NumberChoices, msgs[0].NumberChoices)
	}
	var req uaf.AuthenticationRequest
	if err := uaf.Decode(rr.UAFRequest, &req); err != nil {
		c.t.Fatal(err)
	}
	return req, rr.NumberChoices
}

func statusOf(c *cloud, st string) cloudapi.StatusResponse {
	c.t.Helper()
	var r cloudapi.StatusResponse
	c.do("POST", cloudapi.PathStatus, nil, mustJSON(cloudapi.StatusRequest{StatusToken: st}), &r)
	return r
}

func TestNumberMatching(t *testing.T) {
	c := newCloud(t)
	d := newDevice()
	c.enrolled(d, "nina")

	// The right number approves; the choices are three distinct two-digit
	// numbers with the right one among them.
	ap := c.approve(cloudapi.ApprovalRequest{Username: "nina", NumberMatching: true})
	if ap.Number < 10 || ap.Number > 99 {
		t.Fatalf("number %d is not two digits", ap.Number)
	}
	req, choices := c.redeemChoices(d)
	if len(choices) != 3 || !slices.Contains(choices, ap.Number) || len(slices.Compact(slices.Sorted(slices.Values(choices)))) != 3 {
		t.Fatalf("choices %v for %d", choices, ap.Number)
	}
	d.counter++
	if code, sb := c.numberAnswer(d.authResponse(t, req, d.counter, ""), 0); code != 400 || !strings.Contains(sb.Description, "number matching") {
		t.Fatalf("no number: %d %+v", code, sb)
	}
	if st := statusOf(c, ap.StatusToken); st.Status != cloudapi.StatusPending {
		t.Fatalf("an answer without a number changed the approval: %+v", st)
	}
	if code, sb := c.numberAnswer(d.authResponse(t, req, d.counter, ""), ap.Number); code != 200 {
		t.Fatalf("right number: %d %+v", code, sb)
	}
	if st := statusOf(c, ap.StatusToken); st.Status != cloudapi.StatusSucceeded {
		t.Fatalf("status %+v", st)
	}

	// A wrong number fails the approval like a denial; a replay of the
	// same answer with the right number is then refused.
	ap = c.approve(cloudapi.ApprovalRequest{Username: "nina", NumberMatching: true})
	req, choices = c.redeemChoices(d)
	wrong := choices[0]
	if wrong == ap.Number {
		wrong = choices[1]
	}
	d.counter++
	resp := d.authResponse(t, req, d.counter, "")
	code, sb := c.numberAnswer(resp, wrong)
	if code != 403 || !strings.HasPrefix(sb.Description, deviceapi.WrongNumber) || strings.Contains(sb.Description, ": "+itoa(ap.Number)) {
		t.Fatalf("wrong number: %d %+v", code, sb)
	}
	if st := statusOf(c, ap.StatusToken); st.Status != cloudapi.StatusFailed || st.Reason != cloudapi.ReasonWrongNumber {
		t.Fatalf("status %+v", st)
	}
	if code, _ := c.numberAnswer(resp, ap.Number); code == 200 {
		t.Fatal("a second guess was accepted")
	}
	if !hasEvent(t, c, func(e adminapi.Event) bool {
		return e.Type == "approval.failed" && e.OperationID == ap.TransactionID && e.Reason == cloudapi.ReasonWrongNumber
	}) {
		t.Fatal("the event log has no approval.failed with reason wrong number")
	}

	// Without numberMatching there is no number and no choices.
	ap = c.approve(cloudapi.ApprovalRequest{Username: "nina"})
	if _, choices = c.redeemChoices(d); ap.Number != 0 || choices != nil {
		t.Fatalf("plain approval: number %d, choices %v", ap.Number, choices)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestChaos(t *testing.T) {
	c := newCloud(t, emulator.WithChaos(cloudapi.Chaos{ErrorRate: 1}))
	var eb cloudapi.ErrorBody
	if code := c.do("GET", cloudapi.PathPing, backendAuth, nil, &eb); code != 503 || !strings.Contains(eb.Message, "chaos") {
		t.Fatalf("error-rate 1: %d %+v", code, eb)
	}
	var sb deviceapi.StatusBody
	if code := c.do("POST", deviceapi.PathRedeem+"authentication", nil, mustJSON(deviceapi.RedeemRequest{Token: "x"}), &sb); code != 503 || sb.StatusCode != deviceapi.StatusInternal {
		t.Fatalf("device API under chaos: %d %+v", code, sb)
	}

	// The admin API is spared, needs the access key, and checks ranges.
	var got cloudapi.Chaos
	if code := c.do("GET", cloudapi.PathAdminChaos, backendAuth, nil, &got); code != 200 || got.ErrorRate != 1 {
		t.Fatalf("read chaos: %d %+v", code, got)
	}
	if code := c.do("GET", cloudapi.PathAdminChaos, nil, nil, &eb); code != 401 {
		t.Fatalf("chaos without the access key: %d", code)
	}
	for _, body := range []string{`{"errorRate":1.5}`, `{"latency":"-1s"}`, `{"latency":"soon"}`, `{"dropPush":-0.1}`} {
		eb = cloudapi.ErrorBody{}
		if code := c.do("PUT", cloudapi.PathAdminChaos, backendAuth, []byte(body), &eb); code != 400 || eb.Status != 400 || eb.Message == "" {
			t.Errorf("PUT %s: %d %+v", body, code, eb)
		}
	}
	if c.srv.Chaos().ErrorRate != 1 {
		t.Fatal("a refused PUT changed the chaos")
	}

	// Lost pushes: the approval exists, its push does not.
	if code := c.do("PUT", cloudapi.PathAdminChaos, backendAuth, []byte(`{"dropPush":1}`), &got); code != 200 || got != (cloudapi.Chaos{DropPush: 1}) {
		t.Fatalf("set drop-push: %d %+v", code, got)
	}
	d := newDevice()
	c.enrolled(d, "otto")
	ap := c.approve(cloudapi.ApprovalRequest{Username: "otto"})
	if msgs := c.inbox(d); len(msgs) != 0 {
		t.Fatalf("a dropped push arrived: %+v", msgs)
	}
	if st := statusOf(c, ap.StatusToken); st.Status != cloudapi.StatusPending {
		t.Fatalf("status %+v", st)
	}
	if !hasEvent(t, c, func(e adminapi.Event) bool {
		return e.Type == adminapi.EventPushDropped && e.OperationID == ap.TransactionID && e.AuthenticatorID != ""
	}) {
		t.Fatal("the event log has no chaos.push-dropped")
	}
	if !hasEvent(t, c, func(e adminapi.Event) bool {
		return e.Type == adminapi.EventRequestRefused && strings.Contains(e.Reason, "chaos") && e.Data["status"] == "503"
	}) {
		t.Fatal("the event log has no request.refused for a chaos 503")
	}

	// Latency: every answer comes at least that late.
	if err := c.srv.SetChaos(cloudapi.Chaos{Latency: 150 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if code := c.do("GET", cloudapi.PathPing, backendAuth, nil, nil); code != 200 {
		t.Fatalf("ping with latency: %d", code)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("ping answered after %s, before the latency", d)
	}
	if err := c.srv.SetChaos(cloudapi.Chaos{ErrorRate: 2}); err == nil {
		t.Fatal("SetChaos took an error rate of 2")
	}
}

func TestParseChaos(t *testing.T) {
	c, err := cloudapi.ParseChaos("latency=200ms, error-rate=0.05,drop-push=0.1")
	if err != nil || c != (cloudapi.Chaos{Latency: 200 * time.Millisecond, ErrorRate: 0.05, DropPush: 0.1}) {
		t.Fatalf("%+v %v", c, err)
	}
	if back, err := cloudapi.ParseChaos(c.String()); err != nil || back != c {
		t.Fatalf("round trip %q: %+v %v", c.String(), back, err)
	}
	if off, err := cloudapi.ParseChaos("off"); err != nil || off.On() || off.String() != "off" {
		t.Fatalf("off: %+v %v", off, err)
	}
	for _, bad := range []string{"latency", "latency=2m", "error-rate=x", "drop-push=1.1", "jitter=1"} {
		if _, err := cloudapi.ParseChaos(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

// hasEvent reports whether the event log holds an event ok accepts.
func hasEvent(t *testing.T, c *cloud, ok func(adminapi.Event) bool) bool {
	t.Helper()
	evs, _, err := c.srv.Events(context.Background(), 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(evs, ok)
}
