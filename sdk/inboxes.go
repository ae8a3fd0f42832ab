package sdk

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/devsig"
)

// The phone's device key (ours) is one P-256 key per phone, besides the
// accounts' own keys. Each account registers its push target with it
// (with its registration, or by a request signed by the account's key), so the phone reads every account's inbox
// with one request signed once by the device key (POST /_app/inboxes): Next
// costs the same with 1 or 100 accounts. Accounts not bound to it (made
// before it existed, or on a cloud without that call) are read one by one.

func inboxKeyName(id string) string { return "inbox-key/" + id }

var errNoDeviceKey = errors.New("this phone has no device key yet")

// deviceKey returns the phone's device key and its id; with create it makes
// (and keeps in the keystore) one when the phone has none.
func (p *Phone) deviceKey(ctx context.Context, create bool) (*ecdsa.PrivateKey, string, error) {
	p.dkMu.Lock()
	defer p.dkMu.Unlock()
	return p.deviceKeyLocked(ctx, create)
}

// deviceKeyLocked is deviceKey with p.dkMu held. A key it makes is fresh
// (p.dkFresh) until an account that uses it is kept.
func (p *Phone) deviceKeyLocked(ctx context.Context, create bool) (*ecdsa.PrivateKey, string, error) {
	if p.dk != nil {
		return p.dk, p.dkID, nil
	}
	accts, err := p.Accounts()
	if err != nil {
		return nil, "", err
	}
	for _, a := range accts {
		if a.InboxKey == "" {
			continue
		}
		der, err := p.keys.Get(ctx, inboxKeyName(a.InboxKey))
		if err != nil {
			continue
		}
		if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
			if key, ok := k.(*ecdsa.PrivateKey); ok {
				return p.keepDeviceKey(key, a.InboxKey)
			}
		}
	}
	if !create {
		return nil, "", errNoDeviceKey
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	id, err := deviceapi.DeviceKeyID(&key.PublicKey)
	if err != nil {
		return nil, "", err
	}
	der, err := marshalKey(key)
	if err != nil {
		return nil, "", err
	}
	if err := p.keys.Set(ctx, inboxKeyName(id), der); err != nil {
		return nil, "", fmt.Errorf("keep the device key in the %s keystore: %w", p.keys.Kind(), err)
	}
	p.dkFresh = true
	return p.keepDeviceKey(key, id)
}

func (p *Phone) keepDeviceKey(key *ecdsa.PrivateKey, id string) (*ecdsa.PrivateKey, string, error) {
	b, err := devsig.JWK(&key.PublicKey)
	if err != nil {
		return nil, "", err
	}
	p.dk, p.dkID, p.dkJWK = key, id, b
	return key, id, nil
}

// bindInbox binds a new account's push target to the device key (made if
// need be); without one the account is read on its own. The caller calls
// done once the account is recorded (kept) or given up: a device key made
// for accounts none of which was kept, and that no recorded account uses,
// is deleted again, so a failed first enrolment leaves no key behind in
// the keystore (which cannot list its keys to find it later).
func (p *Phone) bindInbox(ctx context.Context, a *Account) (done func(kept bool)) {
	p.dkMu.Lock()
	defer p.dkMu.Unlock()
	_, id, err := p.deviceKeyLocked(ctx, true)
	if err != nil {
		return func(bool) {}
	}
	a.InboxKey = id
	p.dkBinding++
	return func(kept bool) {
		p.dkMu.Lock()
		defer p.dkMu.Unlock()
		p.dkBinding--
		if kept {
			p.dkFresh = false
		}
		if !p.dkFresh || p.dkBinding > 0 || p.dkID != id {
			return
		}
		p.dkFresh = false
		if accts, err := p.Accounts(); err != nil || slices.ContainsFunc(accts, func(o *Account) bool { return o.InboxKey == id }) {
			return
		}
		bg, cancel := background(ctx)
		defer cancel()
		if err := p.keys.Delete(bg, inboxKeyName(id)); err != nil {
			return // kept, and still in use by this process
		}
		p.dk, p.dkID, p.dkJWK = nil, "", nil
	}
}

func (p *Phone) isUnbound(id string) bool {
	p.dkMu.Lock()
	defer p.dkMu.Unlock()
	return p.unbound[id]
}

