package sdk

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
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
	w := &responseBuffer{header: http.Header{}}
	t.Handler.ServeHTTP(w, in)
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return &http.Response{Status: strconv.Itoa(w.code) + " " + http.StatusText(w.code), StatusCode: w.code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: w.header, ContentLength: int64(w.body.Len()),
		Body: io.NopCloser(bytes.NewReader(w.body.Bytes())), Request: req}, nil
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
