package sdk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/authphone/authphone/sdk/uaf"
)

// Request is a push message waiting for this phone.
type Request struct {
	// ID is what the backend knows the request by: the transactionId of an
	// approval, the requestId of a login request; the inbox message's own
	// id (ItemID) only for what has neither (a removal notice).
	ID string `json:"id"`
	// TransactionID is the backend's transactionId (approvals).
	TransactionID string `json:"transactionId,omitempty"`
	// ItemID is the inbox message's id.
	ItemID       string              `json:"itemId"`
	Kind         deviceapi.InboxKind `json:"kind"`
	Message      string              `json:"message,omitempty"`
	Notification string              `json:"notificationMessage,omitempty"`
	CreatedAt    time.Time           `json:"createdAt"`
	ExpiresAt    time.Time           `json:"expiresAt"`
	Account      *Account            `json:"account"`
	// NumberChoices are the numbers a number-matching approval offers.
	NumberChoices []int `json:"numberChoices,omitempty"`
	// Login describes another device's login request (kind login-request).
	Login   *trustapi.LoginRequestInfo `json:"loginRequest,omitempty"`
	payload dispatch.Payload
	// delivered is the UAF request the cloud sent with the message (ours,
	// deviceapi.InboxMessage.UAF), so Approve needs no redeem; deliveredBy
	// is when it stops being good, by the phone's clock.
	delivered   *deviceapi.RedeemResponse
	deliveredBy time.Time
}

// Text is the request's message as plain text.
func (r Request) Text() string {
	if r.Login != nil {
		return fmt.Sprintf("log in as %s on %s from %s? binding code %s", r.Login.Identifier, orUnnamed(r.Login.DeviceName), r.Login.IP, r.Login.BindingCode)
	}
	return cloudapi.PlainText(r.Message)
}

// Pending lists the push messages waiting for this phone's accounts, oldest
// first. With wait > 0 it holds until at least one arrives or wait ends.
// Accounts bound to the phone's device key are read with one request per
// cloud; others one by one.
func (p *Phone) Pending(ctx context.Context, wait time.Duration) ([]Request, error) {
	return p.pending(ctx, wait, false)
}

// pending is Pending; with deliver, a cloud that can sends each approval's
// UAF request with its message (for Next, whose request is about to be
// answered; a listing leaves the cloud nothing to prepare).
func (p *Phone) pending(ctx context.Context, wait time.Duration, deliver bool) ([]Request, error) {
	accts, err := p.Accounts()
	if err != nil {
		return nil, err
	}
	if len(accts) == 0 {
		return nil, fmt.Errorf("%w: this phone (profile %s) has no accounts; scan an enrolment QR first", ErrNoAccount, p.profile)
	}
	polls := p.pollers(ctx, accts, deliver)
	if len(polls) == 1 {
		rs, err := polls[0](ctx, wait)
		if err != nil {
			return nil, err
		}
		sortRequests(rs)
		return rs, nil
	}
	if wait > 0 {
		// Long-poll every inbox; the first to get something stops the rest.
		wctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		got := false
		for _, poll := range polls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rs, err := poll(wctx, wait)
				mu.Lock()
				defer mu.Unlock()
				if err != nil && wctx.Err() == nil && firstErr == nil {
					firstErr = err
				}
				if len(rs) > 0 {
					got = true
					cancel()
				}
			}()
		}
		wg.Wait()
		cancel()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if firstErr != nil && !got {
			return nil, firstErr
		}
	}
	var all []Request
	for _, poll := range polls {
		rs, err := poll(ctx, 0)
		if err != nil {
			return nil, err
		}
		all = append(all, rs...)
	}
	sortRequests(all)
	return all, nil
}

func sortRequests(rs []Request) {
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].CreatedAt.Before(rs[j].CreatedAt) })
}

