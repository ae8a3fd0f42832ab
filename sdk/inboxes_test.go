package sdk_test

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
)

// counting counts the requests a phone sends, by path, and can refuse a
// path the way a cloud without it would.
type counting struct {
	mu     sync.Mutex
	n      map[string]int
	refuse string
	signed atomic.Int64
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[r.URL.Path]++
	c.mu.Unlock()
	if r.Header.Get("Device-Signature") != "" {
		c.signed.Add(1)
	}
	if r.URL.Path == c.refuse {
		return &http.Response{StatusCode: 404, Status: "404 Not Found", Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (c *counting) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = map[string]int{}
	c.signed.Store(0)
}

func (c *counting) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

// manyAccounts enrols n biometric accounts on one phone.
func (e *env) manyAccounts(p *sdk.Phone, n int) []string {
	e.t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = "user" + strconv.Itoa(i)
		u, _, err := e.be.Enroll(e.ctx, cloudapi.EnrollRequest{Username: names[i]})
		if err != nil {
			e.t.Fatal(err)
		}
		f, err := p.Scan(e.ctx, []byte(u.Enrollment.AppLinkURI), sdk.WithBiometric())
		if err != nil {
			e.t.Fatal(err)
		}
		if last := flows.Drive(f, flows.Answers{Biometric: true}.Answer, nil); last.State != flows.Done {
			e.t.Fatal(last.Err)
		}
	}
	return names
}

func TestNextIsOneSignedRequestForAllAccounts(t *testing.T) {
	e := newEnv(t)
	tr := &counting{}
	p, err := sdk.New("many", keystore.NewMemory(), sdk.WithStateDir(t.TempDir()), sdk.WithCloud(e.emu.URL()),
		sdk.WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		t.Fatal(err)
	}
	names := e.manyAccounts(p, 5)
	for i, name := range names {
		if _, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: name, Message: "for " + name}); err != nil {
			t.Fatal(err)
		}
		tr.reset()
		r, err := p.Next(e.ctx, sdk.Select{Match: "for " + name, Wait: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if r.Account.Username != name {
			t.Fatalf("got %s's request for %s", r.Account.Username, name)
		}
		if tr.count(deviceapi.PathInboxes) != 1 || tr.count(deviceapi.PathInbox) != 0 || tr.signed.Load() != 1 {
			t.Fatalf("request %d: %v, %d signed; want one POST %s", i, tr.n, tr.signed.Load(), deviceapi.PathInboxes)
		}
		f, err := p.Approve(e.ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if last := flows.Drive(f, flows.Answers{Confirm: true, Biometric: true}.Answer, nil); last.State != flows.Done {
			t.Fatal(last.Err)
		}
	}
	// A long-poll for all five wakes when any of them gets a request.
	got := make(chan sdk.Request, 1)
	go func() {
		r, err := p.Next(e.ctx, sdk.Select{Wait: 60 * time.Second})
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	if _, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: names[3], Message: "late"}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.Account.Username != names[3] || r.Message != "late" {
			t.Fatalf("%+v", r)
		}
	case <-time.After(50 * time.Second):
		t.Fatal("the long-poll was not woken")
	}
}

func TestInboxesFallBackOnACloudWithoutThem(t *testing.T) {
	e := newEnv(t)
	tr := &counting{}
	p, err := sdk.New("old", keystore.NewMemory(), sdk.WithStateDir(t.TempDir()), sdk.WithCloud(e.emu.URL()),
		sdk.WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		t.Fatal(err)
	}
	names := e.manyAccounts(p, 2)
	tr.refuse = deviceapi.PathInboxes
	if _, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: names[1], Message: "old cloud"}); err != nil {
		t.Fatal(err)
	}
	r, err := p.Next(e.ctx, sdk.Select{Wait: 10 * time.Second})
	if err != nil || r.Message != "old cloud" {
		t.Fatalf("%+v %v", r, err)
	}
	if tr.count(deviceapi.PathInbox) < 2 {
		t.Fatalf("each inbox not read on its own: %v", tr.n)
	}
	// From then on the phone does not try the batch again.
	tr.reset()
	if _, err := p.Pending(e.ctx, 0); err != nil {
		t.Fatal(err)
	}
	if tr.count(deviceapi.PathInboxes) != 0 || tr.count(deviceapi.PathInbox) != 2 {
		t.Fatalf("%v", tr.n)
	}
}

func TestRemovedAccountIsReadOnItsOwn(t *testing.T) {
	e := newEnv(t)
	p := e.phone("removed")
	names := e.manyAccounts(p, 2)
	a, err := p.Account(names[0])
	if err != nil {
		t.Fatal(err)
	}
	// The backend deletes the user: the cloud forgets the authenticator.
	if err := e.be.DeleteUser(e.ctx, a.UserID); err != nil {
		t.Fatal(err)
	}
	_, err = p.Pending(e.ctx, 0)
	if err == nil || !strings.Contains(err.Error(), "no longer knows the account") {
		t.Fatalf("got %v", err)
	}
}

// BenchmarkNext is the phone's read of its pending requests, one waiting,
// with 1 and with 100 accounts (all on one cloud, in process over
// loopback): one signed request either way.
func BenchmarkNext(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run("accounts="+strconv.Itoa(n), func(b *testing.B) {
			e := newEnv(b)
			p := e.phone("bench")
			names := e.manyAccounts(p, n)
			if _, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: names[n-1], Message: "waiting"}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				r, err := p.Next(e.ctx, sdk.Select{})
				if err != nil || r.Message != "waiting" {
					b.Fatalf("%+v %v", r, err)
				}
			}
		})
	}
}
