package sdk_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/backend"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/trustapi"
)

// verifyIndependently checks an ES256 JWT against the cloud's JWKS with the
// standard library alone — not the emulator's (jwx) code path — and returns
// its claims.
func verifyIndependently(t *testing.T, cloud, token string) map[string]any {
	t.Helper()
	resp, err := http.Get(cloud + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct{ Kty, Crv, X, Y, Kid string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", token)
	}
	var hdr struct{ Alg, Kid string }
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if err := json.Unmarshal(hb, &hdr); err != nil || hdr.Alg != "ES256" {
		t.Fatalf("header %s", hb)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	for _, k := range set.Keys {
		if k.Kid != hdr.Kid || k.Kty != "EC" || k.Crv != "P-256" {
			continue
		}
		x, _ := base64.RawURLEncoding.DecodeString(k.X)
		y, _ := base64.RawURLEncoding.DecodeString(k.Y)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			t.Fatal(err)
		}
		if len(sig) != 64 || !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			t.Fatal("the token's signature does not verify with the JWKS key")
		}
		var claims map[string]any
		pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
		if err := json.Unmarshal(pb, &claims); err != nil {
			t.Fatal(err)
		}
		return claims
	}
	t.Fatalf("no JWKS key with kid %q", hdr.Kid)
	return nil
}

