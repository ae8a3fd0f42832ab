package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// dataService is an app's data service: it verifies the cloud's JWT with the
// cloud's JWKS (fetched over HTTP) and answers with what it learned.
type dataService struct {
	*httptest.Server
	hits     atomic.Int32
	cloudURL func() string
	handle   func(w http.ResponseWriter, r *http.Request) bool // optional override
}

type dataAnswer struct {
	Sub      string `json:"sub"`
	Device   string `json:"device"`
	Headless bool   `json:"headless"`
	Echo     string `json:"echo"`
}

func newDataService(t testing.TB) *dataService {
	ds := &dataService{}
	ds.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ds.hits.Add(1)
		if ds.handle != nil && ds.handle(w, r) {
			return
		}
		set, err := jwk.Fetch(r.Context(), ds.cloudURL()+"/.well-known/jwks.json")
		if err != nil {
			http.Error(w, "jwks: "+err.Error(), http.StatusInternalServerError)
			return
		}
		tok, err := jwt.ParseRequest(r, jwt.WithKeySet(set), jwt.WithIssuer(ds.cloudURL()), jwt.WithAudience(ds.URL))
		if err != nil {
			http.Error(w, "bad token: "+err.Error(), http.StatusUnauthorized)
			return
		}
		var ans dataAnswer
		ans.Sub, _ = tok.Subject()
		_ = tok.Get("device", &ans.Device)
		_ = tok.Get("headless", &ans.Headless)
		b, _ := io.ReadAll(r.Body)
		ans.Echo = string(b)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ans)
	}))
	t.Cleanup(ds.Close)
	return ds
}

func withData(t testing.TB, opts ...emulator.Option) (*env, *dataService) {
	ds := newDataService(t)
	e := newEnv(t, append([]emulator.Option{emulator.WithDataService(ds.URL)}, opts...)...)
	ds.cloudURL = e.emu.URL
	return e, ds
}

func getAnswer(t *testing.T, p *sdk.Phone, payload string) dataAnswer {
	t.Helper()
	b, err := p.GetData(context.Background(), []byte(payload))
	if err != nil {
		t.Fatalf("getData: %v", err)
	}
	var a dataAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("answer %s: %v", b, err)
	}
	return a
}

