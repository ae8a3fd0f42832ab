package sdk_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/backend"
	"github.com/authphone/authphone/sdk/cloudapi"
)

// TestMemoryState: a phone made WithMemoryState enrols, approves with
// growing counters, counts PIN failures and removes accounts, and writes
// nothing: not in its default profile directory, not in the working
// directory.
func TestMemoryState(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	wd := t.TempDir()
	t.Chdir(wd)

	const base = "http://cloud.invalid"
	emu, err := emulator.New(emulator.WithBaseURL(base))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	be := backend.New(base, backend.WithAccessKey(emu.AccessKey()), backend.WithHTTPClient(&http.Client{Transport: sdk.InProcess{Handler: emu.Handler()}}))
	keys := keystore.NewMemory()
	p, err := sdk.New("mem", keys, sdk.WithMemoryState(), sdk.WithCloud(base), sdk.WithInProcess(emu.Handler()), sdk.WithKDF(sdk.KDFTest))
	if err != nil {
		t.Fatal(err)
	}
	enrol := func(name string, a flows.Answers, opts ...sdk.ScanOption) *sdk.Account {
		t.Helper()
		u, _, err := be.Enroll(ctx, cloudapi.EnrollRequest{Username: name})
		if err != nil {
			t.Fatal(err)
		}
		f, err := p.Scan(ctx, []byte(u.Enrollment.AppLinkURI), opts...)
		if _, last := run(t, f, err, a); last.State != flows.Done {
			t.Fatalf("enrol %s: %v", name, last.Err)
		}
		acct, err := p.Account(name)
		if err != nil {
			t.Fatal(err)
		}
		return acct
	}
	approve := func(name string, a flows.Answers) (flows.Update, string) {
		t.Helper()
		ap, _, err := be.Approve(ctx, cloudapi.ApprovalRequest{Username: name, NotificationMessage: "for " + name})
		if err != nil {
			t.Fatal(err)
		}
		r, err := p.Next(ctx, sdk.Select{})
		if err != nil || r.Notification != "for "+name {
			t.Fatalf("next: %+v %v", r, err)
		}
		f, err := p.Approve(ctx, r)
		_, last := run(t, f, err, a)
		st, err := be.Status(ctx, ap.StatusToken, 0)
		if err != nil {
			t.Fatal(err)
		}
		return last, st.Status
	}

	alice := enrol("alice", flows.Answers{NewPIN: "1234"})
	bob := enrol("bob", flows.Answers{Biometric: true}, sdk.WithBiometric())
	if accts, err := p.Accounts(); err != nil || len(accts) != 2 || !accts[1].Biometric {
		t.Fatalf("accounts %+v %v", accts, err)
	}
	for i := uint32(1); i <= 3; i++ {
		for _, a := range []struct {
			acct *sdk.Account
			ans  flows.Answers
		}{{alice, flows.Answers{Confirm: true, PIN: "1234"}}, {bob, flows.Answers{Confirm: true, Biometric: true}}} {
			if last, st := approve(a.acct.Username, a.ans); last.State != flows.Done || st != cloudapi.StatusSucceeded {
				t.Fatalf("approval %d of %s: %v, %s", i, a.acct.Username, last.Err, st)
			}
			got, err := p.Account(a.acct.ID)
			if err != nil || got.SignCounter != i {
				t.Fatalf("after approval %d, %s's counter is %d (%v)", i, a.acct.Username, got.SignCounter, err)
			}
		}
	}

	// A wrong PIN is counted, a right one clears it.
	if last, st := approve("alice", flows.Answers{Confirm: true, PIN: "0000"}); !errors.Is(last.Err, flows.ErrWrongPIN) || st != cloudapi.StatusFailed {
		t.Fatalf("wrong PIN: %v, %s", last.Err, st)
	}
	if a, _ := p.Account("alice"); a.PINFailures != 1 {
		t.Fatalf("PIN failures %d, want 1", a.PINFailures)
	}
	if last, st := approve("alice", flows.Answers{Confirm: true, PIN: "1234"}); last.State != flows.Done || st != cloudapi.StatusSucceeded {
		t.Fatalf("right PIN: %v, %s", last.Err, st)
	}
	if a, _ := p.Account("alice"); a.PINFailures != 0 || a.SignCounter != 4 {
		t.Fatalf("after the right PIN: failures %d, counter %d", a.PINFailures, a.SignCounter)
	}

	if _, err := p.RemoveAccount(ctx, "bob", false); err != nil {
		t.Fatal(err)
	}
	if accts, _ := p.Accounts(); len(accts) != 1 || accts[0].Username != "alice" {
		t.Fatalf("after removing bob: %+v", accts)
	}

	// Nothing on disk; a new phone on the same keystore has no accounts.
	for _, dir := range []string{home, wd} {
		_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err == nil && path != dir {
				t.Errorf("the phone wrote %s", path)
			}
			return nil
		})
	}
	q, err := sdk.New("mem", keys, sdk.WithMemoryState(), sdk.WithCloud(base), sdk.WithInProcess(emu.Handler()))
	if err != nil {
		t.Fatal(err)
	}
	if accts, err := q.Accounts(); err != nil || len(accts) != 0 {
		t.Fatalf("a new memory phone has accounts %+v %v", accts, err)
	}

	if _, err := sdk.New("mem", keys, sdk.WithMemoryState(), sdk.WithStateDir(t.TempDir())); err == nil || !strings.Contains(err.Error(), "WithStateDir") {
		t.Fatalf("WithMemoryState with WithStateDir: %v", err)
	}
}
