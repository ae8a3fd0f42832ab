package emulator

import (
	"bytes"
	"context"
	stdpng "image/png"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/qr"
	"github.com/google/uuid"
)

// QRSize is the side of the enrolment and approval QR PNGs, in pixels.
const QRSize = 300

func sortAuthenticators(as []*Authenticator) {
	sort.Slice(as, func(i, j int) bool {
		if !as[i].CreatedAt.Equal(as[j].CreatedAt) {
			return as[i].CreatedAt.Before(as[j].CreatedAt)
		}
		return as[i].ID < as[j].ID
	})
}

// userJSON renders a user as the API shows it.
func (st *State) userJSON(u *User) cloudapi.User {
	out := cloudapi.User{UserID: u.ID, Username: u.Username, Status: cloudapi.UserNew,
		CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt, Authenticators: []cloudapi.Authenticator{}}
	for _, a := range st.userAuthenticators(u.ID) {
		out.Authenticators = append(out.Authenticators, cloudapi.Authenticator{
			AuthenticatorID: a.ID, Name: a.Name, Type: a.Type, AuthenticatorType: "app",
			State: "active", CreatedAt: a.CreatedAt})
	}
	if u.Activated {
		out.Status = cloudapi.UserActive
	}
	return out
}

// authorize checks the access key or an intent token for (user, operation),
// consuming the intent. It runs inside Update.
func (s *Server) authorize(r *http.Request, st *State, operation, userID, username string, now time.Time) error {
	if s.isAccessKey(r) {
		return nil
	}
	tok := bearer(r)
	if tok == "" {
		return errf(http.StatusUnauthorized, "missing access key or intent token: send Authorization: Bearer <token>")
	}
	in, ok := st.Intents[tok]
	if !ok {
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
	}
	in.Used = true
	return nil
}

// lookupUser finds a user by id or name, inside a transaction.
func lookupUser(st *State, userID, username string) (*User, error) {
	if userID != "" {
		if u := st.Users[userID]; u != nil {
			return u, nil
		}
		return nil, errf(http.StatusNotFound, "no user with userId %s", userID)
	}
	if username == "" {
		return nil, errf(http.StatusBadRequest, "give a username or a userId")
	}
	if u := st.userByName(username); u != nil {
		return u, nil
	}
	return nil, errf(http.StatusNotFound, "no user named %s", username)
}

