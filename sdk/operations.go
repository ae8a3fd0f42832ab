package sdk

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/devsig"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/authphone/authphone/sdk/uaf"
)

// Scan reads a dispatch payload in any accepted form (raw base64url, app
// link, JSON, data: URI, or the bytes of a PNG/JPEG image of the QR code)
// and starts its flow: ENROL for a registration, LOGIN or SIGN_TRANSACTION
// for an authentication, DEREGISTER for a deregistration. Read the flow's
// Updates and answer it until it ends.
func (p *Phone) Scan(ctx context.Context, input []byte, opts ...ScanOption) (*flows.Flow, error) {
	var so scanOptions
	for _, o := range opts {
		o(&so)
	}
	pl, err := dispatch.Decode(input)
	if err != nil {
		if text, terr := pairingText(input); terr == nil {
			if _, perr := trustapi.ParsePairingQR(text); perr == nil {
				return nil, fmt.Errorf("%w: this is another device's pairing QR; approve it with `authphone trust scan` (Phone.TrustScan)", err)
			}
		}
		return nil, err
	}
	return p.start(ctx, pl, nil, so)
}

// ScanOption changes how Scan enrols.
type ScanOption func(*scanOptions)

type scanOptions struct{ biometric bool }

// WithBiometric enrols with a simulated biometric as the second factor
// (AAID F1D0#0003) instead of a PIN; the flow's SET_SECOND_FACTOR and, later,
// VERIFY_SECOND_FACTOR carry method "biometric" and are answered with
// Flow.Biometric.
func WithBiometric() ScanOption { return func(o *scanOptions) { o.biometric = true } }

func (p *Phone) start(ctx context.Context, pl dispatch.Payload, hint *Account, so scanOptions) (*flows.Flow, error) {
	switch pl.Kind() {
	case dispatch.Registration:
		return p.runner.Start(ctx, flows.Enrol, nil, func(ctx context.Context, s *flows.Step) error { return p.enrol(ctx, s, pl, so) })
	case dispatch.Authentication:
		return p.runner.Start(ctx, flows.Login, hint.flowAccount(), func(ctx context.Context, s *flows.Step) error {
			return p.authenticate(ctx, s, pl, hint, nil)
		})
	default:
		return p.runner.Start(ctx, flows.Deregister, hint.flowAccount(), func(ctx context.Context, s *flows.Step) error {
			return p.deregister(ctx, s, pl)
		})
	}
}

// redeem exchanges a dispatch token for its UAF request.
func (p *Phone) redeem(ctx context.Context, pl dispatch.Payload, out any) (uaf.Header, error) {
	h, _, err := p.redeemFull(ctx, pl, out)
	return h, err
}

// redeemFull is redeem that also returns the whole answer (the numbers a
// number-matching approval offers).
func (p *Phone) redeemFull(ctx context.Context, pl dispatch.Payload, out any) (uaf.Header, *deviceapi.RedeemResponse, error) {
	var rr deviceapi.RedeemResponse
	err := p.call(ctx, http.MethodPost, pl.Base(), deviceapi.PathRedeem+string(pl.Kind()), nil,
		deviceapi.RedeemRequest{Token: pl.Token}, &rr, nil)
	switch {
	case errors.Is(err, ErrTokenRedeemed):
		return uaf.Header{}, nil, fmt.Errorf("%w: this QR code or request was already used; ask the service for a new one", err)
	case errors.Is(err, ErrTokenExpired):
		return uaf.Header{}, nil, fmt.Errorf("%w: ask the service for a new one", err)
	case errors.Is(err, ErrTokenUnknown):
		return uaf.Header{}, nil, fmt.Errorf("%w: the cloud at %s does not know it; is it the right cloud?", err, pl.Base())
	case err != nil:
		return uaf.Header{}, nil, err
	}
	hdr, err := readRedeemed(&rr, out)
	if err != nil {
		return uaf.Header{}, nil, err
	}
	return hdr, &rr, nil
}

