package emulator

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/devsig"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/google/uuid"
)

// WithLoginTTL sets how long a login request waits for a trusted device
// (default 180 s).
func WithLoginTTL(d time.Duration) Option { return func(c *config) { c.loginTTL = d } }

// WithPollInterval sets the least time between token polls (default 1 s);
// a faster poll gets slow_down.
func WithPollInterval(d time.Duration) Option { return func(c *config) { c.pollInterval = d } }

// WithAccessTokenTTL sets the life of access and id tokens (default 1 h).
func WithAccessTokenTTL(d time.Duration) Option { return func(c *config) { c.accessTTL = d } }

// WithClientID sets the OAuth client the cloud issues access and id tokens
// to (their audience; default "authphone-app"); further ids are other known
// clients of the token endpoint.
func WithClientID(id string, others ...string) Option {
	return func(c *config) { c.clientID, c.otherClients = id, others }
}

// clients are the OAuth clients the token endpoint knows.
func (c *config) clients() []string { return append([]string{c.clientID}, c.otherClients...) }

// refreshTTL is the life of a refresh token.
const refreshTTL = 30 * 24 * time.Hour

// oauthErr is an OAuth error answer.
type oauthErr struct {
	status int
	body   trustapi.OAuthError
}

func (e *oauthErr) Error() string { return e.body.Error() }

func oerr(status int, code, desc string) error {
	return &oauthErr{status: status, body: trustapi.OAuthError{Code: code, Description: desc}}
}

// oauthFail answers OAuth errors in RFC 6749's shape and others as usual.
func (s *Server) oauthFail(w http.ResponseWriter, r *http.Request, err error) {
	var oe *oauthErr
	if errors.As(err, &oe) {
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, oe.status, oe.body)
		return
	}
	s.fail(w, r, err)
}

func loginWaitKey(id string) string   { return "login/" + id }
func pairingWaitKey(id string) string { return "pairing/" + id }

func (lr *LoginRequest) info() *trustapi.LoginRequestInfo {
	return &trustapi.LoginRequestInfo{RequestID: lr.ID, UserID: lr.UserID, Identifier: lr.Identifier, DeviceName: lr.DeviceName,
		IP: lr.IP, BindingCode: lr.BindingCode, CreatedAt: lr.CreatedAt}
}

// bindingCode is a short code both screens show: 6 digits.
func bindingCode() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(1_000_000))
	return fmt.Sprintf("%03d %03d", n.Int64()/1000, n.Int64()%1000)
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// trustedAuthenticators are a user's keys that may approve: active and with
// a second factor.
func trustedAuthenticators(st Tx, userID string) ([]*Authenticator, error) {
	as, err := activeAuthenticators(st, userID)
	return slices.DeleteFunc(as, func(a *Authenticator) bool { return a.AAID == deviceapi.AAIDHeadless }), err
}

