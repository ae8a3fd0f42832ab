package sdk

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/qr"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/authphone/authphone/sdk/uaf"
)

// Errors of signing in with a trusted device.
var (
	// ErrLoginRejected means a trusted device rejected the login.
	ErrLoginRejected = errors.New("the login was rejected by a trusted device")
	// ErrLoginExpired means no trusted device answered in time.
	ErrLoginExpired = errors.New("the login request expired")
	// ErrLoginPending means the wait ended before a trusted device answered.
	ErrLoginPending = errors.New("no trusted device has answered yet")
	// ErrPairingStale means a pairing QR is over 3 minutes old.
	ErrPairingStale = errors.New("the pairing QR code is too old")
	// ErrPairingExpired means nobody approved the pairing in time.
	ErrPairingExpired = errors.New("the pairing expired")
)

// LoginRequest is this (non-trusted) device's request to log in as a user.
type LoginRequest struct {
	Cloud        string `json:"cloud"`
	Identifier   string `json:"identifier"`
	RequestID    string `json:"requestId"`
	PollToken    string `json:"pollToken"`
	CodeVerifier string `json:"codeVerifier"`
	BindingCode  string `json:"bindingCode"`
	ExpiresIn    int    `json:"expiresIn"`
	Interval     int    `json:"interval"`
	// Approved is true when this phone is itself trusted for the user.
	Approved bool `json:"approved,omitempty"`
}

// SignInWithDevice asks the cloud (WithCloud) to log this device in as
// identifier; a trusted device of the user must approve it (unless this
// phone is one: then it is approved at once). Wait for the tokens with
// WaitTokens.
func (p *Phone) SignInWithDevice(ctx context.Context, identifier string) (*LoginRequest, error) {
	verifier := trustapi.NewCodeVerifier()
	body := trustapi.CreateLoginRequest{Identifier: identifier, CodeChallenge: trustapi.CodeChallenge(verifier),
		CodeChallengeMethod: "S256", DeviceName: p.name}
	var sg *signer
	if accts, err := p.Accounts(); err == nil {
		for _, a := range accts {
			if a.Cloud == p.cloud && a.Username == identifier && !a.Headless {
				if key, err := p.loadKey(ctx, a); err == nil {
					sg = &signer{key, a.KeyID}
				}
				break
			}
		}
	}
	var out trustapi.LoginRequestCreated
	if err := p.call(ctx, http.MethodPost, p.cloud, trustapi.PathLoginRequests, nil, body, &out, sg); err != nil {
		return nil, fmt.Errorf("ask to log in as %s: %w", identifier, err)
	}
	return &LoginRequest{Cloud: p.cloud, Identifier: identifier, RequestID: out.RequestID, PollToken: out.PollToken,
		CodeVerifier: verifier, BindingCode: out.BindingCode, ExpiresIn: out.ExpiresIn, Interval: out.Interval, Approved: out.Approved}, nil
}

// PollTokens polls once (holding up to wait for an answer). A refusal is a
// *trustapi.OAuthError whose Code is authorization_pending, slow_down,
// access_denied, expired_token or invalid_grant.
func (p *Phone) PollTokens(ctx context.Context, lr *LoginRequest, wait time.Duration) (*trustapi.TokenResponse, error) {
	req := p.http().R().SetContext(ctx).SetHeader("Content-Type", "application/json").
		SetBody(trustapi.PollRequest{PollToken: lr.PollToken, CodeVerifier: lr.CodeVerifier})
	u := lr.Cloud + trustapi.PathLoginRequests + "/" + url.PathEscape(lr.RequestID) + "/token"
	if wait > 0 {
		u += "?wait=" + url.QueryEscape(wait.String())
	}
	resp, err := req.Post(u)
	if err != nil {
		return nil, transportError(ctx, err, lr.Cloud)
	}
	if resp.IsError() {
		var oe trustapi.OAuthError
		if json.Unmarshal(resp.Body(), &oe) == nil && oe.Code != "" {
			return nil, &oe
		}
		return nil, &CloudError{HTTPStatus: resp.StatusCode(), Message: strings.TrimSpace(string(resp.Body()))}
	}
	var out trustapi.TokenResponse
	if err := json.Unmarshal(resp.Body(), &out); err != nil {
		return nil, fmt.Errorf("the cloud's token answer is not JSON: %w", err)
	}
	return &out, nil
}