func (s *Server) qrCode(p dispatch.Payload) (*cloudapi.QRCode, error) {
	png, err := qr.PNG(p.Encode(), QRSize)
	if err != nil {
		return nil, err
	}
	size := QRSize
	if cfg, err := stdpng.DecodeConfig(bytes.NewReader(png)); err == nil {
		size = cfg.Width // whole pixels per module: a little under QRSize
	}
	return &cloudapi.QRCode{Type: "image/png", Size: size, DataURI: dispatch.DataURI(png)}, nil
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
	qrc, err := s.qrCode(payload)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var out cloudapi.User
	err = s.store.Update(r.Context(), func(st *State) error {
		s.maybePurge(st, now)
		if err := s.authorize(r, st, cloudapi.OperationEnroll, req.UserID, req.Username, now); err != nil {
			return err
		}
		u := (*User)(nil)
		if req.UserID != "" {
			if u = st.Users[req.UserID]; u == nil {
				return errf(http.StatusNotFound, "no user with userId %s", req.UserID)
			}
		} else if u = st.userByName(req.Username); u == nil {
			u = &User{ID: uuid.NewString(), Username: req.Username, CreatedAt: now, UpdatedAt: now}
			st.Users[u.ID] = u
		}
		if len(st.userAuthenticators(u.ID)) >= cloudapi.MaxAuthenticators {
			return errf(http.StatusConflict, "user %s already has %d authenticators; delete one first", u.ID, cloudapi.MaxAuthenticators)
		}
		tx.UserID = u.ID
		st.Transactions[tx.ID] = tx
		st.Tokens[dt.Token] = dt
		out = st.userJSON(u)
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out.Enrollment = &cloudapi.Enrollment{TransactionID: tx.ID, StatusToken: s.issuer.statusToken(tx.ID),
		QRCode: qrc, AppLinkURI: payload.AppLink(base)}
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
	base, now := s.base(r), s.now()
	tx := &Transaction{ID: uuid.NewString(), Kind: KindApproval, Status: cloudapi.StatusPending, Message: req.Message,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(s.cfg.approvalTTL)}
	dt := &DispatchToken{Token: uuid.NewString(), Kind: string(dispatch.Authentication), TransactionID: tx.ID, ExpiresAt: tx.ExpiresAt}
	payload := dispatch.New(base, dispatch.Authentication, dt.Token)
	var out cloudapi.ApprovalResponse
	var inboxKey string
	err := s.store.Update(r.Context(), func(st *State) error {
		s.maybePurge(st, now)
		u, err := lookupUser(st, req.UserID, req.Username)
		if err != nil {
			return err
		}
		if err := s.authorize(r, st, cloudapi.OperationApprove, req.UserID, req.Username, now); err != nil {
			return err
		}
		auths := slices.DeleteFunc(st.userAuthenticators(u.ID), func(a *Authenticator) bool { return a.AAID == deviceapi.AAIDHeadless })
		if len(auths) == 0 {
			return errf(http.StatusBadRequest, "user %s has no active authenticator with a second factor; enrol a phone (or upgrade its headless account) first", u.name())
		}
		a := auths[len(auths)-1]
		if req.AuthenticatorID != "" {
			i := slices.IndexFunc(auths, func(a *Authenticator) bool { return a.ID == req.AuthenticatorID })
			if i < 0 {
				return errf(http.StatusNotFound, "user %s has no active authenticator %s", u.ID, req.AuthenticatorID)
			}
			a = auths[i]
		}
		tx.UserID, tx.AuthenticatorID = u.ID, a.ID
		st.Transactions[tx.ID] = tx
		st.Tokens[dt.Token] = dt
		if req.Channel == cloudapi.ChannelPush {
			st.Inbox[a.ID] = append(st.Inbox[a.ID], &InboxItem{ID: uuid.NewString(), Token: dt.Token, TransactionID: tx.ID,
				Kind: string(dispatch.Authentication), Payload: payload.Encode(), Notification: req.NotificationMessage,
				Message: req.Message, CreatedAt: now, ExpiresAt: tx.ExpiresAt})
			inboxKey = inboxWaitKey(a.ID)
		}
		out = cloudapi.ApprovalResponse{TransactionID: tx.ID, StatusToken: s.issuer.statusToken(tx.ID),
			UserID: u.ID, Username: u.Username, CreatedAt: now}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if inboxKey != "" {
		s.hub.Signal(inboxKey)
	}
	if req.Channel == cloudapi.ChannelApp {
		if out.QRCode, err = s.qrCode(payload); err != nil {
			s.fail(w, r, err)
			return
		}
		out.AppLinkURI = payload.AppLink(base)
	}
	writeJSON(w, http.StatusOK, out)
}

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
	if s.longPoll(r.Context(), txWaitKey(txID), wait, func() (bool, time.Time) {
		var exp time.Time
		resp, exp = s.statusOf(r.Context(), txID)
		return resp.Status != cloudapi.StatusPending, exp
	}) {
		writeJSON(w, http.StatusOK, resp)
	}
}

func (s *Server) statusOf(ctx context.Context, txID string) (cloudapi.StatusResponse, time.Time) {
	now := s.now()
	var resp cloudapi.StatusResponse
	var exp time.Time
	_ = s.store.View(ctx, func(st *State) error {
		tx := st.Transactions[txID]
		if tx == nil {
			resp = cloudapi.StatusResponse{Status: cloudapi.StatusUnknown}
			return nil
		}
		resp = cloudapi.StatusResponse{TransactionID: tx.ID, Status: effectiveStatus(tx, now), UserID: tx.UserID,
			Token: tx.Token, CreatedAt: tx.CreatedAt, LastUpdatedAt: tx.UpdatedAt}
		if u := st.Users[tx.UserID]; u != nil {
			resp.Username = u.Username
		}
		if resp.Status != tx.Status {
			resp.LastUpdatedAt = tx.ExpiresAt
		}
		exp = tx.ExpiresAt
		return nil
	})
	return resp, exp
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
	now := s.now()
	in := &Intent{Token: randomToken("it_"), Operation: req.Operation, IssuedAt: now, ExpiresAt: now.Add(s.cfg.intentTTL)}
	err := s.store.Update(r.Context(), func(st *State) error {
		if req.UserID != "" {
			u := st.Users[req.UserID]
			if u == nil {
				return errf(http.StatusNotFound, "no user with userId %s", req.UserID)
			}
			in.UserID, in.Username = u.ID, u.Username
		} else {
			if err := cloudapi.ValidateUsername(req.Username); err != nil {
				return errf(http.StatusBadRequest, "%s", cloudapi.UsernameRule)
			}
			in.Username = req.Username
			if u := st.userByName(req.Username); u != nil {
				in.UserID = u.ID
			} else if req.Operation == cloudapi.OperationApprove {
				return errf(http.StatusNotFound, "no user named %s", req.Username)
			}
		}
		st.Intents[in.Token] = in
		return nil
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
	writeJSON(w, http.StatusOK, s.introspect(r, tok))
}

func (s *Server) introspect(r *http.Request, tok string) cloudapi.Introspection {
	now := s.now()
	iss := s.base(r) + "/"
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
		return out
	}
	var out cloudapi.Introspection
	if txID, ok := s.issuer.checkStatusToken(tok); ok {
		_ = s.store.View(r.Context(), func(st *State) error {
			if tx := st.Transactions[txID]; tx != nil && effectiveStatus(tx, now) == cloudapi.StatusPending {
				out = cloudapi.Introspection{Active: true, Iat: tx.CreatedAt.Unix(), Exp: tx.ExpiresAt.Unix(),
					Sub: tx.UserID, Iss: iss, Jti: tx.ID, Scope: "status"}
			}
			return nil
		})
		return out
	}
	found := false
	_ = s.store.View(r.Context(), func(st *State) error {
		if in := st.Intents[tok]; in != nil {
			found = true
			if !in.Used && now.Before(in.ExpiresAt) {
				out = cloudapi.Introspection{Active: true, Iat: in.IssuedAt.Unix(), Exp: in.ExpiresAt.Unix(),
					Sub: in.UserID, Iss: iss, Scope: "intent:" + in.Operation}
			}
		}
		return nil
	})
	if found {
		return out
	}
	if strings.HasPrefix(tok, "rt_") {
		_ = s.store.View(r.Context(), func(st *State) error {
			rt := st.RefreshTokens[tok]
			if rt == nil || rt.Used || !now.Before(rt.ExpiresAt) || st.Chains[rt.ChainID] == nil || st.Chains[rt.ChainID].Revoked {
				return nil
			}
			out = cloudapi.Introspection{Active: true, Exp: rt.ExpiresAt.Unix(), Sub: rt.UserID, Iss: s.base(r),
				Aud: s.cfg.clientID, Scope: "refresh"}
			return nil
		})
		return out
	}
	t, err := s.issuer.parse(tok, now)
	if err != nil {
		return inactive
	}
	jti, _ := t.JwtID()
	revoked := false
	_ = s.store.View(r.Context(), func(st *State) error {
		_, revoked = st.Revoked[jti]
		return nil
	})
	if revoked {
		return inactive
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
	return out
}

func (s *Server) handleFindUser(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("username")
	var out any
	err := s.store.View(r.Context(), func(st *State) error {
		if name == "" {
			list := cloudapi.UserList{Users: []cloudapi.User{}}
			for _, u := range st.Users {
				list.Users = append(list.Users, st.userJSON(u))
			}
			sort.Slice(list.Users, func(i, j int) bool { return list.Users[i].CreatedAt.Before(list.Users[j].CreatedAt) })
			out = list
			return nil
		}
		u := st.userByName(name)
		if u == nil {
			return errf(http.StatusNotFound, "no user named %s", name)
		}
		out = st.userJSON(u)
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleGetUser(w http.ResponseWriter, r *http.Request) {
	var out cloudapi.User
	err := s.store.View(r.Context(), func(st *State) error {
		u := st.Users[r.PathValue("userId")]
		if u == nil {
			return errf(http.StatusNotFound, "no user with userId %s", r.PathValue("userId"))
		}
		out = st.userJSON(u)
		return nil
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
	err := s.store.Update(r.Context(), func(st *State) error {
		u := st.Users[r.PathValue("userId")]
		if u == nil {
			return errf(http.StatusNotFound, "no user with userId %s", r.PathValue("userId"))
		}
		if other := st.userByName(req.Username); other != nil && other != u {
			return errf(http.StatusConflict, "username %s is taken by user %s", req.Username, other.ID)
		}
		u.Username, u.UpdatedAt = req.Username, s.now()
		out = st.userJSON(u)
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleDeleteUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("userId")
	var wake []string
	err := s.store.Update(r.Context(), func(st *State) error {
		if st.Users[id] == nil {
			return errf(http.StatusNotFound, "no user with userId %s", id)
		}
		delete(st.Users, id)
		for aid, a := range st.Authenticators {
			if a.UserID == id {
				delete(st.Authenticators, aid)
				delete(st.Inbox, aid)
			}
		}
		now := s.now()
		for _, tx := range st.Transactions {
			if tx.UserID == id && tx.Status == cloudapi.StatusPending {
				tx.Status, tx.Reason, tx.UpdatedAt = cloudapi.StatusFailed, "user deleted", now
				wake = append(wake, txWaitKey(tx.ID))
			}
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.hub.Signal(wake...)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleDeleteAuthenticator(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("authenticatorId")
	base := s.base(r)
	var wake []string
	err := s.store.Update(r.Context(), func(st *State) error {
		a := st.Authenticators[id]
		if a == nil || a.Deleted {
			return errf(http.StatusNotFound, "no authenticator %s", id)
		}
		wake = s.removeAuthenticator(st, a, base, "This account was removed by the service")
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.hub.Signal(wake...)
	w.WriteHeader(http.StatusNoContent)
}

// removeAuthenticator marks a deleted, fails its pending transactions and
// leaves a deregistration message in its inbox so its phone learns of it.
// It returns the wait keys to wake.
func (s *Server) removeAuthenticator(st *State, a *Authenticator, base, why string) []string {
	now := s.now()
	var wake []string
	a.Deleted = true
	for _, tx := range st.Transactions {
		if tx.AuthenticatorID == a.ID && tx.Status == cloudapi.StatusPending {
			tx.Status, tx.Reason, tx.UpdatedAt = cloudapi.StatusFailed, "authenticator deleted", now
			wake = append(wake, txWaitKey(tx.ID))
		}
	}
	dt := &DispatchToken{Token: uuid.NewString(), Kind: string(dispatch.Deregistration), AuthenticatorID: a.ID,
		ExpiresAt: now.Add(24 * time.Hour)}
	st.Tokens[dt.Token] = dt
	p := dispatch.New(base, dispatch.Deregistration, dt.Token)
	st.Inbox[a.ID] = []*InboxItem{{ID: uuid.NewString(), Token: dt.Token, Kind: dt.Kind, Payload: p.Encode(),
		Message: why, CreatedAt: now, ExpiresAt: dt.ExpiresAt}}
	return append(wake, inboxWaitKey(a.ID))
}
