package sdk

import (
	"net/http"
	"net/http/httptest"
)

// InProcess is an http.RoundTripper that serves each request with handler
// in this process, without sockets: give it the emulator's Handler() (the
// SDK takes any http.Handler, so it does not depend on the emulator).
type InProcess struct{ Handler http.Handler }

// RoundTrip implements http.RoundTripper. Long-polls work: the request's
// context reaches the handler.
func (t InProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	in := req.Clone(req.Context())
	if in.Body == nil {
		in.Body = http.NoBody
	}
	in.RemoteAddr, in.RequestURI = "127.0.0.1:1", req.URL.RequestURI()
	rec := httptest.NewRecorder()
	t.Handler.ServeHTTP(rec, in)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// WithInProcess makes the phone talk to handler in process (see
// InProcess), for Go tests that do not want sockets. Pair it with
// WithCloud(the URL the handler believes it serves, e.g. the emulator's
// WithBaseURL).
func WithInProcess(handler http.Handler) Option {
	return WithHTTPClient(&http.Client{Transport: InProcess{Handler: handler}})
}