// readRedeemed decodes the UAF request of a redeem's answer (or of one the
// inbox delivered) into out and checks its version.
func readRedeemed(rr *deviceapi.RedeemResponse, out any) (uaf.Header, error) {
	if err := uaf.Decode(rr.UAFRequest, out); err != nil {
		return uaf.Header{}, fmt.Errorf("the cloud sent a malformed UAF request: %w", err)
	}
	var hdr uaf.Header
	switch m := out.(type) {
	case *uaf.AuthenticationRequest:
		hdr = m.Header
	case *uaf.RegistrationRequest:
		hdr = m.Header
	case *uaf.DeregistrationRequest:
		hdr = m.Header
	default:
		var h struct {
			Header uaf.Header `json:"header"`
		}
		_ = uaf.Decode(rr.UAFRequest, &h)
		hdr = h.Header
	}
	if !hdr.UPV.Supported() {
		return uaf.Header{}, fmt.Errorf("the cloud speaks UAF %d.%d; authphone speaks 1.0 and 1.1", hdr.UPV.Major, hdr.UPV.Minor)
	}
	return hdr, nil
}

// background gives clean-up calls (declines) a context that outlives a
// cancelled flow, briefly.
func background(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}

// decline tells the cloud the user said no (or gave up); best effort, since
// the operation also fails when it expires.
func (p *Phone) decline(ctx context.Context, pl dispatch.Payload, reason string, s *signer) {
	ctx, cancel := background(ctx)
	defer cancel()
	_ = p.call(ctx, http.MethodPost, pl.Base(), deviceapi.PathDecline, nil,
		deviceapi.DeclineRequest{Token: pl.Token, Reason: reason}, nil, s)
}

func reasonFor(err error) string {
	switch {
	case errors.Is(err, flows.ErrDeclined):
		return "user declined"
	case errors.Is(err, flows.ErrLocked):
		return "second factor locked"
	case errors.Is(err, flows.ErrWrongPIN):
		return "wrong PIN"
	case errors.Is(err, flows.ErrNotOffered):
		return cloudapi.ReasonWrongNumber
	default:
		return "cancelled"
	}
}

func (p *Phone) enrol(ctx context.Context, s *flows.Step, pl dispatch.Payload, so scanOptions) error {
	s.Processing()
	var req uaf.RegistrationRequest
	hdr, err := p.redeem(ctx, pl, &req)
	if err != nil {
		return err
	}
	aaid, kind := deviceapi.AAIDPIN, "PIN"
	if so.biometric {
		aaid, kind = deviceapi.AAIDBiometric, "biometric"
	}
	alg, ok := deviceapi.AcceptedAlgorithm(req.Policy, aaid)
	if !ok {
		p.decline(ctx, pl, "no acceptable authenticator", nil)
		return fmt.Errorf("%w: the cloud's policy does not accept a %s authenticator (%s)", ErrRejected, kind, aaid)
	}
	pin := ""
	if so.biometric {
		err = s.SetBiometric(ctx)
	} else {
		pin, err = s.SetPIN(ctx, ValidatePIN)
	}
	if err != nil {
		p.decline(ctx, pl, reasonFor(err), nil)
		return err
	}
	key, keyID, err := newDeviceKey()
	if err != nil {
		return err
	}
	bound := &Account{KeyID: keyID, Username: req.Username}
	bindDone := p.bindInbox(ctx, bound)
	acct, targeted, err := p.register(ctx, hdr, req.Challenge, pl.Base(), aaid, alg, key, keyID, pin, bound)
	if err != nil {
		bindDone(false)
		return err
	}
	acct.Username, acct.Biometric, acct.InboxKey = req.Username, so.biometric, bound.InboxKey
	err = p.addAccount(acct)
	bindDone(err == nil)
	if err != nil {
		return fmt.Errorf("enrolled, but the phone could not record the account: %w", err)
	}
	s.SetAccount(acct.flowAccount())
	if targeted {
		return nil
	}
	return p.registerTarget(ctx, acct, key)
}

