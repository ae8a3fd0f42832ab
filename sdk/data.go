package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/devsig"
	"github.com/authphone/authphone/sdk/uaf"
)

// DefaultMaxPayload is the largest getData payload the phone sends.
const DefaultMaxPayload = 1 << 20

// DefaultProtocolVersions are the second-factor server protocol versions a
// phone allows unless told otherwise.
var DefaultProtocolVersions = []string{"v1_1", deviceapi.ProtocolV1_2}

// More errors callers branch on.
var (
	// ErrPayloadTooLarge means a getData payload is over the limit; nothing
	// was sent.
	ErrPayloadTooLarge = errors.New("the payload is too large")
	// ErrProtocolVersion means a headless account is needed but v1_2 is not
	// allowed on one side.
	ErrProtocolVersion = errors.New("protocol version v1_2 is not allowed")
	// ErrNotHeadless means an upgrade was asked of an account that already
	// has a second factor.
	ErrNotHeadless = errors.New("the account is not headless")
	// ErrNoSecondFactor means the account has no PIN (it is headless).
	ErrNoSecondFactor = errors.New("the account has no second factor")
)

// WithAllowedProtocolVersions sets the second-factor server protocol
// versions the phone allows (default v1_1 and v1_2). Headless accounts need
// v1_2.
func WithAllowedProtocolVersions(vs ...string) Option {
	return func(o *options) { o.versions = vs }
}

// WithMaxPayload sets the largest getData payload (default 1 MiB).
func WithMaxPayload(n int) Option { return func(o *options) { o.maxPayload = n } }

// DataServiceError is a non-2xx answer of the app's data service, passed
// through the cloud unchanged.
type DataServiceError struct {
	Status      int
	ContentType string
	Body        []byte
}

func (e *DataServiceError) Error() string {
	body := strings.TrimSpace(string(e.Body))
	if len(body) > 200 {
		body = body[:200] + "…"
	}
	return fmt.Sprintf("the data service answered %d %s: %s", e.Status, http.StatusText(e.Status), body)
}

// DataResponse is the data service's answer to getData.
type DataResponse struct {
	Status      int
	ContentType string
	Body        []byte
	// Account is the account the request was signed with.
	Account *Account
}

// GetData sends payload through the cloud to the app's data service,
// signed by this phone's account on the cloud (WithCloud), and returns the
// service's answer. With no account for that cloud it first creates a
// headless one (which needs protocol version v1_2 on both sides).
func (p *Phone) GetData(ctx context.Context, payload []byte) ([]byte, error) {
	r, err := p.Data(ctx, payload, "application/octet-stream")
	if err != nil {
		return nil, err
	}
	return r.Body, nil
}

// Data is GetData with the payload's content type, returning the whole
// answer.
func (p *Phone) Data(ctx context.Context, payload []byte, contentType string) (*DataResponse, error) {
	if len(payload) > p.maxPayload {
		return nil, fmt.Errorf("%w: %d bytes, over the %d-byte limit; nothing was sent", ErrPayloadTooLarge, len(payload), p.maxPayload)
	}
	a, err := p.dataAccount(ctx)
	if err != nil {
		return nil, err
	}
	key, err := p.loadKey(ctx, a)
	if err != nil {
		return nil, err
	}
	h, err := devsig.Sign(key, a.KeyID, http.MethodPost, deviceapi.PathData, payload, p.now())
	if err != nil {
		return nil, err
	}
	resp, err := p.http().R().SetContext(ctx).SetHeader("Content-Type", contentType).
		SetHeader(devsig.HeaderName, h).SetBody(payload).Post(a.Cloud + deviceapi.PathData)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("getData cancelled: %w", context.Cause(ctx))
		}
		return nil, transportError(ctx, err, a.Cloud)
	}
	out := &DataResponse{Status: resp.StatusCode(), ContentType: resp.Header().Get("Content-Type"), Body: resp.Body(), Account: a}
	if resp.Header().Get(deviceapi.DataRelayedHeader) == "" {
		// The cloud's own answer: an error.
		var sb deviceapi.StatusBody
		ce := &CloudError{HTTPStatus: resp.StatusCode()}
		if json.Unmarshal(resp.Body(), &sb) == nil && sb.Description != "" {
			ce.StatusCode, ce.Message = sb.StatusCode, sb.Description
		} else {
			ce.Message = resp.Status()
		}
		if ce.HTTPStatus == http.StatusRequestEntityTooLarge {
			return nil, fmt.Errorf("%w: %s", ErrPayloadTooLarge, ce.Message)
		}
		return nil, ce
	}
	if out.Status < 200 || out.Status > 299 {
		return nil, &DataServiceError{Status: out.Status, ContentType: out.ContentType, Body: out.Body}
	}
	return out, nil
}

