package emulator

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/devsig"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/authphone/authphone/sdk/uaf"
	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v3/jwk"
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
		writeJSON(w, de.status, deviceapi.StatusBody{StatusCode: de.code, Description: de.msg})
	case errors.As(err, &ae):
		code := map[int]int{400: 1400, 401: 1401, 403: 1403, 404: 1404, 409: 1491, 410: 1491, 413: 1400, 415: 1400}[ae.status]
		if code == 0 {
			code = deviceapi.StatusBadRequest
		}
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

func policyOf(aaids []string) uaf.Policy {
	p := uaf.Policy{}
	for _, a := range aaids {
		p.Accepted = append(p.Accepted, []uaf.MatchCriteria{{AAID: []string{a}}})
	}
	return p
}

func challenge() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return uaf.B64.EncodeToString(b)
}

func (s *Server) appID(r *http.Request) string { return s.base(r) + deviceapi.PathFacets }

// sessionLifetime bounds how long a redeemed UAF request may be answered.
func sessionLifetime(tx *Transaction, now time.Time) time.Time {
	if limit := now.Add(2 * time.Minute); limit.Before(tx.ExpiresAt) {
		return limit
	}
	return tx.ExpiresAt
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
	var wake []string
	err := s.store.Update(r.Context(), func(st *State) error {
		dt := st.Tokens[req.Token]
		switch {
		case dt == nil:
			return deverr(http.StatusNotFound, deviceapi.StatusRequestInvalid, "unknown dispatch token")
		case dt.Kind != kind:
			return deverr(http.StatusBadRequest, deviceapi.StatusRequestInvalid, "dispatch token is for "+dt.Kind+", not "+kind)
		case dt.Redeemed:
			return deverr(http.StatusGone, deviceapi.StatusRequestInvalid, "token already redeemed")
		case !now.Before(dt.ExpiresAt):
			return deverr(http.StatusGone, deviceapi.StatusRequestInvalid, "token expired")
		}
		sess := &Session{ServerData: randomToken(""), Challenge: challenge(), TransactionID: dt.TransactionID}
		hdr := uaf.Header{UPV: uaf.V1_1, AppID: appID, ServerData: sess.ServerData}
		var msg any
		var tx *Transaction
		if dt.TransactionID != "" {
			tx = st.Transactions[dt.TransactionID]
			if tx == nil || effectiveStatus(tx, now) != cloudapi.StatusPending {
				return deverr(http.StatusGone, deviceapi.StatusRequestInvalid, "token expired: the operation is no longer pending")
			}
			sess.ExpiresAt = sessionLifetime(tx, now)
		}
		switch dispatch.Kind(kind) {
		case dispatch.Registration:
			u := st.Users[tx.UserID]
			if u == nil {
				return deverr(http.StatusGone, deviceapi.StatusRequestInvalid, "the user was deleted")
			}
			hdr.Op, sess.Op, sess.Policy = uaf.OpReg, string(uaf.OpReg), registrationPolicy
			msg = uaf.RegistrationRequest{Header: hdr, Challenge: sess.Challenge, Username: u.Username, Policy: policyOf(sess.Policy)}
		case dispatch.Authentication:
			a := st.Authenticators[tx.AuthenticatorID]
			if a == nil || a.Deleted {
				return deverr(http.StatusGone, deviceapi.StatusRevokedAuthenticator, "the authenticator was removed")
			}
			hdr.Op, sess.Op, sess.AuthenticatorID, sess.Policy = uaf.OpAuth, string(uaf.OpAuth), a.ID, []string{a.AAID}
			ar := uaf.AuthenticationRequest{Header: hdr, Challenge: sess.Challenge,
				Policy: uaf.Policy{Accepted: [][]uaf.MatchCriteria{{{AAID: []string{a.AAID}, KeyIDs: []string{a.KeyID}}}}}}
			if tx.Message != "" {
				ar.Transaction = []uaf.Transaction{{ContentType: "text/plain", Content: uaf.B64.EncodeToString([]byte(tx.Message))}}
			}
			msg = ar
		case dispatch.Deregistration:
			a := st.Authenticators[dt.AuthenticatorID]
			if a == nil {
				return deverr(http.StatusGone, deviceapi.StatusRequestInvalid, "token expired: the authenticator is gone")
			}
			hdr.Op = uaf.OpDereg
			hdr.ServerData = ""
			msg = uaf.DeregistrationRequest{Header: hdr, Authenticators: []uaf.DeregisterAuthenticator{{AAID: a.AAID, KeyID: a.KeyID}}}
			// The tombstone has done its job.
			delete(st.Authenticators, a.ID)
			delete(st.Inbox, a.ID)
			sess = nil
		default:
			return deverr(http.StatusNotFound, deviceapi.StatusNotFound, "unknown redeem kind "+kind)
		}
		enc, err := uaf.Encode(msg)
		if err != nil {
			return err
		}
		dt.Redeemed = true
		if sess != nil {
			st.Sessions[sess.ServerData] = sess
			resp.LifetimeMillis = sess.ExpiresAt.Sub(now).Milliseconds()
		}
		if tx != nil {
			wake = append(wake, s.dropInbox(st, tx.ID)...)
		}
		resp.StatusCode, resp.UAFRequest, resp.Op = deviceapi.StatusOK, enc, string(hdr.Op)
		return nil
	})
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	s.hub.Signal(wake...)
	w.Header().Set("Content-Type", deviceapi.ContentTypeUAF)
	writeJSON(w, http.StatusOK, resp)
}