// register keeps the new key (and the PIN verifier, if pin is not empty) in
// the keystore, then registers it with the cloud, signing with alg; if the
// cloud refuses, the secrets are removed again. With target (the new
// account's username and InboxKey, nothing else) the registration carries
// the account's dispatch target (UAFBody.DispatchTarget); targeted reports
// that the cloud registered it, so registerTarget is not needed.
func (p *Phone) register(ctx context.Context, hdr uaf.Header, challenge, base, aaid string, alg uint16, key *ecdsa.PrivateKey, keyID, pin string,
	target *Account) (a *Account, targeted bool, err error) {
	body := deviceapi.UAFBody{}
	if target != nil {
		if body.DispatchTarget, err = p.dispatchTarget(ctx, target, key); err != nil {
			return nil, false, err
		}
	}
	fc := uaf.EncodeFCParams(uaf.FinalChallengeParams{AppID: hdr.AppID, Challenge: challenge, FacetID: p.facetID()})
	rawID, _ := uaf.B64.DecodeString(keyID)
	mode := uaf.ModeUserVerified
	assertion, err := uaf.BuildRegAssertion(key, uaf.KRD{AAID: aaid, Mode: mode, FinalChallenge: uaf.FinalChallenge(fc), KeyID: rawID, SignAlg: alg})
	if err != nil {
		return nil, false, err
	}
	body.UAFResponse, err = uaf.Encode(uaf.Response{Header: uaf.Header{UPV: hdr.UPV, Op: uaf.OpReg, AppID: hdr.AppID, ServerData: hdr.ServerData},
		FCParams: fc, Assertions: []uaf.Assertion{{AssertionScheme: uaf.SchemeTLV, Assertion: uaf.B64.EncodeToString(assertion)}}})
	if err != nil {
		return nil, false, err
	}
	if err := p.storeKey(ctx, keyID, key); err != nil {
		return nil, false, err
	}
	cleanup := func() {
		ctx, cancel := background(ctx)
		defer cancel()
		p.dropKey(keyID)
		_ = p.keys.Delete(ctx, keyName(keyID))
		if pin != "" {
			_ = p.keys.Delete(ctx, pinName(keyID))
		}
	}
	if pin != "" {
		ver, err := p.newPINVerifier(pin)
		if err != nil {
			cleanup()
			return nil, false, err
		}
		if err := p.keys.Set(ctx, pinName(keyID), ver); err != nil {
			cleanup()
			return nil, false, fmt.Errorf("keep the PIN verifier in the %s keystore: %w", p.keys.Kind(), err)
		}
	}
	var sb deviceapi.StatusBody
	err = p.call(ctx, http.MethodPost, base, deviceapi.PathRegistration, nil, body, &sb, nil)
	if ce := (*CloudError)(nil); err != nil && body.DispatchTarget != nil && errors.As(err, &ce) &&
		ce.HTTPStatus == http.StatusBadRequest && strings.Contains(strings.ToLower(ce.Message), "dispatchtarget") {
		// A cloud that refuses the target with the registration (a
		// server failing on a property it does not know, or a target it
		// refuses): the key is registered without it, and the caller then
		// registers the target with its own call, as before the field.
		body.DispatchTarget = nil
		err = p.call(ctx, http.MethodPost, base, deviceapi.PathRegistration, nil, body, &sb, nil)
	}
	if err != nil {
		cleanup()
		return nil, false, fmt.Errorf("registration: %w", err)
	}
	if alg == uaf.AlgSecp256r1SHA256Raw {
		alg = 0 // the default, not written to the state file
	}
	return &Account{ID: sb.AuthenticatorID, Cloud: base, UserID: sb.UserID, KeyID: keyID, AAID: aaid, SignAlg: alg,
		CreatedAt: p.now().UTC().Truncate(time.Second)}, target != nil && sb.DispatchTarget, nil
}

