package emulator

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/authphone/authphone/internal/ecdsasig"
	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/devsig"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/authphone/authphone/sdk/uaf"
	"github.com/google/uuid"
)

// devError is a device API failure: an HTTP status and a UAF status code.
type devError struct {
	status int
	code   int
	msg    string
}

func (e *devError) Error() string { return e.msg }

func deverr(status, code int, msg string) error {
	return &devError{status: status, code: code, msg: msg}
}

// devFail answers the device API's error body {statusCode, description}.
func (s *Server) devFail(w http.ResponseWriter, r *http.Request, err error) {
	var de *devError
	var ae *apiError
	switch {
	case errors.As(err, &de):
		refusal(w, de.msg)
		writeJSON(w, de.status, deviceapi.StatusBody{StatusCode: de.code, Description: de.msg})
	case s.unavailable(w, r, err):
		writeJSON(w, http.StatusServiceUnavailable, deviceapi.StatusBody{StatusCode: deviceapi.StatusInternal, Description: unavailableMsg})
	case errors.As(err, &ae):
		code := map[int]int{400: 1400, 401: 1401, 403: 1403, 404: 1404, 409: 1491, 410: 1491, 413: 1400, 415: 1400}[ae.status]
		if code == 0 {
			code = deviceapi.StatusBadRequest
		}
		refusal(w, ae.msg)
		writeJSON(w, ae.status, deviceapi.StatusBody{StatusCode: code, Description: ae.msg})
	default:
		s.cfg.logger.Error("internal error", "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, deviceapi.StatusBody{StatusCode: deviceapi.StatusInternal, Description: "internal error; see the emulator's log"})
	}
}

// registrationPolicy accepts the real SDK's PIN, fingerprint, biometric,
// passcode and password authenticators (Android and iOS).
var registrationPolicy = []string{"F1D0#0001", "F1D0#0002", "F1D0#0003", "F1D0#0004", "F1D0#0005",
	"F1D0#1001", "F1D0#1002", "F1D0#1003", "F1D0#1004", "F1D0#1005"}

// defaultRegPolicy is policyOf(registrationPolicy), built once: a
// registration request's policy only adds to its Disallowed.
var defaultRegPolicy = policyOf(registrationPolicy)

func policyOf(aaids []string) uaf.Policy {
	p := uaf.Policy{}
	for _, a := range aaids {
		p.Accepted = append(p.Accepted, []uaf.MatchCriteria{{AAID: []string{a}}})
	}
	return p
}

// registrationPolicyFor is the policy of a registration request for the
// user: base, and each key the user already has disallowed by its AAID and
// keyID, as UAF servers do so that one authenticator does not register
// twice (another key of the same AAID still may).
func registrationPolicyFor(st Tx, userID string, base uaf.Policy) (uaf.Policy, error) {
	p := base
	p.Disallowed = slices.Clip(base.Disallowed) // an append copies: base is shared
	if userID == "" {
		return p, nil
	}
	as, err := activeAuthenticators(st, userID)
	for _, a := range as {
		p.Disallowed = append(p.Disallowed, uaf.MatchCriteria{AAID: []string{a.AAID}, KeyIDs: []string{a.KeyID}})
	}
	return p, err
}

// platformOf is an authenticator's type as the public API reference has it,
// from the facet it registered from: "ios" for an iOS app facet, "android"
// for an Android one, and (ours) "cli" for a web origin.
func platformOf(fcParams string) string {
	p, _ := uaf.DecodeFCParams(fcParams) // checked by checkSession
	switch {
	case strings.HasPrefix(p.FacetID, uaf.FacetIOSPrefix):
		return "ios"
	case strings.HasPrefix(p.FacetID, uaf.FacetAndroidPrefix):
		return "android"
	}
	return "cli"
}

func challenge() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return uaf.B64.EncodeToString(b)
}

// newSession returns a new session's serverData (randomToken("")) and
// challenge (challenge()), from one read of the random source.
func newSession() (serverData, chal string) {
	var b [64]byte
	_, _ = rand.Read(b[:])
	var out [2 * 43]byte // 32 bytes base64url without padding, twice
	base64.RawURLEncoding.Encode(out[:43], b[:32])
	uaf.B64.Encode(out[43:], b[32:])
	all := string(out[:])
	return all[:43], all[43:]
}

func (s *Server) appID(r *http.Request) string { return s.base(r) + deviceapi.PathFacets }

// sessionLifetime bounds how long a redeemed UAF request may be answered.
func sessionLifetime(tx *Transaction, now time.Time) time.Time {
	if limit := now.Add(2 * time.Minute); limit.Before(tx.ExpiresAt) {
		return limit
	}
	return tx.ExpiresAt
}

// tokenTargets names the authenticators an approval's token asks: the
// transaction's one, or for one asked of any of the user's ("*") the one a
// pushed token names, or all of them for the app link's token.
func tokenTargets(st Tx, tx *Transaction, dt *DispatchToken) ([]string, error) {
	if tx.AuthenticatorID != AnyAuthenticator {
		return []string{tx.AuthenticatorID}, nil
	}
	if dt.AuthenticatorID != "" {
		return []string{dt.AuthenticatorID}, nil
	}
	as, err := trustedAuthenticators(st, tx.UserID)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(as))
	for _, a := range as {
		ids = append(ids, a.ID)
	}
	return ids, nil
}

