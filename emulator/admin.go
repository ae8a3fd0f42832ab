package emulator

// The inspection API (ours): what the emulator holds, its operations, a
// reset, and an expire button for tests. Every call needs the access key
// (or the console's session cookie, see console.go).

import (
	"context"
	"net/http"
	"strings"

	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/trustapi"
)

// State counts what the emulator holds.
func (s *Server) State(ctx context.Context) (adminapi.State, error) {
	s.expireDue(ctx)
	now := s.now()
	var out adminapi.State
	err := s.store.View(ctx, func(st Tx) error {
		c, err := st.Counts()
		if err != nil {
			return err
		}
		out = adminapi.State{Users: c.Users, Authenticators: c.Authenticators, DeletedAuthenticators: c.DeletedAuthenticators,
			PendingOperations: c.PendingTransactions, Transactions: c.Transactions, LoginRequests: c.LoginRequests,
			Pairings: c.Pairings, InboxItems: c.Inbox, RefreshTokens: c.RefreshTokens}
		lrs, err := st.LoginRequests()
		if err != nil {
			return err
		}
		for _, lr := range lrs {
			if lr.Status == trustapi.StatusPending && now.Before(lr.ExpiresAt) {
				out.PendingOperations++
			}
		}
		ps, err := st.Pairings()
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.Status == trustapi.StatusPending && now.Before(p.ExpiresAt) {
				out.PendingOperations++
			}
		}
		hooks, err := webhooks(st)
		out.Webhooks = len(hooks)
		if err != nil {
			return err
		}
		out.LastEventID, err = st.LastEventID()
		return err
	})
	out.LongPolls = s.LongPolls()
	return out, err
}

// LongPolls is how many ?wait= requests this server holds right now
// (status, inbox, event log, login and pairing polls), for a test that
// must act only once a long-poll is waiting.
func (s *Server) LongPolls() int { return int(s.longPolls.Load()) }