// WaitTokens long-polls until the tokens come, a trusted device rejects
// (ErrLoginRejected), the request expires (ErrLoginExpired), or wait ends
// (ErrLoginPending). The tokens come within a moment of the approval. When
// the wait or ctx ends first, the request is cancelled at the cloud
// (CancelLogin), so no trusted device can approve it afterwards.
func (p *Phone) WaitTokens(ctx context.Context, lr *LoginRequest, wait time.Duration) (*trustapi.TokenResponse, error) {
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return p.giveUpLogin(ctx, lr, fmt.Errorf("%w after %s; the request was cancelled", ErrLoginPending, wait))
		}
		tok, err := p.PollTokens(ctx, lr, min(left, 60*time.Second))
		if ctx.Err() != nil {
			return p.giveUpLogin(ctx, lr, fmt.Errorf("%w: the request was cancelled", context.Cause(ctx)))
		}
		var oe *trustapi.OAuthError
		if !errors.As(err, &oe) {
			return tok, err
		}
		switch oe.Code {
		case trustapi.ErrCodePending:
			continue
		case trustapi.ErrCodeAccessDenied:
			return nil, fmt.Errorf("%w (%s)", ErrLoginRejected, oe.Description)
		case trustapi.ErrCodeExpired:
			return nil, fmt.Errorf("%w: %s", ErrLoginExpired, oe.Description)
		default:
			return nil, err
		}
	}
}

// giveUpLogin cancels a login request this device stops waiting for. If a
// trusted device approved it just before, the tokens are taken instead.
func (p *Phone) giveUpLogin(ctx context.Context, lr *LoginRequest, why error) (*trustapi.TokenResponse, error) {
	bg, cancel := background(ctx)
	defer cancel()
	err := p.CancelLogin(bg, lr)
	var ce *CloudError
	if errors.As(err, &ce) && ce.HTTPStatus == http.StatusConflict {
		if tok, perr := p.PollTokens(bg, lr, 0); perr == nil {
			return tok, nil
		}
	}
	return nil, why
}

// CancelLogin cancels this device's pending login request: the trusted
// devices' push messages for it go, and one answering later is told it
// was cancelled. Cancelling twice is no error.
func (p *Phone) CancelLogin(ctx context.Context, lr *LoginRequest) error {
	return p.call(ctx, http.MethodPost, lr.Cloud, trustapi.PathLoginRequests+"/"+url.PathEscape(lr.RequestID)+"/cancel", nil,
		trustapi.PollRequest{PollToken: lr.PollToken, CodeVerifier: lr.CodeVerifier}, nil, nil)
}

func (p *Phone) respondLogin(ctx context.Context, a *Account, sg *signer, requestID string, approved bool) error {
	ts := p.now().Unix()
	sig, err := trustapi.Sign(sg.key, trustapi.SignedFacts(a.UserID, requestID, trustapi.EventLogin, ts, approved))
	if err != nil {
		return err
	}
	return p.call(ctx, http.MethodPost, a.Cloud, trustapi.PathLoginRequests+"/"+url.PathEscape(requestID)+"/respond", nil,
		trustapi.Respond{Approved: approved, Timestamp: ts, Signature: sig}, nil, sg)
}

// approveDevice is the APPROVE_DEVICE flow of another device's login
// request: CONFIRM (showing the device and binding code), the PIN, then the
// signed answer.
func (p *Phone) approveDevice(ctx context.Context, r Request) (*flows.Flow, error) {
	a := r.Account
	info := r.Login
	return p.runner.Start(ctx, flows.ApproveDevice, a.flowAccount(), func(ctx context.Context, s *flows.Step) error {
		s.Processing()
		if fresh, err := p.Account(a.ID); err == nil {
			a = fresh
		}
		key, err := p.loadKey(ctx, a)
		if err != nil {
			return err
		}
		sg := &signer{key, a.KeyID}
		reject := func(err error) error {
			bg, cancel := background(ctx)
			defer cancel()
			_ = p.respondLogin(bg, a, sg, info.RequestID, false)
			return err
		}
		if a.Locked() {
			return reject(fmt.Errorf("%w: %s", flows.ErrLocked, a.Name()))
		}
		details := map[string]string{"requestId": info.RequestID, "device": orUnnamed(info.DeviceName), "ip": info.IP,
			"bindingCode": info.BindingCode, "identifier": info.Identifier, "requestedAt": info.CreatedAt.Format(time.RFC3339)}
		if err := s.Confirm(ctx, "", details); err != nil {
			return reject(err)
		}
		if err := p.verifySecondFactor(ctx, s, a); err != nil {
			return reject(err)
		}
		if err := p.respondLogin(ctx, a, sg, info.RequestID, true); err != nil {
			return fmt.Errorf("approve the login: %w", err)
		}
		return nil
	})
}

