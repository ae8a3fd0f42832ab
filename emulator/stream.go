package emulator

// Server-Sent Events (ours): GET /api/v1/status/{token}/events streams an
// operation's status, one event per change, and ends once it is final;
// GET /api/v1/admin/events/stream streams the event log, each event with
// its ID as the SSE id, so a client reconnecting with Last-Event-ID (or
// ?since=) goes on where it stopped. Both accept ?wait=D to end the stream
// after D (clients whose HTTP stack limits a request's life reconnect);
// without it a stream lasts until the client leaves or the server stops.
// A comment line every 15 s keeps idle connections open.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/authphone/authphone/sdk/cloudapi"
)

// sseHeartbeat is how often an idle stream sends a comment.
const sseHeartbeat = 15 * time.Second

type sseWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func startSSE(w http.ResponseWriter) (*sseWriter, bool) {
	f, ok := w.(http.Flusher)
	if !ok {
		return nil, false
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	f.Flush()
	return &sseWriter{w: w, f: f}, true
}

// send writes one event; data is one line of JSON.
func (s *sseWriter) send(id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(s.w, "id: %s\ndata: %s\n\n", id, b); err != nil {
		return err
	}
	s.f.Flush()
	return nil
}

func (s *sseWriter) comment(text string) error {
	if _, err := fmt.Fprintf(s.w, ": %s\n\n", text); err != nil {
		return err
	}
	s.f.Flush()
	return nil
}

// streamUntil is when a stream with ?wait= ends (zero: never).
func streamUntil(r *http.Request) (time.Time, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return time.Time{}, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return time.Time{}, errf(http.StatusBadRequest, "wait=%q is not a positive duration such as 30s", v)
	}
	return time.Now().Add(d), nil
}

// sleep waits for woken, the heartbeat (or expiry, when sooner), the
// deadline, the client or the server. It reports whether to go on, and
// whether it timed out (then the stream sends a heartbeat).
func (s *Server) sleep(ctx context.Context, woken <-chan struct{}, until time.Time, expiry time.Duration) (goOn, idle bool) {
	d := sseHeartbeat
	if expiry > 0 {
		d = min(d, expiry)
	}
	if !until.IsZero() {
		left := time.Until(until)
		if left <= 0 {
			return false, false
		}
		d = min(d, left)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-woken:
		return true, false
	case <-t.C:
		return until.IsZero() || time.Now().Before(until), true
	case <-ctx.Done():
		return false, false
	case <-s.stopping:
		return false, false
	}
}

// handleEventStream streams the event log after ?since= or Last-Event-ID.
func (s *Server) handleEventStream(w http.ResponseWriter, r *http.Request) {
	since, err := parseSince(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			s.fail(w, r, errf(http.StatusBadRequest, "Last-Event-ID %q is not an event ID", last))
			return
		}
		since = max(since, n)
	}
	until, err := streamUntil(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sse, ok := startSSE(w)
	if !ok {
		s.fail(w, r, errf(http.StatusInternalServerError, "this connection cannot stream"))
		return
	}
	ctx := r.Context()
	for {
		woken := s.hub.Wait(eventsWaitKey)
		evs, _, err := s.Events(ctx, since, adminapi.MaxEvents)
		if err != nil {
			s.cfg.logger.Warn("event stream", "err", err)
			return
		}
		for _, e := range evs {
			if err := sse.send(strconv.FormatInt(e.ID, 10), e); err != nil {
				return
			}
			since = e.ID
		}
		if len(evs) == adminapi.MaxEvents {
			continue
		}
		goOn, idle := s.sleep(ctx, woken, until, 0)
		if !goOn {
			return
		}
		if idle && sse.comment("idle") != nil {
			return
		}
	}
}

// handleStatusStream streams an operation's status until it is final.
func (s *Server) handleStatusStream(w http.ResponseWriter, r *http.Request) {
	txID, ok := s.issuer.checkStatusToken(r.PathValue("token"))
	if !ok {
		s.fail(w, r, errf(http.StatusBadRequest, "the status token is malformed or forged; use the one enroll or approval returned"))
		return
	}
	until, err := streamUntil(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	resp, exp, err := s.statusOf(ctx, txID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sse, ok := startSSE(w)
	if !ok {
		s.fail(w, r, errf(http.StatusInternalServerError, "this connection cannot stream"))
		return
	}
	n := 0
	var sent cloudapi.StatusResponse
	for {
		woken := s.hub.Wait(txWaitKey(txID))
		if n > 0 {
			if resp, exp, err = s.statusOf(ctx, txID); err != nil {
				s.cfg.logger.Warn("status stream", "err", err)
				return
			}
		}
		if n == 0 || resp.Status != sent.Status || resp.Reason != sent.Reason {
			n++
			if sse.send(strconv.Itoa(n), resp) != nil {
				return
			}
			sent = resp
		}
		if resp.Status != cloudapi.StatusPending {
			return
		}
		var untilExpiry time.Duration
		if !exp.IsZero() {
			untilExpiry = max(exp.Sub(s.now()), time.Millisecond)
		}
		goOn, idle := s.sleep(ctx, woken, until, untilExpiry)
		if !goOn {
			return
		}
		if idle && sse.comment("pending") != nil {
			return
		}
	}
}