func (s *Server) handleState(w http.ResponseWriter, r *http.Request) {
	out, err := s.State(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// operationStatuses are the ?status= values of the operations list.
var operationStatuses = []string{cloudapi.StatusPending, cloudapi.StatusSucceeded, cloudapi.StatusFailed, adminapi.StatusAll}

// Operations lists the enrolments, approvals, login requests and pairings
// whose status (pending, succeeded, failed) is status, or all of them
// (adminapi.StatusAll), oldest first, with their inbox messages. Login
// requests and pairings read succeeded when approved, failed when
// rejected, cancelled or expired (the Reason says which).
func (s *Server) Operations(ctx context.Context, status string, withQR bool) ([]adminapi.Operation, error) {
	s.expireDue(ctx)
	base := s.URL()
	now := s.now()
	out := []adminapi.Operation{}
	err := s.store.View(ctx, func(st Tx) error {
		out = out[:0]
		names := map[string]string{}
		name := func(id string) (string, error) {
			if n, ok := names[id]; ok || id == "" {
				return n, nil
			}
			u, err := st.User(id)
			if err != nil || u == nil {
				return "", err
			}
			names[id] = u.Username
			return u.Username, nil
		}
		add := func(op adminapi.Operation, txID, loginID string) error {
			if status != adminapi.StatusAll && op.Status != status {
				return nil
			}
			var err error
			if op.Username, err = name(op.UserID); err != nil {
				return err
			}
			items, err := st.InboxItems(txID, loginID)
			for _, it := range items {
				op.Inbox = append(op.Inbox, adminapi.InboxItem{ID: it.ID, AuthenticatorID: it.AuthenticatorID, Kind: it.Kind,
					Payload: it.Payload, Message: it.Message, CreatedAt: it.CreatedAt, ExpiresAt: it.ExpiresAt})
			}
			out = append(out, op)
			return err
		}
		txs, err := st.Transactions()
		if err != nil {
			return err
		}
		for _, tx := range txs {
			op := adminapi.Operation{ID: tx.ID, Kind: tx.Kind, Status: effectiveStatus(tx, now), Reason: tx.Reason, UserID: tx.UserID,
				AuthenticatorID: tx.AuthenticatorID, Message: tx.Message, CreatedAt: tx.CreatedAt, UpdatedAt: tx.UpdatedAt, ExpiresAt: tx.ExpiresAt}
			if op.Status != tx.Status {
				op.Reason = cloudapi.ReasonExpired
			}
			if op.Status == cloudapi.StatusPending {
				dts, err := st.TransactionTokens(tx.ID)
				if err != nil {
					return err
				}
				for _, dt := range dts {
					if !dt.Redeemed && (op.AppLink == "" || dt.AuthenticatorID == "") {
						op.AppLink = dispatch.New(base, dispatch.Kind(dt.Kind), dt.Token).AppLink(base)
					}
				}
			}
			if err := add(op, tx.ID, ""); err != nil {
				return err
			}
		}
		lrs, err := st.LoginRequests()
		if err != nil {
			return err
		}
		for _, lr := range lrs {
			status2, reason := trustStatus(lr.Status, now.Before(lr.ExpiresAt))
			op := adminapi.Operation{ID: lr.ID, Kind: adminapi.OperationLogin, Status: status2, Reason: reason, UserID: lr.UserID,
				AuthenticatorID: lr.ApprovedBy, Message: lr.DeviceName, CreatedAt: lr.CreatedAt, UpdatedAt: lr.UpdatedAt, ExpiresAt: lr.ExpiresAt}
			if err := add(op, "", lr.ID); err != nil {
				return err
			}
		}
		ps, err := st.Pairings()
		if err != nil {
			return err
		}
		for _, p := range ps {
			status2, reason := trustStatus(p.Status, now.Before(p.ExpiresAt))
			op := adminapi.Operation{ID: p.ID, Kind: adminapi.OperationPairing, Status: status2, Reason: reason, UserID: p.UserID,
				AuthenticatorID: p.AuthenticatorID, Message: p.DeviceName, CreatedAt: p.CreatedAt, UpdatedAt: p.CreatedAt, ExpiresAt: p.ExpiresAt}
			if err := add(op, "", ""); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || !withQR {
		return out, err
	}
	for i, op := range out {
		if op.AppLink == "" {
			continue
		}
		p, err := dispatch.Decode([]byte(op.AppLink))
		if err != nil {
			return nil, err
		}
		if out[i].QRCode, err = s.qrCode(s.URL(), p, false); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// trustStatus maps a login request's or pairing's status to an
// operation's status and reason.
func trustStatus(status string, live bool) (string, string) {
	switch {
	case status == trustapi.StatusApproved:
		return cloudapi.StatusSucceeded, ""
	case status == trustapi.StatusPending && live:
		return cloudapi.StatusPending, ""
	case status == trustapi.StatusPending:
		return cloudapi.StatusFailed, cloudapi.ReasonExpired
	}
	return cloudapi.StatusFailed, status
}

func (s *Server) handleOperations(w http.ResponseWriter, r *http.Request) {
	status := r.URL.Query().Get("status")
	if status == "" {
		status = cloudapi.StatusPending
	}
	if !contains(operationStatuses, status) {
		s.fail(w, r, errf(http.StatusBadRequest, "status=%q is not one of %s", status, strings.Join(operationStatuses, ", ")))
		return
	}
	s.base(r)
	ops, err := s.Operations(r.Context(), status, r.URL.Query().Get("qr") == "true")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, adminapi.OperationsResponse{Operations: ops})
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// Reset forgets every user, authenticator, operation and token (the
// signing keys, the access key, the webhooks and the event log stay) and
// logs emulator.reset. Every long-poll, on every replica, wakes to find
// its operation unknown.
func (s *Server) Reset(ctx context.Context) error {
	return s.store.Update(ctx, func(st Tx) error {
		if err := st.Reset(); err != nil {
			return err
		}
		st.Wake(wakeAllKey)
		return s.emit(st, adminapi.Event{Type: adminapi.EventReset})
	})
}

func (s *Server) handleReset(w http.ResponseWriter, r *http.Request) {
	if err := s.Reset(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	s.handleState(w, r)
}

// ExpireOperation ends a pending enrolment, approval, login request or
// pairing now, as if its time were up (a tester's button): a transaction
// fails with reason expired and logs <kind>.expired.
func (s *Server) ExpireOperation(ctx context.Context, id string) error {
	now := s.now()
	return s.store.Update(ctx, func(st Tx) error {
		tx, err := st.Transaction(id)
		if err != nil {
			return err
		}
		if tx != nil {
			if effectiveStatus(tx, now) != cloudapi.StatusPending {
				return errf(http.StatusConflict, "operation %s already %s; only a pending one can expire", id, effectiveStatus(tx, now))
			}
			tx.Status, tx.Reason, tx.UpdatedAt, tx.ExpiresAt = cloudapi.StatusFailed, cloudapi.ReasonExpired, now, now
			if err := st.PutTransaction(tx); err != nil {
				return err
			}
			if err := dropInbox(st, tx.ID); err != nil {
				return err
			}
			st.Wake(txWaitKey(tx.ID))
			return s.emitTx(st, tx, adminapi.EventExpired)
		}
		if lr, err := st.LoginRequest(id); err != nil || lr != nil {
			if err != nil {
				return err
			}
			if lr.Status != trustapi.StatusPending || !now.Before(lr.ExpiresAt) {
				return errf(http.StatusConflict, "login request %s is no longer pending", id)
			}
			lr.ExpiresAt, lr.UpdatedAt = now, now
			if err := st.PutLoginRequest(lr); err != nil {
				return err
			}
			st.Wake(loginWaitKey(lr.ID))
			return s.emitLogin(st, lr, adminapi.OperationLogin+"."+adminapi.EventExpired)
		}
		p, err := st.Pairing(id)
		if err != nil {
			return err
		}
		if p == nil {
			return errf(http.StatusNotFound, "no operation %s (it may have been forgotten after the retention)", id)
		}
		if p.Status != trustapi.StatusPending || !now.Before(p.ExpiresAt) {
			return errf(http.StatusConflict, "pairing %s is no longer pending", id)
		}
		p.ExpiresAt = now
		if err := st.PutPairing(p); err != nil {
			return err
		}
		st.Wake(pairingWaitKey(p.ID))
		return s.emit(st, adminapi.Event{Type: adminapi.OperationPairing + "." + adminapi.EventExpired, UserID: p.UserID, OperationID: p.ID})
	})
}

func (s *Server) handleExpire(w http.ResponseWriter, r *http.Request) {
	if err := s.ExpireOperation(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
