package sdk_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/backend"
	"github.com/authphone/authphone/sdk/cloudapi"
)

// TestInProcess enrols and approves with no socket at all: the phone and the
// backend both talk to the emulator's handler in process, the phone with a
// test-cost KDF.
func TestInProcess(t *testing.T) {
	const base = "http://cloud.invalid"
	emu, err := emulator.New(emulator.WithBaseURL(base))
	if err != nil {
		t.Fatal(err)
	}
	h := emu.Handler()
	ctx := context.Background()
	be := backend.New(base, backend.WithAccessKey(emu.AccessKey()), backend.WithHTTPClient(sdkClient(h)))
	p, err := sdk.New("inproc", keystore.NewMemory(), sdk.WithStateDir(t.TempDir()), sdk.WithCloud(base),
		sdk.WithInProcess(h), sdk.WithKDF(sdk.KDFTest))
	if err != nil {
		t.Fatal(err)
	}
	u, _, err := be.Enroll(ctx, cloudapi.EnrollRequest{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.Scan(ctx, []byte(u.Enrollment.AppLinkURI))
	if last := flows.Drive(must(t, f, err), flows.Answers{NewPIN: "1234"}.Answer, nil); last.State != flows.Done {
		t.Fatal(last.Err)
	}
	ap, _, err := be.Approve(ctx, cloudapi.ApprovalRequest{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Next(ctx, sdk.Select{})
	if err != nil {
		t.Fatal(err)
	}
	f, err = p.Approve(ctx, r)
	if last := flows.Drive(must(t, f, err), flows.Answers{Confirm: true, PIN: "1234"}.Answer, nil); last.State != flows.Done {
		t.Fatal(last.Err)
	}
	// A wrong PIN is still refused at the test cost.
	ap2, _, _ := be.Approve(ctx, cloudapi.ApprovalRequest{Username: "alice"})
	r, _ = p.Next(ctx, sdk.Select{})
	f, err = p.Approve(ctx, r)
	if last := flows.Drive(must(t, f, err), flows.Answers{Confirm: true, PIN: "9999"}.Answer, nil); last.State == flows.Done {
		t.Fatal("a wrong PIN approved")
	}
	if st, err := be.Status(ctx, ap.StatusToken, 0); err != nil || st.Status != cloudapi.StatusSucceeded {
		t.Fatalf("%+v %v", st, err)
	}
	if st, err := be.Status(ctx, ap2.StatusToken, 0); err != nil || st.Status == cloudapi.StatusSucceeded {
		t.Fatalf("wrong PIN: %+v %v", st, err)
	}
	if _, err := sdk.ParseKDF("fast"); err == nil {
		t.Fatal("ParseKDF accepted fast")
	}
}

func must(t *testing.T, f *flows.Flow, err error) *flows.Flow {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func sdkClient(h http.Handler) *http.Client {
	return &http.Client{Transport: sdk.InProcess{Handler: h}}
}
