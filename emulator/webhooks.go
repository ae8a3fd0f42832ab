package emulator

// Webhooks (ours): every event of the log is posted, one JSON event per
// request, to each registered URL, signed with the webhook's secret
// (adminapi.Sign: HMAC-SHA256 over timestamp "." body, the timestamp in
// its own header, so a receiver refuses replays outside its window). A
// failed delivery (no answer, or not 2xx) is retried after 1 s, 2 s, 4 s,
// 8 s and 16 s on the server's clock (AdvanceClock skips the waits), and
// then given up; each attempt is logged as webhook.delivered or
// webhook.failed, which are not themselves delivered. Events go out in
// log order per webhook. Replicas share the webhooks and, per webhook, a
// cursor in the store: a replica claims a batch of events by moving the
// cursor in a transaction, so each event is delivered by one replica
// (a replica that dies holding a claimed batch drops it: at most once).

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/authphone/authphone/sdk/adminapi"
)

const (
	metaWebhooks     = "webhooks"
	metaHookCursor   = "webhook-cursor/"
	webhooksWaitKey  = "webhooks"
	webhookAttempts  = 6
	webhookFirstWait = time.Second
	webhookTimeout   = 10 * time.Second
	webhookBatch     = 50
)

// WithWebhook registers a webhook at start (repeatable): url gets every
// event, signed with secret. A webhook of the same URL already in the
// store keeps its place in the log; the secret given here replaces its.
func WithWebhook(url, secret string) Option {
	return func(c *config) { c.webhooks = append(c.webhooks, adminapi.WebhookRequest{URL: url, Secret: secret}) }
}

// ErrBadWebhookURL is a webhook URL that is not an absolute http(s) URL.
var ErrBadWebhookURL = fmt.Errorf("a webhook URL must be an absolute http:// or https:// URL")

// CheckWebhookURL validates a webhook URL.
func CheckWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w, such as http://127.0.0.1:9000/hook; not %q", ErrBadWebhookURL, raw)
	}
	return nil
}

// webhookID is a webhook's ID: derived from its URL, so replicas started
// with the same --webhook agree on it.
func webhookID(url string) string {
	h := sha256.Sum256([]byte(url))
	return "wh-" + hex.EncodeToString(h[:6])
}

// NewWebhookSecret makes a random webhook secret.
func NewWebhookSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "whsec_" + hex.EncodeToString(b)
}

// webhooks reads the registered webhooks, secrets included.
func webhooks(st Tx) ([]adminapi.Webhook, error) {
	b, err := st.Meta(metaWebhooks)
	if err != nil || b == nil {
		return nil, err
	}
	var out []adminapi.Webhook
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("the stored webhooks are damaged: %w", err)
	}
	return out, nil
}

func putWebhooks(st Tx, hooks []adminapi.Webhook) error {
	b, err := json.Marshal(hooks)
	if err != nil {
		return err
	}
	st.Wake(webhooksWaitKey)
	return st.PutMeta(metaWebhooks, b)
}

// AddWebhook registers url and returns it with its secret (made when
// secret is empty). Delivery starts with the next event. A URL already
// registered keeps its place in the log, and its secret unless one is
// given.
func (s *Server) AddWebhook(ctx context.Context, url, secret string) (adminapi.Webhook, error) {
	if err := CheckWebhookURL(url); err != nil {
		return adminapi.Webhook{}, errf(http.StatusBadRequest, "%v", err)
	}
	h := adminapi.Webhook{ID: webhookID(url), URL: url, Secret: secret, CreatedAt: s.now()}
	err := s.store.Update(ctx, func(st Tx) error {
		hooks, err := webhooks(st)
		if err != nil {
			return err
		}
		for i, old := range hooks {
			if old.ID == h.ID {
				if secret == "" {
					h = old
					return nil
				}
				hooks[i].Secret = secret
				h = hooks[i]
				return putWebhooks(st, hooks)
			}
		}
		if h.Secret == "" {
			h.Secret = NewWebhookSecret()
		}
		last, err := st.LastEventID()
		if err != nil {
			return err
		}
		if err := st.PutMeta(metaHookCursor+h.ID, []byte(strconv.FormatInt(last, 10))); err != nil {
			return err
		}
		return putWebhooks(st, append(hooks, h))
	})
	return h, err
}

// Webhooks lists the registered webhooks, without their secrets.
func (s *Server) Webhooks(ctx context.Context) ([]adminapi.Webhook, error) {
	var out []adminapi.Webhook
	err := s.store.View(ctx, func(st Tx) error {
		var err error
		out, err = webhooks(st)
		return err
	})
	for i := range out {
		out[i].Secret = ""
	}
	if out == nil {
		out = []adminapi.Webhook{}
	}
	return out, err
}

// RemoveWebhook stops deliveries to a webhook.
func (s *Server) RemoveWebhook(ctx context.Context, id string) error {
	return s.store.Update(ctx, func(st Tx) error {
		hooks, err := webhooks(st)
		if err != nil {
			return err
		}
		for i, h := range hooks {
			if h.ID == id {
				return putWebhooks(st, append(hooks[:i], hooks[i+1:]...))
			}
		}
		return errf(http.StatusNotFound, "no webhook %s; GET %s lists them", id, adminapi.PathWebhooks)
	})
}

func (s *Server) handleWebhooks(w http.ResponseWriter, r *http.Request) {
	hooks, err := s.Webhooks(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": hooks})
}

func (s *Server) handleAddWebhook(w http.ResponseWriter, r *http.Request) {
	var req adminapi.WebhookRequest
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	h, err := s.AddWebhook(r.Context(), req.URL, req.Secret)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, h)
}

