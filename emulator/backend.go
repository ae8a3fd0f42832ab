package emulator

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/google/uuid"
)

// activeAuthenticators lists a user's authenticators that are not
// deleted, oldest first.
func activeAuthenticators(st Tx, userID string) ([]*Authenticator, error) {
	as, err := st.UserAuthenticators(userID)
	return slices.DeleteFunc(as, func(a *Authenticator) bool { return a.Deleted }), err
}

// userJSON renders a user as the API shows it.
func (s *Server) userJSON(st Tx, u *User) (cloudapi.User, error) {
	out := cloudapi.User{UserID: u.ID, Username: u.Username, Status: cloudapi.UserNew,
		CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt, LastLoginDateSuccess: u.LastLoginSuccess,
		LastLoginDateFailure: u.LastLoginFailure, Authenticators: []cloudapi.Authenticator{}}
	as, err := activeAuthenticators(st, u.ID)
	if err != nil {
		return out, err
	}
	for _, a := range as {
		out.Authenticators = append(out.Authenticators, cloudapi.Authenticator{
			AuthenticatorID: a.ID, Name: a.Name, Type: a.Type, AuthenticatorType: "app",
			State: "active", EnrolledAt: a.CreatedAt, UpdatedAt: a.CreatedAt, CreatedAt: a.CreatedAt,
			UAF: &cloudapi.AuthenticatorUAF{DeviceRef: deviceRef(a.DeviceID)}})
	}
	if u.Activated {
		out.Status = cloudapi.UserActive
	}
	if u.Username != "" {
		if blocked, after := s.loginLimit.exhausted(u.Username); blocked {
			out.ExceededRateLimits = append(out.ExceededRateLimits, cloudapi.RateLimit{Name: cloudapi.RateLimitLogin,
				Limit: s.cfg.loginRate.n, Period: s.cfg.loginRate.per.String(), RetryAt: s.now().Add(after).Truncate(time.Second)})
		}
	}
	return out, nil
}

// deviceRefSpace is the UUID namespace of deviceRef.
var deviceRefSpace = uuid.MustParse("5d0e3c4e-8f0b-4c52-9a43-6b1f1d3c9a70")

// deviceRef is the reference's uaf.deviceRef, a UUID naming the physical
// device: derived from the phone's device key id, which every account of
// one phone shares ("" while the phone has not registered its push target).
func deviceRef(deviceID string) string {
	if deviceID == "" {
		return ""
	}
	return uuid.NewSHA1(deviceRefSpace, []byte(deviceID)).String()
}

// recordLogin keeps a user's last login times as an approval ends:
// succeeded, or failed because the user declined, the answer was refused or
// nobody answered in time. An approval failed because its user or
// authenticator went away is not a login attempt.
func recordLogin(st Tx, tx *Transaction) error {
	if tx.Kind != KindApproval || tx.UserID == "" || tx.Status == cloudapi.StatusPending {
		return nil
	}
	switch tx.Reason {
	case reasonUserDeleted, reasonAuthenticatorDeleted, reasonAuthenticatorDeregistered:
		return nil
	}
	u, err := st.User(tx.UserID)
	if err != nil || u == nil {
		return err
	}
	if tx.Status == cloudapi.StatusSucceeded {
		u.LastLoginSuccess = tx.UpdatedAt
	} else {
		u.LastLoginFailure = tx.UpdatedAt
	}
	return st.PutUser(u)
}

// Reasons of approvals that end without a login attempt.
const (
	reasonUserDeleted               = "user deleted"
	reasonAuthenticatorDeleted      = "authenticator deleted"
	reasonAuthenticatorDeregistered = "authenticator deregistered"
)

