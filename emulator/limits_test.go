package emulator_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/trustapi"
)

// closedWithin reports whether the server closes conn within d, while
// trickle (if not nil) keeps sending it a byte at a time.
func closedWithin(t *testing.T, conn net.Conn, d time.Duration, trickle string) bool {
	t.Helper()
	stop := make(chan struct{})
	defer close(stop)
	if trickle != "" {
		go func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i = (i + 1) % len(trickle) {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := conn.Write([]byte{trickle[i]}); err != nil {
					return
				}
			}
		}()
	}
	_ = conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, conn) // what the server answers, then its close
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true
}

// TestSlowClientsAreCutOff: a slow-loris client trickling its headers, one
// trickling its body and one idling on a kept-alive connection are all
// disconnected; a long-poll that outlasts the body deadline still answers.
func TestSlowClientsAreCutOff(t *testing.T) {
	c := newCloud(t, emulator.WithTimeouts(emulator.Timeouts{Header: 200 * time.Millisecond, Body: 300 * time.Millisecond, Idle: 300 * time.Millisecond}))
	addr := strings.TrimPrefix(c.url, "http://")
	// Far longer than any timeout above: a server without them would keep
	// the connection for as long as the client trickles.
	const patience = 30 * time.Second
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}

	t.Run("headers", func(t *testing.T) {
		conn := dial()
		_, _ = io.WriteString(conn, "POST "+cloudapi.PathStatus+" HTTP/1.1\r\nHost: x\r\n")
		if !closedWithin(t, conn, patience, "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n") {
			t.Fatal("a client trickling its headers was never cut off")
		}
	})
	t.Run("body", func(t *testing.T) {
		conn := dial()
		_, _ = io.WriteString(conn, "POST "+cloudapi.PathStatus+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
		if !closedWithin(t, conn, patience, "                ") {
			t.Fatal("a client trickling its body was never cut off")
		}
	})
	t.Run("idle", func(t *testing.T) {
		conn := dial()
		_, _ = io.WriteString(conn, "GET "+deviceapi.PathVersions+" HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("first request: %d, close %v", resp.StatusCode, resp.Close)
		}
		if !closedWithin(t, conn, patience, "") {
			t.Fatal("an idle kept-alive connection was never closed")
		}
	})
	t.Run("long-poll outlasts the body deadline", func(t *testing.T) {
		_, st := c.enroll("longpoll")
		var r cloudapi.StatusResponse
		code := c.do("POST", cloudapi.PathStatus+"?wait=1s", nil, mustJSON(cloudapi.StatusRequest{StatusToken: st}), &r)
		if code != 200 || r.Status != cloudapi.StatusPending {
			t.Fatalf("long-poll: %d %+v", code, r)
		}
	})
}

// TestRateLimits: unauthenticated login requests are limited per user,
// device requests per client IP, both answered 429 with Retry-After, and
// allowed again once the window has passed (on the emulator's clock).
func TestRateLimits(t *testing.T) {
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }

	t.Run("login requests per user", func(t *testing.T) {
		c := newCloud(t, emulator.WithClock(clock), emulator.WithLoginRateLimit(2, time.Minute))
		alice, bob := newDevice(), newDevice()
		c.enrolled(alice, "alice")
		c.enrolled(bob, "bob")
		c.loginRequest("alice")
		c.loginRequest("alice")
		code, hdr, msg := c.rawLoginRequest("alice")
		if code != http.StatusTooManyRequests || hdr.Get("Retry-After") != "30" || !strings.Contains(msg, "too many login requests for alice") {
			t.Fatalf("third login request in a minute: %d Retry-After=%q %s", code, hdr.Get("Retry-After"), msg)
		}
		c.loginRequest("bob") // another user is not held back
		// A request signed by a device is not counted.
		body := mustJSON(trustapi.CreateLoginRequest{Identifier: "alice", CodeChallenge: trustapi.CodeChallenge(trustapi.NewCodeVerifier())})
		if code := c.do("POST", trustapi.PathLoginRequests, alice.sign(t, "POST", trustapi.PathLoginRequests, body, time.Now()), body, nil); code != 201 {
			t.Fatalf("signed login request: %d", code)
		}
		offset.Add(int64(30 * time.Second))
		c.loginRequest("alice")
	})

	t.Run("device requests per IP", func(t *testing.T) {
		c := newCloud(t, emulator.WithClock(clock), emulator.WithDeviceRateLimit(3, time.Second))
		for range 3 {
			if code := c.do("GET", deviceapi.PathVersions, nil, nil, nil); code != 200 {
				t.Fatalf("versions: %d", code)
			}
		}
		resp, err := http.Get(c.url + deviceapi.PathVersions)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(b), "127.0.0.1") {
			t.Fatalf("fourth device request in a second: %d Retry-After=%q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
		// The backend API is not a device endpoint.
		if code := c.do("GET", cloudapi.PathPing, backendAuth, nil, nil); code != 200 {
			t.Fatalf("ping: %d", code)
		}
		offset.Add(int64(time.Second))
		if code := c.do("GET", deviceapi.PathVersions, nil, nil, nil); code != 200 {
			t.Fatalf("versions after a second: %d", code)
		}
	})
}

// rawLoginRequest posts an unsigned login request and returns the answer.
func (c *cloud) rawLoginRequest(identifier string) (int, http.Header, string) {
	c.t.Helper()
	body := mustJSON(trustapi.CreateLoginRequest{Identifier: identifier, CodeChallenge: trustapi.CodeChallenge(trustapi.NewCodeVerifier())})
	resp, err := http.Post(c.url+trustapi.PathLoginRequests, "application/json", strings.NewReader(string(body)))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