func (p *Phone) markUnbound(accts []*Account) {
	p.dkMu.Lock()
	defer p.dkMu.Unlock()
	if p.unbound == nil {
		p.unbound = map[string]bool{}
	}
	for _, a := range accts {
		p.unbound[a.ID] = true
	}
}

// poller reads some of the phone's inboxes, holding up to wait for one
// message.
type poller func(ctx context.Context, wait time.Duration) ([]Request, error)

// pollers splits the accounts into one batch per cloud for those bound to
// the device key, and one poller per other account. With deliver the
// batches ask for each approval's UAF request with its message.
func (p *Phone) pollers(ctx context.Context, accts []*Account, deliver bool) []poller {
	dk, dkID, dkErr := p.deviceKey(ctx, false)
	var out []poller
	groups := map[string][]*Account{}
	var clouds []string
	for _, a := range accts {
		if dkErr == nil && a.InboxKey == dkID && !p.isUnbound(a.ID) {
			if groups[a.Cloud] == nil {
				clouds = append(clouds, a.Cloud)
			}
			groups[a.Cloud] = append(groups[a.Cloud], a)
			continue
		}
		out = append(out, func(ctx context.Context, wait time.Duration) ([]Request, error) { return p.inbox(ctx, a, wait) })
	}
	for _, c := range clouds {
		g := groups[c]
		out = append(out, func(ctx context.Context, wait time.Duration) ([]Request, error) {
			return p.inboxes(ctx, c, g, dk, dkID, wait, deliver)
		})
	}
	return out
}

// inboxes reads the inboxes of accts, all on cloud, with one request signed
// by the device key. Accounts the cloud does not know as bound are read on
// their own, now and from then on. With deliver it asks for each approval's
// UAF request (InboxesRequest.UAF); a cloud without the feature ignores the
// ask and its messages come without, to be redeemed as before.
func (p *Phone) inboxes(ctx context.Context, cloud string, accts []*Account, dk *ecdsa.PrivateKey, dkID string, wait time.Duration, deliver bool) ([]Request, error) {
	byKey := make(map[string]*Account, len(accts))
	req := deviceapi.InboxesRequest{DeviceKey: p.dkJWK, KeyIDs: make([]string, 0, len(accts)), UAF: deliver}
	for _, a := range accts {
		byKey[a.KeyID] = a
		req.KeyIDs = append(req.KeyIDs, a.KeyID)
	}
	var q url.Values
	if wait > 0 {
		q = url.Values{"wait": {wait.String()}}
	}
	var resp deviceapi.InboxesResponse
	err := p.call(ctx, http.MethodPost, cloud, deviceapi.PathInboxes, q, req, &resp, &signer{dk, dkID})
	var ce *CloudError
	if errors.As(err, &ce) && (ce.HTTPStatus == http.StatusNotFound || ce.HTTPStatus == http.StatusMethodNotAllowed) {
		// A cloud without the batch call: read each inbox on its own.
		p.markUnbound(accts)
		return p.each(ctx, accts)
	}
	if errors.As(err, &ce) && ce.HTTPStatus == http.StatusUnauthorized && errors.Is(err, errStaleSignature) {
		return nil, fmt.Errorf("%w; is this machine's clock right?", err)
	}
	if err != nil {
		return nil, err
	}
	out := make([]Request, 0, len(resp.Messages))
	now := p.now()
	for _, m := range resp.Messages {
		a := byKey[m.KeyID]
		if a == nil {
			return nil, fmt.Errorf("the cloud at %s answered for an account this phone did not ask about", cloud)
		}
		r, err := toRequest(m, a, now)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if len(resp.Unknown) > 0 {
		var rest []*Account
		for _, k := range resp.Unknown {
			if a := byKey[k]; a != nil {
				rest = append(rest, a)
			}
		}
		p.markUnbound(rest)
		more, err := p.each(ctx, rest)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

// each reads the inboxes of accts one by one, without waiting.
func (p *Phone) each(ctx context.Context, accts []*Account) ([]Request, error) {
	var out []Request
	for _, a := range accts {
		rs, err := p.inbox(ctx, a, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}