// authorize checks the access key or an intent token for (user, operation,
// channel), consuming the intent. It runs inside Update.
func (s *Server) authorize(r *http.Request, st Tx, operation, channel, userID, username string, now time.Time) error {
	if s.isAccessKey(r) {
		return nil
	}
	tok := bearer(r)
	if tok == "" {
		return errf(http.StatusUnauthorized, "missing access key or intent token: send Authorization: Bearer <token>")
	}
	in, err := st.Intent(tok)
	if err != nil {
		return err
	}
	if in == nil {
		return errf(http.StatusUnauthorized, "unknown access key or intent token")
	}
	switch {
	case in.Used:
		return errf(http.StatusForbidden, "intent token was already used; ask the backend for a new one")
	case !now.Before(in.ExpiresAt):
		return errf(http.StatusForbidden, "intent token expired; ask the backend for a new one")
	case in.Operation != operation:
		return errf(http.StatusForbidden, "intent token is for operation %q, not %q", in.Operation, operation)
	case (userID != "" && in.UserID != userID) || (userID == "" && username != in.Username):
		return errf(http.StatusForbidden, "intent token is for another user")
	case len(in.Channels) > 0 && !slices.Contains(in.Channels, channel):
		return errf(http.StatusForbidden, "intent token is for channel(s) %s, not %q", strings.Join(in.Channels, ", "), channel)
	}
	in.Used = true
	return st.PutIntent(in)
}

// lookupUser finds a user by id or name, inside a transaction.
func lookupUser(st Tx, userID, username string) (*User, error) {
	if userID != "" {
		u, err := st.User(userID)
		if err == nil && u == nil {
			err = errf(http.StatusNotFound, "no user with userId %s", userID)
		}
		return u, err
	}
	if username == "" {
		return nil, errf(http.StatusBadRequest, "give a username or a userId")
	}
	u, err := st.UserByName(username)
	if err == nil && u == nil {
		err = errf(http.StatusNotFound, "no user named %s", username)
	}
	return u, err
}