func orUnnamed(s string) string {
	if s == "" {
		return "an unnamed device"
	}
	return s
}

// Pairing is a new device waiting to be made trusted: show QRText as a QR
// code and WaitPairing.
type Pairing struct {
	QR      trustapi.PairingQR
	QRText  string
	Created trustapi.PairingCreated
	keyID   string
}

// StartPairing makes a new device key for identifier (with pin as its
// second factor), tells the cloud, and returns the QR a trusted device of
// the user scans.
func (p *Phone) StartPairing(ctx context.Context, identifier, pin string) (*Pairing, error) {
	if err := ValidatePIN(pin); err != nil {
		return nil, err
	}
	key, keyID, err := newDeviceKey()
	if err != nil {
		return nil, err
	}
	pub := base64.RawURLEncoding.EncodeToString(uaf.PublicKeyRaw(&key.PublicKey))
	ver, err := p.newPINVerifier(pin)
	if err != nil {
		return nil, err
	}
	if err := p.storeKey(ctx, keyID, key); err != nil {
		return nil, err
	}
	if err := p.keys.Set(ctx, pinName(keyID), ver); err != nil {
		p.dropSecrets(ctx, keyID)
		return nil, fmt.Errorf("keep the PIN verifier in the %s keystore: %w", p.keys.Kind(), err)
	}
	var created trustapi.PairingCreated
	err = p.call(ctx, http.MethodPost, p.cloud, trustapi.PathPairings, nil, trustapi.CreatePairing{Identifier: identifier,
		PublicKey: pub, KeyID: keyID, Algorithm: trustapi.AlgorithmES256, DeviceName: p.name}, &created, nil)
	if err != nil {
		p.dropSecrets(ctx, keyID)
		return nil, fmt.Errorf("start pairing as %s: %w", identifier, err)
	}
	q := trustapi.PairingQR{Type: trustapi.PairingQRType, Cloud: p.cloud, PairingID: created.PairingID, UserID: created.UserID,
		PublicKey: pub, Algorithm: trustapi.AlgorithmES256, Timestamp: created.Timestamp}
	text, _ := json.Marshal(q)
	return &Pairing{QR: q, QRText: string(text), Created: created, keyID: keyID}, nil
}

func (p *Phone) dropSecrets(ctx context.Context, keyID string) {
	ctx, cancel := background(ctx)
	defer cancel()
	p.dropKey(keyID)
	_ = p.keys.Delete(ctx, keyName(keyID))
	_ = p.keys.Delete(ctx, pinName(keyID))
}

// WaitPairing waits until a trusted device approves the pairing; the new
// account is then recorded and can approve logins itself. If the pairing
// expires, or wait or ctx ends first, the pairing is cancelled at the
// cloud (so no trusted device can approve it later) and the new key is
// deleted.
func (p *Phone) WaitPairing(ctx context.Context, pr *Pairing, wait time.Duration) (*Account, error) {
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return p.giveUpPairing(ctx, pr, fmt.Errorf("%w: no trusted device approved it within %s; the pairing was cancelled", ErrPairingExpired, wait))
		}
		var st trustapi.PairingStatus
		q := url.Values{"wait": {min(left, 60*time.Second).String()}}
		if err := p.call(ctx, http.MethodGet, pr.QR.Cloud, trustapi.PathPairings+"/"+url.PathEscape(pr.QR.PairingID), q, nil, &st, nil); err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w: the pairing was cancelled", context.Cause(ctx))
			}
			return p.giveUpPairing(ctx, pr, err)
		}
		switch st.Status {
		case trustapi.StatusApproved:
			return p.paired(ctx, pr, st)
		case trustapi.StatusExpired, trustapi.StatusCancelled:
			p.dropSecrets(ctx, pr.keyID)
			return nil, fmt.Errorf("%w: no trusted device approved it within %s; show a new QR", ErrPairingExpired, trustapi.PairingMaxAge)
		}
	}
}

