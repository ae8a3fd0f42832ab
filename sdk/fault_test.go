package sdk_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/cloudapi"
)

func TestParseFaults(t *testing.T) {
	f, err := sdk.ParseFaults("bad-signature,skew=-90s", "slow=3s", " drop-answer ")
	if err != nil || !f.BadSignature || f.Skew != -90*time.Second || f.Slow != 3*time.Second || !f.DropAnswer || f.StaleCounter {
		t.Fatalf("%+v %v", f, err)
	}
	for spec, want := range map[string]string{
		"cosmic-ray":      `unknown fault "cosmic-ray"`,
		"skew":            "fault skew needs a duration",
		"slow=soon":       "fault slow needs a duration",
		"slow=-1s":        "positive duration",
		"bad-signature=1": "takes no value",
	} {
		if _, err := sdk.ParseFaults(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", spec, err, want)
		}
	}
}

// TestSlowPhoneMissesTheTTL: a phone slower than the approval's life is
// refused, and the backend reads the approval as expired. The slow fault
// moves the cloud's clock instead of sleeping.
func TestSlowPhoneMissesTheTTL(t *testing.T) {
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	e := newEnv(t, emulator.WithClock(clock), emulator.WithApprovalTTL(2*time.Minute))
	dir, keys := t.TempDir(), keystore.NewMemory()
	honest, err := sdk.New("phone", keys, sdk.WithStateDir(dir), sdk.WithCloud(e.emu.URL()))
	if err != nil {
		t.Fatal(err)
	}
	e.enrol(honest, "alice", "1234")

	// The same phone (state and keys), slow.
	slow, err := sdk.New("phone", keys, sdk.WithStateDir(dir), sdk.WithCloud(e.emu.URL()),
		sdk.WithFaults(sdk.Faults{Slow: 3 * time.Minute}),
		sdk.WithSleep(func(ctx context.Context, d time.Duration) error { offset.Add(int64(d)); return nil }))
	if err != nil {
		t.Fatal(err)
	}
	ap, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := slow.Next(e.ctx, sdk.Select{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := slow.Approve(e.ctx, req)
	_, last := run(t, f, err, flows.Answers{Confirm: true, PIN: "1234"})
	if last.State != flows.Error || !strings.Contains(last.Err.Error(), "expired") {
		t.Fatalf("slow answer: %v %v", last.State, last.Err)
	}
	st, err := e.be.Status(e.ctx, ap.StatusToken, 0)
	if err != nil || st.Status != cloudapi.StatusFailed || st.Reason != cloudapi.ReasonExpired {
		t.Fatalf("status %+v %v", st, err)
	}
	if offset.Load() != int64(3*time.Minute) {
		t.Fatalf("the slow fault waited %s", time.Duration(offset.Load()))
	}
}

// FuzzParseFaults: any --fault value is read or refused with an error,
// never a panic.
func FuzzParseFaults(f *testing.F) {
	for _, s := range []string{"bad-signature", "skew=2m,slow=1s", "slow=", "drop-answer,stale-counter,wrong-challenge", "=", ",,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		if fl, err := sdk.ParseFaults(spec); err == nil && fl.Slow < 0 {
			t.Fatalf("%q: negative slow %s", spec, fl.Slow)
		}
	})
}
