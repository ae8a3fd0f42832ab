package emulator

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Timeouts bound how long the server waits for a client. A zero field keeps
// its default.
type Timeouts struct {
	// Header is the time to read a request's line and headers (default 10 s).
	Header time.Duration
	// Body is the time to read a whole request, headers and body (default
	// 30 s). It bounds the upload, not the answer: net/http lifts the
	// deadline once the body is read, so a long-poll may wait longer.
	Body time.Duration
	// Idle is how long a kept-alive connection may wait for its next
	// request (default 2 minutes).
	Idle time.Duration
}

// Default timeouts.
const (
	DefaultHeaderTimeout = 10 * time.Second
	DefaultBodyTimeout   = 30 * time.Second
	DefaultIdleTimeout   = 2 * time.Minute
)

// MaxStreamsPerConn is how many requests one HTTP/2 connection may have
// open at once. A client with more in flight, such as a fleet of 10 000
// phones each holding a long-poll, opens another connection for each 100
// (net/http's client does so unless told to be strict), rather than the
// server holding an unbounded number of streams, each a handler
// goroutine, on one connection. 100, not net/http's 250: its HTTP/2 server
// walks every open stream of a connection to pick the next frame to write,
// so a connection full of parked long-polls made each answer on it dearer
// (measured: 2–3% of the emulator's CPU at 10 000 long-polls in 250s).
const MaxStreamsPerConn = 100

// newHTTPServer is the emulator's server: HTTP/1.1 for every client, and
// with h2c (WithH2C) HTTP/2 without TLS too, for clients that open with
// the HTTP/2 preface.
func newHTTPServer(h http.Handler, t Timeouts, h2c bool) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(h2c)
	return &http.Server{Handler: h, ReadHeaderTimeout: t.Header, ReadTimeout: t.Body, IdleTimeout: t.Idle,
		Protocols: &p, HTTP2: &http.HTTP2Config{MaxConcurrentStreams: MaxStreamsPerConn}}
}

// WithH2C makes the server answer HTTP/2 without TLS (h2c, with prior
// knowledge: a client that opens with the HTTP/2 preface) beside
// HTTP/1.1, so that many long-polls (a fleet's, `authphone fleet --h2c`)
// share a few connections. Off by default, because net/http's HTTP/2
// server bounds slow clients less than its HTTP/1.1 one:
//   - the preface must arrive within Timeouts.Header, a stream's body
//     within Timeouts.Body (the stream is reset), and a connection with
//     no open stream is closed after Timeouts.Idle; but
//   - a request's headers (a HEADERS frame continued by trickled
//     CONTINUATION frames) are bounded only by Idle, not by Header, and
//     not at all while another stream of the connection is open; and
//   - a client that never opens its flow-control window holds up to
//     MaxStreamsPerConn handlers on one connection for as long as it
//     stays connected.
//
// So turn it on for load tests on loopback or a trusted network, not on
// an address strangers reach.
func WithH2C() Option {
	return func(c *config) { c.h2c = true }
}

// WithTimeouts sets the server's limits on slow and idle clients.
func WithTimeouts(t Timeouts) Option {
	return func(c *config) {
		if t.Header > 0 {
			c.timeouts.Header = t.Header
		}
		if t.Body > 0 {
			c.timeouts.Body = t.Body
		}
		if t.Idle > 0 {
			c.timeouts.Idle = t.Idle
		}
	}
}

// Default rate limits.
const (
	// DefaultLoginRate is how many unauthenticated login requests a user
	// may get per DefaultLoginPer.
	DefaultLoginRate = 10
	DefaultLoginPer  = time.Minute
)

// WithLoginRateLimit allows n login requests without a Device-Signature
// per user (the identifier asked for) every per, in bursts of up to n; more
// are answered 429 with Retry-After. n 0 turns the limit off. Default: 10 a
// minute.
func WithLoginRateLimit(n int, per time.Duration) Option {
	return func(c *config) { c.loginRate = rate{n, per} }
}

// WithDeviceRateLimit allows n device API requests (paths under /_app/)
// per client IP every per, in bursts of up to n; more are answered 429 with
// Retry-After. n 0 (the default) turns the limit off: a fleet of virtual
// phones comes from one address.
func WithDeviceRateLimit(n int, per time.Duration) Option {
	return func(c *config) { c.deviceRate = rate{n, per} }
}

// rate is n events per period.
type rate struct {
	n   int
	per time.Duration
}

func (r rate) on() bool { return r.n > 0 && r.per > 0 }

// limiter keeps a token bucket per key, on the server's clock. Buckets
// that have filled up again are forgotten, so the map holds only the keys
// that were busy lately.
type limiter struct {
	rate    rate
	now     func() time.Time
	mu      sync.Mutex
	buckets map[string]*bucket
	checked time.Time // when full buckets were last forgotten
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(r rate, now func() time.Time) *limiter {
	if !r.on() {
		return nil
	}
	return &limiter{rate: r, now: now, buckets: map[string]*bucket{}}
}

// allow takes a token for key; if there is none it reports how long until
// there is one. A nil limiter allows everything.
func (l *limiter) allow(key string) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	capacity := float64(l.rate.n)
	perToken := l.rate.per / time.Duration(l.rate.n)
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.checked) >= l.rate.per {
		for k, b := range l.buckets {
			if l.refill(b, now) >= capacity {
				delete(l.buckets, k)
			}
		}
		l.checked = now
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: capacity, at: now}
		l.buckets[key] = b
	}
	if l.refill(b, now) >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) * float64(perToken))
}

// exhausted reports, without taking a token, whether key has none left,
// and if so how long until it has one. A nil limiter is never exhausted.
func (l *limiter) exhausted(key string) (bool, time.Duration) {
	if l == nil {
		return false, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil || l.refill(b, now) >= 1 {
		return false, 0
	}
	perToken := l.rate.per / time.Duration(l.rate.n)
	return true, time.Duration((1 - b.tokens) * float64(perToken))
}

// refill adds the tokens earned since the bucket was last seen.
func (l *limiter) refill(b *bucket, now time.Time) float64 {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(float64(l.rate.n), b.tokens+float64(l.rate.n)*d.Seconds()/l.rate.per.Seconds())
		b.at = now
	}
	return b.tokens
}

// tooMany answers 429 with a Retry-After of whole seconds (at least 1).
func tooMany(w http.ResponseWriter, retryAfter time.Duration, what string) {
	secs := max(1, int(math.Ceil(retryAfter.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, what+"; retry in "+strconv.Itoa(secs)+" s")
}

// limitDevices applies the per-IP limit to the device API.
func (s *Server) limitDevices(next http.Handler) http.Handler {
	if s.deviceLimit == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_app/") {
			if ok, after := s.deviceLimit.allow(remoteIP(r)); !ok {
				tooMany(w, after, "too many device requests from "+remoteIP(r))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