// registerTarget tells the cloud to deliver push messages to this phone's
// inbox. The request is signed by the account's key; the target names the
// phone's device key when the account is bound to it (InboxKey), so that
// one signed request reads every account's inbox.
func (p *Phone) registerTarget(ctx context.Context, a *Account, key *ecdsa.PrivateKey) error {
	t, err := p.dispatchTarget(ctx, a, key)
	if err != nil {
		return err
	}
	if err := p.call(ctx, http.MethodPost, a.Cloud, deviceapi.PathDispatchTargets, nil, *t, nil, &signer{key, a.KeyID}); err != nil {
		return fmt.Errorf("enrolled as %s, but registering for push messages failed (%w); approvals will only work by QR code", a.Name(), err)
	}
	return nil
}

// dispatchTarget is the dispatch target of account a, whose key is key:
// the phone's device key when a is bound to it (InboxKey), else key.
func (p *Phone) dispatchTarget(ctx context.Context, a *Account, key *ecdsa.PrivateKey) (*deviceapi.DispatchTarget, error) {
	pub, deviceID := &key.PublicKey, a.KeyID[:16]
	if a.InboxKey != "" {
		dk, id, err := p.deviceKey(ctx, false)
		if err == nil && id == a.InboxKey {
			pub, deviceID = &dk.PublicKey, id
		}
	}
	jb, err := devsig.JWK(pub)
	if err != nil {
		return nil, err
	}
	return &deviceapi.DispatchTarget{Name: p.name, DeviceID: deviceID, Dispatcher: "inbox", Username: a.Username, SignatureKey: jb}, nil
}

// accountFor finds the account an authentication request asks for.
func (p *Phone) accountFor(base string, pol uaf.Policy, hint *Account) (*Account, error) {
	if hint != nil {
		return hint, nil
	}
	accts, err := p.Accounts()
	if err != nil {
		return nil, err
	}
	for _, a := range accts {
		if a.Cloud == base && pol.Matches(deviceapi.DescribeAlg(a.AAID, a.KeyID, a.SignAlg)) {
			return a, nil
		}
	}
	return nil, fmt.Errorf("%w: no account of this phone (profile %s) is asked for by this request from %s; enrol first or use the right --profile", ErrNoAccount, p.profile, base)
}

// authenticate answers an authentication request: the one the inbox
// delivered with its message (delivered, ours), or, when there is none, the
// one the redeem of pl's token answers.
func (p *Phone) authenticate(ctx context.Context, s *flows.Step, pl dispatch.Payload, hint *Account, delivered *deviceapi.RedeemResponse) error {
	var req uaf.AuthenticationRequest
	var hdr uaf.Header
	rr, err := delivered, error(nil)
	if rr != nil {
		hdr, err = readRedeemed(rr, &req)
		if err == nil && hdr.Op != uaf.OpAuth {
			err = fmt.Errorf("the cloud delivered a UAF %s request with an approval", hdr.Op)
		}
	} else {
		hdr, rr, err = p.redeemFull(ctx, pl, &req)
	}
	if err != nil {
		s.Processing()
		return err
	}
	text := ""
	if len(req.Transaction) > 0 {
		b, err := uaf.B64.DecodeString(req.Transaction[0].Content)
		if err != nil {
			return fmt.Errorf("the cloud sent transaction text that is not base64url")
		}
		text = string(b)
		s.SetType(flows.SignTransaction)
	}
	a, err := p.accountFor(pl.Base(), req.Policy, hint)
	if err != nil {
		s.Processing()
		return err
	}
	// Re-read the account: its PIN failures may have moved (the counter is
	// read again where it grows, except by the stale-counter fault). A
	// biometric account has none.
	if !a.Biometric || p.faults.StaleCounter {
		if fresh, err := p.Account(a.ID); err == nil {
			a = fresh
		}
	}
	s.SetAccount(a.flowAccount())
	s.Processing()
	key, err := p.loadKey(ctx, a)
	if err != nil {
		return err
	}
	sg := &signer{key, a.KeyID}
	if a.Locked() {
		p.decline(ctx, pl, "second factor locked", sg)
		return fmt.Errorf("%w: %s; remove the account and enrol again", flows.ErrLocked, a.Name())
	}
	shown := text
	if text != "" {
		shown = cloudapi.PlainText(text)
	}
	number := 0
	if len(rr.NumberChoices) > 0 {
		number, err = s.ConfirmNumber(ctx, shown, nil, rr.NumberChoices)
	} else {
		err = s.Confirm(ctx, shown, nil)
	}
	if err != nil {
		p.decline(ctx, pl, reasonFor(err), sg)
		return err
	}
	if err := p.verifySecondFactor(ctx, s, a); err != nil {
		p.decline(ctx, pl, reasonFor(err), sg)
		if errors.Is(err, flows.ErrWrongPIN) {
			return fmt.Errorf("%w: %s left before the account locks; the request was declined", err, attemptsLeft(MaxPINAttempts-a.PINFailures))
		}
		return err
	}
	return p.sign(ctx, a, key, hdr, req.Challenge, req.Transaction, number)
}

