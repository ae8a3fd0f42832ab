package emulator

// The event log (ours). Code that changes the state logs what happened in
// the same transaction, through emit:
//
//	err := s.store.Update(ctx, func(st Tx) error {
//		... the change ...
//		return s.emit(st, adminapi.Event{Type: adminapi.EventUserDeleted, UserID: u.ID, Username: u.Username})
//	})
//
// The event is logged if, and only if, the transaction commits; the store
// then gives it the next ID, so IDs follow the commit order, across
// replicas on one PostgreSQL database too. emit sets Time from the
// server's clock (WithClock). A transaction's status change is logged with
// emitTx. What happens outside a transaction (a refused request, a webhook
// delivery) is logged with emitNow, which runs a transaction of its own.
// Every commit that logs wakes eventsWaitKey (on every replica), which the
// long-poll and the SSE stream of the log wait on. Readers:
// Server.Events, GET /api/v1/admin/events?since=ID, the stream, webhooks.

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/authphone/authphone/sdk/adminapi"
)

// emit logs e in st's transaction (see the comment at the top of the file).
func (s *Server) emit(st Tx, e adminapi.Event) error {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	return st.AddEvent(&e)
}

// emitTx logs a transaction's status: type "<kind>.<what>" (what is
// adminapi.EventCreated, or the status it reached, or EventExpired).
// It also keeps the user's last login times (recordLogin), since every
// status change of an approval passes here.
func (s *Server) emitTx(st Tx, tx *Transaction, what string) error {
	if what != adminapi.EventCreated {
		if err := recordLogin(st, tx); err != nil {
			return err
		}
	}
	e := adminapi.Event{Type: tx.Kind + "." + what, UserID: tx.UserID, OperationID: tx.ID, Status: tx.Status, Reason: tx.Reason}
	if tx.AuthenticatorID != AnyAuthenticator {
		e.AuthenticatorID = tx.AuthenticatorID
	}
	if tx.UserID != "" {
		u, err := st.User(tx.UserID)
		if err != nil {
			return err
		}
		if u != nil {
			e.Username = u.Username
		}
	}
	return s.emit(st, e)
}

// emitNow logs e in a transaction of its own; a failure goes to the log
// only (the event log must not make a request fail).
func (s *Server) emitNow(ctx context.Context, e adminapi.Event) {
	err := s.store.Update(context.WithoutCancel(ctx), func(st Tx) error { return s.emit(st, e) })
	if err != nil {
		s.cfg.logger.Warn("event log", "type", e.Type, "err", err)
	}
}

// Events reads up to limit events after since from the log (limit < 0:
// all), and the newest ID.
func (s *Server) Events(ctx context.Context, since int64, limit int) ([]adminapi.Event, int64, error) {
	var out []adminapi.Event
	var last int64
	err := s.store.View(ctx, func(st Tx) error {
		evs, err := st.Events(since, limit)
		if err != nil {
			return err
		}
		out = make([]adminapi.Event, len(evs))
		for i, e := range evs {
			out[i] = *e
		}
		last, err = st.LastEventID()
		return err
	})
	return out, last, err
}

// parseSince reads ?since=ID (default 0: from the start).
func parseSince(r *http.Request) (int64, error) {
	v := r.URL.Query().Get("since")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errf(http.StatusBadRequest, "since=%q is not an event ID; give a whole number from 0 (the lastId of the previous answer)", v)
	}
	return n, nil
}

// parseLimit reads ?limit=N, 1 to adminapi.MaxEvents (default the most).
func parseLimit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return adminapi.MaxEvents, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > adminapi.MaxEvents {
		return 0, errf(http.StatusBadRequest, "limit=%q is not a number from 1 to %d", v, adminapi.MaxEvents)
	}
	return n, nil
}

// handleEvents answers GET /api/v1/admin/events?since=ID&limit=N&wait=D:
// the events after since, oldest first; with wait, it waits for one.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	since, err := parseSince(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	limit, err := parseLimit(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	wait, err := parseWait(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.expireDue(r.Context())
	var resp adminapi.EventsResponse
	if !s.longPoll(r.Context(), eventsWaitKey, wait, func() (bool, time.Time) {
		resp.Events, resp.LastID, err = s.Events(r.Context(), since, limit)
		return err != nil || len(resp.Events) > 0, time.Time{}
	}) {
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if resp.Events == nil {
		resp.Events = []adminapi.Event{}
	}
	writeJSON(w, http.StatusOK, resp)
}

// expireBatch is how many expiries one pass logs.
const expireBatch = 500

// expireDue marks the pending transactions whose time is up as failed
// (reason expired) and logs "<kind>.expired" for each. Status reads apply
// expiry lazily anyway; this makes it an event. It runs every second on a
// started server and before the admin API answers.
func (s *Server) expireDue(ctx context.Context) {
	now := s.now()
	var due []string
	err := s.store.View(ctx, func(st Tx) error {
		txs, err := st.ExpiredPending(now, expireBatch)
		for _, tx := range txs {
			due = append(due, tx.ID)
		}
		return err
	})
	if err != nil || len(due) == 0 {
		return
	}
	err = s.store.Update(ctx, func(st Tx) error {
		for _, id := range due {
			tx, err := st.Transaction(id)
			if err != nil {
				return err
			}
			if tx == nil || tx.Status != "pending" || now.Before(tx.ExpiresAt) {
				continue
			}
			tx.Status, tx.Reason, tx.UpdatedAt = "failed", "expired", tx.ExpiresAt
			if err := st.PutTransaction(tx); err != nil {
				return err
			}
			st.Wake(txWaitKey(tx.ID))
			if err := s.emitTx(st, tx, adminapi.EventExpired); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.cfg.logger.Warn("expire operations", "err", err)
	}
}

// refusal remembers, on the response writer of a request, why it was
// refused, so logRequests can log request.refused with the reason.
func refusal(w http.ResponseWriter, msg string) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.reason = msg
	}
}

// logRefusal logs a request the API refused with a reason, except the
// admin API's own (a console polling with a stale cookie is no news).
func (s *Server) logRefusal(r *http.Request, status int, reason string) {
	if reason == "" || status < 400 || strings.HasPrefix(r.URL.Path, "/api/v1/admin/") || strings.HasPrefix(r.URL.Path, "/console") {
		return
	}
	s.emitNow(r.Context(), adminapi.Event{Type: adminapi.EventRequestRefused, Reason: reason,
		Data: map[string]string{"method": r.Method, "path": r.URL.Path, "status": strconv.Itoa(status)}})
}
