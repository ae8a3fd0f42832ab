package sdk

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/devsig"
	"github.com/authphone/authphone/sdk/httplimit"
	"github.com/authphone/authphone/sdk/internal/bufpool"
)

// signer signs a request as an account's device.
type signer struct {
	key   *ecdsa.PrivateKey
	keyID string
}

// call sends one device API request to base+path. body (if not nil) is sent
// as JSON; out (if not nil) receives the JSON answer. With s, the request
// carries a Device-Signature over the exact bytes sent.
//
// It is the phone's hot path, on net/http directly: one request, its
// headers set in place, and the answer read into a pooled buffer.
func (p *Phone) call(ctx context.Context, method, base, path string, query url.Values, body, out any, s *signer) error {
	var raw []byte
	if body != nil {
		b, err := deviceapi.Marshal(body) // json.Marshal; the usual bodies by hand
		if err != nil {
			return err
		}
		raw = b
	}
	u := strings.TrimRight(base, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	start := time.Now()
	if p.verbose != nil {
		fmt.Fprintf(p.verbose, "> %s %s\n", method, u)
	}
	resp, err := p.send(ctx, method, u, path, raw, s)
	if errors.Is(err, errSign) {
		return err
	}
	if err != nil {
		return transportError(ctx, err, base)
	}
	buf := bufpool.Get()
	defer bufpool.Put(buf)
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return transportError(ctx, err, base)
	}
	if p.verbose != nil {
		fmt.Fprintf(p.verbose, "< %d %s (%s)\n", resp.StatusCode, u, time.Since(start).Round(time.Microsecond))
	}
	b := buf.Bytes()
	if resp.StatusCode > 399 {
		var sb deviceapi.StatusBody
		var eb struct {
			Message string `json:"message"`
		}
		ce := &CloudError{HTTPStatus: resp.StatusCode}
		if json.Unmarshal(b, &sb) == nil && sb.StatusCode != 0 {
			ce.StatusCode, ce.Message = sb.StatusCode, sb.Description
		} else if json.Unmarshal(b, &eb) == nil && eb.Message != "" {
			ce.Message = eb.Message
		} else {
			ce.Message = strings.TrimSpace(string(b))
			if ce.Message == "" || len(ce.Message) > 200 {
				ce.Message = resp.Status
			}
		}
		return ce
	}
	if out != nil {
		if err := deviceapi.Unmarshal(b, out); err != nil { // json.Unmarshal; the usual answers by hand
			return fmt.Errorf("the cloud at %s answered something that is not the device API: %w", base, err)
		}
	}
	return nil
}

// errSign marks a request that could not be signed (not a transport error).
var errSign = errors.New("device signature")

// send sends one request and returns its answer. A request that failed
// before any answer on a kept-alive connection the cloud had closed
// (httplimit.StaleConn) is sent again, up to httplimit.Retries times and
// only while the failed attempt was on a reused connection, after the idle
// connections are dropped (so on a fresh one), and signed again: a new
// nonce and time, never a signature replayed.
//
// The request goes to the client's transport directly when the client adds
// nothing to it (no cookie jar, time limit, redirect policy or user in the
// URL; the phone's own client keeps its limits in the transport): that
// spares http.Client's per-request copy of the headers. An answer that
// redirects is then asked again through the client, signed again.
func (p *Phone) send(ctx context.Context, method, u, path string, raw []byte, s *signer) (*http.Response, error) {
	_, inProcess := p.hc.Transport.(InProcess)
	direct := p.hc.Jar == nil && p.hc.Timeout == 0 && p.hc.CheckRedirect == nil
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if raw != nil {
			rd = bytes.NewReader(raw)
		}
		rctx, reused := ctx, func() bool { return false }
		if !inProcess {
			rctx, reused = httplimit.TraceReuse(ctx)
		}
		req, err := http.NewRequestWithContext(rctx, method, u, rd)
		if err != nil {
			return nil, err
		}
		h := req.Header
		h["User-Agent"], h["Accept"] = userAgentValue, jsonValue // shared, never changed
		if raw != nil {
			h["Content-Type"] = jsonValue
		}
		if s != nil {
			sig, err := devsig.Sign(s.key, s.keyID, method, path, raw, p.now())
			if err != nil {
				return nil, fmt.Errorf("%w: %w", errSign, err)
			}
			h[devsig.HeaderName] = []string{sig}
		}
		var resp *http.Response
		if direct && req.URL.User == nil {
			resp, err = p.roundTrip(req)
			if err == nil && isRedirect(resp) {
				resp.Body.Close()
				direct, attempt = false, attempt-1
				continue
			}
		} else {
			resp, err = p.hc.Do(req)
		}
		if err == nil || attempt == httplimit.Retries || ctx.Err() != nil || !reused() || !httplimit.StaleConn(err) {
			return resp, err
		}
		p.hc.CloseIdleConnections()
		if p.verbose != nil {
			fmt.Fprintf(p.verbose, "! %s %s: %v on a kept-alive connection; signed again and sent on a fresh one\n", method, u, err)
		}
	}
}

var (
	userAgentValue = []string{userAgent}
	jsonValue      = []string{"application/json"}
)

// roundTrip sends req on the client's transport, its error shaped as
// http.Client's (*url.Error).
func (p *Phone) roundTrip(req *http.Request) (*http.Response, error) {
	rt := p.hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		op := req.Method[:1] + strings.ToLower(req.Method[1:])
		return nil, &url.Error{Op: op, URL: req.URL.String(), Err: err}
	}
	return resp, nil
}

func isRedirect(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return resp.Header.Get("Location") != ""
	}
	return false
}

// transportError explains a request that got no answer: ctx ended (its
// cause), the request's time limit passed (ErrNoAnswer), or the cloud could
// not be reached (ErrUnreachable).
func transportError(ctx context.Context, err error, base string) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var le *httplimit.Error
	if errors.As(err, &le) {
		return fmt.Errorf("%w: %w", ErrNoAnswer, le)
	}
	return fmt.Errorf("%w at %s: %s; is the cloud (authphone emulator) running there?", ErrUnreachable, base, httplimit.Reason(err))
}