// authRequest is the UAF AuthenticationRequest of session sess (its
// serverData in hdr, its challenge) for the authenticators ids of tx; it
// sets the session's op, accepted AAIDs and authenticator.
func authRequest(st Tx, sess *Session, tx *Transaction, ids []string, hdr uaf.Header) (uaf.AuthenticationRequest, error) {
	var pol uaf.Policy
	sess.Policy = nil
	for _, id := range ids {
		a, err := st.Authenticator(id)
		if err != nil {
			return uaf.AuthenticationRequest{}, err
		}
		if a == nil || a.Deleted {
			continue
		}
		pol.Accepted = append(pol.Accepted, []uaf.MatchCriteria{{AAID: []string{a.AAID}, KeyIDs: []string{a.KeyID}}})
		if !slices.Contains(sess.Policy, a.AAID) {
			sess.Policy = append(sess.Policy, a.AAID)
		}
	}
	if len(pol.Accepted) == 0 {
		return uaf.AuthenticationRequest{}, deverr(http.StatusGone, deviceapi.StatusRevokedAuthenticator, "the authenticator was removed")
	}
	hdr.Op, sess.Op, sess.AuthenticatorID = uaf.OpAuth, string(uaf.OpAuth), tx.AuthenticatorID
	if len(ids) == 1 {
		sess.AuthenticatorID = ids[0]
	}
	ar := uaf.AuthenticationRequest{Header: hdr, Challenge: sess.Challenge, Policy: pol}
	if tx.Message != "" {
		ar.Transaction = []uaf.Transaction{{ContentType: "text/plain", Content: uaf.B64.EncodeToString([]byte(tx.Message))}}
	}
	return ar, nil
}

func (s *Server) handleRedeem(w http.ResponseWriter, r *http.Request) {
	kind := r.PathValue("kind")
	var req deviceapi.RedeemRequest
	if err := readJSON(w, r, &req); err != nil {
		s.devFail(w, r, err)
		return
	}
	now := s.now()
	appID := s.appID(r)
	var resp deviceapi.RedeemResponse
	err := s.store.Update(r.Context(), func(st Tx) error {
		dt, err := st.DispatchToken(req.Token)
		switch {
		case err != nil:
			return err
		case dt == nil:
			return deverr(http.StatusNotFound, deviceapi.StatusRequestInvalid, "unknown dispatch token")
		case dt.Kind != kind:
			return deverr(http.StatusBadRequest, deviceapi.StatusRequestInvalid, "dispatch token is for "+dt.Kind+", not "+kind)
		case dt.Redeemed:
			return deverr(http.StatusGone, deviceapi.StatusRequestInvalid, "token already redeemed")
		case !now.Before(dt.ExpiresAt):
			return deverr(http.StatusGone, deviceapi.StatusRequestInvalid, "token expired")
		}
		serverData, chal := newSession()
		sess := &Session{ServerData: serverData, Challenge: chal, TransactionID: dt.TransactionID}
		hdr := uaf.Header{UPV: s.cfg.uafVersion(), AppID: appID, ServerData: sess.ServerData}
		var msg any
		var tx *Transaction
		if dt.TransactionID != "" {
			if tx, err = st.Transaction(dt.TransactionID); err != nil {
				return err
			}
			if tx == nil || effectiveStatus(tx, now) != cloudapi.StatusPending {
				return deverr(http.StatusGone, deviceapi.StatusRequestInvalid, "token expired: the operation is no longer pending")
			}
			sess.ExpiresAt = sessionLifetime(tx, now)
		}
		switch dispatch.Kind(kind) {
		case dispatch.Registration:
			u, err := st.User(tx.UserID)
			if err != nil {
				return err
			}
			if u == nil {
				return deverr(http.StatusGone, deviceapi.StatusRequestInvalid, "the user was deleted")
			}
			hdr.Op, sess.Op, sess.Policy = uaf.OpReg, string(uaf.OpReg), registrationPolicy
			base := defaultRegPolicy
			if s.cfg.regPolicy != nil {
				base = *s.cfg.regPolicy
			}
			pol, err := registrationPolicyFor(st, u.ID, base)
			if err != nil {
				return err
			}
			msg = uaf.RegistrationRequest{Header: hdr, Challenge: sess.Challenge, Username: u.Username, Policy: pol}
		case dispatch.Authentication:
			ids, err := tokenTargets(st, tx, dt)
			if err != nil {
				return err
			}
			ar, err := authRequest(st, sess, tx, ids, hdr)
			if err != nil {
				return err
			}
			hdr = ar.Header
			msg = ar
		case dispatch.Deregistration:
			a, err := st.Authenticator(dt.AuthenticatorID)
			if err != nil {
				return err
			}
			if a == nil {
				return deverr(http.StatusGone, deviceapi.StatusRequestInvalid, "token expired: the authenticator is gone")
			}
			hdr.Op = uaf.OpDereg
			hdr.ServerData = ""
			msg = uaf.DeregistrationRequest{Header: hdr, Authenticators: []uaf.DeregisterAuthenticator{{AAID: a.AAID, KeyID: a.KeyID}}}
			// The tombstone has done its job.
			if err := st.DeleteAuthenticator(a.ID); err != nil {
				return err
			}
			if err := st.ClearInbox(a.ID); err != nil {
				return err
			}
			sess = nil
		default:
			return deverr(http.StatusNotFound, deviceapi.StatusNotFound, "unknown redeem kind "+kind)
		}
		enc, err := uaf.Encode(msg)
		if err != nil {
			return err
		}
		dt.Redeemed = true
		if err := st.PutDispatchToken(dt); err != nil {
			return err
		}
		resp.LifetimeMillis = 0
		if sess != nil {
			if err := st.PutSession(sess); err != nil {
				return err
			}
			resp.LifetimeMillis = sess.ExpiresAt.Sub(now).Milliseconds()
		}
		if tx != nil && dt.Kind == string(dispatch.Authentication) {
			if err := withdrawDelivered(st, tx.ID, dt.Token); err != nil {
				return err
			}
		}
		if tx != nil && tx.AuthenticatorID == AnyAuthenticator {
			// The others may still answer: withdraw only this device's item.
			err = dropInboxOf(st, tx.ID, dt.Token)
		} else if tx != nil {
			err = dropInbox(st, tx.ID)
		}
		if err != nil {
			return err
		}
		resp.StatusCode, resp.UAFRequest, resp.Op = deviceapi.StatusOK, enc, string(hdr.Op)
		if tx != nil && tx.Number != 0 {
			resp.NumberChoices = tx.Choices
		}
		return nil
	})
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", deviceapi.ContentTypeUAF)
	writeJSON(w, http.StatusOK, resp)
}

// dropInbox removes a transaction's push messages and wakes their inboxes.
func dropInbox(st Tx, txID string) error { return dropInboxOf(st, txID, "") }

