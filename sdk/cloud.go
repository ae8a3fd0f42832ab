package sdk

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/devsig"
	"github.com/authphone/authphone/sdk/httplimit"
)

// signer signs a request as an account's device.
type signer struct {
	key   *ecdsa.PrivateKey
	keyID string
}

// call sends one device API request to base+path. body (if not nil) is sent
// as JSON; out (if not nil) receives the JSON answer. With s, the request
// carries a Device-Signature over the exact bytes sent.
func (p *Phone) call(ctx context.Context, method, base, path string, query url.Values, body, out any, s *signer) error {
	var raw []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		raw = b
	}
	req := p.http.R().SetContext(ctx).SetHeader("Accept", "application/json")
	if raw != nil {
		req.SetHeader("Content-Type", "application/json").SetBody(raw)
	}
	if len(query) > 0 {
		req.SetQueryParamsFromValues(query)
	}
	if s != nil {
		h, err := devsig.Sign(s.key, s.keyID, method, path, raw, p.now())
		if err != nil {
			return err
		}
		req.SetHeader(devsig.HeaderName, h)
	}
	resp, err := req.Execute(method, strings.TrimRight(base, "/")+path)
	if err != nil {
		return transportError(ctx, err, base)
	}
	if resp.IsError() {
		var sb deviceapi.StatusBody
		var eb struct {
			Message string `json:"message"`
		}
		ce := &CloudError{HTTPStatus: resp.StatusCode()}
		if json.Unmarshal(resp.Body(), &sb) == nil && sb.StatusCode != 0 {
			ce.StatusCode, ce.Message = sb.StatusCode, sb.Description
		} else if json.Unmarshal(resp.Body(), &eb) == nil && eb.Message != "" {
			ce.Message = eb.Message
		} else {
			ce.Message = strings.TrimSpace(string(resp.Body()))
			if ce.Message == "" || len(ce.Message) > 200 {
				ce.Message = resp.Status()
			}
		}
		return ce
	}
	if out != nil {
		if err := json.Unmarshal(resp.Body(), out); err != nil {
			return fmt.Errorf("the cloud at %s answered something that is not the device API: %w", base, err)
		}
	}
	return nil
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