func (p *Phone) inbox(ctx context.Context, a *Account, wait time.Duration) ([]Request, error) {
	key, err := p.loadKey(ctx, a)
	if err != nil {
		return nil, err
	}
	var q url.Values
	if wait > 0 {
		q = url.Values{"wait": {wait.String()}}
	}
	var msgs []deviceapi.InboxMessage
	if err := p.call(ctx, http.MethodGet, a.Cloud, deviceapi.PathInbox, q, nil, &msgs, &signer{key, a.KeyID}); err != nil {
		var ce *CloudError
		switch {
		case errors.As(err, &ce) && ce.HTTPStatus == http.StatusUnauthorized && errors.Is(err, errStaleSignature):
			return nil, fmt.Errorf("%w; is this machine's clock right?", err)
		case errors.As(err, &ce) && ce.HTTPStatus == http.StatusUnauthorized:
			return nil, fmt.Errorf("the cloud no longer knows the account %s (%s); remove it with `authphone accounts remove %s --force`", a.Name(), ce.Message, a.ID)
		}
		return nil, err
	}
	out := make([]Request, 0, len(msgs))
	for _, m := range msgs {
		r, err := toRequest(m, a, p.now())
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// toRequest reads one inbox message of account a, received at now.
func toRequest(m deviceapi.InboxMessage, a *Account, now time.Time) (Request, error) {
	if m.Kind == deviceapi.InboxLoginRequest && m.LoginRequest != nil {
		return Request{ID: m.LoginRequest.RequestID, ItemID: m.ID, Kind: m.Kind, Notification: m.NotificationMessage, CreatedAt: m.CreatedAt,
			ExpiresAt: m.ExpiresAt, Account: a, Login: m.LoginRequest}, nil
	}
	pl, err := dispatch.Decode([]byte(m.Payload))
	if err != nil {
		return Request{}, fmt.Errorf("the cloud sent a push message that is not a dispatch payload: %w", err)
	}
	id := m.TransactionID
	if id == "" {
		id = m.ID
	}
	r := Request{ID: id, TransactionID: m.TransactionID, ItemID: m.ID, Kind: m.Kind, Message: m.Message, Notification: m.NotificationMessage,
		CreatedAt: m.CreatedAt, ExpiresAt: m.ExpiresAt, Account: a, NumberChoices: m.NumberChoices, payload: pl}
	if u := m.UAF; u != nil && u.StatusCode == deviceapi.StatusOK && u.Op == string(uaf.OpAuth) && u.LifetimeMillis > 0 &&
		pl.Kind() == dispatch.Authentication {
		// A margin for the time the answer took and the flow will take.
		r.delivered, r.deliveredBy = u, now.Add(time.Duration(u.LifetimeMillis)*time.Millisecond*3/4)
	}
	return r, nil
}

// Select says which pending request Next picks.
type Select struct {
	// ID picks one request; empty picks the oldest.
	ID string
	// Match keeps only requests whose message contains it.
	Match string
	// Wait is how long to wait for a matching request to arrive.
	Wait time.Duration
	// Cloud keeps only requests for accounts on this cloud (base URL).
	Cloud string
}

// Keep reports whether r is one the selection picks: its ID, transaction
// id or inbox message id is (or starts with) ID, its text contains Match,
// and its account is on Cloud.
func (s Select) Keep(r Request) bool {
	idOK := s.ID == ""
	for _, id := range []string{r.ID, r.TransactionID, r.ItemID} {
		if id != "" && strings.HasPrefix(id, s.ID) {
			idOK = true
		}
	}
	return idOK && (s.Match == "" || strings.Contains(r.Message, s.Match) || strings.Contains(r.Text(), s.Match)) &&
		(s.Cloud == "" || r.Account == nil || strings.TrimRight(r.Account.Cloud, "/") == strings.TrimRight(s.Cloud, "/"))
}

// Next returns the request sel names, waiting up to sel.Wait for it; it
// fails with ErrNoPending when none comes.
func (p *Phone) Next(ctx context.Context, sel Select) (Request, error) {
	deadline := time.Now().Add(sel.Wait)
	for {
		left := time.Until(deadline)
		// One read: the long-poll answers at once when something waits.
		rs, err := p.pending(ctx, max(left, 0), true)
		if err != nil {
			return Request{}, err
		}
		for _, r := range rs {
			if sel.Keep(r) {
				return r, nil
			}
		}
		if time.Until(deadline) <= 0 {
			var what []string
			if sel.ID != "" {
				what = append(what, "with id "+sel.ID)
			}
			if sel.Match != "" {
				what = append(what, fmt.Sprintf("whose message contains %q", sel.Match))
			}
			if sel.Cloud != "" {
				what = append(what, "on "+sel.Cloud)
			}
			if sel.Wait > 0 {
				what = append(what, "arrived within "+sel.Wait.String())
			}
			if len(what) == 0 {
				return Request{}, ErrNoPending
			}
			return Request{}, fmt.Errorf("%w %s", ErrNoPending, strings.Join(what, ", "))
		}
		if len(rs) > 0 {
			// Something unmatched is waiting: the long-poll returns at once,
			// so pace the re-check.
			select {
			case <-ctx.Done():
				return Request{}, context.Cause(ctx)
			case <-time.After(min(time.Until(deadline), 100*time.Millisecond)):
			}
		}
	}
}

// Approve starts the flow of a pending request: LOGIN or SIGN_TRANSACTION for
// an approval, APPROVE_DEVICE for another device's login request, DEREGISTER
// for a removal notice.
func (p *Phone) Approve(ctx context.Context, r Request) (*flows.Flow, error) {
	if r.Login != nil {
		return p.approveDevice(ctx, r)
	}
	if r.delivered != nil && r.Account != nil {
		d, by := r.delivered, r.deliveredBy
		return p.runner.Start(ctx, flows.Login, r.Account.flowAccount(), func(ctx context.Context, s *flows.Step) error {
			if !p.now().Before(by) {
				d = nil // too old to answer: redeem the token instead
			}
			return p.authenticate(ctx, s, r.payload, r.Account, d)
		})
	}
	return p.start(ctx, r.payload, r.Account, scanOptions{})
}

// Deny declines a pending approval without running a flow.
func (p *Phone) Deny(ctx context.Context, r Request, reason string) error {
	if r.Kind == deviceapi.InboxDeregistration {
		return fmt.Errorf("a removal notice cannot be denied; approve it to forget the account")
	}
	key, err := p.loadKey(ctx, r.Account)
	if err != nil {
		return err
	}
	if r.Login != nil {
		return p.respondLogin(ctx, r.Account, &signer{key, r.Account.KeyID}, r.Login.RequestID, false)
	}
	if reason == "" {
		reason = "user declined"
	}
	return p.call(ctx, http.MethodPost, r.payload.Base(), deviceapi.PathDecline, nil,
		deviceapi.DeclineRequest{Token: r.payload.Token, Reason: reason}, nil, &signer{key, r.Account.KeyID})
}