// dropInboxOf removes a transaction's push messages (only the one carrying
// token, if token is set) and wakes their inboxes.
func dropInboxOf(st Tx, txID, token string) error {
	items, err := st.InboxItems(txID, "")
	if err != nil {
		return err
	}
	for _, it := range items {
		if token != "" && it.Token != token {
			continue
		}
		if err := st.DeleteInboxItem(it.ID); err != nil {
			return err
		}
		st.Wake(inboxWaitKey(it.AuthenticatorID))
	}
	return nil
}

// withdrawDelivered forgets the UAF requests the inbox delivered
// (deliverRequests) with the messages of transaction txID that carry token:
// a redeem of the token spends it, so they must not answer.
func withdrawDelivered(st Tx, txID, token string) error {
	sessions, err := st.TransactionSessions(txID)
	if err != nil || len(sessions) == 0 {
		return err
	}
	items, err := st.InboxItems(txID, "")
	if err != nil {
		return err
	}
	for _, sess := range sessions {
		id, ok := deliveredItem(sess.ServerData)
		if !ok {
			continue
		}
		// Its message gone (withdrawn, expired), the request is refused
		// anyway (spendDelivered); forget it too.
		if i := slices.IndexFunc(items, func(it *InboxItem) bool { return it.ID == id }); i < 0 || items[i].Token == token {
			if err := st.DeleteSession(sess.ServerData); err != nil {
				return err
			}
		}
	}
	return nil
}

// deliveredPrefix starts the serverData of a UAF request the inbox
// delivered with its message (ours): "ib." + the inbox item's id + "." + a
// random handle. Such a request's token is still unspent; the assertion that
// answers it spends it (spendDelivered).
const deliveredPrefix = "ib."

func deliveredServerData(itemID string) string { return randomToken(deliveredPrefix + itemID + ".") }

// deliveredItem returns the inbox item id of a delivered request's
// serverData; false for one a redeem handed out.
func deliveredItem(serverData string) (string, bool) {
	rest, ok := strings.CutPrefix(serverData, deliveredPrefix)
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, ".")
	return id, ok && id != ""
}

// spendDelivered spends, inside the transaction that accepts an answer to
// a delivered request, the token of the inbox item it came with: the token
// must still be unspent (not redeemed, not declined) and unexpired, and its
// message still in the inbox. It is the token's one use.
func spendDelivered(st Tx, tx *Transaction, itemID string, now time.Time) error {
	items, err := st.InboxItems(tx.ID, "")
	if err != nil {
		return err
	}
	i := slices.IndexFunc(items, func(it *InboxItem) bool { return it.ID == itemID })
	if i < 0 {
		return deverr(http.StatusBadRequest, deviceapi.StatusRequestInvalid, "serverData is unknown or was already used: redeem a new token")
	}
	dt, err := st.DispatchToken(items[i].Token)
	switch {
	case err != nil:
		return err
	case dt == nil || dt.TransactionID != tx.ID:
		return deverr(http.StatusBadRequest, deviceapi.StatusRequestInvalid, "serverData is unknown or was already used: redeem a new token")
	case dt.Redeemed:
		return deverr(http.StatusGone, deviceapi.StatusRequestInvalid, "token already redeemed")
	case !now.Before(dt.ExpiresAt):
		return deverr(http.StatusGone, deviceapi.StatusRequestInvalid, "token expired")
	}
	dt.Redeemed = true
	return st.PutDispatchToken(dt)
}

// readUAF reads a UAF response body and checks its header and fcParams
// against the session it answers. It does not change state.
func (s *Server) readUAF(w http.ResponseWriter, r *http.Request, op uaf.Operation) (*uaf.Response, []byte, error) {
	resp, raw, _, err := s.readUAFBody(w, r, op)
	return resp, raw, err
}

// readUAFBody is readUAF that also returns the body's context.
func (s *Server) readUAFBody(w http.ResponseWriter, r *http.Request, op uaf.Operation) (*uaf.Response, []byte, json.RawMessage, error) {
	var body deviceapi.UAFBody
	if err := readJSON(w, r, &body); err != nil {
		return nil, nil, nil, err
	}
	resp, raw, err := s.parseUAF(body, op)
	return resp, raw, body.Context, err
}

// parseUAF checks a UAF response's header and returns its one assertion.
func (s *Server) parseUAF(body deviceapi.UAFBody, op uaf.Operation) (*uaf.Response, []byte, error) {
	var resp uaf.Response
	if err := uaf.Decode(body.UAFResponse, &resp); err != nil {
		return nil, nil, deverr(http.StatusBadRequest, deviceapi.StatusBadRequest, err.Error())
	}
	if resp.Header.Op != op || resp.Header.UPV != s.cfg.uafVersion() {
		return nil, nil, deverr(http.StatusBadRequest, deviceapi.StatusBadRequest, "UAF header must be op "+string(op)+", version 1.1")
	}
	if len(resp.Assertions) != 1 || resp.Assertions[0].AssertionScheme != uaf.SchemeTLV {
		return nil, nil, deverr(http.StatusBadRequest, deviceapi.StatusBadRequest, "want exactly one UAFV1TLV assertion")
	}
	raw, err := uaf.B64.DecodeString(resp.Assertions[0].Assertion)
	if err != nil {
		return nil, nil, deverr(http.StatusBadRequest, deviceapi.StatusBadRequest, "assertion is not base64url")
	}
	return &resp, raw, nil
}

