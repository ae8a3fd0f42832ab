// Package httplimit puts a time limit on every HTTP request a client makes:
// connecting and the whole exchange, body included. A long-poll (a request
// with a ?wait=DURATION query) gets its wait on top, so a cloud that accepts
// the connection and never answers is an error naming the URL, not a hang.
package httplimit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultTimeout is the limit when none is given.
const DefaultTimeout = 30 * time.Second

// Error is a request that hit its limit. It is what the http.Client's
// *url.Error wraps; errors.As finds it.
type Error struct {
	URL   string
	Limit time.Duration
}

func (e *Error) Error() string {
	limit := e.Limit
	if limit >= time.Second {
		limit = limit.Round(100 * time.Millisecond)
	}
	return fmt.Sprintf("%s took longer than %s", e.URL, limit)
}

// Timeout reports true, as net.Error timeouts do.
func (e *Error) Timeout() bool { return true }

// Client returns an HTTP client whose every request is limited to timeout
// (DefaultTimeout if not positive), plus the ?wait= of a long-poll.
func Client(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	base.TLSHandshakeTimeout = timeout
	return &http.Client{Transport: &Transport{Base: base, Timeout: timeout}}
}

// Transport limits each request it carries.
type Transport struct {
	Base    http.RoundTripper
	Timeout time.Duration
}

// Limit is the limit of one request: Timeout, plus its ?wait= if any. An
// event stream (Accept: text/event-stream) with a ?wait= must still send
// its response headers within Timeout: a server streams them at once.
func (t *Transport) Limit(req *http.Request) time.Duration {
	limit := t.Timeout
	if w := req.URL.Query().Get("wait"); w != "" {
		if d, err := time.ParseDuration(w); err == nil && d > 0 {
			limit += d
		}
	}
	return limit
}

// RoundTrip sends req under its limit. The limit covers reading the body
// too: it ends when the body is closed.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	limit := t.Limit(req)
	where := req.URL.Scheme + "://" + req.URL.Host + req.URL.Path
	ctx, cancelAll := context.WithTimeoutCause(req.Context(), limit, &Error{URL: where, Limit: limit})
	cancel := context.CancelFunc(cancelAll)
	var headers *time.Timer
	if limit > t.Timeout && strings.Contains(req.Header.Get("Accept"), "text/event-stream") {
		var cancelHeaders context.CancelCauseFunc
		ctx, cancelHeaders = context.WithCancelCause(ctx)
		headers = time.AfterFunc(t.Timeout, func() { cancelHeaders(&Error{URL: where, Limit: t.Timeout}) })
		cancel = func() { cancelHeaders(context.Canceled); cancelAll() }
	}
	resp, err := t.Base.RoundTrip(req.WithContext(ctx))
	if headers != nil {
		headers.Stop()
	}
	if err != nil {
		le := limitHit(ctx, req.Context())
		cancel()
		if le != nil {
			return nil, le
		}
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, ctx: ctx, parent: req.Context(), cancel: cancel}
	return resp, nil
}

// cancelBody ends the request's limit when the body is closed, and turns
// a read cut short by the limit into an *Error.
type cancelBody struct {
	io.ReadCloser
	ctx, parent context.Context
	cancel      context.CancelFunc
}

func (b *cancelBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		if le := limitHit(b.ctx, b.parent); le != nil {
			return n, le
		}
	}
	return n, err
}

// limitHit is the *Error when ctx ended because its limit passed (not
// because the caller's parent context ended, nor because it was released).
func limitHit(ctx, parent context.Context) *Error {
	if parent.Err() != nil {
		return nil
	}
	var le *Error
	if errors.As(context.Cause(ctx), &le) {
		return le
	}
	return nil
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// Reason words why a request could not reach its server, for people:
// "connection refused" (nothing listens there), "no such host NAME", or
// the transport's own error.
func Reason(err error) string {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (nothing listens there)"
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return "no such host " + dnsErr.Name
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// TraceReuse returns ctx with a trace that records whether the request sent
// with it went over a kept-alive (reused) connection: read it with the
// returned function once the request is done. The transport's own retries
// on a fresh connection are recorded too (the last connection counts).
func TraceReuse(ctx context.Context) (context.Context, func() bool) {
	var reused atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused.Store(i.Reused) }})
	return ctx, reused.Load
}

// StaleConn reports whether err, the error of a request that got no
// answer at all, is what a kept-alive connection the server had closed
// gives: the connection ended (EOF, reset, broken pipe) before any byte of
// an answer. Sent again on a fresh connection such a request is not a
// duplicate of one the server answered — but the server may have read it,
// so a signed request must be signed again (a new nonce), never replayed.
func StaleConn(err error) bool {
	if err == nil {
		return false
	}
	var le *Error
	if errors.As(err, &le) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || strings.Contains(err.Error(), "server closed idle connection")
}

// Retries is how many times a request that met a closed kept-alive
// connection is sent again (each time only if the failed attempt was on a
// reused connection: a fresh connection's failure is final).
const Retries = 2

// DropIdle closes rt's idle connections if it keeps any: once the server
// has closed one kept-alive connection, those idle as long are suspect.
func DropIdle(rt http.RoundTripper) {
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// RetryStale is a RoundTripper for requests that carry no one-time
// signature: a request that failed on a reused connection with StaleConn,
// before any answer, is sent again as it was (its body taken again with
// GetBody), up to Retries times, after Base's idle connections are
// dropped, so that it goes out on a fresh connection.
type RetryStale struct{ Base http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (t RetryStale) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return t.Base.RoundTrip(req) // cannot be sent twice
	}
	for attempt := 0; ; attempt++ {
		again := req
		if attempt > 0 {
			again = req.Clone(req.Context())
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				again.Body = body
			}
		}
		ctx, reused := TraceReuse(req.Context())
		resp, err := t.Base.RoundTrip(again.WithContext(ctx))
		if err == nil || attempt == Retries || !reused() || !StaleConn(err) || req.Context().Err() != nil {
			return resp, err
		}
		DropIdle(t.Base)
	}
}