// dropInbox removes a transaction's push messages; it returns the inbox keys
// to wake.
func (s *Server) dropInbox(st *State, txID string) []string {
	var keys []string
	for aid, items := range st.Inbox {
		n := slices.DeleteFunc(items, func(it *InboxItem) bool { return it.TransactionID == txID })
		if len(n) != len(items) {
			st.Inbox[aid] = n
			keys = append(keys, inboxWaitKey(aid))
		}
	}
	return keys
}

// readUAF reads a UAF response body and checks its header and fcParams
// against the session it answers. It does not change state.
func (s *Server) readUAF(w http.ResponseWriter, r *http.Request, op uaf.Operation) (*uaf.Response, []byte, error) {
	var body deviceapi.UAFBody
	if err := readJSON(w, r, &body); err != nil {
		return nil, nil, err
	}
	var resp uaf.Response
	if err := uaf.Decode(body.UAFResponse, &resp); err != nil {
		return nil, nil, deverr(http.StatusBadRequest, deviceapi.StatusBadRequest, err.Error())
	}
	if resp.Header.Op != op || resp.Header.UPV != uaf.V1_1 {
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
func (s *Server) checkSession(r *http.Request, st *State, resp *uaf.Response, op uaf.Operation, fc []byte, now time.Time) (*Session, *Transaction, error) {
	sess := st.Sessions[resp.Header.ServerData]
	if sess == nil || sess.Op != string(op) {
		return nil, nil, deverr(http.StatusBadRequest, deviceapi.StatusRequestInvalid, "serverData is unknown or was already used: redeem a new token")
	}
	if !now.Before(sess.ExpiresAt) {
		return nil, nil, deverr(http.StatusBadRequest, deviceapi.StatusRequestInvalid, "the request expired: start the operation again")
	}
	tx := st.Transactions[sess.TransactionID]
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
	if p.AppID != s.appID(r) {
		return nil, nil, deverr(http.StatusBadRequest, deviceapi.StatusBadRequest, "fcParams appID is not this cloud's")
	}
	if !bytes.Equal(fc, uaf.FinalChallenge(resp.FCParams)) {
		return nil, nil, deverr(http.StatusBadRequest, deviceapi.StatusRequestInvalid, "FINAL_CHALLENGE is not the hash of fcParams")
	}
	return sess, tx, nil
}

// succeed marks a transaction succeeded with a signed transaction token.
func (s *Server) succeed(r *http.Request, tx *Transaction, now time.Time) error {
	tok, _ := newJWT(s.base(r)+"/", tx.UserID, "backend", tx.Kind, now, s.cfg.tokenTTL)
	_ = tok.Set("txn", tx.ID)
	signed, err := s.issuer.sign(tok)
	if err != nil {
		return err
	}
	tx.Status, tx.Token, tx.UpdatedAt = cloudapi.StatusSucceeded, signed, now
	return nil
}

func (s *Server) handleRegistration(w http.ResponseWriter, r *http.Request) {
	resp, raw, err := s.readUAF(w, r, uaf.OpReg)
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
	now := s.now()
	var out deviceapi.StatusBody
	var wake []string
	err = s.store.Update(r.Context(), func(st *State) error {
		sess, tx, err := s.checkSession(r, st, resp, uaf.OpReg, ra.KRD.FinalChallenge, now)
		if err != nil {
			return err
		}
		if !slices.Contains(sess.Policy, ra.KRD.AAID) {
			return deverr(http.StatusBadRequest, deviceapi.StatusUnacceptableAuthn, "authenticator "+ra.KRD.AAID+" is not accepted by the policy")
		}
		keyID := uaf.B64.EncodeToString(ra.KRD.KeyID)
		if st.authenticatorByKeyID(keyID) != nil {
			return deverr(http.StatusConflict, deviceapi.StatusUnacceptableKey, "keyID is already registered")
		}
		u := st.Users[tx.UserID]
		if tx.Kind == KindHeadless {
			// A device-only user: no username, status new (flows.md).
			u = &User{ID: uuid.NewString(), CreatedAt: now, UpdatedAt: now}
			st.Users[u.ID] = u
			tx.UserID = u.ID
		}
		if u == nil {
			return deverr(http.StatusGone, deviceapi.StatusRequestInvalid, "the user was deleted")
		}
		if tx.Kind == KindUpgrade {
			if old := st.Authenticators[tx.AuthenticatorID]; old == nil || old.Deleted {
				return deverr(http.StatusGone, deviceapi.StatusRequestInvalid, "the headless key being upgraded is gone")
			}
		}
		if len(st.userAuthenticators(u.ID)) >= cloudapi.MaxAuthenticators {
			return deverr(http.StatusConflict, deviceapi.StatusForbidden, "the user already has the most authenticators allowed")
		}
		if err := s.succeed(r, tx, now); err != nil {
			return err
		}
		a := &Authenticator{ID: uuid.NewString(), UserID: u.ID, KeyID: keyID, AAID: ra.KRD.AAID, PublicKey: pub,
			SignCounter: ra.KRD.SignCounter, Name: "authphone", Type: "cli", CreatedAt: now}
		st.Authenticators[a.ID] = a
		u.UpdatedAt = now
		if a.AAID != deviceapi.AAIDHeadless {
			u.Activated = true
		}
		if tx.Kind == KindUpgrade {
			// The PIN-protected key replaces the device-only one.
			delete(st.Authenticators, tx.AuthenticatorID)
			delete(st.Inbox, tx.AuthenticatorID)
		}
		delete(st.Sessions, sess.ServerData)
		out = deviceapi.StatusBody{StatusCode: deviceapi.StatusOK, UserID: u.ID, AuthenticatorID: a.ID}
		wake = append(wake, txWaitKey(tx.ID))
		return nil
	})
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	s.hub.Signal(wake...)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleAuthentication(w http.ResponseWriter, r *http.Request) {
	resp, raw, err := s.readUAF(w, r, uaf.OpAuth)
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
	var wake []string
	err = s.store.Update(r.Context(), func(st *State) error {
		sess, tx, err := s.checkSession(r, st, resp, uaf.OpAuth, aa.SignedData.FinalChallenge, now)
		if err != nil {
			return err
		}
		a := st.authenticatorByKeyID(keyID)
		if a == nil || a.Deleted {
			return deverr(http.StatusBadRequest, deviceapi.StatusUnknownKeyID, "unknown keyID: this key is not registered")
		}
		if a.ID != sess.AuthenticatorID {
			return deverr(http.StatusForbidden, deviceapi.StatusUnacceptableAuthn, "this key was not asked to authenticate")
		}
		if aa.SignedData.AAID != a.AAID || !slices.Contains(sess.Policy, aa.SignedData.AAID) {
			return deverr(http.StatusBadRequest, deviceapi.StatusUnknownAAID, "AAID "+aa.SignedData.AAID+" does not match the registered authenticator")
		}
		if err := aa.Verify(a.PublicKey); err != nil {
			return deverr(http.StatusBadRequest, deviceapi.StatusBadRequest, "authentication rejected: "+err.Error())
		}
		if aa.SignedData.SignCounter <= a.SignCounter {
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
		if err := s.succeed(r, tx, now); err != nil {
			return err
		}
		a.SignCounter = aa.SignedData.SignCounter
		delete(st.Sessions, sess.ServerData)
		wake = append(wake, txWaitKey(tx.ID))
		wake = append(wake, s.dropInbox(st, tx.ID)...)
		return nil
	})
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	s.hub.Signal(wake...)
	writeJSON(w, http.StatusOK, deviceapi.StatusBody{StatusCode: deviceapi.StatusOK})
}

// deviceAuth checks the Device-Signature of r against the key it names and
// records its nonce. It runs inside Update.
func (s *Server) deviceAuth(r *http.Request, st *State, body []byte, allowDeleted bool) (*Authenticator, error) {
	sig, err := devsig.Parse(r.Header.Get(devsig.HeaderName))
	if err != nil {
		return nil, errf(http.StatusUnauthorized, "%v", err)
	}
	a := st.authenticatorByKeyID(sig.KeyID)
	if a == nil {
		return nil, errf(http.StatusUnauthorized, "Device-Signature names an unknown key: this device is not registered")
	}
	if a.Deleted && !allowDeleted {
		return nil, errf(http.StatusUnauthorized, "this device was removed from the user's authenticators")
	}
	now := s.now()
	if err := sig.Verify(a.PublicKey, r.Method, r.URL.Path, body, now, devsig.MaxAge); err != nil {
		return nil, errf(http.StatusUnauthorized, "%v", err)
	}
	if _, seen := st.Nonces[sig.Claims.Nonce]; seen {
		return nil, errf(http.StatusUnauthorized, "Device-Signature was already used (replay)")
	}
	if len(st.Nonces) > 4096 {
		for n, until := range st.Nonces {
			if now.After(until) {
				delete(st.Nonces, n)
			}
		}
	}
	st.Nonces[sig.Claims.Nonce] = time.Unix(sig.Claims.IssuedAt, 0).Add(devsig.MaxAge + 5*time.Second)
	return a, nil
}

func (s *Server) handleDispatchTarget(w http.ResponseWriter, r *http.Request) {
	var req deviceapi.DispatchTarget
	body, err := readSigned(w, r, &req)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	var id string
	err = s.store.Update(r.Context(), func(st *State) error {
		a, err := s.deviceAuth(r, st, body, false)
		if err != nil {
			return err
		}
		k, err := jwk.ParseKey(req.SignatureKey)
		if err != nil {
			return errf(http.StatusBadRequest, "signatureKey is not a JWK: %v", err)
		}
		var pub ecdsa.PublicKey
		if err := jwk.Export(k, &pub); err != nil || !pub.Equal(a.PublicKey) {
			return errf(http.StatusBadRequest, "signatureKey is not the device key that signed the request")
		}
		if req.Dispatcher != "inbox" {
			return errf(http.StatusBadRequest, "dispatcher %q is not served by the emulator; use \"inbox\"", req.Dispatcher)
		}
		if req.Name != "" {
			a.Name = req.Name
		}
		a.DeviceID = req.DeviceID
		id = a.ID
		return nil
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
	var aid string
	err = s.store.Update(r.Context(), func(st *State) error {
		a, err := s.deviceAuth(r, st, nil, true)
		if err != nil {
			return err
		}
		aid = a.ID
		return nil
	})
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	var items []deviceapi.InboxMessage
	if s.longPoll(r.Context(), inboxWaitKey(aid), wait, func() (bool, time.Time) {
		items = s.inboxOf(r, aid)
		return len(items) > 0, time.Time{}
	}) {
		writeJSON(w, http.StatusOK, items)
	}
}

func (s *Server) inboxOf(r *http.Request, aid string) []deviceapi.InboxMessage {
	now := s.now()
	out := []deviceapi.InboxMessage{}
	_ = s.store.View(r.Context(), func(st *State) error {
		for _, it := range st.Inbox[aid] {
			if !now.Before(it.ExpiresAt) {
				continue
			}
			if tx := st.Transactions[it.TransactionID]; it.TransactionID != "" && (tx == nil || effectiveStatus(tx, now) != cloudapi.StatusPending) {
				continue
			}
			m := deviceapi.InboxMessage{ID: it.ID, CreatedAt: it.CreatedAt, ExpiresAt: it.ExpiresAt,
				Payload: it.Payload, NotificationMessage: it.Notification, Kind: deviceapi.InboxKind(it.Kind), Message: it.Message}
			if it.LoginRequestID != "" {
				lr := st.LoginRequests[it.LoginRequestID]
				if lr == nil || lr.Status != trustapi.StatusPending || !now.Before(lr.ExpiresAt) {
					continue
				}
				m.LoginRequest = lr.info()
			}
			out = append(out, m)
		}
		return nil
	})
	return out
}

func (s *Server) handleDecline(w http.ResponseWriter, r *http.Request) {
	var req deviceapi.DeclineRequest
	body, err := readSigned(w, r, &req)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	now := s.now()
	var wake []string
	err = s.store.Update(r.Context(), func(st *State) error {
		dt := st.Tokens[req.Token]
		if dt == nil || dt.TransactionID == "" {
			return deverr(http.StatusNotFound, deviceapi.StatusRequestInvalid, "unknown dispatch token")
		}
		tx := st.Transactions[dt.TransactionID]
		if tx == nil || effectiveStatus(tx, now) != cloudapi.StatusPending {
			return deverr(http.StatusGone, deviceapi.StatusRequestInvalid, "the operation is no longer pending (expired, declined or done)")
		}
		// An approval is declined by its own device; an enrolment by whoever
		// holds its single-use token (there is no device key yet).
		if tx.Kind == KindApproval {
			a, err := s.deviceAuth(r, st, body, false)
			if err != nil {
				return err
			}
			if a.ID != tx.AuthenticatorID {
				return errf(http.StatusForbidden, "this device was not asked to approve that operation")
			}
		}
		reason := req.Reason
		if reason == "" {
			reason = "user declined"
		}
		dt.Redeemed = true
		tx.Status, tx.Reason, tx.UpdatedAt = cloudapi.StatusFailed, reason, now
		for sd, sess := range st.Sessions {
			if sess.TransactionID == tx.ID {
				delete(st.Sessions, sd)
			}
		}
		wake = append(wake, txWaitKey(tx.ID))
		wake = append(wake, s.dropInbox(st, tx.ID)...)
		return nil
	})
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	s.hub.Signal(wake...)
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
	var wake []string
	err = s.store.Update(r.Context(), func(st *State) error {
		a, err := s.deviceAuth(r, st, body, true)
		if err != nil {
			return err
		}
		if len(dr.Authenticators) != 1 || dr.Authenticators[0].KeyID != a.KeyID || dr.Authenticators[0].AAID != a.AAID {
			return errf(http.StatusForbidden, "a device may only deregister its own key")
		}
		for _, tx := range st.Transactions {
			if tx.AuthenticatorID == a.ID && tx.Status == cloudapi.StatusPending {
				tx.Status, tx.Reason, tx.UpdatedAt = cloudapi.StatusFailed, "authenticator deregistered", now
				wake = append(wake, txWaitKey(tx.ID))
			}
		}
		delete(st.Authenticators, a.ID)
		delete(st.Inbox, a.ID)
		return nil
	})
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	s.hub.Signal(wake...)
	writeJSON(w, http.StatusOK, deviceapi.StatusBody{StatusCode: deviceapi.StatusOK})
}