// checkSession finds and checks the session a response answers, inside a
// transaction.
func (s *Server) checkSession(r *http.Request, st Tx, resp *uaf.Response, op uaf.Operation, fc []byte, now time.Time) (*Session, *Transaction, error) {
	sess, err := st.Session(resp.Header.ServerData)
	if err != nil {
		return nil, nil, err
	}
	if sess == nil || sess.Op != string(op) {
		return nil, nil, deverr(http.StatusBadRequest, deviceapi.StatusRequestInvalid, "serverData is unknown or was already used: redeem a new token")
	}
	if !now.Before(sess.ExpiresAt) {
		return nil, nil, deverr(http.StatusBadRequest, deviceapi.StatusRequestInvalid, "the request expired: start the operation again")
	}
	tx, err := st.Transaction(sess.TransactionID)
	if err != nil {
		return nil, nil, err
	}
	if tx == nil || effectiveStatus(tx, now) != cloudapi.StatusPending {
		return nil, nil, deverr(http.StatusBadRequest, deviceapi.StatusRequestInvalid, "the operation is no longer pending (expired, declined or done)")
	}
	p, err := uaf.DecodeFCParams(resp.FCParams)
	if err != nil {
		return nil, nil, deverr(http.StatusBadRequest, deviceapi.StatusBadRequest, err.Error())
	}
	if p.Challenge != sess.Challenge {
		return nil, nil, deverr(http.StatusBadRequest, deviceapi.StatusRequestInvalid, "fcParams challenge is not the one the cloud sent")
	}
	if base := s.base(r); len(p.AppID) != len(base)+len(deviceapi.PathFacets) || !strings.HasPrefix(p.AppID, base) || !strings.HasSuffix(p.AppID, deviceapi.PathFacets) {
		return nil, nil, deverr(http.StatusBadRequest, deviceapi.StatusBadRequest, "fcParams appID is not this cloud's")
	}
	if !s.trustsFacet(r, p.FacetID) {
		return nil, nil, deverr(http.StatusBadRequest, deviceapi.StatusUntrustedFacet,
			"untrusted facet "+strconv.Quote(p.FacetID)+": it is not in the cloud's trusted facet list ("+s.appID(r)+")")
	}
	if !bytes.Equal(fc, uaf.FinalChallenge(resp.FCParams)) {
		return nil, nil, deverr(http.StatusBadRequest, deviceapi.StatusRequestInvalid, "FINAL_CHALLENGE is not the hash of fcParams")
	}
	return sess, tx, nil
}

// pending is what a UAF response answers, read before the transaction so
// that the transaction token is made outside it.
type pending struct {
	tx     *Transaction
	userID string // headless: the id the new user will get
	token  string // the transaction token's signing input (transactionToken)
}

// prepare reads the transaction a response answers and makes its token; it
// returns a zero pending if there is none (the transaction then says why).
func (s *Server) prepare(r *http.Request, serverData string, now time.Time) (pending, error) {
	var p pending
	err := s.store.View(r.Context(), func(st Tx) error {
		sess, err := st.Session(serverData)
		if err != nil || sess == nil {
			return err
		}
		p.tx, err = st.Transaction(sess.TransactionID)
		return err
	})
	if err != nil || p.tx == nil {
		return pending{}, err
	}
	p.userID = p.tx.UserID
	if p.tx.Kind == KindHeadless {
		p.userID = uuid.NewString()
	}
	p.token, err = s.transactionToken(r, p.tx, p.userID, now)
	return p, err
}

// transactionClaims are the claims of a transaction token: newJWT's
// registered claims, the scope (the transaction's kind) and txn.
type transactionClaims struct {
	Aud   []string `json:"aud"`
	Exp   int64    `json:"exp"`
	Iat   int64    `json:"iat"`
	Iss   string   `json:"iss"`
	Jti   string   `json:"jti"`
	Nbf   int64    `json:"nbf"`
	Scope string   `json:"scope,omitempty"`
	Sub   string   `json:"sub"`
	Txn   string   `json:"txn"`
}

// transactionToken builds the token a succeeded transaction carries. Every
// approval makes one, so it is a plain compact JWS built here (one fixed
// set of claims, ES256 with the current key) rather than through a JOSE
// library's token builder; tests verify it with jwx against the JWKS. It
// returns the token's signing input (header and payload), which the
// transaction keeps: the token is signed when first read (signedToken),
// so one nobody asks for (an enrolment's, most often) costs no signature.
func (s *Server) transactionToken(r *http.Request, tx *Transaction, userID string, now time.Time) (string, error) {
	c := transactionClaims{Aud: []string{"backend"}, Exp: now.Add(s.cfg.tokenTTL).Unix(), Iat: now.Unix(),
		Iss: s.base(r), Jti: uuid.NewString(), Nbf: now.Unix(), Scope: tx.Kind, Sub: userID, Txn: tx.ID}
	bp := answerBufs.Get().(*[]byte)
	defer answerBufs.Put(bp)
	payload, err := appendTransactionClaims((*bp)[:0], &c)
	*bp = payload[:0]
	if err != nil {
		return "", err
	}
	return s.issuer.signingInput(payload), nil
}

// signedToken is the transaction token a transaction keeps as tok: tok
// itself when it is signed already (three parts; a store written before
// tokens were signed on read keeps those) or empty, else its signing input
// signed now with the key its header names. The signature is RFC 6979's
// (deterministic), so every read, on every replica, gives the same token;
// the last few are cached. A key this replica does not know even after
// reloading the stored keys (another emulator's, replaced by an import)
// gives way to the current key, which signs the same claims.
func (s *Server) signedToken(tok string) (string, error) {
	dot := strings.IndexByte(tok, '.')
	if dot < 0 || strings.IndexByte(tok[dot+1:], '.') >= 0 {
		return tok, nil
	}
	v, ok, gen := s.issuer.cachedToken(tok)
	if ok {
		return v, nil
	}
	k := s.issuer.keyWithHeader(tok[:dot])
	if k == nil {
		s.reloadIssuer()
		k = s.issuer.keyWithHeader(tok[:dot])
	}
	input := tok
	if k == nil {
		k = s.issuer.current()
		input = k.headerJWT + tok[dot:]
		s.cfg.logger.Warn("a transaction token's signing key is gone (replaced by an import?): its claims are signed with the current key", "kid", k.kid)
	}
	signed, err := k.signInput(input)
	if err != nil {
		return "", err
	}
	s.issuer.cacheToken(tok, signed, gen)
	return signed, nil
}

// signingInput is the compact JWS signing input of payload with the
// current key: its header (ES256, its kid, typ JWT), a dot, the base64url
// payload.
func (is *issuer) signingInput(payload []byte) string {
	k := is.current()
	b64 := base64.RawURLEncoding
	out := make([]byte, 0, len(k.headerJWT)+1+b64.EncodedLen(len(payload)))
	out = append(out, k.headerJWT...)
	out = append(out, '.')
	out = b64.AppendEncode(out, payload)
	return unsafe.String(unsafe.SliceData(out), len(out)) // out is not kept: the string owns it
}