func (s *Server) handleCreateLoginRequest(w http.ResponseWriter, r *http.Request) {
	var req trustapi.CreateLoginRequest
	body, err := readSigned(w, r, &req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if req.CodeChallengeMethod != "" && req.CodeChallengeMethod != "S256" {
		s.fail(w, r, errf(http.StatusBadRequest, "codeChallengeMethod must be S256"))
		return
	}
	if c, err := base64.RawURLEncoding.DecodeString(req.CodeChallenge); err != nil || len(c) != 32 {
		s.fail(w, r, errf(http.StatusBadRequest, "codeChallenge must be an S256 PKCE challenge: base64url(SHA-256(verifier)), 43 characters"))
		return
	}
	if r.Header.Get(devsig.HeaderName) == "" {
		if ok, after := s.loginLimit.allow(req.Identifier); !ok {
			tooMany(w, after, "too many login requests for "+req.Identifier)
			return
		}
	}
	now := s.now()
	lr := &LoginRequest{ID: uuid.NewString(), Identifier: req.Identifier, CodeChallenge: req.CodeChallenge,
		PollToken: randomToken("pt_"), DeviceName: req.DeviceName, IP: remoteIP(r), BindingCode: bindingCode(),
		Status: trustapi.StatusPending, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(s.cfg.loginTTL)}
	var proof *deviceProof
	if r.Header.Get(devsig.HeaderName) != "" {
		if proof, err = s.verifyDevice(r, body, false); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	err = s.store.Update(r.Context(), func(st Tx) error {
		lr.Status, lr.ApprovedBy, lr.SignedAt = trustapi.StatusPending, "", 0
		u, err := lookupUser(st, "", req.Identifier)
		if err != nil {
			return err
		}
		lr.UserID = u.ID
		trusted, err := trustedAuthenticators(st, u.ID)
		if err != nil {
			return err
		}
		if proof != nil {
			// A device already trusted for the user is approved at once.
			a, err := proof.use(st)
			if err != nil {
				return err
			}
			if a.UserID == u.ID && a.AAID != deviceapi.AAIDHeadless {
				lr.Status, lr.ApprovedBy, lr.SignedAt = trustapi.StatusApproved, a.ID, now.Unix()
			}
		}
		if lr.Status == trustapi.StatusPending && len(trusted) == 0 {
			return errf(http.StatusConflict, "user %s has no trusted device to approve the login; enrol a phone first", req.Identifier)
		}
		if err := st.PutLoginRequest(lr); err != nil {
			return err
		}
		if err := s.emitLogin(st, lr, adminapi.EventLoginCreated); err != nil {
			return err
		}
		if lr.Status == trustapi.StatusApproved {
			if err := s.emitLogin(st, lr, adminapi.EventLoginApproved); err != nil {
				return err
			}
		}
		if lr.Status == trustapi.StatusPending {
			for _, a := range trusted {
				err := st.PutInboxItem(&InboxItem{ID: uuid.NewString(), AuthenticatorID: a.ID, LoginRequestID: lr.ID,
					Kind: string(deviceapi.InboxLoginRequest), Notification: "Log in on " + orUnnamed(lr.DeviceName) + "?",
					CreatedAt: now, ExpiresAt: lr.ExpiresAt})
				if err != nil {
					return err
				}
				st.Wake(inboxWaitKey(a.ID))
			}
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, trustapi.LoginRequestCreated{RequestID: lr.ID, PollToken: lr.PollToken,
		ExpiresIn: int(s.cfg.loginTTL.Seconds()), Interval: max(1, int(s.cfg.pollInterval.Seconds())),
		BindingCode: lr.BindingCode, Approved: lr.Status == trustapi.StatusApproved})
}

func orUnnamed(s string) string {
	if s == "" {
		return "an unnamed device"
	}
	return s
}

// freshSignature checks a trusted device's signed timestamp.
func (s *Server) freshSignature(ts int64) error {
	d := s.deviceNow().Sub(time.Unix(ts, 0))
	if d > devsig.MaxAge || d < -5*time.Second {
		return errf(http.StatusUnauthorized, "the signed timestamp is too old or from the future")
	}
	return nil
}

func (s *Server) handleRespondLoginRequest(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req trustapi.Respond
	body, err := readSigned(w, r, &req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	now := s.now()
	proof, err := s.verifyDevice(r, body, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The approval's signature is checked here, over the facts the checks
	// below make sure of: the request is this one and is the device's user's.
	sigOK := trustapi.Verify(proof.key, trustapi.SignedFacts(proof.userID, id, trustapi.EventLogin, req.Timestamp, req.Approved), req.Signature)
	err = s.store.Update(r.Context(), func(st Tx) error {
		a, err := proof.use(st)
		if err != nil {
			return err
		}
		lr, err := st.LoginRequest(id)
		switch {
		case err != nil:
			return err
		case lr == nil:
			return errf(http.StatusNotFound, "no login request %s", id)
		case lr.UserID != a.UserID || a.AAID == deviceapi.AAIDHeadless:
			return errf(http.StatusForbidden, "this device is not trusted for the user who asked")
		case lr.Status == trustapi.StatusCancelled:
			return errf(http.StatusConflict, "the login request was cancelled: the device that asked stopped waiting")
		case lr.Status != trustapi.StatusPending:
			return errf(http.StatusConflict, "the login request was already %s", lr.Status)
		case !now.Before(lr.ExpiresAt):
			return errf(http.StatusGone, "the login request expired")
		}
		if err := s.freshSignature(req.Timestamp); err != nil {
			return err
		}
		if !sigOK || a.UserID != proof.userID {
			return errf(http.StatusUnauthorized, "the approval's signature does not verify with this device's key")
		}
		lr.Status = trustapi.StatusRejected
		if req.Approved {
			lr.Status = trustapi.StatusApproved
		}
		lr.ApprovedBy, lr.Signature, lr.SignedAt, lr.UpdatedAt = a.ID, req.Signature, req.Timestamp, now
		if err := st.PutLoginRequest(lr); err != nil {
			return err
		}
		if err := s.emitLogin(st, lr, map[bool]string{true: adminapi.EventLoginApproved, false: adminapi.EventLoginRejected}[req.Approved]); err != nil {
			return err
		}
		st.Wake(loginWaitKey(lr.ID))
		items, err := st.InboxItems("", lr.ID)
		for _, it := range items {
			st.Wake(inboxWaitKey(it.AuthenticatorID))
		}
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": map[bool]string{true: trustapi.StatusApproved, false: trustapi.StatusRejected}[req.Approved]})
}

func (s *Server) handleLoginToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req trustapi.PollRequest
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	wait, err := parseWait(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	base := s.base(r)
	var out *trustapi.TokenResponse
	var signed *signedTokens
	var expiresAt time.Time
	var pending bool
	var approved *User
	attempt := func() error {
		return s.store.Update(r.Context(), func(st Tx) error {
			now := s.now()
			out, pending, approved = nil, false, nil
			lr, err := st.LoginRequest(id)
			if err != nil {
				return err
			}
			if lr == nil || subtle.ConstantTimeCompare([]byte(lr.PollToken), []byte(req.PollToken)) != 1 {
				return oerr(http.StatusBadRequest, trustapi.ErrCodeInvalidGrant, "unknown login request or wrong poll token")
			}
			expiresAt = lr.ExpiresAt
			switch {
			case lr.Issued:
				return oerr(http.StatusBadRequest, trustapi.ErrCodeInvalidGrant, "the tokens of this login request were already handed out")
			case lr.Status == trustapi.StatusRejected:
				return oerr(http.StatusForbidden, trustapi.ErrCodeAccessDenied, "the trusted device rejected the login")
			case lr.Status == trustapi.StatusCancelled:
				return oerr(http.StatusBadRequest, trustapi.ErrCodeInvalidGrant, "the login request was cancelled; ask again")
			case lr.Status == trustapi.StatusPending && !now.Before(lr.ExpiresAt):
				return oerr(http.StatusBadRequest, trustapi.ErrCodeExpired, "no trusted device answered in time; ask again")
			case lr.Status == trustapi.StatusPending:
				if wait == 0 {
					last := lr.LastPoll
					lr.LastPoll = now
					if err := st.PutLoginRequest(lr); err != nil {
						return err
					}
					if !last.IsZero() && now.Sub(last) < s.cfg.pollInterval {
						return commitWith(oerr(http.StatusBadRequest, trustapi.ErrCodeSlowDown,
							fmt.Sprintf("polling faster than the interval; wait %s between polls (or use ?wait=)", s.cfg.pollInterval)))
					}
					return commitWith(oerr(http.StatusBadRequest, trustapi.ErrCodePending, "no trusted device has answered yet"))
				}
				pending = true
				return nil
			}
			if trustapi.CodeChallenge(req.CodeVerifier) != lr.CodeChallenge {
				return oerr(http.StatusBadRequest, trustapi.ErrCodeInvalidGrant, "codeVerifier does not match the codeChallenge")
			}
			u, err := st.User(lr.UserID)
			if err != nil {
				return err
			}
			if u == nil {
				return oerr(http.StatusBadRequest, trustapi.ErrCodeInvalidGrant, "the user was deleted")
			}
			if !signed.of(u) {
				approved = u // sign outside, then come back
				return nil
			}
			tok, err := s.recordTokens(st, signed, "", now)
			if err != nil {
				return err
			}
			lr.Issued, lr.UpdatedAt = true, now
			if err := st.PutLoginRequest(lr); err != nil {
				return err
			}
			out = &trustapi.TokenResponse{OAuthToken: tok, ID: lr.ID, CreatedAt: lr.CreatedAt, UpdatedAt: lr.UpdatedAt,
				Approved: true, ClientUserID: u.Username, Event: trustapi.EventLogin, IP: lr.IP, Method: trustapi.MethodTrustedDevice,
				Signature: lr.Signature, Timestamp: time.Unix(lr.SignedAt, 0).UTC().Format(time.RFC3339), UserID: u.ID}
			return nil
		})
	}
	if !s.longPoll(r.Context(), loginWaitKey(id), wait, func() (bool, time.Time) {
		err = attempt()
		for range 2 {
			if err != nil || approved == nil {
				break
			}
			// The tokens are signed outside the transaction, which then
			// runs again to record them.
			if signed, err = s.signTokens(base, approved, s.now()); err == nil {
				err = attempt()
			}
		}
		if err == nil && approved != nil {
			err = fmt.Errorf("%w: the user changed while the tokens were made; poll again", ErrUnavailable)
		}
		return err != nil || !pending, expiresAt
	}) {
		return
	}
	if err == nil && out == nil {
		err = oerr(http.StatusBadRequest, trustapi.ErrCodePending, "no trusted device has answered yet")
	}
	if err != nil {
		s.oauthFail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

// signedTokens are the access and id tokens of a sign-in, signed before the
// transaction that records them.
type signedTokens struct {
	userID, username  string
	access, accessJTI string
	id, idJTI         string
	expires           time.Time
}

// of reports whether t was signed for u as u is now.
func (t *signedTokens) of(u *User) bool {
	return t != nil && t.userID == u.ID && t.username == u.Username
}

// signTokens signs access and id tokens for u.
// auth_time is now: the sign-in, or the refresh (ours: the store keeps no
// sign-in time for a chain).
func (s *Server) signTokens(base string, u *User, now time.Time) (*signedTokens, error) {
	authTime := now
	client := s.cfg.clientID
	// RFC 9068: typ at+jwt, with client_id, iat, jti and auth_time.
	access, ajti := newJWT(base, u.ID, client, "access", now, s.cfg.accessTTL)
	_ = access.Set("authentication_method", trustapi.MethodTrustedDevice)
	_ = access.Set("identifier", u.Username)
	_ = access.Set("client_id", client)
	_ = access.Set("auth_time", authTime.Unix())
	idt, ijti := newJWT(base, u.ID, client, "", now, s.cfg.accessTTL)
	_ = idt.Set("identifier", u.Username)
	_ = idt.Set("auth_time", authTime.Unix())
	a, err := s.issuer.signTyped(access, "at+jwt")
	if err != nil {
		return nil, err
	}
	i, err := s.issuer.sign(idt)
	if err != nil {
		return nil, err
	}
	return &signedTokens{userID: u.ID, username: u.Username, access: a, accessJTI: ajti, id: i, idJTI: ijti,
		expires: now.Add(s.cfg.accessTTL)}, nil
}

// recordTokens records signed tokens in chain (a new chain when empty) with
// a new refresh token, and returns the whole answer.
func (s *Server) recordTokens(st Tx, t *signedTokens, chainID string, now time.Time) (trustapi.OAuthToken, error) {
	typ := adminapi.EventTokenRefreshed
	if chainID == "" {
		typ = adminapi.EventTokenIssued
		chainID = uuid.NewString()
		if err := st.PutChain(&TokenChain{ID: chainID}); err != nil {
			return trustapi.OAuthToken{}, err
		}
	}
	rt := &RefreshToken{Token: randomToken("rt_"), ChainID: chainID, UserID: t.userID, Username: t.username, ExpiresAt: now.Add(refreshTTL)}
	if err := st.PutRefreshToken(rt); err != nil {
		return trustapi.OAuthToken{}, err
	}
	if err := s.emit(st, adminapi.Event{Type: typ, UserID: t.userID, Username: t.username,
		Data: map[string]string{"chain": chainID, "jti": t.accessJTI}}); err != nil {
		return trustapi.OAuthToken{}, err
	}
	if err := st.AddChainToken(chainID, t.accessJTI, t.expires); err != nil {
		return trustapi.OAuthToken{}, err
	}
	if err := st.AddChainToken(chainID, t.idJTI, t.expires); err != nil {
		return trustapi.OAuthToken{}, err
	}
	return trustapi.OAuthToken{AccessToken: t.access, AuthMethod: trustapi.MethodTrustedDevice, ExpiresIn: int(s.cfg.accessTTL.Seconds()),
		IDToken: t.id, RefreshToken: rt.Token, TokenType: "Bearer"}, nil
}

// tokenClient is the client a token request authenticates as (RFC 6749
// §2.3.1): HTTP Basic or the client_id form field; "" when it names none
// (a public client may refresh without it, §6).
func (s *Server) tokenClient(r *http.Request) (string, error) {
	form := r.PostForm.Get("client_id")
	id, _, basic := r.BasicAuth()
	if basic {
		if u, err := url.QueryUnescape(id); err == nil { // §2.3.1: form-encoded
			id = u
		}
		if form != "" && form != id {
			return "", oerr(http.StatusBadRequest, trustapi.ErrCodeInvalidReq, "client_id in the form differs from the one in the Authorization header")
		}
	} else {
		id = form
	}
	if id == "" && !basic {
		return "", nil
	}
	if !slices.Contains(s.cfg.clients(), id) {
		return "", oerr(http.StatusUnauthorized, "invalid_client", "unknown client "+strconv.Quote(id))
	}
	return id, nil
}

func (s *Server) handleOAuthToken(w http.ResponseWriter, r *http.Request) {
	// RFC 6749 §5.1: no caching of token answers, errors included.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	r.Body = http.MaxBytesReader(w, r.Body, cloudapi.MaxBody)
	if err := r.ParseForm(); err != nil {
		s.oauthFail(w, r, oerr(http.StatusBadRequest, trustapi.ErrCodeInvalidReq, "send a form: grant_type=refresh_token&refresh_token=…"))
		return
	}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "refresh_token":
	case "":
		s.oauthFail(w, r, oerr(http.StatusBadRequest, trustapi.ErrCodeInvalidReq, "grant_type is missing: send grant_type=refresh_token"))
		return
	default:
		s.oauthFail(w, r, oerr(http.StatusBadRequest, "unsupported_grant_type", "only grant_type=refresh_token is served here"))
		return
	}
	client, err := s.tokenClient(r)
	if err != nil {
		if oe := (*oauthErr)(nil); errors.As(err, &oe) && oe.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="authphone"`)
		}
		s.oauthFail(w, r, err)
		return
	}
	base := s.base(r)
	token := r.PostForm.Get("refresh_token")
	if token == "" {
		s.oauthFail(w, r, oerr(http.StatusBadRequest, trustapi.ErrCodeInvalidReq, "refresh_token is missing"))
		return
	}
	// Every refresh token is issued to the client login requests serve
	// (the first of WithClientID); another client may not use it (§10.4).
	if client != "" && client != s.cfg.clientID {
		s.oauthFail(w, r, oerr(http.StatusBadRequest, trustapi.ErrCodeInvalidGrant, "the refresh token was issued to another client"))
		return
	}
	// The new tokens are signed before the transaction, for the user the
	// refresh token names.
	var signed *signedTokens
	err = s.store.View(r.Context(), func(st Tx) error {
		rt, err := st.RefreshToken(token)
		if err != nil || rt == nil {
			return err
		}
		u, err := st.User(rt.UserID)
		if err != nil || u == nil {
			return err
		}
		signed, err = s.signTokens(base, u, s.now())
		return err
	})
	if err != nil {
		s.oauthFail(w, r, err)
		return
	}
	var out trustapi.RefreshResponse
	err = s.store.Update(r.Context(), func(st Tx) error {
		now := s.now()
		rt, err := st.RefreshToken(token)
		if err != nil {
			return err
		}
		if rt == nil {
			return oerr(http.StatusBadRequest, trustapi.ErrCodeInvalidGrant, "unknown refresh token")
		}
		chain, err := st.Chain(rt.ChainID)
		switch {
		case err != nil:
			return err
		case chain == nil || chain.Revoked:
			return oerr(http.StatusBadRequest, trustapi.ErrCodeInvalidGrant, "the refresh token was revoked")
		case rt.Used:
			// A rotated token came back: someone else holds the chain.
			if err := s.revokeChain(st, chain, "a used refresh token came back"); err != nil {
				return err
			}
			return commitWith(oerr(http.StatusBadRequest, trustapi.ErrCodeInvalidGrant, "this refresh token was already used; the whole token chain is now revoked"))
		case !now.Before(rt.ExpiresAt):
			return oerr(http.StatusBadRequest, trustapi.ErrCodeInvalidGrant, "the refresh token expired")
		}
		u, err := st.User(rt.UserID)
		if err != nil {
			return err
		}
		if u == nil {
			return oerr(http.StatusBadRequest, trustapi.ErrCodeInvalidGrant, "the user was deleted")
		}
		if !signed.of(u) {
			return fmt.Errorf("%w: the user changed during the refresh; send it again", ErrUnavailable)
		}
		rt.Used = true
		if err := st.PutRefreshToken(rt); err != nil {
			return err
		}
		tok, err := s.recordTokens(st, signed, chain.ID, now)
		if err != nil {
			return err
		}
		out = trustapi.RefreshResponse{AccessToken: tok.AccessToken, TokenType: "Bearer", ExpiresIn: tok.ExpiresIn,
			RefreshToken: tok.RefreshToken, IDToken: tok.IDToken}
		return nil
	})
	if err != nil {
		s.oauthFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// handleOAuthRevoke revokes an access or refresh token (RFC 7009): a refresh
// token takes its whole chain with it; an unknown or invalid token is
// answered 200 as the RFC says, so holders learn nothing.
func (s *Server) handleOAuthRevoke(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	r.Body = http.MaxBytesReader(w, r.Body, cloudapi.MaxBody)
	if err := r.ParseForm(); err != nil {
		s.oauthFail(w, r, oerr(http.StatusBadRequest, trustapi.ErrCodeInvalidReq, "send a form: token=…"))
		return
	}
	client, err := s.tokenClient(r)
	if err != nil {
		s.oauthFail(w, r, err)
		return
	}
	token := r.PostForm.Get("token")
	switch {
	case token == "":
		s.oauthFail(w, r, oerr(http.StatusBadRequest, trustapi.ErrCodeInvalidReq, "token is missing"))
		return
	case client != "" && client != s.cfg.clientID:
		s.oauthFail(w, r, oerr(http.StatusBadRequest, trustapi.ErrCodeInvalidGrant, "the token was issued to another client"))
		return
	}
	now := s.now()
	var jti string
	var exp time.Time
	if !strings.HasPrefix(token, "rt_") {
		t, err := s.issuer.parse(token, now)
		if err != nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		jti, _ = t.JwtID()
		exp, _ = t.Expiration()
	}
	err = s.store.Update(r.Context(), func(st Tx) error {
		if jti != "" {
			if err := st.Revoke(jti, exp); err != nil {
				return err
			}
			return s.emit(st, adminapi.Event{Type: adminapi.EventTokenRevoked, Reason: "revoked by the client",
				Data: map[string]string{"jti": jti}})
		}
		rt, err := st.RefreshToken(token)
		if err != nil || rt == nil {
			return err
		}
		chain, err := st.Chain(rt.ChainID)
		if err != nil || chain == nil || chain.Revoked {
			return err
		}
		return s.revokeChain(st, chain, "revoked by the client")
	})
	if err != nil {
		s.oauthFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// revokeChain revokes every token of a chain, and logs why.
func (s *Server) revokeChain(st Tx, chain *TokenChain, why string) error {
	chain.Revoked = true
	if err := st.PutChain(chain); err != nil {
		return err
	}
	if err := s.emit(st, adminapi.Event{Type: adminapi.EventTokenRevoked, Reason: why, Data: map[string]string{"chain": chain.ID}}); err != nil {
		return err
	}
	jtis, err := st.ChainTokens(chain.ID)
	if err != nil {
		return err
	}
	for jti, until := range jtis {
		if err := st.Revoke(jti, until); err != nil {
			return err
		}
	}
	rts, err := st.ChainRefreshTokens(chain.ID)
	if err != nil {
		return err
	}
	for _, rt := range rts {
		if !rt.Used {
			rt.Used = true
			if err := st.PutRefreshToken(rt); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	base := s.base(r)
	writeJSON(w, http.StatusOK, trustapi.Discovery{Issuer: base, JWKSURI: base + trustapi.PathJWKS,
		TokenEndpoint: base + trustapi.PathOAuthToken, IntrospectionEndpoint: base + cloudapi.PathIntrospect,
		RevocationEndpoint:  base + trustapi.PathOAuthRevoke,
		TokenEndpointAuth:   []string{"none", "client_secret_basic", "client_secret_post"},
		ClaimsSupported:     []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "auth_time", "identifier", "client_id"},
		GrantTypesSupported: []string{"refresh_token", "urn:authphone:trusted-device"}, IDTokenSigningAlgs: []string{"ES256"},
		ResponseTypesSupported: []string{"token"}, SubjectTypesSupported: []string{"public"}})
}

// RotateSigningKey adds a new token-signing key; tokens signed with the old
// one stay valid until they expire, and its public key stays in the JWKS
// until then. It returns the new key's kid.
func (s *Server) RotateSigningKey() (string, error) {
	kid, err := s.issuer.rotate(s.now().Add(max(s.cfg.accessTTL, s.cfg.tokenTTL) + time.Minute))
	if err != nil {
		return "", err
	}
	return kid, s.saveIssuer(context.Background())
}

func (s *Server) handleRotateKey(w http.ResponseWriter, r *http.Request) {
	kid, err := s.RotateSigningKey()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.emitNow(r.Context(), adminapi.Event{Type: adminapi.EventKeyRotated, Data: map[string]string{"kid": kid}})
	writeJSON(w, http.StatusOK, map[string]string{"kid": kid})
}

// parseRawKey decodes a base64url 65-byte uncompressed P-256 key.
func parseRawKey(s string) (*ecdsa.PublicKey, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), b)
}

func (s *Server) handleCreatePairing(w http.ResponseWriter, r *http.Request) {
	var req trustapi.CreatePairing
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Algorithm != trustapi.AlgorithmES256 {
		s.fail(w, r, errf(http.StatusBadRequest, "algorithm must be ES256"))
		return
	}
	if _, err := parseRawKey(req.PublicKey); err != nil {
		s.fail(w, r, errf(http.StatusBadRequest, "publicKey must be a base64url uncompressed P-256 key"))
		return
	}
	if kid, err := base64.RawURLEncoding.DecodeString(req.KeyID); err != nil || len(kid) < 32 {
		s.fail(w, r, errf(http.StatusBadRequest, "keyId must be at least 32 bytes, base64url"))
		return
	}
	now := s.now()
	p := &Pairing{ID: uuid.NewString(), PublicKey: req.PublicKey, KeyID: req.KeyID, DeviceName: req.DeviceName,
		Status: trustapi.StatusPending, CreatedAt: now, ExpiresAt: now.Add(trustapi.PairingMaxAge)}
	var out trustapi.PairingCreated
	err := s.store.Update(r.Context(), func(st Tx) error {
		u, err := lookupUser(st, "", req.Identifier)
		if err != nil {
			return err
		}
		if dup, err := st.AuthenticatorByKeyID(req.KeyID); err != nil || dup != nil {
			if err != nil {
				return err
			}
			return errf(http.StatusConflict, "keyId is already registered")
		}
		p.UserID = u.ID
		if err := s.emit(st, adminapi.Event{Type: adminapi.EventPairingCreated, UserID: u.ID, Username: u.Username, OperationID: p.ID,
			Status: p.Status, Data: map[string]string{"device": p.DeviceName}}); err != nil {
			return err
		}
		if err := st.PutPairing(p); err != nil {
			return err
		}
		out = trustapi.PairingCreated{PairingID: p.ID, UserID: u.ID, Username: u.Username, Timestamp: now.Unix(),
			ExpiresIn: int(trustapi.PairingMaxAge.Seconds())}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) handlePairingStatus(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	wait, err := parseWait(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var out trustapi.PairingStatus
	if !s.longPoll(r.Context(), pairingWaitKey(id), wait, func() (bool, time.Time) {
		var exp time.Time
		err = s.store.View(r.Context(), func(st Tx) error {
			p, err := st.Pairing(id)
			if err != nil {
				return err
			}
			if p == nil {
				return errf(http.StatusNotFound, "no pairing %s", id)
			}
			out = trustapi.PairingStatus{Status: p.Status, AuthenticatorID: p.AuthenticatorID, UserID: p.UserID}
			u, err := st.User(p.UserID)
			if err != nil {
				return err
			}
			if u != nil {
				out.Username = u.Username
			}
			if p.Status == trustapi.StatusPending && !s.now().Before(p.ExpiresAt) {
				out.Status = trustapi.StatusExpired
			}
			exp = p.ExpiresAt
			return nil
		})
		return err != nil || out.Status != trustapi.StatusPending, exp
	}) {
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleApprovePairing(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req trustapi.ApprovePairing
	body, err := readSigned(w, r, &req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	now := s.now()
	proof, err := s.verifyDevice(r, body, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Checked here over the facts the checks below make sure of: the
	// pairing is the device's user's, and its key is the approved one.
	sigOK := trustapi.Verify(proof.key, trustapi.SignedFacts(proof.userID, req.PublicKey, trustapi.EventEnrollTrustedDevice, req.Timestamp, true), req.Signature)
	pub, keyErr := parseRawKey(req.PublicKey)
	var out trustapi.PairingStatus
	err = s.store.Update(r.Context(), func(st Tx) error {
		a, err := proof.use(st)
		if err != nil {
			return err
		}
		p, err := st.Pairing(id)
		switch {
		case err != nil:
			return err
		case p == nil:
			return errf(http.StatusNotFound, "no pairing %s", id)
		case p.UserID != a.UserID || a.AAID == deviceapi.AAIDHeadless:
			return errf(http.StatusForbidden, "this device is not trusted for the pairing's user")
		case p.Status == trustapi.StatusCancelled:
			return errf(http.StatusConflict, "the pairing was cancelled: the new device stopped waiting; ask it to show a new QR code")
		case p.Status != trustapi.StatusPending:
			return errf(http.StatusConflict, "the pairing was already %s", p.Status)
		case !now.Before(p.ExpiresAt):
			return errf(http.StatusGone, "the pairing QR is over %s old; show a new one", trustapi.PairingMaxAge)
		case req.PublicKey != p.PublicKey:
			return errf(http.StatusBadRequest, "the approved key is not the key of this pairing")
		}
		if err := s.freshSignature(req.Timestamp); err != nil {
			return err
		}
		if !sigOK {
			return errf(http.StatusUnauthorized, "the approval's signature does not verify with this device's key")
		}
		as, err := activeAuthenticators(st, p.UserID)
		if err != nil {
			return err
		}
		if len(as) >= cloudapi.MaxAuthenticators {
			return errf(http.StatusConflict, "the user already has the most authenticators allowed")
		}
		if dup, err := st.AuthenticatorByKeyID(p.KeyID); err != nil || dup != nil {
			if err != nil {
				return err
			}
			return errf(http.StatusConflict, "keyId is already registered")
		}
		if keyErr != nil {
			return keyErr
		}
		na := &Authenticator{ID: uuid.NewString(), UserID: p.UserID, KeyID: p.KeyID, AAID: deviceapi.AAIDPIN, PublicKey: pub,
			Name: orUnnamed(p.DeviceName), Type: "cli", CreatedAt: now}
		if err := st.PutAuthenticator(na); err != nil {
			return err
		}
		p.Status, p.AuthenticatorID = trustapi.StatusApproved, na.ID
		if err := st.PutPairing(p); err != nil {
			return err
		}
		st.Wake(pairingWaitKey(id))
		out = trustapi.PairingStatus{Status: p.Status, AuthenticatorID: na.ID, UserID: p.UserID}
		u, err := st.User(p.UserID)
		if err != nil {
			return err
		}
		if u != nil {
			out.Username = u.Username
		}
		return s.emit(st, adminapi.Event{Type: adminapi.EventPairingApproved, UserID: p.UserID, Username: out.Username,
			AuthenticatorID: na.ID, OperationID: p.ID, Status: p.Status})
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleListTrusted(w http.ResponseWriter, r *http.Request) {
	var out []trustapi.TrustedDevice
	a, err := s.deviceAuth(r, nil, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	err = s.store.View(r.Context(), func(st Tx) error {
		out = []trustapi.TrustedDevice{}
		ts, err := trustedAuthenticators(st, a.UserID)
		if err != nil {
			return err
		}
		for _, t := range ts {
			out = append(out, trustapi.TrustedDevice{AuthenticatorID: t.ID, Name: t.Name, AAID: t.AAID, CreatedAt: t.CreatedAt})
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// removeTrusted is the body of POST /_app/trusted-devices/{id}/remove.
type removeTrusted struct {
	Timestamp int64  `json:"timestamp"`
	Signature string `json:"signature"`
}

func (s *Server) handleRemoveTrusted(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req removeTrusted
	body, err := readSigned(w, r, &req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	base := s.base(r)
	proof, err := s.verifyDevice(r, body, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sigOK := trustapi.Verify(proof.key, trustapi.SignedFacts(proof.userID, id, trustapi.EventRemoveTrustedDevice, req.Timestamp, true), req.Signature)
	err = s.store.Update(r.Context(), func(st Tx) error {
		a, err := proof.use(st)
		if err != nil {
			return err
		}
		target, err := st.Authenticator(id)
		if err != nil {
			return err
		}
		if target == nil || target.Deleted || target.UserID != a.UserID {
			return errf(http.StatusNotFound, "the user has no trusted device %s", id)
		}
		if err := s.freshSignature(req.Timestamp); err != nil {
			return err
		}
		if !sigOK {
			return errf(http.StatusUnauthorized, "the removal's signature does not verify with this device's key")
		}
		return s.removeAuthenticator(st, target, base, "This device was removed by another trusted device ("+a.Name+")")
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleCancelLoginRequest ends a pending login request for the device
// that made it (its poll token and PKCE verifier prove it): the trusted
// devices' inbox items go, and a trusted device answering later is told
// it was cancelled.
func (s *Server) handleCancelLoginRequest(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req trustapi.PollRequest
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	err := s.store.Update(r.Context(), func(st Tx) error {
		lr, err := st.LoginRequest(id)
		switch {
		case err != nil:
			return err
		case lr == nil || subtle.ConstantTimeCompare([]byte(lr.PollToken), []byte(req.PollToken)) != 1 ||
			trustapi.CodeChallenge(req.CodeVerifier) != lr.CodeChallenge:
			return errf(http.StatusNotFound, "no login request %s with that poll token and code verifier", id)
		case lr.Status == trustapi.StatusCancelled:
			return nil
		case lr.Status != trustapi.StatusPending:
			return errf(http.StatusConflict, "the login request was already %s", lr.Status)
		}
		lr.Status, lr.UpdatedAt = trustapi.StatusCancelled, s.now()
		if err := st.PutLoginRequest(lr); err != nil {
			return err
		}
		if err := s.emitLogin(st, lr, adminapi.EventLoginCancelled); err != nil {
			return err
		}
		items, err := st.InboxItems("", lr.ID)
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := st.DeleteInboxItem(it.ID); err != nil {
				return err
			}
			st.Wake(inboxWaitKey(it.AuthenticatorID))
		}
		st.Wake(loginWaitKey(lr.ID))
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleCancelPairing ends a pending pairing for the new device that made
// it (signed with the pairing's key): no trusted device can approve it
// afterwards, so no orphaned trusted device appears.
func (s *Server) handleCancelPairing(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req trustapi.CancelPairing
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.freshSignature(req.Timestamp); err != nil {
		s.fail(w, r, err)
		return
	}
	err := s.store.Update(r.Context(), func(st Tx) error {
		p, err := st.Pairing(id)
		if err != nil {
			return err
		}
		if p == nil {
			return errf(http.StatusNotFound, "no pairing %s", id)
		}
		pub, err := parseRawKey(p.PublicKey)
		if err != nil || !trustapi.Verify(pub, trustapi.SignedFacts(p.UserID, p.ID, trustapi.EventCancelPairing, req.Timestamp, false), req.Signature) {
			return errf(http.StatusUnauthorized, "the cancellation's signature does not verify with the pairing's key")
		}
		switch p.Status {
		case trustapi.StatusCancelled:
			return nil
		case trustapi.StatusPending:
		default:
			return errf(http.StatusConflict, "the pairing was already %s", p.Status)
		}
		p.Status = trustapi.StatusCancelled
		if err := st.PutPairing(p); err != nil {
			return err
		}
		st.Wake(pairingWaitKey(id))
		return s.emit(st, adminapi.Event{Type: adminapi.EventPairingCancelled, UserID: p.UserID, OperationID: p.ID, Status: p.Status})
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// emitLogin logs a login request's step.
func (s *Server) emitLogin(st Tx, lr *LoginRequest, typ string) error {
	e := adminapi.Event{Type: typ, UserID: lr.UserID, OperationID: lr.ID, Status: lr.Status, AuthenticatorID: lr.ApprovedBy,
		Data: map[string]string{"device": lr.DeviceName, "ip": lr.IP}}
	if u, err := st.User(lr.UserID); err != nil {
		return err
	} else if u != nil {
		e.Username = u.Username
	}
	return s.emit(st, e)
}