func (s *Server) handleRemoveWebhook(w http.ResponseWriter, r *http.Request) {
	if err := s.RemoveWebhook(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// webhookLoop runs one delivery loop per registered webhook, starting
// and stopping them as webhooks come and go, until the server stops.
func (s *Server) webhookLoop() {
	running := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		for _, cancel := range running {
			cancel()
		}
		wg.Wait()
	}()
	for {
		woken := s.hub.Wait(webhooksWaitKey)
		var hooks []adminapi.Webhook
		err := s.store.View(context.Background(), func(st Tx) error {
			var err error
			hooks, err = webhooks(st)
			return err
		})
		if err != nil {
			s.cfg.logger.Warn("webhooks", "err", err)
		}
		want := map[string]bool{}
		for _, h := range hooks {
			key := h.ID + " " + h.Secret // a new secret restarts the loop
			want[key] = true
			if running[key] == nil {
				ctx, cancel := context.WithCancel(context.Background())
				running[key] = cancel
				wg.Add(1)
				go func() { defer wg.Done(); s.deliverLoop(ctx, h) }()
			}
		}
		for key, cancel := range running {
			if !want[key] {
				cancel()
				delete(running, key)
			}
		}
		select {
		case <-woken:
		case <-s.stopping:
			return
		}
	}
}

// deliverLoop claims the events after the webhook's cursor and delivers
// them in order.
func (s *Server) deliverLoop(ctx context.Context, h adminapi.Webhook) {
	client := &http.Client{Timeout: webhookTimeout}
	for ctx.Err() == nil {
		woken := s.hub.Wait(eventsWaitKey)
		batch, err := s.claimEvents(ctx, h.ID)
		if err != nil {
			s.cfg.logger.Warn("webhook claim", "webhook", h.ID, "err", err)
		}
		for _, e := range batch {
			if strings.HasPrefix(e.Type, "webhook.") {
				continue
			}
			s.deliver(ctx, client, h, e)
		}
		if len(batch) > 0 && err == nil {
			continue
		}
		t := time.NewTimer(time.Second) // and after a failed claim
		select {
		case <-woken:
		case <-t.C:
		case <-ctx.Done():
		case <-s.stopping:
			t.Stop()
			return
		}
		t.Stop()
	}
}

// claimEvents moves the webhook's cursor past the next batch of events
// and returns them: this replica delivers them.
func (s *Server) claimEvents(ctx context.Context, id string) ([]adminapi.Event, error) {
	var out []adminapi.Event
	err := s.store.Update(ctx, func(st Tx) error {
		out = nil
		b, err := st.Meta(metaHookCursor + id)
		if err != nil || b == nil {
			return err // removed meanwhile
		}
		cur, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return fmt.Errorf("webhook %s: damaged cursor %q", id, b)
		}
		evs, err := st.Events(cur, webhookBatch)
		if err != nil || len(evs) == 0 {
			return err
		}
		for _, e := range evs {
			out = append(out, *e)
		}
		return st.PutMeta(metaHookCursor+id, []byte(strconv.FormatInt(evs[len(evs)-1].ID, 10)))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// deliver posts one event, retrying with backoff, and logs each attempt.
func (s *Server) deliver(ctx context.Context, client *http.Client, h adminapi.Webhook, e adminapi.Event) {
	body, _ := json.Marshal(e)
	wait := webhookFirstWait
	for attempt := 1; attempt <= webhookAttempts; attempt++ {
		sent := s.now()
		status, err := s.post(ctx, client, h, e.ID, sent, body)
		if ctx.Err() != nil {
			return
		}
		data := map[string]string{"webhook": h.ID, "url": h.URL, "event": strconv.FormatInt(e.ID, 10), "attempt": strconv.Itoa(attempt)}
		if status != 0 {
			data["status"] = strconv.Itoa(status)
		}
		if err == nil {
			s.emitNow(ctx, adminapi.Event{Type: adminapi.EventWebhookDelivered, Data: data})
			return
		}
		ev := adminapi.Event{Type: adminapi.EventWebhookFailed, Reason: err.Error(), Data: data}
		if attempt == webhookAttempts {
			ev.Status = "given up"
			s.emitNow(ctx, ev)
			return
		}
		next := sent.Add(wait)
		data["retryAt"] = next.Format(time.RFC3339)
		s.emitNow(ctx, ev)
		if !s.sleepUntil(ctx, next) {
			return
		}
		wait *= 2
	}
}

// post sends one delivery; a non-2xx answer is an error.
func (s *Server) post(ctx context.Context, client *http.Client, h adminapi.Webhook, id int64, sent time.Time, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "authphone-emulator-webhook/1")
	req.Header.Set(adminapi.HeaderTimestamp, strconv.FormatInt(sent.Unix(), 10))
	req.Header.Set(adminapi.HeaderSignature, adminapi.Sign(h.Secret, sent, body))
	req.Header.Set(adminapi.HeaderEventID, strconv.FormatInt(id, 10))
	req.Header.Set(adminapi.HeaderWebhookID, h.ID)
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("no answer: %v", errorsUnwrapURL(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

func errorsUnwrapURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// sleepUntil waits until the server's clock reads at least t (a moved
// clock, AdvanceClock, wakes it); false if ctx ended or the server stops.
func (s *Server) sleepUntil(ctx context.Context, t time.Time) bool {
	for {
		woken := s.hub.Wait(clockWaitKey)
		left := t.Sub(s.now())
		if left <= 0 {
			return true
		}
		timer := time.NewTimer(left)
		select {
		case <-woken:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-s.stopping:
			timer.Stop()
			return false
		}
		timer.Stop()
	}
}

// clockWaitKey is only ever woken by AdvanceClock (which wakes every key).
const clockWaitKey = "clock"
