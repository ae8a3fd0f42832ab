package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// ErrInvalidToken is wrapped by every reason VerifyAccessToken refuses a
// token: bad signature, unknown key, wrong iss or aud, expired, not yet
// valid, malformed.
var ErrInvalidToken = errors.New("invalid access token")

// DefaultJWKSRefetchInterval bounds how often an unknown kid makes the
// client fetch the JWKS again.
const DefaultJWKSRefetchInterval = 10 * time.Second

// WithAudience sets the audience access tokens must carry (default
// "authphone-app", the emulator's client id).
func WithAudience(aud string) Option { return func(o *options) { o.audience = aud } }

// WithIssuer sets the issuer access tokens must carry (default: the base
// URL).
func WithIssuer(iss string) Option { return func(o *options) { o.issuer = iss } }

// WithJWKSRefetchInterval bounds JWKS refetches on unknown kids.
func WithJWKSRefetchInterval(d time.Duration) Option { return func(o *options) { o.refetch = d } }

// TokenClaims are the verified claims of an access token.
type TokenClaims struct {
	Subject    string    `json:"sub"`
	Issuer     string    `json:"iss"`
	Audience   []string  `json:"aud"`
	Identifier string    `json:"identifier,omitempty"`
	Scope      string    `json:"scope,omitempty"`
	AuthMethod string    `json:"authentication_method,omitempty"`
	JTI        string    `json:"jti"`
	IssuedAt   time.Time `json:"iat"`
	Expiry     time.Time `json:"exp"`
}

// jwksCache keeps the cloud's public keys, refetching on an unknown kid at
// most once per interval.
type jwksCache struct {
	mu        sync.Mutex
	set       jwk.Set
	lastFetch time.Time
}

func (c *Client) fetchJWKS(ctx context.Context) (jwk.Set, error) {
	resp, err := c.r.R().SetContext(ctx).Get(c.base + trustapi.PathJWKS)
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	if resp.IsError() {
		return nil, &Error{Status: resp.StatusCode(), Text: http.StatusText(resp.StatusCode()), Message: "fetching the JWKS"}
	}
	set, err := jwk.Parse(resp.Body())
	if err != nil {
		return nil, fmt.Errorf("the cloud's JWKS is not valid: %w", err)
	}
	return set, nil
}

// keyFor returns the public key with kid, refetching the JWKS when kid is
// unknown and the last fetch is older than the refetch interval.
func (c *Client) keyFor(ctx context.Context, kid string) (jwk.Key, error) {
	c.jwks.mu.Lock()
	defer c.jwks.mu.Unlock()
	if c.jwks.set != nil {
		if k, ok := c.jwks.set.LookupKeyID(kid); ok {
			return k, nil
		}
	}
	if c.jwks.set != nil && time.Since(c.jwks.lastFetch) < c.refetch {
		return nil, fmt.Errorf("%w: unknown signing key %q (the JWKS was fetched %s ago)", ErrInvalidToken, kid, time.Since(c.jwks.lastFetch).Round(time.Millisecond))
	}
	set, err := c.fetchJWKS(ctx)
	if err != nil {
		return nil, err
	}
	c.jwks.set, c.jwks.lastFetch = set, time.Now()
	if k, ok := set.LookupKeyID(kid); ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: unknown signing key %q", ErrInvalidToken, kid)
}

// VerifyAccessToken checks an access token a trusted device's sign-in
// produced: its ES256 signature against the cloud's JWKS (cached), iss, aud,
// exp and nbf.
func (c *Client) VerifyAccessToken(ctx context.Context, token string) (*TokenClaims, error) {
	msg, err := jws.Parse([]byte(token), jws.WithCompact())
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrInvalidToken)
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	if alg, ok := hdr.Algorithm(); !ok || alg != jwa.ES256() {
		return nil, fmt.Errorf("%w: alg must be ES256", ErrInvalidToken)
	}
	kid, ok := hdr.KeyID()
	if !ok {
		return nil, fmt.Errorf("%w: no kid", ErrInvalidToken)
	}
	key, err := c.keyFor(ctx, kid)
	if err != nil {
		return nil, err
	}
	t, err := jwt.ParseString(token, jwt.WithKey(jwa.ES256(), key), jwt.WithValidate(true),
		jwt.WithIssuer(c.issuer), jwt.WithAudience(c.audience), jwt.WithAcceptableSkew(5*time.Second),
		jwt.WithClock(jwt.ClockFunc(c.now)))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	var out TokenClaims
	out.Subject, _ = t.Subject()
	out.Issuer, _ = t.Issuer()
	out.Audience, _ = t.Audience()
	out.JTI, _ = t.JwtID()
	out.IssuedAt, _ = t.IssuedAt()
	out.Expiry, _ = t.Expiration()
	_ = t.Get("identifier", &out.Identifier)
	_ = t.Get("scope", &out.Scope)
	_ = t.Get("authentication_method", &out.AuthMethod)
	return &out, nil
}

// Refresh exchanges a refresh token for new tokens (rotation: the old one
// stops working; reusing it revokes the whole chain). A refusal is a
// *trustapi.OAuthError.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*trustapi.RefreshResponse, error) {
	resp, err := c.r.R().SetContext(ctx).SetFormData(map[string]string{"grant_type": "refresh_token", "refresh_token": refreshToken}).
		Post(c.base + trustapi.PathOAuthToken)
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	if resp.IsError() {
		var oe trustapi.OAuthError
		if json.Unmarshal(resp.Body(), &oe) == nil && oe.Code != "" {
			return nil, &oe
		}
		return nil, &Error{Status: resp.StatusCode(), Text: http.StatusText(resp.StatusCode()), Message: string(resp.Body())}
	}
	var out trustapi.RefreshResponse
	if err := json.Unmarshal(resp.Body(), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Clock reads the emulator's clock (ours: GET /api/v1/admin/clock).
func (c *Client) Clock(ctx context.Context) (*cloudapi.ClockResponse, error) {
	var out cloudapi.ClockResponse
	if err := c.do(ctx, http.MethodGet, cloudapi.PathClock, nil, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// AdvanceClock moves the emulator's clock forward by d (ours: POST
// /api/v1/admin/clock; the emulator must run with WithClockControl,
// `authphone emulator --clock-control`), so what was due to expire within d
// has expired.
func (c *Client) AdvanceClock(ctx context.Context, d time.Duration) (*cloudapi.ClockResponse, error) {
	var out cloudapi.ClockResponse
	if err := c.do(ctx, http.MethodPost, cloudapi.PathClock, cloudapi.ClockRequest{Advance: d.String()}, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// RotateSigningKey asks the emulator to start signing with a new key (ours:
// POST /api/v1/keys/rotate); tokens signed with the old one stay valid until
// they expire.
func (c *Client) RotateSigningKey(ctx context.Context) (string, error) {
	var out struct {
		Kid string `json:"kid"`
	}
	if err := c.do(ctx, http.MethodPost, trustapi.PathRotateKey, nil, &out, nil); err != nil {
		return "", err
	}
	return out.Kid, nil
}