// signInput signs a compact JWS signing input made with k's header.
func (k *signingKey) signInput(input string) (string, error) {
	b64 := base64.RawURLEncoding
	h := sha256.Sum256(unsafe.Slice(unsafe.StringData(input), len(input))) // read only: no copy
	// RFC 6979 (deterministic k, crypto/ecdsa's own): the same ES256 for
	// any verifier, the same token at every read, and cheaper than a
	// hedged signature's DRBG.
	der, err := k.priv.Sign(nil, h[:], crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	var sig [64]byte
	if !ecdsasig.DERToRaw(der, sig[:]) {
		return "", errors.New("sign token: ECDSA gave a malformed signature")
	}
	out := make([]byte, 0, len(input)+1+86)
	out = append(out, input...)
	out = append(out, '.')
	out = b64.AppendEncode(out, sig[:])
	return unsafe.String(unsafe.SliceData(out), len(out)), nil // out is not kept: the string owns it
}

// succeed marks a transaction succeeded with the token p made for it.
func succeed(st Tx, p pending, tx *Transaction, now time.Time) error {
	if p.tx == nil || p.tx.ID != tx.ID || p.userID != tx.UserID {
		return fmt.Errorf("%w: the operation changed while it was answered; send the response again", ErrUnavailable)
	}
	tx.Status, tx.Token, tx.UpdatedAt = cloudapi.StatusSucceeded, p.token, now
	st.Wake(txWaitKey(tx.ID))
	return st.PutTransaction(tx)
}

func (s *Server) handleRegistration(w http.ResponseWriter, r *http.Request) {
	var body deviceapi.UAFBody
	if err := readJSON(w, r, &body); err != nil {
		s.devFail(w, r, err)
		return
	}
	resp, raw, err := s.parseUAF(body, uaf.OpReg)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	ra, err := uaf.ParseRegAssertion(raw)
	if err != nil {
		s.devFail(w, r, deverr(http.StatusBadRequest, deviceapi.StatusBadRequest, err.Error()))
		return
	}
	if err := ra.Verify(); err != nil {
		code := deviceapi.StatusUnacceptableAttest
		s.devFail(w, r, deverr(http.StatusBadRequest, code, "registration rejected: "+err.Error()))
		return
	}
	pub, _ := ra.KRD.PublicKeyECDSA()
	if t := body.DispatchTarget; t != nil {
		// The new key's dispatch target, registered with it (ours): the
		// checks of POST PathDispatchTargets, against the key this
		// registration proves.
		if err := checkDispatchTarget(t, pub); err != nil {
			s.devFail(w, r, deverr(http.StatusBadRequest, deviceapi.StatusBadRequest, "dispatchTarget: "+err.Error()))
			return
		}
	}
	now := s.now()
	pre, err := s.prepare(r, resp.Header.ServerData, now)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	var out deviceapi.StatusBody
	err = s.store.Update(r.Context(), func(st Tx) error {
		sess, tx, err := s.checkSession(r, st, resp, uaf.OpReg, ra.KRD.FinalChallenge, now)
		if err != nil {
			return err
		}
		if !slices.Contains(sess.Policy, ra.KRD.AAID) {
			return deverr(http.StatusBadRequest, deviceapi.StatusUnacceptableAuthn, "authenticator "+ra.KRD.AAID+" is not accepted by the policy")
		}
		if p := s.cfg.regPolicy; p != nil && tx.Kind == KindEnroll && !p.Accepts(deviceapi.DescribeAlg(ra.KRD.AAID, "", ra.KRD.SignAlg)) {
			return deverr(http.StatusBadRequest, deviceapi.StatusUnacceptableAuthn,
				fmt.Sprintf("authenticator %s signing with algorithm %d is not accepted by the cloud's registration policy", ra.KRD.AAID, ra.KRD.SignAlg))
		}
		keyID := uaf.B64.EncodeToString(ra.KRD.KeyID)
		if dup, err := st.AuthenticatorByKeyID(keyID); err != nil || dup != nil {
			if err != nil {
				return err
			}
			return deverr(http.StatusConflict, deviceapi.StatusUnacceptableKey, "keyID is already registered")
		}
		u, err := st.User(tx.UserID)
		if err != nil {
			return err
		}
		if tx.Kind == KindHeadless {
			// A device-only user: no username, status new (flows.md).
			u = &User{ID: pre.userID, CreatedAt: now, UpdatedAt: now}
			tx.UserID = u.ID
		}
		if u == nil {
			return deverr(http.StatusGone, deviceapi.StatusRequestInvalid, "the user was deleted")
		}
		if tx.Kind == KindUpgrade {
			old, err := st.Authenticator(tx.AuthenticatorID)
			if err != nil {
				return err
			}
			if old == nil || old.Deleted {
				return deverr(http.StatusGone, deviceapi.StatusRequestInvalid, "the headless key being upgraded is gone")
			}
		}
		as, err := activeAuthenticators(st, u.ID)
		if err != nil {
			return err
		}
		if len(as) >= cloudapi.MaxAuthenticators {
			return deverr(http.StatusConflict, deviceapi.StatusForbidden, "the user already has the most authenticators allowed")
		}
		if err := succeed(st, pre, tx, now); err != nil {
			return err
		}
		a := &Authenticator{ID: uuid.NewString(), UserID: u.ID, KeyID: keyID, AAID: ra.KRD.AAID, PublicKey: pub,
			SignCounter: ra.KRD.SignCounter, Name: "authphone", Type: platformOf(resp.FCParams), CreatedAt: now}
		if t := body.DispatchTarget; t != nil {
			setDispatchTarget(a, t)
		}
		if err := st.PutAuthenticator(a); err != nil {
			return err
		}
		u.UpdatedAt = now
		if a.AAID != deviceapi.AAIDHeadless {
			u.Activated = true
		}
		if err := st.PutUser(u); err != nil {
			return err
		}
		tx.UserID = u.ID
		if err := s.emitTx(st, tx, tx.Status); err != nil {
			return err
		}
		if err := s.emit(st, adminapi.Event{Type: adminapi.EventAuthenticatorRegistered, UserID: u.ID, Username: u.Username,
			AuthenticatorID: a.ID, OperationID: tx.ID, Data: map[string]string{"aaid": a.AAID}}); err != nil {
			return err
		}
		if tx.Kind == KindUpgrade {
			// The PIN-protected key replaces the device-only one.
			if err := st.DeleteAuthenticator(tx.AuthenticatorID); err != nil {
				return err
			}
			if err := st.ClearInbox(tx.AuthenticatorID); err != nil {
				return err
			}
		}
		if err := st.DeleteSession(sess.ServerData); err != nil {
			return err
		}
		out = deviceapi.StatusBody{StatusCode: deviceapi.StatusOK, UserID: u.ID, AuthenticatorID: a.ID, DispatchTarget: body.DispatchTarget != nil}
		return nil
	})
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleAuthentication(w http.ResponseWriter, r *http.Request) {
	resp, raw, authCtx, err := s.readUAFBody(w, r, uaf.OpAuth)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	picked, err := pickedNumber(authCtx)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	aa, err := uaf.ParseAuthAssertion(raw)
	if err != nil {
		s.devFail(w, r, deverr(http.StatusBadRequest, deviceapi.StatusBadRequest, err.Error()))
		return
	}
	now := s.now()
	keyID := uaf.B64.EncodeToString(aa.SignedData.KeyID)
	pre, err := s.prepare(r, resp.Header.ServerData, now)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	// The signature is checked before the transaction, against the key the
	// keyID names; inside, the key must still be the same.
	var key *ecdsa.PublicKey
	var sigErr error
	err = s.store.View(r.Context(), func(st Tx) error {
		a, err := st.AuthenticatorByKeyID(keyID)
		if a != nil {
			key = a.PublicKey
		}
		return err
	})
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	if key != nil {
		sigErr = aa.Verify(key)
	}
	err = s.store.Update(r.Context(), func(st Tx) error {
		sess, tx, err := s.checkSession(r, st, resp, uaf.OpAuth, aa.SignedData.FinalChallenge, now)
		if err != nil {
			return err
		}
		a, err := st.AuthenticatorByKeyID(keyID)
		if err != nil {
			return err
		}
		if a == nil || a.Deleted {
			return deverr(http.StatusBadRequest, deviceapi.StatusUnknownKeyID, "unknown keyID: this key is not registered")
		}
		if a.ID != sess.AuthenticatorID && !(sess.AuthenticatorID == AnyAuthenticator && a.UserID == tx.UserID && a.AAID != deviceapi.AAIDHeadless) {
			return deverr(http.StatusForbidden, deviceapi.StatusUnacceptableAuthn, "this key was not asked to authenticate")
		}
		if aa.SignedData.AAID != a.AAID || !slices.Contains(sess.Policy, aa.SignedData.AAID) {
			return deverr(http.StatusBadRequest, deviceapi.StatusUnknownAAID, "AAID "+aa.SignedData.AAID+" does not match the registered authenticator")
		}
		if key == nil || !key.Equal(a.PublicKey) {
			return fmt.Errorf("%w: the key changed while the response was checked; send it again", ErrUnavailable)
		}
		if sigErr != nil {
			return deverr(http.StatusBadRequest, deviceapi.StatusBadRequest, "authentication rejected: "+sigErr.Error())
		}
		// Both zero: the authenticator does not implement a counter (UAF 1.1
		// protocol, processing of authentication responses). Otherwise it must grow.
		if counterless := aa.SignedData.SignCounter == 0 && a.SignCounter == 0; !counterless && aa.SignedData.SignCounter <= a.SignCounter {
			return deverr(http.StatusBadRequest, deviceapi.StatusRequestInvalid, "sign counter did not grow: a cloned or replayed authenticator")
		}
		var want []byte
		if tx.Message != "" {
			h, _ := uaf.TransactionHash([]uaf.Transaction{{Content: uaf.B64.EncodeToString([]byte(tx.Message))}})
			want = h
		}
		if !bytes.Equal(aa.SignedData.TransactionHash, want) {
			return deverr(http.StatusBadRequest, deviceapi.StatusUnacceptableContent, "transaction hash does not match the transaction text the cloud sent")
		}
		if tx.Number != 0 && picked == 0 {
			return deverr(http.StatusBadRequest, deviceapi.StatusBadRequest, "this approval uses number matching: send the number the user picked (context.number)")
		}
		if itemID, ok := deliveredItem(sess.ServerData); ok {
			if err := spendDelivered(st, tx, itemID, now); err != nil {
				return err
			}
		}
		a.SignCounter = aa.SignedData.SignCounter
		if err := st.PutAuthenticator(a); err != nil {
			return err
		}
		if tx.Number != 0 && picked != tx.Number {
			// A genuine answer with the wrong number: the approval fails,
			// as if the user had declined, and the answer is used up.
			if err := s.failTransaction(st, tx, cloudapi.ReasonWrongNumber, now); err != nil {
				return err
			}
			return commitWith(deverr(http.StatusForbidden, deviceapi.StatusForbidden,
				fmt.Sprintf("%s: %d is not the number the service showed; the approval failed", deviceapi.WrongNumber, picked)))
		}
		if err := succeed(st, pre, tx, now); err != nil {
			return err
		}
		if err := s.emitTx(st, tx, tx.Status); err != nil {
			return err
		}
		if err := st.DeleteSession(sess.ServerData); err != nil {
			return err
		}
		return dropInbox(st, tx.ID)
	})
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deviceapi.StatusBody{StatusCode: deviceapi.StatusOK})
}

// deviceProof is a Device-Signature checked outside any transaction; use
// completes the check inside one.
type deviceProof struct {
	keyID, nonce string
	userID       string
	until        time.Time
	key          *ecdsa.PublicKey
	allowDeleted bool
}

// verifyDevice checks the Device-Signature of r against the key it names.
// Deleted authenticators pass only with allowDeleted.
func (s *Server) verifyDevice(r *http.Request, body []byte, allowDeleted bool) (*deviceProof, error) {
	sig, err := devsig.Parse(r.Header.Get(devsig.HeaderName))
	if err != nil {
		return nil, errf(http.StatusUnauthorized, "%v", err)
	}
	var a *Authenticator
	if err := s.store.View(r.Context(), func(st Tx) error {
		a, err = st.AuthenticatorByKeyID(sig.KeyID)
		return err
	}); err != nil {
		return nil, err
	}
	if err := checkDeviceKey(a, allowDeleted); err != nil {
		return nil, err
	}
	if err := sig.Verify(a.PublicKey, r.Method, r.URL.Path, body, s.deviceNow(), devsig.MaxAge); err != nil {
		return nil, errf(http.StatusUnauthorized, "%v", err)
	}
	return &deviceProof{keyID: sig.KeyID, nonce: sig.Claims.Nonce, key: a.PublicKey, userID: a.UserID, allowDeleted: allowDeleted,
		until: time.Unix(sig.Claims.IssuedAt, 0).Add(devsig.MaxAge + 5*time.Second + s.offset())}, nil
}

func checkDeviceKey(a *Authenticator, allowDeleted bool) error {
	if a == nil {
		return errf(http.StatusUnauthorized, "Device-Signature names an unknown key: this device is not registered")
	}
	if a.Deleted && !allowDeleted {
		return errf(http.StatusUnauthorized, "this device was removed from the user's authenticators")
	}
	return nil
}

// use re-reads, inside a transaction, the authenticator a proof names and
// records the proof's nonce: a signature is good once.
func (p *deviceProof) use(st Tx) (*Authenticator, error) {
	a, err := st.AuthenticatorByKeyID(p.keyID)
	if err != nil {
		return nil, err
	}
	if err := checkDeviceKey(a, p.allowDeleted); err != nil {
		return nil, err
	}
	if !a.PublicKey.Equal(p.key) || a.UserID != p.userID {
		return nil, errf(http.StatusUnauthorized, "Device-Signature names an unknown key: this device is not registered")
	}
	fresh, err := st.UseNonce(p.nonce, p.until)
	if err != nil {
		return nil, err
	}
	if !fresh {
		return nil, errf(http.StatusUnauthorized, "Device-Signature was already used (replay)")
	}
	return a, nil
}

// deviceAuth checks the Device-Signature of r and, in one transaction,
// records its nonce; it returns the signing authenticator.
func (s *Server) deviceAuth(r *http.Request, body []byte, allowDeleted bool) (*Authenticator, error) {
	p, err := s.verifyDevice(r, body, allowDeleted)
	if err != nil {
		return nil, err
	}
	var a *Authenticator
	err = s.store.Update(r.Context(), func(st Tx) error {
		a, err = p.use(st)
		return err
	})
	return a, err
}

// checkDispatchTarget checks a dispatch target of the authenticator whose
// key is own: its signatureKey is that key, or the phone's device key
// named by deviceId (its RFC 7638 thumbprint); its dispatcher the inbox.
func checkDispatchTarget(t *deviceapi.DispatchTarget, own *ecdsa.PublicKey) error {
	pub, deviceKeyID, err := deviceapi.DeviceKey(t.SignatureKey)
	if err != nil {
		return fmt.Errorf("signatureKey: %w", err)
	}
	if !pub.Equal(own) && t.DeviceID != deviceKeyID {
		return errors.New("signatureKey is neither the key that signed the request nor the device key deviceId names (its RFC 7638 thumbprint)")
	}
	if t.Dispatcher != "inbox" {
		return fmt.Errorf("dispatcher %q is not served by the emulator; use \"inbox\"", t.Dispatcher)
	}
	return nil
}

// setDispatchTarget records a checked dispatch target in a.
func setDispatchTarget(a *Authenticator, t *deviceapi.DispatchTarget) {
	if t.Name != "" {
		a.Name = t.Name
	}
	a.DeviceID = t.DeviceID
}

func (s *Server) handleDispatchTarget(w http.ResponseWriter, r *http.Request) {
	var req deviceapi.DispatchTarget
	body, err := readSigned(w, r, &req)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	proof, err := s.verifyDevice(r, body, false)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	var id string
	err = s.store.Update(r.Context(), func(st Tx) error {
		a, err := proof.use(st)
		if err != nil {
			return err
		}
		if err := checkDispatchTarget(&req, a.PublicKey); err != nil {
			return errf(http.StatusBadRequest, "%s", err.Error())
		}
		setDispatchTarget(a, &req)
		id = a.ID
		return st.PutAuthenticator(a)
	})
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deviceapi.DispatchTargetResponse{ID: id})
}

