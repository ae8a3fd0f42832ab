package sdk

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// InProcess is an http.RoundTripper that serves each request with handler
// in this process, without sockets: give it the emulator's Handler() (the
// SDK takes any http.Handler, so it does not depend on the emulator).
type InProcess struct{ Handler http.Handler }

// RoundTrip implements http.RoundTripper. Long-polls work: the request's
// context reaches the handler. The handler gets a shallow copy of the
// request (its header map is the caller's: handlers only read it).
func (t InProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	in := req.WithContext(req.Context())
	if in.Body == nil {
		in.Body = http.NoBody
	}
	in.RemoteAddr, in.RequestURI = "127.0.0.1:1", req.URL.RequestURI()
	if in.Host == "" {
		in.Host = req.URL.Host
	}
	w := respPool.Get().(*responseBuffer)
	w.header = http.Header{}
	t.Handler.ServeHTTP(w, in)
	if w.code == 0 {
		w.code = http.StatusOK
	}
	a := &answer{body: pooledBody{w: w}} // the response and its body in one allocation
	a.body.r.Reset(w.body.Bytes())
	a.resp = http.Response{Status: statusLine(w.code), StatusCode: w.code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: w.header, ContentLength: int64(w.body.Len()),
		Body: &a.body, Request: req}
	return &a.resp, nil
}

// answer is an in-process response with its body.
type answer struct {
	resp http.Response
	body pooledBody
}

func statusLine(code int) string {
	if code == http.StatusOK {
		return "200 OK"
	}
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

// respPool holds the response buffers of in-process requests: a body
// gives its buffer back when it is closed.
var respPool = sync.Pool{New: func() any { return new(responseBuffer) }}

// pooledBody is an in-process response body; Close returns its buffer to
// respPool (a large one is dropped), after which it reads as empty.
type pooledBody struct {
	r bytes.Reader
	w *responseBuffer
}

func (b *pooledBody) Read(p []byte) (int, error) { return b.r.Read(p) }

// WriteTo lets io.Copy and bytes.Buffer.ReadFrom take the body in one go.
func (b *pooledBody) WriteTo(dst io.Writer) (int64, error) { return b.r.WriteTo(dst) }

func (b *pooledBody) Close() error {
	if w := b.w; w != nil {
		b.w = nil
		b.r.Reset(nil)
		if w.body.Cap() <= 64<<10 {
			w.header, w.code = nil, 0
			w.body.Reset()
			respPool.Put(w)
		}
	}
	return nil
}

// responseBuffer is the http.ResponseWriter of an in-process request.
type responseBuffer struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *responseBuffer) Header() http.Header { return w.header }

func (w *responseBuffer) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *responseBuffer) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.body.Write(b)
}

// Flush implements http.Flusher (there is nothing to flush).
func (w *responseBuffer) Flush() {}

// WithInProcess makes the phone talk to handler in process (see
// InProcess), for Go tests that do not want sockets. Pair it with
// WithCloud(the URL the handler believes it serves, e.g. the emulator's
// WithBaseURL).
func WithInProcess(handler http.Handler) Option {
	return WithHTTPClient(&http.Client{Transport: InProcess{Handler: handler}})
}