// approveLogin has the trusted phone approve the oldest login request.
func approveLogin(t *testing.T, e *env, p *sdk.Phone, pin string, yes bool) ([]flows.Update, flows.Update, sdk.Request) {
	t.Helper()
	r, err := p.Next(e.ctx, sdk.Select{Wait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Login == nil {
		t.Fatalf("pending request is not a login request: %+v", r)
	}
	f, err := p.Approve(e.ctx, r)
	us, last := run(t, f, err, flows.Answers{Confirm: yes, PIN: pin})
	return us, last, r
}

func TestSignInWithDeviceApprove(t *testing.T) {
	e := newEnv(t)
	phone := e.phone("phone")
	e.enrol(phone, "alice", "1234")
	laptop := e.phone("laptop")

	lr, err := laptop.SignInWithDevice(e.ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if lr.BindingCode == "" || lr.Approved {
		t.Fatalf("login request %+v", lr)
	}
	type result struct {
		tok *trustapi.TokenResponse
		err error
		at  time.Time
	}
	got := make(chan result, 1)
	go func() {
		tok, err := laptop.WaitTokens(e.ctx, lr, 30*time.Second)
		got <- result{tok, err, time.Now()}
	}()
	us, last, r := approveLogin(t, e, phone, "1234", true)
	approvedAt := time.Now()
	want := "PROCESSING → WAIT_FOR_INPUT/CONFIRM → PROCESSING → WAIT_FOR_INPUT/VERIFY_SECOND_FACTOR → PROCESSING → DONE"
	if seq(us) != want || last.Type != flows.ApproveDevice {
		t.Fatalf("APPROVE_DEVICE\n got %s\nwant %s (%v)", seq(us), want, last.Err)
	}
	if r.Login.BindingCode != lr.BindingCode || us[1].CurrentInteraction.Details["bindingCode"] != lr.BindingCode ||
		r.Login.IP != "127.0.0.1" || !strings.Contains(r.Login.DeviceName, "laptop") {
		t.Fatalf("the phone showed %+v / %+v", r.Login, us[1].CurrentInteraction.Details)
	}
	res := <-got
	if res.err != nil {
		t.Fatal(res.err)
	}
	if lag := res.at.Sub(approvedAt); lag > time.Second {
		t.Fatalf("tokens arrived %v after the approval", lag)
	}
	tok := res.tok
	if tok.Method != "TRUSTED_DEVICE" || tok.OAuthToken.TokenType != "Bearer" || tok.Signature == "" || tok.Event != "LOGIN" {
		t.Fatalf("token response %+v", tok)
	}
	// Verified by an independent JOSE implementation...
	claims := verifyIndependently(t, e.emu.URL(), tok.OAuthToken.AccessToken)
	if claims["sub"] != tok.UserID || claims["iss"] != e.emu.URL() || claims["identifier"] != "alice" ||
		claims["authentication_method"] != "TRUSTED_DEVICE" || claims["scope"] != "access" {
		t.Fatalf("access token claims %v", claims)
	}
	if idc := verifyIndependently(t, e.emu.URL(), tok.OAuthToken.IDToken); idc["identifier"] != "alice" || idc["sub"] != tok.UserID {
		t.Fatalf("id token claims %v", idc)
	}
	// ...and by the backend client.
	c, err := e.be.VerifyAccessToken(e.ctx, tok.OAuthToken.AccessToken)
	if err != nil || c.Subject != tok.UserID || c.Identifier != "alice" {
		t.Fatalf("VerifyAccessToken %+v %v", c, err)
	}
	if in, _ := e.be.Introspect(e.ctx, tok.OAuthToken.AccessToken); !in.Active {
		t.Fatal("introspection does not know the access token")
	}
	// The tokens are handed out once.
	_, err = laptop.PollTokens(e.ctx, lr, 0)
	var oe *trustapi.OAuthError
	if !errors.As(err, &oe) || oe.Code != trustapi.ErrCodeInvalidGrant {
		t.Fatalf("second poll: %v", err)
	}
}

func TestSignInWithDeviceRejectExpireSlowDown(t *testing.T) {
	e := newEnv(t)
	phone := e.phone("phone")
	e.enrol(phone, "alice", "1234")
	laptop := e.phone("laptop")

	// Rejected.
	lr, _ := laptop.SignInWithDevice(e.ctx, "alice")
	r, err := phone.Next(e.ctx, sdk.Select{Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := phone.Deny(e.ctx, r, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := laptop.WaitTokens(e.ctx, lr, 5*time.Second); !errors.Is(err, sdk.ErrLoginRejected) {
		t.Fatalf("rejected: %v", err)
	}

	// Polling faster than the interval.
	lr, _ = laptop.SignInWithDevice(e.ctx, "alice")
	var oe *trustapi.OAuthError
	if _, err := laptop.PollTokens(e.ctx, lr, 0); !errors.As(err, &oe) || oe.Code != trustapi.ErrCodePending {
		t.Fatalf("first poll: %v", err)
	}
	if _, err := laptop.PollTokens(e.ctx, lr, 0); !errors.As(err, &oe) || oe.Code != trustapi.ErrCodeSlowDown {
		t.Fatalf("fast second poll: %v", err)
	}

	// Expired.
	short := newEnv(t)
	sp := short.phone("phone")
	short.enrol(sp, "bob", "1234")
	sl := short.phone("laptop")
	lr, _ = sl.SignInWithDevice(short.ctx, "bob")
	if _, err := short.emu.AdvanceClock(trustapi.DefaultRequestTTL + time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := sl.WaitTokens(short.ctx, lr, time.Minute); !errors.Is(err, sdk.ErrLoginExpired) {
		t.Fatalf("expired: %v", err)
	}
	if rs, _ := sp.Pending(short.ctx, 0); len(rs) != 0 {
		t.Fatalf("an expired request is still pending: %+v", rs)
	}
	// A trusted phone asking for itself is approved at once (Cotter's case 1).
	lr, err = phone.SignInWithDevice(e.ctx, "alice")
	if err != nil || !lr.Approved {
		t.Fatalf("trusted requester: %+v %v", lr, err)
	}
	if tok, err := phone.PollTokens(e.ctx, lr, 0); err != nil || tok.OAuthToken.AccessToken == "" {
		t.Fatalf("trusted requester tokens: %v", err)
	}
}

func TestTokenVerificationAndRotation(t *testing.T) {
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	e := newEnv(t, emulator.WithClock(clock))
	phone := e.phone("phone")
	e.enrol(phone, "alice", "1234")
	lr, _ := phone.SignInWithDevice(e.ctx, "alice")
	tok, err := phone.PollTokens(e.ctx, lr, 0)
	if err != nil {
		t.Fatal(err)
	}
	access := tok.OAuthToken.AccessToken
	be := backend.New(e.emu.URL(), backend.WithJWKSRefetchInterval(0))
	if _, err := be.VerifyAccessToken(e.ctx, access); err != nil {
		t.Fatal(err)
	}
	// Wrong audience or issuer, tampered: refused.
	for name, c := range map[string]*backend.Client{
		"wrong aud": backend.New(e.emu.URL(), backend.WithAudience("another-app")),
		"wrong iss": backend.New(e.emu.URL(), backend.WithIssuer("https://login.example.com")),
	} {
		if _, err := c.VerifyAccessToken(e.ctx, access); !errors.Is(err, backend.ErrInvalidToken) {
			t.Errorf("%s: %v", name, err)
		}
	}
	parts := strings.Split(access, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := strings.Replace(string(claims), `"scope":"access"`, `"scope":"admin!"`, 1)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
	if _, err := be.VerifyAccessToken(e.ctx, tampered); !errors.Is(err, backend.ErrInvalidToken) {
		t.Errorf("tampered: %v", err)
	}

	// Rotation: new tokens get the new kid; the old token stays valid.
	kid, err := e.be.RotateSigningKey(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	lr, _ = phone.SignInWithDevice(e.ctx, "alice")
	tok2, _ := phone.PollTokens(e.ctx, lr, 0)
	if h, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok2.OAuthToken.AccessToken, ".")[0]); !strings.Contains(string(h), kid) {
		t.Fatalf("new token header %s lacks kid %s", h, kid)
	}
	for _, tk := range []string{access, tok2.OAuthToken.AccessToken} {
		if _, err := be.VerifyAccessToken(e.ctx, tk); err != nil {
			t.Fatalf("after rotation: %v", err)
		}
		verifyIndependently(t, e.emu.URL(), tk)
	}
	// Two hours later both have expired, and the old key left the JWKS.
	offset.Store(int64(2 * time.Hour))
	if in, _ := e.be.Introspect(e.ctx, access); in.Active {
		t.Fatal("an expired token introspects as active")
	}
	resp, _ := http.Get(e.emu.URL() + "/.well-known/jwks.json")
	var set struct{ Keys []map[string]any }
	_ = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	if len(set.Keys) != 1 || set.Keys[0]["kid"] != kid {
		t.Fatalf("JWKS after the old key's tokens expired: %v", set.Keys)
	}
}

func TestExpiredAccessTokenRefused(t *testing.T) {
	e := newEnv(t, emulator.WithAccessTokenTTL(time.Minute))
	phone := e.phone("phone")
	e.enrol(phone, "alice", "1234")
	lr, _ := phone.SignInWithDevice(e.ctx, "alice")
	tok, err := phone.PollTokens(e.ctx, lr, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.be.VerifyAccessToken(e.ctx, tok.OAuthToken.AccessToken); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	// The verifier's clock past exp and the 5 s skew allowance: no sleeping.
	late := backend.New(e.emu.URL(), backend.WithClock(func() time.Time { return time.Now().Add(time.Minute + 6*time.Second) }))
	if _, err := late.VerifyAccessToken(e.ctx, tok.OAuthToken.AccessToken); !errors.Is(err, backend.ErrInvalidToken) || !strings.Contains(err.Error(), "exp") {
		t.Fatalf("expired token: %v", err)
	}
}

// countingTransport counts JWKS fetches.
type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/jwks.json") {
		c.n.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestNoJWKSRefetchStorm(t *testing.T) {
	e := newEnv(t)
	phone := e.phone("phone")
	e.enrol(phone, "alice", "1234")
	lr, _ := phone.SignInWithDevice(e.ctx, "alice")
	tok, _ := phone.PollTokens(e.ctx, lr, 0)
	ct := &countingTransport{}
	be := backend.New(e.emu.URL(), backend.WithHTTPClient(&http.Client{Transport: ct}), backend.WithJWKSRefetchInterval(time.Hour))
	if _, err := be.VerifyAccessToken(e.ctx, tok.OAuthToken.AccessToken); err != nil {
		t.Fatal(err)
	}
	// 50 tokens that name unknown keys: at most one more fetch an interval.
	parts := strings.Split(tok.OAuthToken.AccessToken, ".")
	for i := range 50 {
		h := base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"alg":"ES256","kid":"unknown-%d","typ":"JWT"}`, i))
		if _, err := be.VerifyAccessToken(e.ctx, h+"."+parts[1]+"."+parts[2]); !errors.Is(err, backend.ErrInvalidToken) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := ct.n.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	e := newEnv(t)
	phone := e.phone("phone")
	e.enrol(phone, "alice", "1234")
	lr, _ := phone.SignInWithDevice(e.ctx, "alice")
	tok, _ := phone.PollTokens(e.ctx, lr, 0)
	rt1 := tok.OAuthToken.RefreshToken
	r2, err := e.be.Refresh(e.ctx, rt1)
	if err != nil {
		t.Fatal(err)
	}
	if in, _ := e.be.Introspect(e.ctx, rt1); in.Active {
		t.Fatal("a rotated refresh token is still active")
	}
	if in, _ := e.be.Introspect(e.ctx, r2.RefreshToken); !in.Active {
		t.Fatal("the new refresh token is not active")
	}
	// Reuse of the rotated token: the whole chain is revoked.
	_, err = e.be.Refresh(e.ctx, rt1)
	var oe *trustapi.OAuthError
	if !errors.As(err, &oe) || oe.Code != trustapi.ErrCodeInvalidGrant || !strings.Contains(oe.Description, "revoked") {
		t.Fatalf("reuse: %v", err)
	}
	for name, tk := range map[string]string{"first access": tok.OAuthToken.AccessToken, "second access": r2.AccessToken,
		"second refresh": r2.RefreshToken, "id token": tok.OAuthToken.IDToken} {
		if in, _ := e.be.Introspect(e.ctx, tk); in.Active {
			t.Errorf("%s still active after the chain was revoked", name)
		}
	}
	if _, err := e.be.Refresh(e.ctx, r2.RefreshToken); !errors.As(err, &oe) || oe.Code != trustapi.ErrCodeInvalidGrant {
		t.Fatalf("refresh of a revoked chain: %v", err)
	}
}

func TestPairingByQRAndRemoval(t *testing.T) {
	e := newEnv(t)
	phone := e.phone("phone")
	e.enrol(phone, "alice", "1234")
	bobPhone := e.phone("bob")
	e.enrol(bobPhone, "bob", "9999")
	laptop := e.phone("laptop")

	pr, err := laptop.StartPairing(e.ctx, "alice", "5678")
	if err != nil {
		t.Fatal(err)
	}
	// A phone of another user refuses the QR; nothing changes.
	if _, err := bobPhone.TrustScan(e.ctx, []byte(pr.QRText)); !errors.Is(err, sdk.ErrNoAccount) {
		t.Fatalf("other user's phone: %v", err)
	}
	// A stale QR is refused.
	stale := pr.QR
	stale.Timestamp -= 4 * 60
	sb, _ := json.Marshal(stale)
	if _, err := phone.TrustScan(e.ctx, sb); !errors.Is(err, sdk.ErrPairingStale) {
		t.Fatalf("stale QR: %v", err)
	}
	u, _ := e.be.User(e.ctx, "alice")
	if len(u.Authenticators) != 1 {
		t.Fatalf("a refused pairing changed alice: %d authenticators", len(u.Authenticators))
	}

	done := make(chan error, 1)
	var acct *sdk.Account
	go func() {
		var err error
		acct, err = laptop.WaitPairing(e.ctx, pr, 30*time.Second)
		done <- err
	}()
	f, err := phone.TrustScan(e.ctx, []byte(pr.QRText))
	us, last := run(t, f, err, flows.Answers{Confirm: true, PIN: "1234"})
	if last.State != flows.Done || last.Type != flows.ApproveDevice {
		t.Fatalf("trust scan %s: %v", seq(us), last.Err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if acct.Username != "alice" || acct.UserID != u.UserID {
		t.Fatalf("paired account %+v", acct)
	}
	// The laptop is trusted now: it approves another device's login.
	tablet := e.phone("tablet")
	lr, _ := tablet.SignInWithDevice(e.ctx, "alice")
	r, err := laptop.Next(e.ctx, sdk.Select{Wait: 2 * time.Second})
	if err != nil || r.Login == nil {
		t.Fatalf("laptop pending: %+v %v", r, err)
	}
	f, err = laptop.Approve(e.ctx, r)
	if _, last := run(t, f, err, flows.Answers{Confirm: true, PIN: "5678"}); last.State != flows.Done {
		t.Fatal(last.Err)
	}
	if _, err := tablet.WaitTokens(e.ctx, lr, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// Approving the same QR again: refused.
	f, err = phone.TrustScan(e.ctx, []byte(pr.QRText))
	if _, last := run(t, f, err, flows.Answers{Confirm: true, PIN: "1234"}); last.State != flows.Error {
		t.Fatal("a used pairing was approved twice")
	}

	// The phone removes the laptop; the laptop gets a removal notice.
	devs, err := phone.TrustedDevices(e.ctx, "alice")
	if err != nil || len(devs) != 2 {
		t.Fatalf("trusted devices %+v %v", devs, err)
	}
	if err := phone.RemoveTrustedDevice(e.ctx, "alice", acct.ID); err != nil {
		t.Fatal(err)
	}
	r, err = laptop.Next(e.ctx, sdk.Select{Wait: time.Second})
	if err != nil || r.Kind != "deregistration" {
		t.Fatalf("laptop after removal: %+v %v", r, err)
	}
	if u, _ := e.be.User(e.ctx, "alice"); len(u.Authenticators) != 1 {
		t.Fatalf("after removal: %d authenticators", len(u.Authenticators))
	}
	_ = cloudapi.UserActive
}
