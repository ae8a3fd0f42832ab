package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/uaf"
)

// startOn runs an emulator over store at addr (":0" style or a fixed port).
func startOn(t *testing.T, store emulator.Store, addr string) *cloud {
	t.Helper()
	s, err := emulator.New(emulator.WithStore(store))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(addr); err != nil {
		t.Fatal(err)
	}
	return &cloud{t: t, srv: s, url: s.URL()}
}

func (c *cloud) authenticate(d *device, counter uint32) (int, deviceapi.StatusBody) {
	c.t.Helper()
	msgs := c.inbox(d)
	if len(msgs) == 0 {
		c.t.Fatal("no push message")
	}
	p, _ := dispatch.Decode([]byte(msgs[0].Payload))
	var req uaf.AuthenticationRequest
	c.redeem(p, &req)
	return c.postUAF(deviceapi.PathAuthentication, d.authResponse(c.t, req, counter, ""))
}

func TestSQLiteStoreSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cloud.db")
	store, err := emulator.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	c := startOn(t, store, "127.0.0.1:0")
	backendAuth["Authorization"] = "Bearer " + c.srv.AccessKey()
	defer func() { backendAuth["Authorization"] = "Bearer test-key" }()
	d := newDevice()
	c.enrolled(d, "alice")
	ap := c.approve(cloudapi.ApprovalRequest{Username: "alice"})
	if code, sb := c.authenticate(d, 1); code != 200 {
		t.Fatalf("first login: %d %+v", code, sb)
	}
	var st cloudapi.StatusResponse
	c.do("POST", cloudapi.PathStatus, nil, mustJSON(cloudapi.StatusRequest{StatusToken: ap.StatusToken}), &st)
	accessKey := c.srv.AccessKey()

	// Stop, and start again on the same address and file.
	u, _ := url.Parse(c.url)
	if err := c.srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	store, err = emulator.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	c = startOn(t, store, u.Host)
	defer c.srv.Close(context.Background())

	if c.srv.AccessKey() != accessKey {
		t.Fatal("the generated access key changed across the restart")
	}
	var after cloudapi.StatusResponse
	if code := c.do("POST", cloudapi.PathStatus, nil, mustJSON(cloudapi.StatusRequest{StatusToken: ap.StatusToken}), &after); code != 200 || after.Status != cloudapi.StatusSucceeded {
		t.Fatalf("old status token after restart: %d %+v", code, after)
	}
	form := []byte("token=" + url.QueryEscape(st.Token))
	req, _ := http.NewRequest("POST", c.url+cloudapi.PathIntrospect, bytes.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+accessKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var in cloudapi.Introspection
	_ = json.NewDecoder(resp.Body).Decode(&in)
	resp.Body.Close()
	if !in.Active {
		t.Fatal("a transaction token from before the restart is no longer active")
	}
	// The device still logs in, and its counter was kept: 1 is a replay.
	c.approve(cloudapi.ApprovalRequest{Username: "alice"})
	if code, sb := c.authenticate(d, 1); code == 200 || !strings.Contains(sb.Description, "counter") {
		t.Fatalf("a repeated counter after restart: %d %+v", code, sb)
	}
	c.approve(cloudapi.ApprovalRequest{Username: "alice"})
	if code, sb := c.authenticate(d, 2); code != 200 {
		t.Fatalf("login after restart: %d %+v", code, sb)
	}
}

func TestSQLiteStoreRejectsAForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "not.db")
	if err := writeFile(path, "this is not a database, just text that is long enough to have a header"); err != nil {
		t.Fatal(err)
	}
	if _, err := emulator.OpenSQLite(path); err == nil {
		t.Fatal("opened a file that is not SQLite")
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