// dataAccount is the account getData signs with, creating a headless one
// when the phone has none for its cloud.
func (p *Phone) dataAccount(ctx context.Context) (*Account, error) {
	p.headlessMu.Lock()
	defer p.headlessMu.Unlock()
	accts, err := p.Accounts()
	if err != nil {
		return nil, err
	}
	for _, a := range accts {
		if a.Cloud == p.cloud {
			return a, nil
		}
	}
	if !slices.Contains(p.versions, deviceapi.ProtocolV1_2) {
		return nil, fmt.Errorf("%w: this phone has no account on %s and a headless one needs protocol version v1_2; allow it with --allowed-protocol-versions v1_1,v1_2 (AUTHPHONE_ALLOWED_PROTOCOL_VERSIONS, or sdk.WithAllowedProtocolVersions)", ErrProtocolVersion, p.cloud)
	}
	return p.createHeadless(ctx)
}

// createHeadless registers a device-only key (AAID F1D0#0000, no user
// verification, no username) with the phone's cloud.
func (p *Phone) createHeadless(ctx context.Context) (*Account, error) {
	var rr deviceapi.RedeemResponse
	err := p.call(ctx, http.MethodPost, p.cloud, deviceapi.PathHeadless, nil,
		deviceapi.HeadlessRequest{ProtocolVersion: deviceapi.ProtocolV1_2}, &rr, nil)
	var ce *CloudError
	if errors.As(err, &ce) && ce.StatusCode == deviceapi.StatusUnacceptableClientCaps {
		return nil, fmt.Errorf("%w by the cloud: %s", ErrProtocolVersion, ce.Message)
	}
	if err != nil {
		return nil, fmt.Errorf("create a headless account: %w", err)
	}
	var req uaf.RegistrationRequest
	if err := uaf.Decode(rr.UAFRequest, &req); err != nil {
		return nil, fmt.Errorf("the cloud sent a malformed UAF request: %w", err)
	}
	alg, ok := deviceapi.AcceptedAlgorithm(req.Policy, deviceapi.AAIDHeadless)
	if !ok {
		return nil, fmt.Errorf("%w: the cloud's policy does not accept a headless authenticator", ErrRejected)
	}
	key, keyID, err := newDeviceKey()
	if err != nil {
		return nil, err
	}
	a, _, err := p.register(ctx, req.Header, req.Challenge, p.cloud, deviceapi.AAIDHeadless, alg, key, keyID, "", nil)
	if err != nil {
		return nil, fmt.Errorf("create a headless account: %w", err)
	}
	a.Headless = true
	if err := p.addAccount(a); err != nil {
		return nil, fmt.Errorf("created a headless account, but the phone could not record it: %w", err)
	}
	return a, nil
}

