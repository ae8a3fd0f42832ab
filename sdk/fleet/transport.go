package fleet

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
)

// The protocols a fleet's default transport speaks to its cloud
// (Report.Protocol).
const (
	// ProtocolSplit: the phones' long-polls as HTTP/2 streams without TLS
	// (h2c, prior knowledge) on a few connections, every other call on
	// HTTP/1.1.
	ProtocolSplit = "h2c long-polls + http/1.1"
	// ProtocolHTTP1: every call on HTTP/1.1, a connection per parked
	// long-poll.
	ProtocolHTTP1 = "http/1.1"
)

// NewH2CTransport is a transport that speaks only HTTP/2 without TLS (h2c,
// with prior knowledge) to http:// URLs, as `authphone emulator` answers
// it. One connection carries up to the server's limit of streams
// (emulator.MaxStreamsPerConn, 100); past that the transport opens another
// connection rather than waiting for a stream to end.
func NewH2CTransport() *http.Transport {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Transport{Protocols: &p, IdleConnTimeout: IdleConnTimeout,
		HTTP2: &http.HTTP2Config{StrictMaxConcurrentRequests: false}}
}

// SplitTransport sends the phones' multi-account inbox reads (their
// long-polls, deviceapi.PathInboxes) on LongPolls and every other request
// on Calls. With LongPolls an h2c transport (Config.H2C), a fleet's K idle
// phones hold K streams on about K/100 connections, not K connections:
// over loopback each parked HTTP/1.1 long-poll is a socket on each side,
// buffers, and two goroutines on each side. The approvals' other calls
// (the backend's, the phone's assertion) stay on HTTP/1.1, which costs
// less CPU per request than net/http's HTTP/2.
type SplitTransport struct {
	LongPolls, Calls http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (s SplitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	// By suffix: a cloud URL may carry a path prefix (http://host/cloud).
	if strings.HasSuffix(r.URL.Path, deviceapi.PathInboxes) {
		return s.LongPolls.RoundTrip(r)
	}
	return s.Calls.RoundTrip(r)
}

// CloseIdleConnections closes both transports' idle connections.
func (s SplitTransport) CloseIdleConnections() {
	for _, t := range []http.RoundTripper{s.LongPolls, s.Calls} {
		if c, ok := t.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}

// speaksH2C reports whether the cloud at base answers an h2c request over
// t within a few seconds: any answer at all, since the question is the
// protocol, not the access key.
func speaksH2C(ctx context.Context, t http.RoundTripper, base string) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+cloudapi.PathPing, nil)
	if err != nil {
		return false
	}
	resp, err := t.RoundTrip(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.ProtoMajor == 2
}

// transport is the fleet's default transport (Config.Transport unset):
// HTTP/1.1 (NewTransport), or with H2C a SplitTransport if the cloud is
// http:// and answers h2c.
func (c *Config) transport(ctx context.Context) (http.RoundTripper, string) {
	n := c.Phones + c.Inflight
	if !c.H2C || !strings.HasPrefix(c.Cloud, "http://") {
		return NewTransport(n), ProtocolHTTP1
	}
	h2 := NewH2CTransport()
	if !speaksH2C(ctx, h2, c.Cloud) {
		h2.CloseIdleConnections()
		return NewTransport(n), ProtocolHTTP1
	}
	// The calls: the approvals in flight, each a backend call and a
	// phone's, and the enrolments' few at a time.
	return SplitTransport{LongPolls: h2, Calls: NewTransport(4 * c.Inflight)}, ProtocolSplit
}