func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) {
	var req cloudapi.EnrollRequest
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Channel != "" && req.Channel != cloudapi.ChannelApp {
		s.fail(w, r, errf(http.StatusBadRequest, "channel %q is not served by the emulator; use \"app\"", req.Channel))
		return
	}
	if req.UserID == "" {
		if err := cloudapi.ValidateUsername(req.Username); err != nil {
			s.fail(w, r, errf(http.StatusBadRequest, "%s", cloudapi.UsernameRule))
			return
		}
	}
	base, now := s.base(r), s.now()
	tx := &Transaction{ID: uuid.NewString(), Kind: KindEnroll, Status: cloudapi.StatusPending,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(s.cfg.enrollTTL)}
	dt := &DispatchToken{Token: uuid.NewString(), Kind: string(dispatch.Registration), TransactionID: tx.ID, ExpiresAt: tx.ExpiresAt}
	payload := dispatch.New(base, dispatch.Registration, dt.Token)
	var out cloudapi.User
	err := s.store.Update(r.Context(), func(st Tx) error {
		if err := s.authorize(r, st, cloudapi.OperationEnroll, cloudapi.ChannelApp, req.UserID, req.Username, now); err != nil {
			return err
		}
		var u *User
		var err error
		if req.UserID != "" {
			if u, err = lookupUser(st, req.UserID, ""); err != nil {
				return err
			}
		} else if u, err = st.UserByName(req.Username); err != nil {
			return err
		} else if u == nil {
			u = &User{ID: uuid.NewString(), Username: req.Username, CreatedAt: now, UpdatedAt: now}
			if err := st.PutUser(u); err != nil {
				return err
			}
		}
		as, err := activeAuthenticators(st, u.ID)
		if err != nil {
			return err
		}
		if len(as) >= cloudapi.MaxAuthenticators {
			return errf(http.StatusConflict, "user %s already has %d authenticators; delete one first", u.ID, cloudapi.MaxAuthenticators)
		}
		tx.UserID = u.ID
		if err := st.PutTransaction(tx); err != nil {
			return err
		}
		if err := st.PutDispatchToken(dt); err != nil {
			return err
		}
		if err := s.emitTx(st, tx, adminapi.EventCreated); err != nil {
			return err
		}
		out, err = s.userJSON(st, u)
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out.Enrollment = &cloudapi.Enrollment{TransactionID: tx.ID, StatusToken: s.issuer.statusToken(tx.ID),
		AppLinkURI: payload.AppLink(base)}
	if out.Enrollment.QRCode, err = s.qrCode(base, payload, wantsMinimal(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) handleApproval(w http.ResponseWriter, r *http.Request) {
	var req cloudapi.ApprovalRequest
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Channel == "" {
		req.Channel = cloudapi.ChannelPush
	}
	if req.Channel != cloudapi.ChannelPush && req.Channel != cloudapi.ChannelApp {
		s.fail(w, r, errf(http.StatusBadRequest, "channel %q is not served by the emulator; use \"push\" or \"app\"", req.Channel))
		return
	}
	if err := cloudapi.ValidateMessage(req.Message); err != nil {
		s.fail(w, r, errf(http.StatusBadRequest, "%s", err))
		return
	}
	if req.Prompt && req.Message == "" {
		// The public API reference: message is required when prompt is true.
		s.fail(w, r, errf(http.StatusBadRequest, "prompt asks the user to accept or deny a message: give the message too"))
		return
	}
	base, now := s.base(r), s.now()
	tx := &Transaction{ID: uuid.NewString(), Kind: KindApproval, Status: cloudapi.StatusPending, Message: req.Message,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(s.cfg.approvalTTL)}
	if req.NumberMatching {
		tx.Number, tx.Choices = numberChoices()
	}
	dt := &DispatchToken{Token: uuid.NewString(), Kind: string(dispatch.Authentication), TransactionID: tx.ID, ExpiresAt: tx.ExpiresAt}
	payload := dispatch.New(base, dispatch.Authentication, dt.Token)
	var out cloudapi.ApprovalResponse
	var dropped map[string]bool // chaos drop-push, decided once per authenticator (Update may run fn again)
	drop := func(id string) bool {
		d, ok := dropped[id]
		if !ok {
			d = s.dropPush(id)
			if dropped == nil {
				dropped = map[string]bool{}
			}
			dropped[id] = d
		}
		return d
	}
	err := s.store.Update(r.Context(), func(st Tx) error {
		// Credentials first: an unknown user is not told apart to strangers.
		if err := s.authorize(r, st, cloudapi.OperationApprove, req.Channel, req.UserID, req.Username, now); err != nil {
			return err
		}
		u, err := lookupUser(st, req.UserID, req.Username)
		if err != nil {
			return err
		}
		auths, err := trustedAuthenticators(st, u.ID)
		if err != nil {
			return err
		}
		if len(auths) == 0 {
			return errf(http.StatusBadRequest, "user %s has no active authenticator with a second factor; enrol a phone (or upgrade its headless account) first", u.name())
		}
		a := auths[len(auths)-1]
		if req.AuthenticatorID == AnyAuthenticator {
			tx.UserID, tx.AuthenticatorID = u.ID, AnyAuthenticator
			if err := st.PutTransaction(tx); err != nil {
				return err
			}
			if err := st.PutDispatchToken(dt); err != nil { // the app link's: any of them
				return err
			}
			if req.Channel == cloudapi.ChannelPush {
				for _, a := range auths {
					adt := &DispatchToken{Token: uuid.NewString(), Kind: dt.Kind, TransactionID: tx.ID, AuthenticatorID: a.ID, ExpiresAt: tx.ExpiresAt}
					if err := st.PutDispatchToken(adt); err != nil {
						return err
					}
					if drop(a.ID) { // chaos: the push never arrives
						if err := s.emitPushDropped(st, tx, a.ID); err != nil {
							return err
						}
						continue
					}
					err := st.PutInboxItem(&InboxItem{ID: uuid.NewString(), AuthenticatorID: a.ID, Token: adt.Token, TransactionID: tx.ID,
						Kind: adt.Kind, Payload: dispatch.New(base, dispatch.Authentication, adt.Token).Encode(), Notification: req.NotificationMessage,
						Message: req.Message, CreatedAt: now, ExpiresAt: tx.ExpiresAt})
					if err != nil {
						return err
					}
					st.Wake(inboxWaitKey(a.ID))
				}
			}
			out = cloudapi.ApprovalResponse{TransactionID: tx.ID, StatusToken: s.issuer.statusToken(tx.ID),
				UserID: u.ID, Username: u.Username, CreatedAt: now}
			return s.emitTx(st, tx, adminapi.EventCreated)
		}
		if req.AuthenticatorID != "" {
			i := slices.IndexFunc(auths, func(a *Authenticator) bool { return a.ID == req.AuthenticatorID })
			if i < 0 {
				return errf(http.StatusNotFound, "user %s has no active authenticator %s", u.ID, req.AuthenticatorID)
			}
			a = auths[i]
		}
		tx.UserID, tx.AuthenticatorID = u.ID, a.ID
		if err := st.PutTransaction(tx); err != nil {
			return err
		}
		if err := st.PutDispatchToken(dt); err != nil {
			return err
		}
		if req.Channel == cloudapi.ChannelPush && drop(a.ID) {
			if err := s.emitPushDropped(st, tx, a.ID); err != nil {
				return err
			}
		} else if req.Channel == cloudapi.ChannelPush {
			err := st.PutInboxItem(&InboxItem{ID: uuid.NewString(), AuthenticatorID: a.ID, Token: dt.Token, TransactionID: tx.ID,
				Kind: string(dispatch.Authentication), Payload: payload.Encode(), Notification: req.NotificationMessage,
				Message: req.Message, CreatedAt: now, ExpiresAt: tx.ExpiresAt})
			if err != nil {
				return err
			}
			st.Wake(inboxWaitKey(a.ID))
		}
		out = cloudapi.ApprovalResponse{TransactionID: tx.ID, StatusToken: s.issuer.statusToken(tx.ID),
			UserID: u.ID, Username: u.Username, CreatedAt: now}
		return s.emitTx(st, tx, adminapi.EventCreated)
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Channel == cloudapi.ChannelApp {
		if out.QRCode, err = s.qrCode(base, payload, wantsMinimal(r)); err != nil {
			s.fail(w, r, err)
			return
		}
		out.AppLinkURI = payload.AppLink(base)
	}
	out.Number = tx.Number
	writeJSON(w, http.StatusOK, out)
}

// AnyAuthenticator as an approval's authenticatorId lets any of the user's
// authenticators answer; the first answer wins.
const AnyAuthenticator = "*"

func inboxWaitKey(authenticatorID string) string { return "inbox/" + authenticatorID }
func txWaitKey(txID string) string               { return "tx/" + txID }

// effectiveStatus applies expiry to a pending transaction.
func effectiveStatus(tx *Transaction, now time.Time) string {
	if tx.Status == cloudapi.StatusPending && !now.Before(tx.ExpiresAt) {
		return cloudapi.StatusFailed
	}
	return tx.Status
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	var req cloudapi.StatusRequest
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	wait, err := parseWait(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	txID, ok := s.issuer.checkStatusToken(req.StatusToken)
	if !ok {
		s.fail(w, r, errf(http.StatusBadRequest, "statusToken is malformed or forged; use the one enroll or approval returned"))
		return
	}
	var resp cloudapi.StatusResponse
	if !s.longPoll(r.Context(), txWaitKey(txID), wait, func() (bool, time.Time) {
		var exp time.Time
		resp, exp, err = s.statusOf(r.Context(), txID)
		return err != nil || resp.Status != cloudapi.StatusPending, exp
	}) {
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) statusOf(ctx context.Context, txID string) (cloudapi.StatusResponse, time.Time, error) {
	now := s.now()
	var resp cloudapi.StatusResponse
	var exp time.Time
	err := s.store.View(ctx, func(st Tx) error {
		tx, err := st.Transaction(txID)
		if err != nil {
			return err
		}
		if tx == nil {
			resp = cloudapi.StatusResponse{Status: cloudapi.StatusUnknown}
			return nil
		}
		resp = cloudapi.StatusResponse{TransactionID: tx.ID, Status: effectiveStatus(tx, now), UserID: tx.UserID,
			Token: tx.Token, CreatedAt: tx.CreatedAt, LastUpdatedAt: tx.UpdatedAt}
		u, err := st.User(tx.UserID)
		if err != nil {
			return err
		}
		if u != nil {
			resp.Username = u.Username
		}
		if resp.Status == cloudapi.StatusFailed {
			resp.Reason = tx.Reason
		}
		if resp.Status != tx.Status {
			resp.LastUpdatedAt, resp.Reason = tx.ExpiresAt, cloudapi.ReasonExpired
		}
		exp = tx.ExpiresAt
		return nil
	})
	if err == nil && resp.Token != "" {
		resp.Token, err = s.signedToken(resp.Token)
	}
	return resp, exp, err
}

func (s *Server) handleIntent(w http.ResponseWriter, r *http.Request) {
	var req cloudapi.IntentRequest
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Operation != cloudapi.OperationEnroll && req.Operation != cloudapi.OperationApprove {
		s.fail(w, r, errf(http.StatusBadRequest, "operation must be \"enroll\" or \"approve\""))
		return
	}
	for _, ch := range req.Channels {
		if ch != cloudapi.ChannelApp && ch != cloudapi.ChannelPush && ch != cloudapi.ChannelSMS {
			s.fail(w, r, errf(http.StatusBadRequest, "channels may hold only \"app\", \"push\" and \"sms\", not %q", ch))
			return
		}
	}
	now := s.now()
	in := &Intent{Token: randomToken("it_"), Operation: req.Operation, Channels: slices.Compact(slices.Sorted(slices.Values(req.Channels))),
		IssuedAt: now, ExpiresAt: now.Add(s.cfg.intentTTL)}
	err := s.store.Update(r.Context(), func(st Tx) error {
		if req.UserID != "" {
			u, err := lookupUser(st, req.UserID, "")
			if err != nil {
				return err
			}
			in.UserID, in.Username = u.ID, u.Username
		} else {
			if err := cloudapi.ValidateUsername(req.Username); err != nil {
				return errf(http.StatusBadRequest, "%s", cloudapi.UsernameRule)
			}
			in.Username = req.Username
			u, err := st.UserByName(req.Username)
			switch {
			case err != nil:
				return err
			case u != nil:
				in.UserID = u.ID
			case req.Operation == cloudapi.OperationApprove:
				return errf(http.StatusNotFound, "no user named %s", req.Username)
			}
		}
		return st.PutIntent(in)
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, cloudapi.IntentResponse{Token: in.Token})
}

func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, cloudapi.MaxBody)
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, errf(http.StatusBadRequest, "send the token as a form field: token=…"))
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		s.fail(w, r, errf(http.StatusBadRequest, "missing form field token"))
		return
	}
	out, err := s.introspect(r, tok)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) introspect(r *http.Request, tok string) (cloudapi.Introspection, error) {
	now := s.now()
	iss := s.base(r)
	inactive := cloudapi.Introspection{}
	if tok == s.cfg.accessKey {
		out := cloudapi.Introspection{Active: true, Iss: iss, Sub: "backend", Scope: "backend"}
		if c := jwtClaims(tok); c != nil {
			if v, ok := c["iat"].(float64); ok {
				out.Iat = int64(v)
			}
			if v, ok := c["jti"].(string); ok {
				out.Jti = v
			}
		}
		return out, nil
	}
	var out cloudapi.Introspection
	if txID, ok := s.issuer.checkStatusToken(tok); ok {
		err := s.store.View(r.Context(), func(st Tx) error {
			tx, err := st.Transaction(txID)
			if tx != nil && effectiveStatus(tx, now) == cloudapi.StatusPending {
				out = cloudapi.Introspection{Active: true, Iat: tx.CreatedAt.Unix(), Exp: tx.ExpiresAt.Unix(),
					Sub: tx.UserID, Iss: iss, Jti: tx.ID, Scope: "status"}
			}
			return err
		})
		return out, err
	}
	found := false
	err := s.store.View(r.Context(), func(st Tx) error {
		in, err := st.Intent(tok)
		if in != nil {
			found = true
			if !in.Used && now.Before(in.ExpiresAt) {
				out = cloudapi.Introspection{Active: true, Iat: in.IssuedAt.Unix(), Exp: in.ExpiresAt.Unix(),
					Sub: in.UserID, Iss: iss, Scope: "intent:" + in.Operation}
			}
		}
		return err
	})
	if found || err != nil {
		return out, err
	}
	if strings.HasPrefix(tok, "rt_") {
		err := s.store.View(r.Context(), func(st Tx) error {
			rt, err := st.RefreshToken(tok)
			if err != nil || rt == nil || rt.Used || !now.Before(rt.ExpiresAt) {
				return err
			}
			chain, err := st.Chain(rt.ChainID)
			if err != nil || chain == nil || chain.Revoked {
				return err
			}
			out = cloudapi.Introspection{Active: true, Exp: rt.ExpiresAt.Unix(), Sub: rt.UserID, Iss: s.base(r),
				Aud: s.cfg.clientID, Scope: "refresh"}
			return nil
		})
		return out, err
	}
	t, err := s.issuer.parse(tok, now)
	if err != nil {
		return inactive, nil
	}
	jti, _ := t.JwtID()
	revoked := false
	err = s.store.View(r.Context(), func(st Tx) error {
		var err error
		revoked, err = st.IsRevoked(jti)
		return err
	})
	if revoked || err != nil {
		return inactive, err
	}
	out = cloudapi.Introspection{Active: true, Jti: jti}
	if v, ok := t.IssuedAt(); ok {
		out.Iat = v.Unix()
	}
	if v, ok := t.Expiration(); ok {
		out.Exp = v.Unix()
	}
	out.Sub, _ = t.Subject()
	out.Iss, _ = t.Issuer()
	if aud, ok := t.Audience(); ok && len(aud) > 0 {
		out.Aud = aud[0]
	}
	var scope string
	if t.Get("scope", &scope) == nil {
		out.Scope = scope
	}
	return out, nil
}

func (s *Server) handleFindUser(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("username")
	var out any
	err := s.store.View(r.Context(), func(st Tx) error {
		if name == "" {
			list := cloudapi.UserList{Users: []cloudapi.User{}}
			us, err := st.Users()
			if err != nil {
				return err
			}
			for _, u := range us {
				j, err := s.userJSON(st, u)
				if err != nil {
					return err
				}
				list.Users = append(list.Users, j)
			}
			out = list
			return nil
		}
		u, err := lookupUser(st, "", name)
		if err != nil {
			return err
		}
		out, err = s.userJSON(st, u)
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleGetUser(w http.ResponseWriter, r *http.Request) {
	var out cloudapi.User
	err := s.store.View(r.Context(), func(st Tx) error {
		u, err := lookupUser(st, r.PathValue("userId"), "")
		if err != nil {
			return err
		}
		out, err = s.userJSON(st, u)
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handlePatchUser(w http.ResponseWriter, r *http.Request) {
	var req cloudapi.PatchUserRequest
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := cloudapi.ValidateUsername(req.Username); err != nil {
		s.fail(w, r, errf(http.StatusBadRequest, "%s", cloudapi.UsernameRule))
		return
	}
	var out cloudapi.User
	err := s.store.Update(r.Context(), func(st Tx) error {
		u, err := lookupUser(st, r.PathValue("userId"), "")
		if err != nil {
			return err
		}
		other, err := st.UserByName(req.Username)
		if err != nil {
			return err
		}
		if other != nil && other.ID != u.ID {
			return errf(http.StatusConflict, "username %s is taken by user %s", req.Username, other.ID)
		}
		old := u.Username
		u.Username, u.UpdatedAt = req.Username, s.now()
		if err := st.PutUser(u); err != nil {
			return err
		}
		if err := s.emit(st, adminapi.Event{Type: adminapi.EventUserRenamed, UserID: u.ID, Username: u.Username,
			Data: map[string]string{"from": old}}); err != nil {
			return err
		}
		out, err = s.userJSON(st, u)
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleDeleteUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("userId")
	err := s.store.Update(r.Context(), func(st Tx) error {
		u, err := lookupUser(st, id, "")
		if err != nil {
			return err
		}
		// Logged first: the failed operations below still name the user.
		if err := s.emit(st, adminapi.Event{Type: adminapi.EventUserDeleted, UserID: u.ID, Username: u.Username}); err != nil {
			return err
		}
		if err := st.DeleteUser(id); err != nil {
			return err
		}
		as, err := st.UserAuthenticators(id)
		if err != nil {
			return err
		}
		for _, a := range as {
			if err := st.DeleteAuthenticator(a.ID); err != nil {
				return err
			}
			if err := st.ClearInbox(a.ID); err != nil {
				return err
			}
		}
		return s.failPending(st, id, "", reasonUserDeleted, s.now())
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// failPending fails the pending transactions of a user or an authenticator
// and wakes their long-polls.
func (s *Server) failPending(st Tx, userID, authenticatorID, reason string, now time.Time) error {
	txs, err := st.PendingTransactions(userID, authenticatorID)
	if err != nil {
		return err
	}
	for _, tx := range txs {
		tx.Status, tx.Reason, tx.UpdatedAt = cloudapi.StatusFailed, reason, now
		if err := st.PutTransaction(tx); err != nil {
			return err
		}
		st.Wake(txWaitKey(tx.ID))
		if err := s.emitTx(st, tx, tx.Status); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) handleDeleteAuthenticator(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("authenticatorId")
	base := s.base(r)
	err := s.store.Update(r.Context(), func(st Tx) error {
		a, err := st.Authenticator(id)
		if err != nil {
			return err
		}
		if a == nil || a.Deleted {
			return errf(http.StatusNotFound, "no authenticator %s", id)
		}
		return s.removeAuthenticator(st, a, base, "This account was removed by the service")
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// removeAuthenticator marks a deleted, fails its pending transactions and
// leaves a deregistration message in its inbox so its phone learns of it.
func (s *Server) removeAuthenticator(st Tx, a *Authenticator, base, why string) error {
	now := s.now()
	a.Deleted = true
	if err := st.PutAuthenticator(a); err != nil {
		return err
	}
	if err := s.failPending(st, "", a.ID, reasonAuthenticatorDeleted, now); err != nil {
		return err
	}
	u, err := st.User(a.UserID)
	if err != nil {
		return err
	}
	e := adminapi.Event{Type: adminapi.EventAuthenticatorRemoved, UserID: a.UserID, AuthenticatorID: a.ID, Reason: why}
	if u != nil {
		e.Username = u.Username
	}
	if err := s.emit(st, e); err != nil {
		return err
	}
	dt := &DispatchToken{Token: uuid.NewString(), Kind: string(dispatch.Deregistration), AuthenticatorID: a.ID,
		ExpiresAt: now.Add(24 * time.Hour)}
	if err := st.PutDispatchToken(dt); err != nil {
		return err
	}
	if err := st.ClearInbox(a.ID); err != nil {
		return err
	}
	p := dispatch.New(base, dispatch.Deregistration, dt.Token)
	err = st.PutInboxItem(&InboxItem{ID: uuid.NewString(), AuthenticatorID: a.ID, Token: dt.Token, Kind: dt.Kind, Payload: p.Encode(),
		Message: why, CreatedAt: now, ExpiresAt: dt.ExpiresAt})
	st.Wake(inboxWaitKey(a.ID))
	return err
}
