package httplimit_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authphone/authphone/sdk/httplimit"
)

// blackhole accepts connections and never answers.
func blackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// TestSilentServerIsAnError: a server that takes the connection and never
// answers ends in *Error naming the URL and the limit, not a hang.
func TestSilentServerIsAnError(t *testing.T) {
	url := blackhole(t)
	c := httplimit.Client(200 * time.Millisecond)
	_, err := c.Get(url + "/api/v1/status")
	var le *httplimit.Error
	if !errors.As(err, &le) {
		t.Fatalf("want *httplimit.Error, got %v", err)
	}
	if le.URL != url+"/api/v1/status" || le.Limit != 200*time.Millisecond || !strings.Contains(err.Error(), "took longer than 200ms") {
		t.Fatalf("error %v (%+v)", err, le)
	}
}

// TestStalledBodyIsAnError: the limit covers the body: headers, then
// silence, is an *Error on read.
func TestStalledBodyIsAnError(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		_, _ = w.Write([]byte("{"))
		w.(http.Flusher).Flush()
		<-release
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	resp, err := httplimit.Client(200 * time.Millisecond).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	var le *httplimit.Error
	if !errors.As(err, &le) {
		t.Fatalf("stalled body: want *httplimit.Error, got %v", err)
	}
}

// TestLongPollGetsItsWait: a ?wait= request may take its wait plus the
// timeout; a cancelled context stays a cancellation, not a timeout.
func TestLongPollGetsItsWait(t *testing.T) {
	tr := &httplimit.Transport{Timeout: 30 * time.Second}
	req, _ := http.NewRequest("GET", "http://cloud.test/api/v1/status?wait=2m", nil)
	if got := tr.Limit(req); got != 2*time.Minute+30*time.Second {
		t.Fatalf("limit of a 2m long-poll: %v", got)
	}
	req, _ = http.NewRequest("GET", "http://cloud.test/ping?wait=soon", nil)
	if got := tr.Limit(req); got != 30*time.Second {
		t.Fatalf("limit with a bad wait: %v", got)
	}

	// A held answer within wait+timeout arrives.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("wait") != "" {
			time.Sleep(300 * time.Millisecond)
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	c := httplimit.Client(100 * time.Millisecond)
	resp, err := c.Get(srv.URL + "/?wait=1m")
	if err != nil {
		t.Fatalf("long-poll answered within its wait: %v", err)
	}
	resp.Body.Close()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ = http.NewRequestWithContext(ctx, "GET", blackhole(t), nil)
	_, err = c.Do(req)
	var le *httplimit.Error
	if errors.As(err, &le) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v", err)
	}
}

// TestRefusedConnectionKeepsItsCause: a cloud that is not there is a
// dial error (connection refused), not a timeout nor "context canceled".
func TestRefusedConnectionKeepsItsCause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err = httplimit.Client(time.Minute).Get("http://" + addr + "/ping")
	var le *httplimit.Error
	if err == nil || errors.As(err, &le) || errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("refused connection: %v", err)
	}
	if r := httplimit.Reason(err); r != "connection refused (nothing listens there)" {
		t.Fatalf("Reason: %q", r)
	}
}

// TestEventStreamHeadersWithinTimeout: an event stream's ?wait= covers its
// body, but its headers must come within the timeout: a silent server is an
// *Error after the timeout, not after the wait; a live stream outlasts it.
func TestEventStreamHeadersWithinTimeout(t *testing.T) {
	c := httplimit.Client(200 * time.Millisecond)
	req, _ := http.NewRequest("GET", blackhole(t)+"/events/stream?wait=1m", nil)
	req.Header.Set("Accept", "text/event-stream")
	done := make(chan error, 1)
	go func() {
		_, err := c.Do(req)
		done <- err
	}()
	select {
	case err := <-done:
		var le *httplimit.Error
		if !errors.As(err, &le) || le.Limit != 200*time.Millisecond {
			t.Fatalf("silent event stream: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a silent event stream waited for its ?wait=, not its timeout")
	}

	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-release
		_, _ = w.Write([]byte("data: late\n\n"))
	}))
	t.Cleanup(srv.Close)
	req, _ = http.NewRequest("GET", srv.URL+"/?wait=1m", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := httplimit.Client(time.Second).Do(req) // headers within 1s even on a loaded machine
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The body comes after the timeout has passed: the stream lives on.
	time.AfterFunc(1500*time.Millisecond, func() { close(release) })
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "data: late\n\n" {
		t.Fatalf("stream body after the timeout: %q %v", b, err)
	}
}