func (s *Server) handleInbox(w http.ResponseWriter, r *http.Request) {
	wait, err := parseWait(r)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	a, err := s.deviceAuth(r, nil, true)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	aid := a.ID
	var items []deviceapi.InboxMessage
	if !s.longPoll(r.Context(), inboxWaitKey(aid), wait, func() (bool, time.Time) {
		items, err = s.inboxOf(r, aid)
		return err != nil || len(items) > 0, time.Time{}
	}) {
		return
	}
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, items)
}

func (s *Server) inboxOf(r *http.Request, aid string) ([]deviceapi.InboxMessage, error) {
	now := s.now()
	out := []deviceapi.InboxMessage{}
	err := s.store.View(r.Context(), func(st Tx) error {
		var err error
		out, err = inboxIn(st, aid, now, out)
		return err
	})
	return out, err
}

// inboxIn appends to out the live messages of an authenticator's inbox.
func inboxIn(st Tx, aid string, now time.Time, out []deviceapi.InboxMessage) ([]deviceapi.InboxMessage, error) {
	items, err := st.Inbox(aid)
	if err != nil {
		return out, err
	}
	for _, it := range items {
		if !now.Before(it.ExpiresAt) {
			continue
		}
		var choices []int
		if it.TransactionID != "" {
			tx, err := st.Transaction(it.TransactionID)
			if err != nil {
				return out, err
			}
			if tx == nil || effectiveStatus(tx, now) != cloudapi.StatusPending {
				continue
			}
			choices = tx.Choices
		}
		m := deviceapi.InboxMessage{ID: it.ID, CreatedAt: it.CreatedAt, ExpiresAt: it.ExpiresAt,
			Payload: it.Payload, NotificationMessage: it.Notification, Kind: deviceapi.InboxKind(it.Kind), Message: it.Message,
			TransactionID: it.TransactionID, NumberChoices: choices}
		if it.LoginRequestID != "" {
			lr, err := st.LoginRequest(it.LoginRequestID)
			if err != nil {
				return out, err
			}
			if lr == nil || lr.Status != trustapi.StatusPending || !now.Before(lr.ExpiresAt) {
				continue
			}
			m.LoginRequest = lr.info()
		}
		out = append(out, m)
	}
	return out, nil
}

