package emulator_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
)

// TestAdvanceClock: moving the clock past a TTL expires the operation at
// once (reason expired) and answers a waiting long-poll; the HTTP call is
// refused unless the emulator allows it, and the clock never goes back.
func TestAdvanceClock(t *testing.T) {
	c := newCloud(t, emulator.WithClockControl()) // enrolments live 5 minutes
	_, st := c.enroll("alice")
	polled := make(chan cloudapi.StatusResponse, 1)
	go func() {
		var r cloudapi.StatusResponse
		c.do("POST", cloudapi.PathStatus+"?wait=1m", nil, mustJSON(cloudapi.StatusRequest{StatusToken: st}), &r)
		polled <- r
	}()
	var clk cloudapi.ClockResponse
	if code := c.do("POST", cloudapi.PathClock, backendAuth, mustJSON(cloudapi.ClockRequest{Advance: "6m"}), &clk); code != 200 || clk.Offset != "6m0s" {
		t.Fatalf("advance: %d %+v", code, clk)
	}
	if d := clk.Now.Sub(time.Now()); d < 5*time.Minute || d > 7*time.Minute {
		t.Fatalf("clock after advancing 6m is %v ahead", d)
	}
	select {
	case r := <-polled:
		if r.Status != cloudapi.StatusFailed || r.Reason != cloudapi.ReasonExpired {
			t.Fatalf("long-poll answered %+v", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the long-poll did not answer when the clock passed the TTL")
	}
	if code := c.do("POST", cloudapi.PathClock, backendAuth, mustJSON(cloudapi.ClockRequest{Advance: "-1s"}), nil); code != http.StatusBadRequest {
		t.Fatalf("negative advance: %d", code)
	}
	if code := c.do("POST", cloudapi.PathClock, nil, mustJSON(cloudapi.ClockRequest{Advance: "1s"}), nil); code != http.StatusUnauthorized {
		t.Fatalf("no access key: %d", code)
	}
	if _, err := c.srv.AdvanceClock(-time.Second); !errors.Is(err, emulator.ErrClockBackwards) {
		t.Fatalf("AdvanceClock(-1s): %v", err)
	}

	fixed := newCloud(t)
	if code := fixed.do("POST", cloudapi.PathClock, backendAuth, mustJSON(cloudapi.ClockRequest{Advance: "1s"}), nil); code != http.StatusForbidden {
		t.Fatalf("advance without WithClockControl: %d", code)
	}
	if code := fixed.do("GET", cloudapi.PathClock, backendAuth, nil, &clk); code != 200 || clk.Offset != "0s" {
		t.Fatalf("read the clock: %d %+v", code, clk)
	}
}

// TestAdvanceClockKeepsDevicesWorking: after the cloud's clock moved well
// past a signature's age, a device signing with real time is still accepted
// (its freshness is checked against the unmoved clock), and its nonce still
// cannot be replayed.
func TestAdvanceClockKeepsDevicesWorking(t *testing.T) {
	c := newCloud(t, emulator.WithClockControl())
	d := newDevice()
	c.enrolled(d, "alice")
	if _, err := c.srv.AdvanceClock(10 * time.Minute); err != nil {
		t.Fatal(err)
	}
	hdr := d.sign(t, "GET", deviceapi.PathInbox, nil, time.Now())
	if code := c.do("GET", deviceapi.PathInbox, hdr, nil, nil); code != 200 {
		t.Fatalf("inbox after advancing 10m: %d", code)
	}
	if _, err := c.srv.Sweep(context.Background()); err != nil { // the nonce is kept in moved time
		t.Fatal(err)
	}
	if code := c.do("GET", deviceapi.PathInbox, hdr, nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("replayed signature after advancing: %d", code)
	}
}