// verifySecondFactor asks for the account's PIN (with the lock-out) or its
// biometric.
func (p *Phone) verifySecondFactor(ctx context.Context, s *flows.Step, a *Account) error {
	if a.Biometric {
		return s.VerifyBiometric(ctx)
	}
	return s.VerifyPIN(ctx, MaxPINAttempts-a.PINFailures, p.pinCheck(a))
}

// sign builds, counts and sends the authentication assertion.
// number is the number the user picked (number matching), or 0.
func (p *Phone) sign(ctx context.Context, a *Account, key *ecdsa.PrivateKey, hdr uaf.Header, challenge string, tx []uaf.Transaction, number int) error {
	if p.faults.WrongChallenge {
		challenge = randomChallenge()
	}
	fc := uaf.EncodeFCParams(uaf.FinalChallengeParams{AppID: hdr.AppID, Challenge: challenge, FacetID: p.facetID()})
	th, err := uaf.TransactionHash(tx)
	if err != nil {
		return err
	}
	mode := uaf.ModeUserVerified
	if len(tx) > 0 {
		mode = uaf.ModeTransactionConfirm
	}
	// Like a real authenticator, count the signature before it leaves.
	var counter uint32
	if p.faults.StaleCounter {
		// A clone repeats the counter its original last used.
		if counter = a.SignCounter; counter == 0 {
			return fmt.Errorf("fault stale-counter: %s has not signed yet, so it has no counter to repeat; approve once without the fault first", a.Name())
		}
	} else if err := p.updateAccount(a.ID, func(s *Account) { s.SignCounter++; counter = s.SignCounter }); err != nil {
		return err
	}
	rawID, _ := uaf.B64.DecodeString(a.KeyID)
	assertion, err := uaf.BuildAuthAssertion(key, uaf.SignedData{AAID: a.AAID, Mode: mode, FinalChallenge: uaf.FinalChallenge(fc),
		TransactionHash: th, KeyID: rawID, SignCounter: counter, SignAlg: a.SignAlg})
	if err != nil {
		return err
	}
	if p.faults.BadSignature {
		assertion[len(assertion)-1] ^= 0x01 // the signature is the assertion's last element
	}
	msg, err := uaf.Encode(uaf.Response{Header: uaf.Header{UPV: hdr.UPV, Op: uaf.OpAuth, AppID: hdr.AppID, ServerData: hdr.ServerData},
		FCParams: fc, Assertions: []uaf.Assertion{{AssertionScheme: uaf.SchemeTLV, Assertion: uaf.B64.EncodeToString(assertion)}}})
	if err != nil {
		return err
	}
	if p.faults.Slow > 0 {
		if err := p.sleep(ctx, p.faults.Slow); err != nil {
			return err
		}
	}
	if p.faults.DropAnswer {
		return fmt.Errorf("%w: the cloud still waits for it, until the operation expires", ErrAnswerDropped)
	}
	body := deviceapi.UAFBody{UAFResponse: msg}
	if number != 0 {
		body.Context, _ = json.Marshal(deviceapi.AuthContext{Number: number})
	}
	err = p.call(ctx, http.MethodPost, a.Cloud, deviceapi.PathAuthentication, nil, body, nil, nil)
	var ce *CloudError
	if errors.As(err, &ce) && strings.HasPrefix(ce.Message, deviceapi.WrongNumber) {
		return fmt.Errorf("%w: %d is not the number the service shows; the approval failed", flows.ErrWrongNumber, number)
	}
	if err != nil {
		return fmt.Errorf("authentication: %w", err)
	}
	return nil
}