func (s *Server) handleDecline(w http.ResponseWriter, r *http.Request) {
	var req deviceapi.DeclineRequest
	body, err := readSigned(w, r, &req)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	now := s.now()
	// An approval is declined by its own device; an enrolment by whoever
	// holds its single-use token (there is no device key yet). The
	// signature, if any, is checked here; whether it is needed, inside.
	proof, proofErr := s.verifyDevice(r, body, false)
	err = s.store.Update(r.Context(), func(st Tx) error {
		dt, err := st.DispatchToken(req.Token)
		if err != nil {
			return err
		}
		if dt == nil || dt.TransactionID == "" {
			return deverr(http.StatusNotFound, deviceapi.StatusRequestInvalid, "unknown dispatch token")
		}
		tx, err := st.Transaction(dt.TransactionID)
		if err != nil {
			return err
		}
		if tx == nil || effectiveStatus(tx, now) != cloudapi.StatusPending {
			return deverr(http.StatusGone, deviceapi.StatusRequestInvalid, "the operation is no longer pending (expired, declined or done)")
		}
		if tx.Kind == KindApproval {
			if proofErr != nil {
				return proofErr
			}
			a, err := proof.use(st)
			if err != nil {
				return err
			}
			asked := a.ID == tx.AuthenticatorID ||
				(tx.AuthenticatorID == AnyAuthenticator && a.UserID == tx.UserID && (dt.AuthenticatorID == "" || dt.AuthenticatorID == a.ID))
			if !asked {
				return errf(http.StatusForbidden, "this device was not asked to approve that operation")
			}
		}
		reason := req.Reason
		if reason == "" {
			reason = "user declined"
		}
		dt.Redeemed = true
		if err := st.PutDispatchToken(dt); err != nil {
			return err
		}
		return s.failTransaction(st, tx, reason, now)
	})
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deviceapi.StatusBody{StatusCode: deviceapi.StatusOK})
}