// paired records the account of an approved pairing.
func (p *Phone) paired(ctx context.Context, pr *Pairing, st trustapi.PairingStatus) (*Account, error) {
	a := &Account{ID: st.AuthenticatorID, Cloud: pr.QR.Cloud, Username: st.Username, UserID: st.UserID, KeyID: pr.keyID,
		AAID: deviceapi.AAIDPIN, CreatedAt: p.now().UTC().Truncate(time.Second)}
	bindDone := p.bindInbox(ctx, a)
	err := p.addAccount(a)
	bindDone(err == nil)
	if err != nil {
		return nil, fmt.Errorf("trusted, but the phone could not record the account: %w", err)
	}
	key, err := p.loadKey(ctx, a)
	if err != nil {
		return nil, err
	}
	return a, p.registerTarget(ctx, a, key)
}

// giveUpPairing cancels a pairing this device stops waiting for and
// deletes its key. If a trusted device approved it just before, the
// account is recorded instead: the cloud already trusts the key.
func (p *Phone) giveUpPairing(ctx context.Context, pr *Pairing, why error) (*Account, error) {
	bg, cancel := background(ctx)
	defer cancel()
	err := p.CancelPairing(bg, pr)
	var ce *CloudError
	if errors.As(err, &ce) && ce.HTTPStatus == http.StatusConflict {
		var st trustapi.PairingStatus
		if p.call(bg, http.MethodGet, pr.QR.Cloud, trustapi.PathPairings+"/"+url.PathEscape(pr.QR.PairingID), nil, nil, &st, nil) == nil &&
			st.Status == trustapi.StatusApproved {
			return p.paired(bg, pr, st)
		}
	}
	p.dropSecrets(ctx, pr.keyID)
	return nil, why
}

// CancelPairing cancels this device's pending pairing, signed with the
// pairing's key: a trusted device scanning its QR afterwards is told it
// was cancelled. Cancelling twice is no error.
func (p *Phone) CancelPairing(ctx context.Context, pr *Pairing) error {
	key, err := p.loadKey(ctx, &Account{KeyID: pr.keyID, Username: pr.Created.Username})
	if err != nil {
		return err
	}
	ts := p.now().Unix()
	sig, err := trustapi.Sign(key, trustapi.SignedFacts(pr.QR.UserID, pr.QR.PairingID, trustapi.EventCancelPairing, ts, false))
	if err != nil {
		return err
	}
	return p.call(ctx, http.MethodPost, pr.QR.Cloud, trustapi.PathPairings+"/"+url.PathEscape(pr.QR.PairingID)+"/cancel", nil,
		trustapi.CancelPairing{Timestamp: ts, Signature: sig}, nil, nil)
}

// KeyFingerprint is a short, readable digest of a public key.
func KeyFingerprint(pub string) string {
	h := sha256.Sum256([]byte(pub))
	return strings.ToUpper(hex.EncodeToString(h[:6]))
}

// pairingText reads a pairing QR from any input: its JSON, or an image or
// data: URI of the QR code.
func pairingText(input []byte) (string, error) {
	if qr.IsImage(input) {
		return qr.Read(input)
	}
	s := strings.TrimSpace(string(input))
	if strings.HasPrefix(s, "data:image/") {
		_, b64, ok := strings.Cut(s, ";base64,")
		if !ok {
			return "", fmt.Errorf("%w: the data: URI is not base64", trustapi.ErrNotPairing)
		}
		img, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return "", fmt.Errorf("%w: %v", trustapi.ErrNotPairing, err)
		}
		return qr.Read(img)
	}
	return s, nil
}