func (p *Phone) deregister(ctx context.Context, s *flows.Step, pl dispatch.Payload) error {
	s.Processing()
	var req uaf.DeregistrationRequest
	if _, err := p.redeem(ctx, pl, &req); err != nil {
		return err
	}
	accts, err := p.Accounts()
	if err != nil {
		return err
	}
	removed := 0
	for _, d := range req.Authenticators {
		for _, a := range accts {
			if a.Cloud == pl.Base() && a.KeyID == d.KeyID && a.AAID == d.AAID {
				s.SetAccount(a.flowAccount())
				if err := p.forget(ctx, a); err != nil {
					return err
				}
				removed++
			}
		}
	}
	if removed == 0 {
		return fmt.Errorf("%w: the cloud removed a key this phone (profile %s) does not hold", ErrNoAccount, p.profile)
	}
	return nil
}

// forget deletes an account's secrets and record.
func (p *Phone) forget(ctx context.Context, a *Account) error {
	p.dropKey(a.KeyID)
	for _, name := range []string{keyName(a.KeyID), pinName(a.KeyID)} {
		if err := p.keys.Delete(ctx, name); err != nil && !errors.Is(err, keystoreNotFound) {
			return fmt.Errorf("delete %s from the %s keystore: %w", name, p.keys.Kind(), err)
		}
	}
	return p.removeAccountState(a.ID)
}

// RemoveAccount deregisters an account with its cloud and deletes its key.
// If the cloud cannot be reached the account is kept, unless force is set.
func (p *Phone) RemoveAccount(ctx context.Context, ref string, force bool) (*Account, error) {
	a, err := p.Account(ref)
	if err != nil {
		return nil, err
	}
	key, kerr := p.loadKey(ctx, a)
	if kerr == nil {
		msg, _ := uaf.Encode(uaf.DeregistrationRequest{Header: uaf.Header{UPV: uaf.V1_1, Op: uaf.OpDereg},
			Authenticators: []uaf.DeregisterAuthenticator{{AAID: a.AAID, KeyID: a.KeyID}}})
		err = p.call(ctx, http.MethodPost, a.Cloud, deviceapi.PathDeregistration, nil, deviceapi.UAFBody{UAFResponse: msg}, nil, &signer{key, a.KeyID})
		var ce *CloudError
		if errors.As(err, &ce) && ce.HTTPStatus == http.StatusUnauthorized {
			err = nil // the cloud no longer knows this key: nothing to tell it
		}
	} else {
		err = kerr
	}
	if err != nil && !force {
		return nil, fmt.Errorf("%w; the account was kept (use --force to remove it from this phone anyway)", err)
	}
	return a, p.forget(ctx, a)
}

// randomChallenge is a challenge the cloud never sent (wrong-challenge).
func randomChallenge() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return uaf.B64.EncodeToString(b)
}