func (s *Server) handleDeregistration(w http.ResponseWriter, r *http.Request) {
	var req deviceapi.UAFBody
	body, err := readSigned(w, r, &req)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	var dr uaf.DeregistrationRequest
	if err := uaf.Decode(req.UAFResponse, &dr); err != nil || dr.Header.Op != uaf.OpDereg {
		s.devFail(w, r, deverr(http.StatusBadRequest, deviceapi.StatusBadRequest, "want a UAF Dereg message"))
		return
	}
	now := s.now()
	proof, err := s.verifyDevice(r, body, true)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	err = s.store.Update(r.Context(), func(st Tx) error {
		a, err := proof.use(st)
		if err != nil {
			return err
		}
		if len(dr.Authenticators) != 1 || dr.Authenticators[0].KeyID != a.KeyID || dr.Authenticators[0].AAID != a.AAID {
			return errf(http.StatusForbidden, "a device may only deregister its own key")
		}
		if err := s.failPending(st, "", a.ID, "authenticator deregistered", now); err != nil {
			return err
		}
		if err := st.DeleteAuthenticator(a.ID); err != nil {
			return err
		}
		if err := s.emit(st, adminapi.Event{Type: adminapi.EventAuthenticatorRemoved, UserID: a.UserID, AuthenticatorID: a.ID,
			Reason: "deregistered by the device"}); err != nil {
			return err
		}
		return st.ClearInbox(a.ID)
	})
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deviceapi.StatusBody{StatusCode: deviceapi.StatusOK})
}

// failTransaction ends a pending transaction as failed with reason: its
// UAF requests in flight are forgotten and its push messages withdrawn.
func (s *Server) failTransaction(st Tx, tx *Transaction, reason string, now time.Time) error {
	tx.Status, tx.Reason, tx.UpdatedAt = cloudapi.StatusFailed, reason, now
	if err := st.PutTransaction(tx); err != nil {
		return err
	}
	if err := s.emitTx(st, tx, tx.Status); err != nil {
		return err
	}
	sessions, err := st.TransactionSessions(tx.ID)
	if err != nil {
		return err
	}
	for _, sess := range sessions {
		if err := st.DeleteSession(sess.ServerData); err != nil {
			return err
		}
	}
	st.Wake(txWaitKey(tx.ID))
	return dropInbox(st, tx.ID)
}

// pickedNumber reads the number the user picked from an authentication
// response's context (0: none).
func pickedNumber(raw json.RawMessage) (int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var c deviceapi.AuthContext
	if err := json.Unmarshal(raw, &c); err != nil {
		return 0, deverr(http.StatusBadRequest, deviceapi.StatusBadRequest, "context must be a JSON object such as {\"number\":42}")
	}
	if c.Number < 0 || c.Number > 99 {
		return 0, deverr(http.StatusBadRequest, deviceapi.StatusBadRequest, "context.number must be a two-digit number")
	}
	return c.Number, nil
}

// numberChoices draws a number-matching approval's number (10-99) and the
// three numbers the phone offers, the right one among two other ones, in a
// random order.
func numberChoices() (int, []int) {
	draw := func() int { n, _ := rand.Int(rand.Reader, big.NewInt(90)); return int(n.Int64()) + 10 }
	number := draw()
	choices := []int{number}
	for len(choices) < 3 {
		if n := draw(); !slices.Contains(choices, n) {
			choices = append(choices, n)
		}
	}
	for i := len(choices) - 1; i > 0; i-- {
		j, _ := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		choices[i], choices[j.Int64()] = choices[j.Int64()], choices[i]
	}
	return number, choices
}
