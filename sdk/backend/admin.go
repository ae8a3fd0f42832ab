package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/authphone/authphone/sdk/cloudapi"
)

// The emulator's admin API (ours; a real cloud has none of it).

// streamWait is how long one streaming request lasts before the client
// reconnects where it stopped; it keeps each request within the client's
// time limit (WithTimeout, plus the wait).
const streamWait = 50 * time.Second

// State counts what the emulator holds.
func (c *Client) State(ctx context.Context) (*adminapi.State, error) {
	var out adminapi.State
	if err := c.do(ctx, http.MethodGet, adminapi.PathState, nil, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// Operations lists the emulator's enrolments, approvals, login requests
// and pairings with the given status (pending, succeeded, failed, or
// adminapi.StatusAll), with their inbox messages.
func (c *Client) Operations(ctx context.Context, status string) ([]adminapi.Operation, error) {
	var out adminapi.OperationsResponse
	if err := c.do(ctx, http.MethodGet, adminapi.PathOperations+"?status="+url.QueryEscape(status), nil, &out, nil); err != nil {
		return nil, err
	}
	return out.Operations, nil
}

// ExpireOperation ends a pending operation now, as if its time were up.
func (c *Client) ExpireOperation(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, adminapi.PathOperations+"/"+url.PathEscape(id)+"/expire", nil, nil, nil)
}

// Reset makes the emulator forget every user, authenticator, operation
// and token; it answers the state after.
func (c *Client) Reset(ctx context.Context) (*adminapi.State, error) {
	var out adminapi.State
	if err := c.do(ctx, http.MethodPost, adminapi.PathReset, nil, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// EventLog reads up to limit (1 to adminapi.MaxEvents) events of the log
// after the ID since.
func (c *Client) EventLog(ctx context.Context, since int64, limit int) (*adminapi.EventsResponse, error) {
	var out adminapi.EventsResponse
	path := fmt.Sprintf("%s?since=%d&limit=%d", adminapi.PathEvents, since, limit)
	if err := c.do(ctx, http.MethodGet, path, nil, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// Events follows the event log from after the ID since, over the SSE
// stream, reconnecting where it stopped, until ctx ends (then the sequence
// just ends) or a request fails (its error is the last pair).
//
//	for e, err := range client.Events(ctx, 0) {
//		if err != nil { return err }
//		fmt.Println(e.ID, e.Type)
//	}
func (c *Client) Events(ctx context.Context, since int64) iter.Seq2[adminapi.Event, error] {
	return func(yield func(adminapi.Event, error) bool) {
		for {
			stopped := false
			path := fmt.Sprintf("%s?since=%d&wait=%s", adminapi.PathEventStream, since, streamWait)
			err := c.stream(ctx, path, func(ev sseEvent) bool {
				var e adminapi.Event
				if err := json.Unmarshal([]byte(ev.Data), &e); err != nil {
					stopped = true
					yield(e, fmt.Errorf("the event stream sent something that is not an event: %w", err))
					return false
				}
				since = e.ID
				if !yield(e, nil) {
					stopped = true
					return false
				}
				return true
			})
			if stopped || ctx.Err() != nil {
				return
			}
			if err != nil {
				yield(adminapi.Event{}, err)
				return
			}
		}
	}
}

// StatusEvents follows one operation's status over its SSE stream: one
// value per change, ending after a final status (or when ctx ends, or with
// the error of a failed request).
func (c *Client) StatusEvents(ctx context.Context, statusToken string) iter.Seq2[cloudapi.StatusResponse, error] {
	return func(yield func(cloudapi.StatusResponse, error) bool) {
		var last cloudapi.StatusResponse
		for {
			stopped, final := false, false
			err := c.stream(ctx, adminapi.StatusEventsPath(statusToken)+"?wait="+streamWait.String(), func(ev sseEvent) bool {
				var s cloudapi.StatusResponse
				if err := json.Unmarshal([]byte(ev.Data), &s); err != nil {
					stopped = true
					yield(s, fmt.Errorf("the status stream sent something that is not a status: %w", err))
					return false
				}
				final = s.Status != cloudapi.StatusPending
				if s.Status == last.Status && s.Reason == last.Reason {
					return true // the first event after a reconnection
				}
				last = s
				if !yield(s, nil) {
					stopped = true
					return false
				}
				return true
			})
			if stopped || final || ctx.Err() != nil {
				return
			}
			if err != nil {
				yield(cloudapi.StatusResponse{}, err)
				return
			}
		}
	}
}

// stream GETs an SSE path and passes its events to fn.
func (c *Client) stream(ctx context.Context, path string, fn func(sseEvent) bool) error {
	resp, err := c.r.R().SetContext(ctx).SetHeader("Accept", "text/event-stream").SetDoNotParseResponse(true).Get(c.base + path)
	if err != nil {
		return c.transportError(ctx, err)
	}
	body := resp.RawBody()
	defer body.Close()
	if resp.StatusCode() != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(body, cloudapi.MaxBody))
		var eb cloudapi.ErrorBody
		if json.Unmarshal(b, &eb) != nil || eb.Message == "" {
			eb = cloudapi.ErrorBody{Error: http.StatusText(resp.StatusCode()), Message: strings.TrimSpace(string(b))}
		}
		return &Error{Status: resp.StatusCode(), Text: eb.Error, Message: eb.Message}
	}
	if ct := resp.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return fmt.Errorf("the cloud at %s answered %s with %q, not an event stream", c.base, path, ct)
	}
	if err := readSSE(body, fn); err != nil && ctx.Err() == nil {
		return c.transportError(ctx, err)
	}
	return nil
}

// Webhooks lists the emulator's webhooks (without their secrets).
func (c *Client) Webhooks(ctx context.Context) ([]adminapi.Webhook, error) {
	var out struct {
		Webhooks []adminapi.Webhook `json:"webhooks"`
	}
	if err := c.do(ctx, http.MethodGet, adminapi.PathWebhooks, nil, &out, nil); err != nil {
		return nil, err
	}
	return out.Webhooks, nil
}

// AddWebhook registers a URL for every event; without a secret the
// emulator makes one. The answer carries the secret.
func (c *Client) AddWebhook(ctx context.Context, url, secret string) (*adminapi.Webhook, error) {
	var out adminapi.Webhook
	if err := c.do(ctx, http.MethodPost, adminapi.PathWebhooks, adminapi.WebhookRequest{URL: url, Secret: secret}, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveWebhook stops deliveries to a webhook.
func (c *Client) RemoveWebhook(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, adminapi.PathWebhooks+"/"+url.PathEscape(id), nil, nil, nil)
}
