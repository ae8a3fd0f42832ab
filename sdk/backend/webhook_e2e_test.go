package backend_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/authphone/authphone/sdk/backend"
	"github.com/authphone/authphone/sdk/cloudapi"
)

// receiver is a relying party's webhook endpoint that refuses the first
// fails deliveries with a 500.
type receiver struct {
	mu    sync.Mutex
	fails int
	got   []adminapi.Event
	tries int
	ch    chan struct{}
}

func (r *receiver) handle(_ context.Context, e adminapi.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tries++
	defer func() { r.ch <- struct{}{} }()
	if r.tries <= r.fails {
		return errors.New("not now")
	}
	r.got = append(r.got, e)
	return nil
}

// waitLog waits (on the log's long-poll) for an event that match accepts.
func waitLog(t *testing.T, be *backend.Client, match func(adminapi.Event) bool) adminapi.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for e, err := range be.Events(ctx, 0) {
		if err != nil {
			t.Fatal(err)
		}
		if match(e) {
			return e
		}
	}
	t.Fatal("no such event in the log")
	return adminapi.Event{}
}

func attempt(n string, typ string) func(adminapi.Event) bool {
	return func(e adminapi.Event) bool { return e.Type == typ && e.Data["attempt"] == n }
}

// TestWebhookDeliveryRetriesOnTheClock: a delivery refused twice is
// retried after 1 s and 2 s of the emulator's clock (which only
// AdvanceClock moves here), each attempt is in the event log, and the
// third is verified by the receiver's WebhookVerifier.
func TestWebhookDeliveryRetriesOnTheClock(t *testing.T) {
	rcv := &receiver{fails: 2, ch: make(chan struct{}, 10)}
	v := backend.NewWebhookVerifier("hook-secret")
	hook := httptest.NewServer(v.Handler(rcv.handle))
	defer hook.Close()
	frozen := time.Now()
	emu, err := emulator.New(emulator.WithClock(func() time.Time { return frozen }), emulator.WithWebhook(hook.URL, "hook-secret"))
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer emu.Close(context.Background())
	be := backend.New(emu.URL(), backend.WithAccessKey(emu.AccessKey()))
	if _, _, err := be.Enroll(context.Background(), cloudapi.EnrollRequest{Username: "ann"}); err != nil {
		t.Fatal(err)
	}
	first := waitLog(t, be, attempt("1", adminapi.EventWebhookFailed))
	if !strings.Contains(first.Reason, "500") || first.Data["event"] != "1" || first.Data["url"] != hook.URL {
		t.Fatalf("first attempt %+v", first)
	}
	// Nothing moves the clock: no second attempt however long we look
	// (one real second covers the timer the retry waits on).
	select {
	case <-rcv.ch:
	case <-time.After(20 * time.Second):
		t.Fatal("the first delivery never arrived")
	}
	select {
	case <-rcv.ch:
		t.Fatal("retried before the emulator's clock moved")
	case <-time.After(1200 * time.Millisecond):
	}
	if _, err := emu.AdvanceClock(time.Second); err != nil {
		t.Fatal(err)
	}
	waitLog(t, be, attempt("2", adminapi.EventWebhookFailed))
	if _, err := emu.AdvanceClock(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	ok := waitLog(t, be, attempt("3", adminapi.EventWebhookDelivered))
	if ok.Data["status"] != "204" {
		t.Fatalf("delivery %+v", ok)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.got) != 1 || rcv.got[0].Type != "enroll.created" || rcv.got[0].Username != "ann" {
		t.Fatalf("received %+v", rcv.got)
	}
}

// TestWebhookAPI: webhooks registered through the API get a secret, are
// listed without it, refuse a bad URL with a clear 400 and can be removed.
func TestWebhookAPI(t *testing.T) {
	emu, err := emulator.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer emu.Close(context.Background())
	ctx := context.Background()
	be := backend.New(emu.URL(), backend.WithAccessKey(emu.AccessKey()))
	h, err := be.AddWebhook(ctx, "http://127.0.0.1:1/hook", "")
	if err != nil || h.Secret == "" || h.ID == "" {
		t.Fatalf("add %+v %v", h, err)
	}
	hooks, err := be.Webhooks(ctx)
	if err != nil || len(hooks) != 1 || hooks[0].Secret != "" || hooks[0].URL != h.URL {
		t.Fatalf("list %+v %v", hooks, err)
	}
	var be2 *backend.Error
	if _, err := be.AddWebhook(ctx, "ftp://x", ""); !errors.As(err, &be2) || be2.Status != 400 || !strings.Contains(be2.Message, "http://") {
		t.Fatalf("bad URL: %v", err)
	}
	if err := be.RemoveWebhook(ctx, h.ID); err != nil {
		t.Fatal(err)
	}
	if err := be.RemoveWebhook(ctx, h.ID); !errors.As(err, &be2) || be2.Status != 404 {
		t.Fatalf("removing twice: %v", err)
	}
}
