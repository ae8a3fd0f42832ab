package sdk_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/authphone/authphone/sdk/backend"
	"github.com/authphone/authphone/sdk/cloudapi"
)

// TestInspectStreamsAndReset: a real phone enrols and answers an approval
// while the backend follows the event log and the approval's status over
// SSE; the inspection API shows the pending approval with its inbox item;
// an expired one is listed as failed; a reset empties the emulator.
func TestInspectStreamsAndReset(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	follow := make(chan adminapi.Event, 100)
	go func() {
		for ev, err := range e.be.Events(ctx, 0) {
			if err != nil {
				t.Errorf("events: %v", err)
				return
			}
			follow <- ev
		}
	}()
	p := e.phone("p1")
	e.enrol(p, "alice", "1234")

	ap, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "alice", Message: "Pay <b>10</b> EUR"})
	if err != nil {
		t.Fatal(err)
	}
	statuses := make(chan cloudapi.StatusResponse, 10)
	go func() {
		defer close(statuses)
		for st, err := range e.be.StatusEvents(ctx, ap.StatusToken) {
			if err != nil {
				t.Errorf("status events: %v", err)
				return
			}
			statuses <- st
		}
	}()
	if st := <-statuses; st.Status != cloudapi.StatusPending {
		t.Fatalf("first status event %+v", st)
	}
	ops, err := e.be.Operations(e.ctx, "pending")
	if err != nil || len(ops) != 1 {
		t.Fatalf("pending operations %+v %v", ops, err)
	}
	if op := ops[0]; op.ID != ap.TransactionID || op.Kind != "approval" || op.Username != "alice" || op.Message != "Pay <b>10</b> EUR" ||
		len(op.Inbox) != 1 || op.Inbox[0].Payload == "" {
		t.Fatalf("pending approval %+v", op)
	}
	state, err := e.be.State(e.ctx)
	if err != nil || state.Users != 1 || state.Authenticators != 1 || state.PendingOperations != 1 || state.InboxItems != 1 {
		t.Fatalf("state %+v %v", state, err)
	}

	req, err := p.Next(e.ctx, sdk.Select{Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.Approve(e.ctx, req)
	run(t, f, err, flows.Answers{Confirm: true, PIN: "1234"})
	select {
	case st := <-statuses:
		if st.Status != cloudapi.StatusSucceeded || st.Token == "" {
			t.Fatalf("status event after the answer %+v", st)
		}
	case <-ctx.Done():
		t.Fatal("no status event after the answer")
	}
	if _, more := <-statuses; more {
		t.Fatal("the status stream did not end after the final status")
	}
	want := []string{"enroll.created", "enroll.succeeded", "authenticator.registered", "approval.created", "approval.succeeded"}
	for i, w := range want {
		select {
		case ev := <-follow:
			if ev.Type != w || ev.ID != int64(i+1) {
				t.Fatalf("event %d: %d %s, want %s", i, ev.ID, ev.Type, w)
			}
		case <-ctx.Done():
			t.Fatalf("the stream stopped before %s", w)
		}
	}

	// An approval expired by the tester's button reads failed.
	ap2, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.be.ExpireOperation(e.ctx, ap2.TransactionID); err != nil {
		t.Fatal(err)
	}
	var be *backend.Error
	if err := e.be.ExpireOperation(e.ctx, ap2.TransactionID); !errors.As(err, &be) || be.Status != 409 {
		t.Fatalf("expiring twice: %v", err)
	}
	failed, err := e.be.Operations(e.ctx, "failed")
	if err != nil || len(failed) != 1 || failed[0].ID != ap2.TransactionID || failed[0].Reason != cloudapi.ReasonExpired || len(failed[0].Inbox) != 0 {
		t.Fatalf("failed operations %+v %v", failed, err)
	}
	if _, err := e.be.Operations(e.ctx, "done"); !errors.As(err, &be) || be.Status != 400 {
		t.Fatalf("bad status filter: %v", err)
	}

	after, err := e.be.Reset(e.ctx)
	if err != nil || after.Users != 0 || after.Authenticators != 0 || after.Transactions != 0 {
		t.Fatalf("after reset %+v %v", after, err)
	}
	if st, err := e.be.Status(e.ctx, ap.StatusToken, 0); err != nil || st.Status != cloudapi.StatusUnknown {
		t.Fatalf("status after reset %+v %v", st, err)
	}
	log, err := e.be.EventLog(e.ctx, 0, adminapi.MaxEvents)
	if err != nil || log.Events[len(log.Events)-1].Type != adminapi.EventReset || log.LastID != after.LastEventID {
		t.Fatalf("log after reset %+v %v", log, err)
	}
}
