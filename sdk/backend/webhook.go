package backend

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/authphone/authphone/sdk/adminapi"
)

// ErrWebhookSignature is a delivery whose signature is missing or does not
// match its body and timestamp under the secret.
var ErrWebhookSignature = errors.New("the webhook signature does not match")

// ErrWebhookStale is a delivery whose timestamp is outside the replay
// window: an old delivery sent again, or a clock far off.
var ErrWebhookStale = errors.New("the webhook timestamp is outside the replay window")

// WebhookVerifier checks the deliveries of the emulator's webhooks on the
// receiving side: the HMAC-SHA256 signature (adminapi.Sign) and that the
// signed timestamp is within the replay window of the receiver's clock.
type WebhookVerifier struct {
	secret string
	window time.Duration
	now    func() time.Time
}

// WebhookOption configures a WebhookVerifier.
type WebhookOption func(*WebhookVerifier)

// WithReplayWindow sets how far a delivery's timestamp may be from now
// (default adminapi.DefaultReplayWindow).
func WithReplayWindow(d time.Duration) WebhookOption {
	return func(v *WebhookVerifier) { v.window = d }
}

// WithWebhookClock replaces time.Now, for tests.
func WithWebhookClock(now func() time.Time) WebhookOption {
	return func(v *WebhookVerifier) { v.now = now }
}

// NewWebhookVerifier returns a verifier for deliveries signed with secret.
func NewWebhookVerifier(secret string, opts ...WebhookOption) *WebhookVerifier {
	v := &WebhookVerifier{secret: secret, window: adminapi.DefaultReplayWindow, now: time.Now}
	for _, o := range opts {
		o(v)
	}
	return v
}

// Verify checks one delivery's headers and exact body and returns its
// event. The signature header may list several "v1=" values separated by
// commas; one must match.
func (v *WebhookVerifier) Verify(h http.Header, body []byte) (adminapi.Event, error) {
	var e adminapi.Event
	tsText := h.Get(adminapi.HeaderTimestamp)
	secs, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil || tsText == "" || tsText[0] == '+' || tsText[0] == '-' {
		return e, fmt.Errorf("%w: %s %q is not Unix seconds", ErrWebhookSignature, adminapi.HeaderTimestamp, tsText)
	}
	ts := time.Unix(secs, 0)
	want := []byte(adminapi.Sign(v.secret, ts, body))
	ok := false
	for _, sig := range strings.Split(h.Get(adminapi.HeaderSignature), ",") {
		if hmac.Equal([]byte(strings.TrimSpace(sig)), want) {
			ok = true
		}
	}
	if !ok {
		return e, ErrWebhookSignature
	}
	if d := v.now().Sub(ts); d > v.window || d < -v.window {
		return e, fmt.Errorf("%w (%s off, window %s)", ErrWebhookStale, d.Round(time.Second), v.window)
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return e, fmt.Errorf("the webhook body is not an event: %w", err)
	}
	return e, nil
}

// Handler serves deliveries: it answers 401 to one that fails Verify, 500
// when fn fails (the emulator then retries), 204 after fn succeeds.
func (v *WebhookVerifier) Handler(fn func(context.Context, adminapi.Event) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "cannot read the delivery: "+err.Error(), http.StatusBadRequest)
			return
		}
		e, err := v.Verify(r.Header, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if err := fn(r.Context(), e); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