// TrustScan reads another device's pairing QR (its JSON, a PNG/JPEG of it,
// or a data: URI), checks it is under 3 minutes old and for a user this
// phone holds, and starts an APPROVE_DEVICE flow that makes it trusted.
func (p *Phone) TrustScan(ctx context.Context, input []byte) (*flows.Flow, error) {
	text, err := pairingText(input)
	if err != nil {
		return nil, err
	}
	q, err := trustapi.ParsePairingQR(text)
	if err != nil {
		if _, derr := dispatch.Decode([]byte(text)); derr == nil {
			return nil, fmt.Errorf("%w: this is a dispatch payload; use `authphone scan`", err)
		}
		return nil, err
	}
	if age := p.now().Sub(time.Unix(q.Timestamp, 0)); age > trustapi.PairingMaxAge {
		return nil, fmt.Errorf("%w: it is %s old (over %s); show a new one with `authphone trust qr`", ErrPairingStale, age.Round(time.Second), trustapi.PairingMaxAge)
	}
	accts, err := p.Accounts()
	if err != nil {
		return nil, err
	}
	var a *Account
	for _, x := range accts {
		if x.Cloud == q.Cloud && x.UserID == q.UserID && !x.Headless {
			a = x
		}
	}
	if a == nil {
		return nil, fmt.Errorf("%w: the pairing QR is for user %s on %s, which this phone (profile %s) does not hold", ErrNoAccount, q.UserID, q.Cloud, p.profile)
	}
	return p.runner.Start(ctx, flows.ApproveDevice, a.flowAccount(), func(ctx context.Context, s *flows.Step) error {
		s.Processing()
		key, err := p.loadKey(ctx, a)
		if err != nil {
			return err
		}
		if a.Locked() {
			return fmt.Errorf("%w: %s", flows.ErrLocked, a.Name())
		}
		details := map[string]string{"event": trustapi.EventEnrollTrustedDevice, "keyFingerprint": KeyFingerprint(q.PublicKey),
			"pairingId": q.PairingID}
		if err := s.Confirm(ctx, "", details); err != nil {
			return err
		}
		if err := p.verifySecondFactor(ctx, s, a); err != nil {
			return err
		}
		ts := p.now().Unix()
		sig, err := trustapi.Sign(key, trustapi.SignedFacts(a.UserID, q.PublicKey, trustapi.EventEnrollTrustedDevice, ts, true))
		if err != nil {
			return err
		}
		return p.call(ctx, http.MethodPost, a.Cloud, trustapi.PathPairings+"/"+url.PathEscape(q.PairingID)+"/approve", nil,
			trustapi.ApprovePairing{PublicKey: q.PublicKey, Timestamp: ts, Signature: sig}, nil, &signer{key, a.KeyID})
	})
}

// TrustedDevices lists the trusted devices of an account's user.
func (p *Phone) TrustedDevices(ctx context.Context, ref string) ([]trustapi.TrustedDevice, error) {
	a, err := p.Account(ref)
	if err != nil {
		return nil, err
	}
	key, err := p.loadKey(ctx, a)
	if err != nil {
		return nil, err
	}
	var out []trustapi.TrustedDevice
	err = p.call(ctx, http.MethodGet, a.Cloud, trustapi.PathTrustedDevices, nil, nil, &out, &signer{key, a.KeyID})
	return out, err
}

// RemoveTrustedDevice removes another (or this) trusted device of the
// account's user, with this device's signature.
func (p *Phone) RemoveTrustedDevice(ctx context.Context, ref, authenticatorID string) error {
	a, err := p.Account(ref)
	if err != nil {
		return err
	}
	key, err := p.loadKey(ctx, a)
	if err != nil {
		return err
	}
	ts := p.now().Unix()
	sig, err := trustapi.Sign(key, trustapi.SignedFacts(a.UserID, authenticatorID, trustapi.EventRemoveTrustedDevice, ts, true))
	if err != nil {
		return err
	}
	body := struct {
		Timestamp int64  `json:"timestamp"`
		Signature string `json:"signature"`
	}{ts, sig}
	return p.call(ctx, http.MethodPost, a.Cloud, trustapi.PathTrustedDevices+"/"+url.PathEscape(authenticatorID)+"/remove", nil, body, nil, &signer{key, a.KeyID})
}
