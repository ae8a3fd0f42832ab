package fleet_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/devsig"
	"github.com/authphone/authphone/sdk/fleet"
)

type connKey struct{}

// closingCloud serves the emulator, but drops the second request of every
// connection unanswered, closing the connection: what a kept-alive
// connection the server closes as the client reuses it looks like. A
// request it has dropped once it lets through when it comes again.
type closingCloud struct {
	emu     *emulator.Server
	srv     *httptest.Server
	dropped atomic.Int64
	mu      sync.Mutex
	dropSig []string            // Device-Signatures of dropped requests
	seenSig map[string]struct{} // Device-Signatures the emulator got
	// droppedReq holds the requests dropped once.
	droppedReq map[string]struct{}
}

func newClosingCloud(t *testing.T) *closingCloud {
	t.Helper()
	c := &closingCloud{seenSig: map[string]struct{}{}, droppedReq: map[string]struct{}{}}
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sig := r.Header.Get(devsig.HeaderName)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		// The same request (method, path, body) is dropped once at most:
		// sent again, it gets through.
		id := r.Method + " " + r.URL.Path + "\n" + string(body)
		c.mu.Lock()
		_, again := c.droppedReq[id]
		c.mu.Unlock()
		if r.Context().Value(connKey{}).(*atomic.Int64).Add(1) == 2 && !again {
			c.dropped.Add(1)
			c.mu.Lock()
			if sig != "" {
				c.dropSig = append(c.dropSig, sig)
			}
			c.droppedReq[id] = struct{}{}
			c.mu.Unlock()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		if sig != "" {
			c.mu.Lock()
			c.seenSig[sig] = struct{}{}
			c.mu.Unlock()
		}
		c.emu.Handler().ServeHTTP(w, r)
	}))
	c.srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, new(atomic.Int64))
	}
	c.srv.Start()
	t.Cleanup(c.srv.Close)
	emu, err := emulator.New(emulator.WithBaseURL(c.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	c.emu = emu
	return c
}

// A fleet whose requests meet connections the cloud closed sends each
// again once on a fresh connection, the phones' signed again: no errors,
// and no dropped signature ever reaches the cloud.
func TestFleetRetriesRequestsOnClosedConnections(t *testing.T) {
	c := newClosingCloud(t)
	rep, err := fleet.Run(context.Background(), fleet.Config{Cloud: c.srv.URL, AccessKey: c.emu.AccessKey(),
		Phones: 3, Count: 12, Inflight: 3, Approve: 1, Biometric: true, Durability: sdk.DurabilityRelaxed})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() || rep.Outcomes["succeeded"] != 12 || len(rep.Errors) > 0 {
		t.Fatalf("%+v", rep)
	}
	if c.dropped.Load() < 12 {
		t.Fatalf("only %d requests dropped: the test did not reuse connections", c.dropped.Load())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.dropSig) == 0 {
		t.Fatal("no signed request was dropped")
	}
	for _, s := range c.dropSig {
		if _, ok := c.seenSig[s]; ok {
			t.Fatalf("a dropped request's Device-Signature was sent again: %.40s…", s)
		}
	}
}

func TestFleetTransportDropsIdleConnectionsBeforeTheCloud(t *testing.T) {
	if tr := fleet.NewTransport(10); tr.IdleConnTimeout <= 0 || tr.IdleConnTimeout > emulator.DefaultIdleTimeout/2 {
		t.Fatalf("idle connections kept %v, the emulator closes them after %v", tr.IdleConnTimeout, emulator.DefaultIdleTimeout)
	}
}
