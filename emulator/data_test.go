package emulator_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/deviceapi"
)

// TestDataRequestsAreCheckedBeforeForwarding sends getData requests that a
// phone never would: each is refused with 401 and never reaches the data
// service.
func TestDataRequestsAreCheckedBeforeForwarding(t *testing.T) {
	var hits atomic.Int32
	ds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok"))
	}))
	defer ds.Close()
	c := newCloud(t, emulator.WithDataService(ds.URL))
	d := newDevice()
	c.enrolled(d, "alice")
	other := newDevice()
	c.enrolled(other, "bob")

	payload := []byte(`{"q":"balance"}`)
	post := func(hdr map[string]string, body []byte) (int, http.Header) {
		req, _ := http.NewRequest("POST", c.url+deviceapi.PathData, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	sig := d.sign(t, "POST", deviceapi.PathData, payload, time.Now())
	if code, h := post(sig, payload); code != 200 || h.Get(deviceapi.DataRelayedHeader) != "relayed" || hits.Load() != 1 {
		t.Fatalf("honest request: %d %v hits %d", code, h, hits.Load())
	}
	// A device key of another user, claiming d's keyID.
	forged := newDevice()
	forged.keyID = d.keyID
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		body []byte
	}{
		{"replayed signed request", sig, payload},
		{"signed by another device's key", forged.sign(t, "POST", deviceapi.PathData, payload, time.Now()), payload},
		{"tampered payload", d.sign(t, "POST", deviceapi.PathData, payload, time.Now()), []byte(`{"q":"transfer"}`)},
		{"expired signature", d.sign(t, "POST", deviceapi.PathData, payload, time.Now().Add(-61*time.Second)), payload},
		{"no signature", nil, payload},
	} {
		if code, _ := post(tc.hdr, tc.body); code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", tc.name, code)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("refused requests reached the data service: %d hits", hits.Load())
	}
}