// Upgrade starts the HEADLESS_UPGRADE flow of a headless account: the user
// sets a PIN (WAIT_FOR_INPUT/SET_SECOND_FACTOR), the phone registers a
// PIN-protected key for the same user (PROCESSING), and the account can
// then approve logins (DONE). It keeps its user id.
func (p *Phone) Upgrade(ctx context.Context, ref string) (*flows.Flow, error) {
	a, err := p.Account(ref)
	if err != nil {
		return nil, err
	}
	if !a.Headless {
		return nil, fmt.Errorf("%w: %s already has a PIN; only headless accounts (made by getdata) are upgraded", ErrNotHeadless, a.Name())
	}
	return p.runner.Start(ctx, flows.HeadlessUpgrade, a.flowAccount(), func(ctx context.Context, s *flows.Step) error {
		pin, err := s.SetPIN(ctx, ValidatePIN)
		if err != nil {
			return err
		}
		oldKey, err := p.loadKey(ctx, a)
		if err != nil {
			return err
		}
		var rr deviceapi.RedeemResponse
		if err := p.call(ctx, http.MethodPost, a.Cloud, deviceapi.PathUpgrade, nil, struct{}{}, &rr, &signer{oldKey, a.KeyID}); err != nil {
			return fmt.Errorf("upgrade: %w", err)
		}
		var req uaf.RegistrationRequest
		if err := uaf.Decode(rr.UAFRequest, &req); err != nil {
			return fmt.Errorf("the cloud sent a malformed UAF request: %w", err)
		}
		alg, ok := deviceapi.AcceptedAlgorithm(req.Policy, deviceapi.AAIDPIN)
		if !ok {
			return fmt.Errorf("upgrade: %w: the cloud's policy does not accept a PIN authenticator (%s)", ErrRejected, deviceapi.AAIDPIN)
		}
		key, keyID, err := newDeviceKey()
		if err != nil {
			return err
		}
		bound := &Account{KeyID: keyID, Username: req.Username}
		bindDone := p.bindInbox(ctx, bound)
		na, targeted, err := p.register(ctx, req.Header, req.Challenge, a.Cloud, deviceapi.AAIDPIN, alg, key, keyID, pin, bound)
		if err != nil {
			bindDone(false)
			return fmt.Errorf("upgrade: %w", err)
		}
		na.Username, na.CreatedAt, na.InboxKey = req.Username, a.CreatedAt, bound.InboxKey
		err = p.replaceAccount(a.ID, na)
		bindDone(err == nil)
		if err != nil {
			return fmt.Errorf("upgraded, but the phone could not record it: %w", err)
		}
		p.dropKey(a.KeyID)
		_ = p.keys.Delete(ctx, keyName(a.KeyID))
		s.SetAccount(na.flowAccount())
		if targeted {
			return nil
		}
		return p.registerTarget(ctx, na, key)
	})
}

// ChangePIN starts the CHANGE_PIN flow: VERIFY_SECOND_FACTOR (the old PIN;
// a wrong one counts toward the lock-out), SET_SECOND_FACTOR (the new one),
// DONE.
func (p *Phone) ChangePIN(ctx context.Context, ref string) (*flows.Flow, error) {
	a, err := p.Account(ref)
	if err != nil {
		return nil, err
	}
	if a.Headless {
		return nil, fmt.Errorf("%w: %s is headless; give it a PIN with upgrade", ErrNoSecondFactor, a.Name())
	}
	if a.Biometric {
		return nil, fmt.Errorf("%w: %s uses a biometric, which has no PIN to change", ErrNoSecondFactor, a.Name())
	}
	return p.runner.Start(ctx, flows.ChangePIN, a.flowAccount(), func(ctx context.Context, s *flows.Step) error {
		if a.Locked() {
			return fmt.Errorf("%w: %s", flows.ErrLocked, a.Name())
		}
		if err := s.VerifyPIN(ctx, MaxPINAttempts-a.PINFailures, p.pinCheck(a)); err != nil {
			if errors.Is(err, flows.ErrWrongPIN) {
				return fmt.Errorf("%w: %s left before the account locks", err, attemptsLeft(MaxPINAttempts-a.PINFailures))
			}
			return err
		}
		pin, err := s.SetPIN(ctx, ValidatePIN)
		if err != nil {
			return err
		}
		ver, err := p.newPINVerifier(pin)
		if err != nil {
			return err
		}
		if err := p.keys.Set(ctx, pinName(a.KeyID), ver); err != nil {
			return fmt.Errorf("keep the new PIN verifier in the %s keystore: %w", p.keys.Kind(), err)
		}
		return nil
	})
}
