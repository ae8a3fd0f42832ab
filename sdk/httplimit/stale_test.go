package httplimit_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/authphone/authphone/sdk/httplimit"
)

type connKey struct{}

// A POST that meets a kept-alive connection the server closes before
// answering is sent again, with its body, on a fresh connection; without
// RetryStale it fails.
func TestRetryStaleSendsAgainOnAFreshConnection(t *testing.T) {
	var bodies atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Context().Value(connKey{}).(*atomic.Int64).Add(1) == 2 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		if string(b) == "hello" {
			bodies.Add(1)
		}
		_, _ = w.Write([]byte("ok"))
	}))
	srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, new(atomic.Int64))
	}
	srv.Start()
	defer srv.Close()
	post := func(c *http.Client) error {
		resp, err := c.Post(srv.URL, "text/plain", strings.NewReader("hello"))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		return err
	}
	plain := &http.Client{Transport: &http.Transport{}}
	if err := post(plain); err != nil {
		t.Fatal(err)
	}
	if err := post(plain); err == nil || !httplimit.StaleConn(err) {
		t.Fatalf("second POST on the kept-alive connection: %v, want a stale-connection error", err)
	}
	retry := &http.Client{Transport: httplimit.RetryStale{Base: &http.Transport{}}}
	for i := range 3 {
		if err := post(retry); err != nil {
			t.Fatalf("POST %d with RetryStale: %v", i, err)
		}
	}
	if n := bodies.Load(); n != 4 {
		t.Fatalf("the server got %d whole bodies, want 4", n)
	}
}

func TestStaleConn(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{io.EOF, true},
		{errors.New("http: server closed idle connection"), true},
		{context.Canceled, false},
		{&httplimit.Error{URL: "x"}, false},
		{errors.New("connection refused"), false},
		{nil, false},
	} {
		if got := httplimit.StaleConn(c.err); got != c.want {
			t.Errorf("StaleConn(%v) = %v", c.err, got)
		}
	}
}
