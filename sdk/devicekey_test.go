package sdk_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
)

// namedKeys remembers every name set in its store.
type namedKeys struct {
	keystore.Store
	mu    sync.Mutex
	names []string
}

func (k *namedKeys) Set(ctx context.Context, name string, b []byte) error {
	k.mu.Lock()
	k.names = append(k.names, name)
	k.mu.Unlock()
	return k.Store.Set(ctx, name, b)
}

// deviceKeys are the device keys (inbox-key/…) still in the store.
func (k *namedKeys) deviceKeys(t *testing.T) []string {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, n := range k.names {
		if strings.HasPrefix(n, "inbox-key/") && !slices.Contains(out, n) {
			if _, err := k.Get(context.Background(), n); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// A first enrolment the cloud refuses leaves no device key in the
// keystore (the keystore cannot list keys, so a later process could never
// find it); the next enrolment, from another process, makes the one key
// its account uses.
func TestFailedFirstEnrolmentLeavesNoDeviceKey(t *testing.T) {
	e := newEnv(t)
	keys := &namedKeys{Store: keystore.NewMemory()}
	dir := t.TempDir()
	newPhone := func(rt http.RoundTripper) *sdk.Phone {
		p, err := sdk.New("p", keys, sdk.WithStateDir(dir), sdk.WithCloud(e.emu.URL()), sdk.WithHTTPClient(&http.Client{Transport: rt}))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	scan := func(p *sdk.Phone) flows.Update {
		u, _, err := e.be.Enroll(e.ctx, cloudapi.EnrollRequest{Username: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		png, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(u.Enrollment.QRCode.DataURI, "data:image/png;base64,"))
		f, err := p.Scan(e.ctx, png)
		_, last := run(t, f, err, flows.Answers{NewPIN: "1234"})
		return last
	}
	if last := scan(newPhone(&counting{refuse: deviceapi.PathRegistration})); last.State != flows.Error {
		t.Fatalf("an enrolment whose registration is refused ended %s, want ERROR", last.State)
	}
	if dk := keys.deviceKeys(t); len(dk) != 0 {
		t.Fatalf("after a refused first enrolment the keystore keeps device keys %v, want none", dk)
	}
	if last := scan(newPhone(http.DefaultTransport)); last.State != flows.Done {
		t.Fatalf("the second enrolment ended %s (%v), want DONE", last.State, last.Err)
	}
	a, err := newPhone(http.DefaultTransport).Account("alice")
	if err != nil {
		t.Fatal(err)
	}
	if dk := keys.deviceKeys(t); len(dk) != 1 || dk[0] != "inbox-key/"+a.InboxKey {
		t.Fatalf("device keys in the keystore %v; the account uses %q", dk, a.InboxKey)
	}
}
