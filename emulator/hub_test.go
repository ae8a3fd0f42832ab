package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/authphone/authphone/sdk/cloudapi"
)

func TestHubWaitAny(t *testing.T) {
	h := newHub()
	c, forget := h.WaitAny([]string{"a", "b"})
	other, forgetOther := h.WaitAny([]string{"b"})
	h.Signal("a")
	select {
	case <-c:
	default:
		t.Fatal("a signal of one key did not wake WaitAny")
	}
	select {
	case <-other:
		t.Fatal("a waiter of another key was woken")
	default:
	}
	h.Signal("b", "a") // a waiter woken twice closes once
	<-other
	forget()
	forgetOther()
	if len(h.multi) != 0 {
		t.Fatalf("waiters left behind: %v", h.multi)
	}
	c, forget = h.WaitAny([]string{"x"})
	h.SignalAll()
	<-c
	forget()
	if len(h.multi) != 0 {
		t.Fatalf("waiters left behind: %v", h.multi)
	}
}

// TestHubForgetsEndedWaits: a status long-poll that ends without a
// decision (its wait is over) leaves nothing in the hub.
func TestHubForgetsEndedWaits(t *testing.T) {
	s, err := New(WithAccessKey("k"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	post := func(path string, body, out any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", s.URL()+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer k")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	var u cloudapi.User
	post(cloudapi.PathEnroll, cloudapi.EnrollRequest{Username: "waiter"}, &u)
	for range 3 {
		var st cloudapi.StatusResponse
		post(cloudapi.PathStatus+"?wait=20ms", cloudapi.StatusRequest{StatusToken: u.Enrollment.StatusToken}, &st)
		if st.Status != cloudapi.StatusPending {
			t.Fatalf("status %+v", st)
		}
	}
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	key := txWaitKey(u.Enrollment.TransactionID)
	if _, ok := s.hub.ch[key]; ok || len(s.hub.multi[key]) != 0 {
		t.Fatalf("the hub keeps waiters of long-polls that ended: %d", len(s.hub.multi[key]))
	}
}