func TestGetDataHeadlessUpgradeApprove(t *testing.T) {
	e, _ := withData(t)
	p := e.phone("p")

	// No account yet: getData creates a headless one.
	before := getAnswer(t, p, "hello")
	if !before.Headless || before.Echo != "hello" || before.Sub == "" {
		t.Fatalf("first answer %+v", before)
	}
	accts, _ := p.Accounts()
	if len(accts) != 1 || !accts[0].Headless || accts[0].AAID != "F1D0#0000" || accts[0].Username != "" {
		t.Fatalf("headless account %+v", accts)
	}
	u, err := e.be.UserByID(e.ctx, before.Sub)
	if err != nil || u.Status != cloudapi.UserNew || u.Username != "" {
		t.Fatalf("cloud user %+v %v", u, err)
	}
	// A second call reuses the account.
	if again := getAnswer(t, p, "again"); again.Sub != before.Sub || again.Device != before.Device {
		t.Fatalf("second answer %+v", again)
	}
	// A headless account cannot approve: the cloud says so.
	if _, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{UserID: before.Sub}); err == nil || !strings.Contains(err.Error(), "second factor") {
		t.Fatalf("approval of a headless user: %v", err)
	}

	// HEADLESS_UPGRADE: WAIT_FOR_INPUT/SET_SECOND_FACTOR → PROCESSING → DONE.
	f, err := p.Upgrade(e.ctx, "")
	us, last := run(t, f, err, flows.Answers{NewPIN: "2468"})
	if got, want := seq(us), "WAIT_FOR_INPUT/SET_SECOND_FACTOR → PROCESSING → DONE"; got != want {
		t.Fatalf("HEADLESS_UPGRADE\n got %s\nwant %s (%v)", got, want, last.Err)
	}
	if last.Type != flows.HeadlessUpgrade || last.Account.UserID != before.Sub || last.Account.Headless {
		t.Fatalf("last %+v", last)
	}
	after := getAnswer(t, p, "after")
	if after.Sub != before.Sub || after.Headless || after.Device == before.Device {
		t.Fatalf("after upgrade %+v (before %+v)", after, before)
	}
	// Upgrading again: a clear error.
	if _, err := p.Upgrade(e.ctx, ""); !errors.Is(err, sdk.ErrNotHeadless) {
		t.Fatalf("second upgrade: %v", err)
	}

	// The backend names the user, then approvals can target it.
	if _, err := e.be.RenameUser(e.ctx, before.Sub, "zoe"); err != nil {
		t.Fatal(err)
	}
	ap, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "zoe"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := p.Next(e.ctx, sdk.Select{Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f, err = p.Approve(e.ctx, req)
	if _, last := run(t, f, err, flows.Answers{Confirm: true, PIN: "2468"}); last.State != flows.Done {
		t.Fatal(last.Err)
	}
	if st, _ := e.be.Status(e.ctx, ap.StatusToken, 0); st.Status != cloudapi.StatusSucceeded {
		t.Fatalf("status %s", st.Status)
	}
	if u, _ := e.be.UserByID(e.ctx, before.Sub); u.Status != cloudapi.UserActive || len(u.Authenticators) != 1 {
		t.Fatalf("user after upgrade %+v", u)
	}
}

func TestChangePIN(t *testing.T) {
	e := newEnv(t)
	p := e.phone("p")
	e.enrol(p, "alice", "1234")
	f, err := p.ChangePIN(e.ctx, "alice")
	us, last := run(t, f, err, flows.Answers{PIN: "1234", NewPIN: "5678"})
	want := "WAIT_FOR_INPUT/VERIFY_SECOND_FACTOR → PROCESSING → WAIT_FOR_INPUT/SET_SECOND_FACTOR → PROCESSING → DONE"
	if got := seq(us); got != want || last.State != flows.Done {
		t.Fatalf("CHANGE_PIN\n got %s\nwant %s (%v)", got, want, last.Err)
	}
	// The old PIN is refused and counts toward the lock-out.
	f, err = p.ChangePIN(e.ctx, "alice")
	_, last = run(t, f, err, flows.Answers{PIN: "1234", NewPIN: "0000"})
	if !errors.Is(last.Err, flows.ErrWrongPIN) {
		t.Fatalf("old PIN: %v", last.Err)
	}
	if a, _ := p.Account("alice"); a.PINFailures != 1 {
		t.Fatalf("failures %d, want 1", a.PINFailures)
	}
	// The new one approves.
	e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "alice"})
	req, _ := p.Next(e.ctx, sdk.Select{Wait: time.Second})
	f, err = p.Approve(e.ctx, req)
	if _, last := run(t, f, err, flows.Answers{Confirm: true, PIN: "5678"}); last.State != flows.Done {
		t.Fatal(last.Err)
	}
}

func TestGetDataProtocolVersions(t *testing.T) {
	e, ds := withData(t)
	p, _ := sdk.New("p", keystore.NewMemory(), sdk.WithStateDir(t.TempDir()), sdk.WithCloud(e.emu.URL()),
		sdk.WithAllowedProtocolVersions("v1_1"))
	_, err := p.GetData(e.ctx, []byte("x"))
	if !errors.Is(err, sdk.ErrProtocolVersion) || !strings.Contains(err.Error(), "--allowed-protocol-versions") {
		t.Fatalf("phone without v1_2: %v", err)
	}
	e2, ds2 := withData(t, emulator.WithProtocolVersions("v1_1"))
	p2 := e2.phone("p2")
	_, err = p2.GetData(e.ctx, []byte("x"))
	if !errors.Is(err, sdk.ErrProtocolVersion) || !strings.Contains(err.Error(), "--protocol-versions") {
		t.Fatalf("cloud without v1_2: %v", err)
	}
	for _, x := range []*sdk.Phone{p, p2} {
		if accts, _ := x.Accounts(); len(accts) != 0 {
			t.Fatal("a refused getData left an account")
		}
	}
	if ds.hits.Load()+ds2.hits.Load() != 0 {
		t.Fatal("the data service was called")
	}
}

