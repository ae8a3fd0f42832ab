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
		b, err := json.Marshal(body)
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
		if err := json.Unmarshal(b, out); err != nil {
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
func (p *Phone) send(ctx context.Context, method, u, path string, raw []byte, s *signer) (*http.Response, error) {
	_, inProcess := p.hc.Transport.(InProcess)
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
		h["User-Agent"] = []string{userAgent}
		h["Accept"] = []string{"application/json"}
		if raw != nil {
			h["Content-Type"] = []string{"application/json"}
		}
		if s != nil {
			sig, err := devsig.Sign(s.key, s.keyID, method, path, raw, p.now())
			if err != nil {
				return nil, fmt.Errorf("%w: %w", errSign, err)
			}
			h[devsig.HeaderName] = []string{sig}
		}
		resp, err := p.hc.Do(req)
		if err == nil || attempt == httplimit.Retries || ctx.Err() != nil || !reused() || !httplimit.StaleConn(err) {
			return resp, err
		}
		p.hc.CloseIdleConnections()
		if p.verbose != nil {
			fmt.Fprintf(p.verbose, "! %s %s: %v on a kept-alive connection; signed again and sent on a fresh one\n", method, u, err)
		}
	}
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
