package sdk_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/uaf"
)

// TestUAF10Server: against a cloud that speaks UAF 1.0 (requests with upv
// 1.0, and only 1.0 answers accepted), the phone enrols and logs in,
// answering in 1.0.
func TestUAF10Server(t *testing.T) {
	e := newEnv(t, emulator.WithUAFVersion(uaf.V1_0))
	p := e.phone("phone1")
	e.enrol(p, "alice", "1234")
	ap, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := p.Next(e.ctx, sdk.Select{Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.Approve(e.ctx, req)
	if _, last := run(t, f, err, flows.Answers{Confirm: true, PIN: "1234"}); last.State != flows.Done {
		t.Fatalf("login on a UAF 1.0 cloud: %v", last.Err)
	}
	if st, err := e.be.Status(e.ctx, ap.StatusToken, 0); err != nil || st.Status != cloudapi.StatusSucceeded {
		t.Fatalf("status %+v %v", st, err)
	}
}

// TestUAFUnknownVersionRefused: a cloud speaking a UAF version the phone does
// not know is refused with a clear error, and the enrolment stays pending.
func TestUAFUnknownVersionRefused(t *testing.T) {
	e := newEnv(t, emulator.WithUAFVersion(uaf.Version{Major: 2, Minor: 0}))
	p := e.phone("phone1")
	u, _, err := e.be.Enroll(e.ctx, cloudapi.EnrollRequest{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.Scan(e.ctx, []byte(u.Enrollment.AppLinkURI))
	_, last := run(t, f, err, flows.Answers{NewPIN: "1234"})
	if last.State == flows.Done || last.Err == nil || !strings.Contains(last.Err.Error(), "UAF 2.0") {
		t.Fatalf("UAF 2.0 cloud: %+v", last)
	}
	if _, err := p.Account("alice"); err == nil {
		t.Fatal("an account was made")
	}
}

// TestFacetID: a phone reporting a facet the cloud does not trust is refused
// (UAF 1496) and keeps no account; trusted, the same facet enrols.
func TestFacetID(t *testing.T) {
	const facet = "android:apk-key-hash:c2hvcC1hcHA"
	for _, trusted := range []bool{false, true} {
		var opts []emulator.Option
		if trusted {
			opts = append(opts, emulator.WithTrustedFacets(facet))
		}
		e := newEnv(t, opts...)
		p, err := sdk.New("phone1", keystore.NewMemory(), sdk.WithStateDir(t.TempDir()), sdk.WithCloud(e.emu.URL()), sdk.WithFacetID(facet))
		if err != nil {
			t.Fatal(err)
		}
		u, _, err := e.be.Enroll(e.ctx, cloudapi.EnrollRequest{Username: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		f, err := p.Scan(e.ctx, []byte(u.Enrollment.AppLinkURI))
		_, last := run(t, f, err, flows.Answers{NewPIN: "1234"})
		if trusted != (last.State == flows.Done) {
			t.Fatalf("trusted=%v: %+v", trusted, last)
		}
		if !trusted && !strings.Contains(last.Err.Error(), "untrusted facet") {
			t.Fatalf("untrusted facet error: %v", last.Err)
		}
		if _, err := p.Account("alice"); (err == nil) != trusted {
			t.Fatalf("trusted=%v: account %v", trusted, err)
		}
		want := map[bool]string{false: cloudapi.StatusPending, true: cloudapi.StatusSucceeded}[trusted]
		if st, err := e.be.Status(e.ctx, u.Enrollment.StatusToken, 0); err != nil || st.Status != want {
			t.Fatalf("trusted=%v: status %+v %v, want %s", trusted, st, err, want)
		}
	}
	if _, err := sdk.New("phone1", keystore.NewMemory(), sdk.WithStateDir(t.TempDir()), sdk.WithFacetID("authphone:cli")); !errors.Is(err, uaf.ErrFacetID) {
		t.Fatalf("a malformed facet ID: %v", err)
	}
}

// TestFacetIDLogin: the same phone (state and keys) answering a login from an
// untrusted facet is refused with UAF 1496 and the approval stays pending;
// from the trusted facet the next login succeeds.
func TestFacetIDLogin(t *testing.T) {
	e := newEnv(t)
	dir, keys := t.TempDir(), keystore.NewMemory()
	open := func(facet string) *sdk.Phone {
		p, err := sdk.New("phone1", keys, sdk.WithStateDir(dir), sdk.WithCloud(e.emu.URL()), sdk.WithFacetID(facet))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, evil := open(""), open("https://evil.example")
	e.enrol(good, "alice", "1234")
	for _, tc := range []struct {
		p    *sdk.Phone
		want string
	}{{evil, cloudapi.StatusPending}, {good, cloudapi.StatusSucceeded}} {
		ap, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		// The refused answer left the first approval pending (and in the
		// inbox): pick each by its id.
		req, err := tc.p.Next(e.ctx, sdk.Select{ID: ap.TransactionID, Wait: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		f, err := tc.p.Approve(e.ctx, req)
		_, last := run(t, f, err, flows.Answers{Confirm: true, PIN: "1234"})
		if (last.State == flows.Done) != (tc.want == cloudapi.StatusSucceeded) {
			t.Fatalf("want %s: %+v", tc.want, last)
		}
		if tc.want == cloudapi.StatusPending && !strings.Contains(last.Err.Error(), "untrusted facet") {
			t.Fatalf("untrusted facet error: %v", last.Err)
		}
		if st, err := e.be.Status(e.ctx, ap.StatusToken, 0); err != nil || st.Status != tc.want {
			t.Fatalf("status %+v %v, want %s", st, err, tc.want)
		}
	}
}

// TestNevisFIDOPolicyDER: a cloud configured with a nevisFIDO-style policy
// (EC keys signing in DER, surrogate attestation) enrols the phone, which
// picks DER, keeps that choice in its state, and logs in twice with DER
// assertions the cloud verifies (the second time from a reopened phone).
func TestNevisFIDOPolicyDER(t *testing.T) {
	var pol uaf.Policy
	if err := json.Unmarshal([]byte(`{"accepted":[[{"aaid":["F1D0#0001","F1D0#0003"],"authenticationAlgorithms":[2],"assertionSchemes":["UAFV1TLV"],"attestationTypes":[15880]}]]}`), &pol); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, emulator.WithRegistrationPolicy(pol))
	dir, keys := t.TempDir(), keystore.NewMemory()
	open := func() *sdk.Phone {
		p, err := sdk.New("phone1", keys, sdk.WithStateDir(dir), sdk.WithCloud(e.emu.URL()))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := open()
	if a := e.enrol(p, "alice", "1234"); a.SignAlg != uaf.AlgSecp256r1SHA256DER {
		t.Fatalf("account signs with %d, want DER (2)", a.SignAlg)
	}
	for i, ph := range []*sdk.Phone{p, open()} {
		ap, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		req, err := ph.Next(e.ctx, sdk.Select{Wait: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		f, err := ph.Approve(e.ctx, req)
		if _, last := run(t, f, err, flows.Answers{Confirm: true, PIN: "1234"}); last.State != flows.Done {
			t.Fatalf("login %d: %v", i+1, last.Err)
		}
		if st, err := e.be.Status(e.ctx, ap.StatusToken, 0); err != nil || st.Status != cloudapi.StatusSucceeded {
			t.Fatalf("login %d: status %+v %v", i+1, st, err)
		}
	}
}
