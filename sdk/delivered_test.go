package sdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/backend"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
)

// oldCloud makes the emulator answer POST /_app/inboxes as a cloud without
// delivered requests does: the same messages, none with its UAF request.
type oldCloud struct{ next http.RoundTripper }

func (o oldCloud) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := o.next.RoundTrip(r)
	if err != nil || r.URL.Path != deviceapi.PathInboxes || resp.StatusCode != 200 {
		return resp, err
	}
	var ir deviceapi.InboxesResponse
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &ir); err != nil {
		return nil, err
	}
	for i := range ir.Messages {
		ir.Messages[i].UAF = nil
	}
	b, _ = json.Marshal(ir)
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// phoneVia is a phone on e's cloud whose requests go through rt.
func (e *env) phoneVia(profile string, rt http.RoundTripper, opts ...sdk.Option) *sdk.Phone {
	e.t.Helper()
	p, err := sdk.New(profile, keystore.NewMemory(), append([]sdk.Option{sdk.WithStateDir(e.t.TempDir()), sdk.WithCloud(e.emu.URL()),
		sdk.WithHTTPClient(&http.Client{Transport: rt})}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) approveNext(p *sdk.Phone, r sdk.Request, answers flows.Answers) flows.Update {
	e.t.Helper()
	f, err := p.Approve(e.ctx, r)
	if err != nil {
		e.t.Fatal(err)
	}
	return flows.Drive(f, answers.Answer, nil)
}

func (e *env) statusIs(token, want string) {
	e.t.Helper()
	if st, err := e.be.Status(e.ctx, token, 0); err != nil || st.Status != want {
		e.t.Fatalf("status %+v %v, want %s", st, err, want)
	}
}

// TestApprovalWithoutRedeem: on a cloud that delivers the UAF request with
// the inbox message, Next and Approve make no redeem; the transaction text
// and number matching work as with one. Against a cloud that does not (the
// same messages without it), the phone redeems.
func TestApprovalWithoutRedeem(t *testing.T) {
	e := newEnv(t)
	tr := &counting{}
	p := e.phoneVia("new", tr)
	e.manyAccounts(p, 1)
	answers := flows.Answers{Confirm: true, Biometric: true}

	ap, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "user0", Message: "Pay <b>5</b> EUR"})
	if err != nil {
		t.Fatal(err)
	}
	tr.reset()
	r, err := p.Next(e.ctx, sdk.Select{Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var shown string
	f, err := p.Approve(e.ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	last := flows.Drive(f, func(f *flows.Flow, u flows.Update) {
		if u.CurrentInteraction.Type == flows.ConfirmTransaction {
			shown = u.CurrentInteraction.TransactionText
		}
		answers.Answer(f, u)
	}, nil)
	if last.State != flows.Done || last.Type != flows.SignTransaction || shown != "Pay 5 EUR" {
		t.Fatalf("%+v, shown %q", last, shown)
	}
	if n := tr.count(deviceapi.PathRedeem + "authentication"); n != 0 {
		t.Fatalf("%d redeems on a cloud that delivers the request: %v", n, tr.n)
	}
	e.statusIs(ap.StatusToken, cloudapi.StatusSucceeded)

	// Number matching, from the delivered request's choices.
	ap, _, err = e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "user0", NumberMatching: true})
	if err != nil {
		t.Fatal(err)
	}
	tr.reset()
	r, err = p.Next(e.ctx, sdk.Select{Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if last := e.approveNext(p, r, flows.Answers{Confirm: true, Biometric: true, Number: ap.Number}); last.State != flows.Done {
		t.Fatalf("number matching: %+v", last)
	}
	if n := tr.count(deviceapi.PathRedeem + "authentication"); n != 0 {
		t.Fatalf("number matching: %d redeems", n)
	}
	e.statusIs(ap.StatusToken, cloudapi.StatusSucceeded)

	// The same phone against a cloud without the feature.
	old := e.phoneVia("old", oldCloud{tr})
	e.manyAccounts(old, 1) // user0 again: a second authenticator, the newest
	ap, _, err = e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "user0"})
	if err != nil {
		t.Fatal(err)
	}
	tr.reset()
	r, err = old.Next(e.ctx, sdk.Select{Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if last := e.approveNext(old, r, answers); last.State != flows.Done {
		t.Fatalf("old cloud: %+v", last)
	}
	if n := tr.count(deviceapi.PathRedeem + "authentication"); n != 1 {
		t.Fatalf("old cloud: %d redeems, want 1", n)
	}
	e.statusIs(ap.StatusToken, cloudapi.StatusSucceeded)
}

// TestDeliveredRequestLostOrStale: a request read and dropped (the
// answer lost, or the phone gone) is read again and approved; one held past
// its lifetime is redeemed instead; Deny of a delivered request declines it.
// Pending lists without asking for the requests.
func TestDeliveredRequestLostOrStale(t *testing.T) {
	e := newEnv(t, emulator.WithApprovalTTL(time.Minute)) // a UAF request then lives a minute
	tr := &counting{}
	// The phone's clock starts 50 s behind (its signatures are still young
	// enough), then catches up: past 3/4 of a delivered request's minute.
	var mu sync.Mutex
	lag := 50 * time.Second
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(-lag) }
	p := e.phoneVia("lost", tr, sdk.WithClock(clock))
	e.manyAccounts(p, 1)
	answers := flows.Answers{Confirm: true, Biometric: true}

	ap, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "user0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Next(e.ctx, sdk.Select{}); err != nil { // dropped
		t.Fatal(err)
	}
	rs, err := p.Pending(e.ctx, 0)
	if err != nil || len(rs) != 1 {
		t.Fatalf("pending after a dropped read: %+v %v", rs, err)
	}
	r, err := p.Next(e.ctx, sdk.Select{})
	if err != nil {
		t.Fatal(err)
	}
	tr.reset()
	if last := e.approveNext(p, r, answers); last.State != flows.Done {
		t.Fatalf("after a lost answer: %+v", last)
	}
	if n := tr.count(deviceapi.PathRedeem + "authentication"); n != 0 {
		t.Fatalf("%d redeems", n)
	}
	e.statusIs(ap.StatusToken, cloudapi.StatusSucceeded)

	// Held too long: the phone redeems the token instead.
	ap, _, err = e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "user0"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err = p.Next(e.ctx, sdk.Select{}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	lag = 0
	mu.Unlock()
	tr.reset()
	if last := e.approveNext(p, r, answers); last.State != flows.Done {
		t.Fatalf("stale delivered request: %+v", last)
	}
	if n := tr.count(deviceapi.PathRedeem + "authentication"); n != 1 {
		t.Fatalf("stale delivered request: %d redeems, want 1", n)
	}
	e.statusIs(ap.StatusToken, cloudapi.StatusSucceeded)

	// Deny, and a flow's decline, of delivered requests.
	ap, _, err = e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "user0"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err = p.Next(e.ctx, sdk.Select{}); err != nil {
		t.Fatal(err)
	}
	if err := p.Deny(e.ctx, r, ""); err != nil {
		t.Fatal(err)
	}
	e.statusIs(ap.StatusToken, cloudapi.StatusFailed)
	ap, _, err = e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "user0"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err = p.Next(e.ctx, sdk.Select{}); err != nil {
		t.Fatal(err)
	}
	if last := e.approveNext(p, r, flows.Answers{Confirm: false}); last.State != flows.Error {
		t.Fatalf("declined flow: %+v", last)
	}
	e.statusIs(ap.StatusToken, cloudapi.StatusFailed)
	if rs, err := p.Pending(e.ctx, 0); err != nil || len(rs) != 0 {
		t.Fatalf("pending after the declines: %+v %v", rs, err)
	}
}

// TestRedirectedCloud: a cloud behind a redirect (here every path answers
// 307 to the emulator itself) still works: the phone's requests, sent on
// the transport directly, are sent again through the client, which
// follows the redirect, signed again.
func TestRedirectedCloud(t *testing.T) {
	var target atomic.Value
	redirects := atomic.Int64{}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirects.Add(1)
		http.Redirect(w, r, target.Load().(string)+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer front.Close()
	emu, err := emulator.New(emulator.WithBaseURL(front.URL))
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer emu.Close(context.Background())
	target.Store("http://" + emu.Addr())
	e := &env{t: t, emu: emu, be: backend.New("http://"+emu.Addr(), backend.WithAccessKey(emu.AccessKey())), ctx: context.Background()}
	p, err := sdk.New("redirected", keystore.NewMemory(), sdk.WithStateDir(t.TempDir()), sdk.WithCloud(front.URL))
	if err != nil {
		t.Fatal(err)
	}
	e.manyAccounts(p, 1)
	ap, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "user0"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Next(e.ctx, sdk.Select{Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if last := e.approveNext(p, r, flows.Answers{Confirm: true, Biometric: true}); last.State != flows.Done {
		t.Fatalf("%+v", last)
	}
	e.statusIs(ap.StatusToken, cloudapi.StatusSucceeded)
	if redirects.Load() == 0 {
		t.Fatal("nothing went through the redirect")
	}
}