func TestGetDataLimitsAndFailures(t *testing.T) {
	// A data timeout a loaded machine's good answers stay well within; the
	// slow service below holds until the cloud gives up.
	e, ds := withData(t, emulator.WithMaxData(1000), emulator.WithDataTimeout(time.Second))
	p := e.phone("p")
	getAnswer(t, p, "make the account")
	base := ds.hits.Load()

	// Over the phone's own limit: nothing sent at all.
	small, _ := sdk.New("p", p.Keystore(), sdk.WithStateDir(t.TempDir()), sdk.WithCloud(e.emu.URL()), sdk.WithMaxPayload(10))
	if _, err := small.GetData(e.ctx, make([]byte, 11)); !errors.Is(err, sdk.ErrPayloadTooLarge) {
		t.Fatalf("phone limit: %v", err)
	}
	// Over the cloud's limit: refused before the data service.
	if _, err := p.GetData(e.ctx, make([]byte, 1001)); !errors.Is(err, sdk.ErrPayloadTooLarge) || !strings.Contains(err.Error(), "nothing was sent") {
		t.Fatalf("cloud limit: %v", err)
	}
	if ds.hits.Load() != base {
		t.Fatal("an oversized payload reached the data service")
	}

	// The data service errs: its status and body come back.
	ds.handle = func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "maintenance until 10:00")
		return true
	}
	_, err := p.GetData(e.ctx, []byte("x"))
	var dse *sdk.DataServiceError
	if !errors.As(err, &dse) || dse.Status != 503 || string(dse.Body) != "maintenance until 10:00" || dse.ContentType != "text/plain" {
		t.Fatalf("erroring data service: %v", err)
	}

	// The data service is slow: a clear timeout.
	ds.handle = func(w http.ResponseWriter, r *http.Request) bool {
		_, _ = io.ReadAll(r.Body)
		select {
		case <-time.After(30 * time.Second):
		case <-r.Context().Done():
		}
		return true
	}
	_, err = p.GetData(e.ctx, []byte("x"))
	var ce *sdk.CloudError
	if !errors.As(err, &ce) || ce.HTTPStatus != http.StatusGatewayTimeout || !strings.Contains(ce.Message, "did not answer within") {
		t.Fatalf("slow data service: %v", err)
	}

	// The data service is down.
	ds.Close()
	_, err = p.GetData(e.ctx, []byte("x"))
	if !errors.As(err, &ce) || ce.HTTPStatus != http.StatusBadGateway || !strings.Contains(ce.Message, "cannot be reached") {
		t.Fatalf("data service down: %v", err)
	}
}

func TestGetDataCancellation(t *testing.T) {
	e, ds := withData(t, emulator.WithDataTimeout(10*time.Second))
	p := e.phone("p")
	getAnswer(t, p, "make the account")
	sawCancel := make(chan struct{})
	ds.handle = func(w http.ResponseWriter, r *http.Request) bool {
		_, _ = io.ReadAll(r.Body) // (the server notices a closed connection only once the body is read)
		<-r.Context().Done()      // hold until the cloud gives up
		close(sawCancel)
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.GetData(ctx, []byte("slow"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("cancelled getData: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("cancelled getData returned after %v", took)
	}
	select {
	case <-sawCancel: // the cloud cancelled its request to the data service too
	case <-time.After(5 * time.Second):
		t.Fatal("the cloud kept its request to the data service after the phone gave up")
	}
}

func TestBuiltinDataService(t *testing.T) {
	e := newEnv(t)
	p := e.phone("p")
	e.enrol(p, "alice", "1234")
	b, err := p.GetData(e.ctx, []byte("ping"))
	if err != nil {
		t.Fatal(err)
	}
	var got emulator.BuiltinData
	if err := json.Unmarshal(b, &got); err != nil || got.Username != "alice" || got.Payload != "ping" || got.Headless {
		t.Fatalf("built-in answer %s %v", b, err)
	}
}
