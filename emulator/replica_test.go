package emulator_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/internal/pgtest"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/authphone/authphone/sdk/uaf"
)

// publicURL is what replicas behind one proxy write into payloads.
const publicURL = "http://cloud.example.test"

// replicas starts n emulators on one fresh PostgreSQL database, all with
// the same public URL; each cloud talks to its own replica.
func replicas(t *testing.T, n int, opts ...emulator.Option) []*cloud {
	t.Helper()
	dsn := pgtest.DB(t)
	var out []*cloud
	for range n {
		store, err := emulator.OpenPostgres(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		s, err := emulator.New(append([]emulator.Option{emulator.WithAccessKey("test-key"), emulator.WithStore(store),
			emulator.WithBaseURL(publicURL)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		ln := "127.0.0.1:0"
		if err := s.Start(ln); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = s.Close(context.Background())
			_ = store.Close()
		})
		out = append(out, &cloud{t: t, srv: s, url: "http://" + s.Addr()})
	}
	return out
}

// TestReplicasServeAsOneCloud: an enrolment started on one replica is
// scanned and answered through the other; a status long-poll on A wakes
// when B records the decision; a counter used on A is used on B; tokens
// signed by A verify on B, and a key rotated on A is published by B.
func TestReplicasServeAsOneCloud(t *testing.T) {
	rs := replicas(t, 2)
	a, b := rs[0], rs[1]
	if a.srv.AccessKey() != b.srv.AccessKey() {
		t.Fatal("replicas have different access keys")
	}
	d := newDevice()
	p, st := a.enroll("alice")
	if p.RedeemURL != publicURL+deviceapi.PathRedeem+string(dispatch.Registration) {
		t.Fatalf("payload names %s, not the public URL", p.RedeemURL)
	}
	var req uaf.RegistrationRequest
	b.redeem(p, &req)
	if code, sb := a.postUAF(deviceapi.PathRegistration, d.regResponse(t, req)); code != 200 {
		t.Fatalf("register through A: %d %+v", code, sb)
	}
	if s := b.status(st); s != cloudapi.StatusSucceeded {
		t.Fatalf("enrolment status on B: %s", s)
	}

	// A status long-poll on A, the answer through B.
	ap := a.approve(cloudapi.ApprovalRequest{Username: "alice"})
	woke := make(chan time.Time, 1)
	polled := make(chan cloudapi.StatusResponse, 1)
	go func() {
		var r cloudapi.StatusResponse
		a.do("POST", cloudapi.PathStatus+"?wait=30s", nil, mustJSON(cloudapi.StatusRequest{StatusToken: ap.StatusToken}), &r)
		woke <- time.Now()
		polled <- r
	}()
	msgs := b.inbox(d)
	if len(msgs) != 1 {
		t.Fatalf("inbox on B: %d messages", len(msgs))
	}
	pp, _ := dispatch.Decode([]byte(msgs[0].Payload))
	var areq uaf.AuthenticationRequest
	b.redeem(pp, &areq)
	waitLongPolls(t, a.srv, 1) // the long-poll on A is waiting
	if code, sb := b.postUAF(deviceapi.PathAuthentication, d.authResponse(t, areq, 5, "")); code != 200 {
		t.Fatalf("authenticate through B: %d %+v", code, sb)
	}
	decided := time.Now()
	select {
	case at := <-woke:
		if r := <-polled; r.Status != cloudapi.StatusSucceeded {
			t.Fatalf("long-poll on A answered %s", r.Status)
		}
		t.Logf("A's long-poll answered %v after B's decision", at.Sub(decided))
	case <-time.After(10 * time.Second):
		t.Fatal("the long-poll on A did not wake for a decision on B")
	}

	// The counter 5 was used on B: A refuses it again.
	a.approve(cloudapi.ApprovalRequest{Username: "alice"})
	msgs = a.inbox(d)
	pp, _ = dispatch.Decode([]byte(msgs[0].Payload))
	a.redeem(pp, &areq)
	if code, sb := a.postUAF(deviceapi.PathAuthentication, d.authResponse(t, areq, 5, "")); code == 200 {
		t.Fatalf("counter replayed across replicas: %d %+v", code, sb)
	}

	// A transaction token from B introspects as active on A.
	var sr cloudapi.StatusResponse
	b.do("POST", cloudapi.PathStatus, nil, mustJSON(cloudapi.StatusRequest{StatusToken: ap.StatusToken}), &sr)
	form := "token=" + url.QueryEscape(sr.Token)
	var in cloudapi.Introspection
	req2, _ := http.NewRequest("POST", a.url+cloudapi.PathIntrospect, stringsReader(form))
	req2.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req2.Header.Set("Authorization", "Bearer test-key")
	if err := doJSON(req2, &in); err != nil || !in.Active {
		t.Fatalf("B's token on A: %+v %v", in, err)
	}

	// A key rotated on A is published by B.
	kid, err := a.srv.RotateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var set struct{ Keys []struct{ Kid string } }
		b.do("GET", trustapi.PathJWKS, nil, nil, &set)
		found := false
		for _, k := range set.Keys {
			found = found || k.Kid == kid
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B does not publish the key %s rotated on A", kid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReplicaRaces: one dispatch token redeemed on two replicas at once is
// redeemed once; an answer and a decline of one approval on two replicas
// at once: exactly one wins, and the status says which.
func TestReplicaRaces(t *testing.T) {
	rs := replicas(t, 2)
	a, b := rs[0], rs[1]
	d := newDevice()
	a.enrolled(d, "bob")
	for round := range 5 {
		ap := a.approve(cloudapi.ApprovalRequest{Username: "bob"})
		msgs := a.inbox(d)
		p, _ := dispatch.Decode([]byte(msgs[0].Payload))
		codes := make([]int, 2)
		var wg sync.WaitGroup
		for i, c := range rs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i] = c.do("POST", deviceapi.PathRedeem+string(dispatch.Authentication), nil, mustJSON(deviceapi.RedeemRequest{Token: p.Token}), nil)
			}()
		}
		wg.Wait()
		if (codes[0] == 200) == (codes[1] == 200) {
			t.Fatalf("round %d: redeem on two replicas answered %v; want one 200", round, codes)
		}

		// Answer on A, decline on B, at once.
		ap2 := a.approve(cloudapi.ApprovalRequest{Username: "bob"})
		msgs = b.inbox(d)
		p2, _ := dispatch.Decode([]byte(msgs[len(msgs)-1].Payload))
		var areq uaf.AuthenticationRequest
		a.redeem(p2, &areq)
		resp := d.authResponse(t, areq, uint32(10+round), "")
		body := mustJSON(deviceapi.DeclineRequest{Token: p2.Token})
		var answer, decline int
		wg.Add(2)
		go func() { defer wg.Done(); answer, _ = a.postUAF(deviceapi.PathAuthentication, resp) }()
		go func() {
			defer wg.Done()
			decline = b.do("POST", deviceapi.PathDecline, d.sign(t, "POST", deviceapi.PathDecline, body, time.Now()), body, nil)
		}()
		wg.Wait()
		status := b.status(ap2.StatusToken)
		switch {
		case answer == 200 && decline != 200 && status == cloudapi.StatusSucceeded:
		case decline == 200 && answer != 200 && status == cloudapi.StatusFailed:
		default:
			t.Fatalf("round %d: answer %d, decline %d, status %s: want exactly one winner", round, answer, decline, status)
		}
		_ = ap
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

func doJSON(req *http.Request, out any) error {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}
