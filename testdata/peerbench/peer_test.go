// Package peerbench measures authphone against a peer a Go developer would
// use to simulate an authenticator: github.com/descope/virtualwebauthn (the
// authenticator) with github.com/go-webauthn/webauthn as its server. It is
// its own module, so the main module does not depend on either; run it with
// `make bench-peer`.
//
// Both sides do the same job: a server makes a challenge, the simulated
// authenticator answers it with a P-256 signature, the server checks it.
//
//   - messages: one login at the message layer, in process, no HTTP: the
//     server's request, the authenticator's signed answer, the server's
//     parse and verification (UAF 1.1 TLV for authphone, WebAuthn JSON and
//     CBOR for the peer). Goal: authphone at least 1.3× the peer's speed.
//     Both sides decode and check with the calls their own code makes
//     (authphone: uaf.Decode and uaf.DecodeFCParams, as the phone and the
//     emulator do).
//   - enrol+approve: a new key enrolled and one login approved, in process.
//     The peer calls the library functions directly; authphone runs its
//     whole stack (backend API, emulator, phone SDK with its flows) over
//     sdk.InProcess, without sockets, with a new phone each time: its
//     accounts in memory (sdk.WithMemoryState, as the peer keeps its
//     credential; the row to compare) or in a state directory on disk.
//     Goal: at most 2× the peer's time.
//   - crypto: each side's P-256 operations of one enrol+approve alone
//     (counted in keygens/op, signs/op, verifies/op), so the ratio above
//     can be read against what the protocols make each side compute.
//   - floor: the least one in-process HTTP exchange of authphone costs.
package peerbench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/backend"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/uaf"
	"github.com/descope/virtualwebauthn"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

const (
	rpID     = "shop.example"
	rpOrigin = "https://shop.example"
)

// user is the peer server's user.
type user struct {
	id    []byte
	creds []webauthn.Credential
}

func (u *user) WebAuthnID() []byte                         { return u.id }
func (u *user) WebAuthnName() string                       { return "alice" }
func (u *user) WebAuthnDisplayName() string                { return "Alice" }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func newPeer(tb testing.TB) *webauthn.WebAuthn {
	w, err := webauthn.New(&webauthn.Config{RPID: rpID, RPDisplayName: "Shop", RPOrigins: []string{rpOrigin},
		AttestationPreference: protocol.PreferNoAttestation})
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

var peerRP = virtualwebauthn.RelyingParty{Name: "Shop", ID: rpID, Origin: rpOrigin}

// peerEnrol registers a new credential of authenticator a for u.
func peerEnrol(w *webauthn.WebAuthn, u *user, a *virtualwebauthn.Authenticator) (virtualwebauthn.Credential, error) {
	cred := peerCredential()
	opts, session, err := w.BeginRegistration(u)
	if err != nil {
		return cred, err
	}
	js, _ := json.Marshal(opts)
	parsed, err := virtualwebauthn.ParseAttestationOptions(string(js))
	if err != nil {
		return cred, err
	}
	resp := virtualwebauthn.CreateAttestationResponse(peerRP, *a, cred, *parsed)
	body, err := protocol.ParseCredentialCreationResponseBody(strings.NewReader(resp))
	if err != nil {
		return cred, err
	}
	c, err := w.CreateCredential(u, *session, body)
	if err != nil {
		return cred, err
	}
	u.creds = append(u.creds, *c)
	a.AddCredential(cred)
	return cred, nil
}

// peerCredential is virtualwebauthn.NewCredential(KeyTypeEC2) with a key
// whose coordinates are 32 bytes each: the library's own drops a leading
// zero byte (about one key in 64), which its server then refuses.
func peerCredential() virtualwebauthn.Credential {
	for {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if len(k.X.Bytes()) == 32 && len(k.Y.Bytes()) == 32 {
			der, _ := x509.MarshalPKCS8PrivateKey(k)
			return virtualwebauthn.NewCredentialWithImportedKey(virtualwebauthn.KeyTypeEC2, der)
		}
	}
}

// peerLogin runs one login with cred.
func peerLogin(w *webauthn.WebAuthn, u *user, a virtualwebauthn.Authenticator, cred virtualwebauthn.Credential) error {
	opts, session, err := w.BeginLogin(u)
	if err != nil {
		return err
	}
	js, _ := json.Marshal(opts)
	parsed, err := virtualwebauthn.ParseAssertionOptions(string(js))
	if err != nil {
		return err
	}
	resp := virtualwebauthn.CreateAssertionResponse(peerRP, a, cred, *parsed)
	body, err := protocol.ParseCredentialRequestResponseBody(strings.NewReader(resp))
	if err != nil {
		return err
	}
	_, err = w.ValidateLogin(u, *session, body)
	return err
}

// uafLogin is one login at authphone's message layer: the cloud's UAF
// AuthenticationRequest, the phone's signed AuthenticationResponse, and
// the cloud's checks of it (final challenge, key, counter, signature).
func uafLogin(key *ecdsa.PrivateKey, keyID []byte, counter uint32) error {
	const appID = rpOrigin + "/_app/facets"
	ch := make([]byte, 32)
	_, _ = rand.Read(ch)
	kid := uaf.B64.EncodeToString(keyID)
	reqMsg, err := uaf.Encode(uaf.AuthenticationRequest{
		Header:    uaf.Header{UPV: uaf.V1_1, Op: uaf.OpAuth, AppID: appID, ServerData: "sd"},
		Challenge: uaf.B64.EncodeToString(ch),
		Policy:    uaf.Policy{Accepted: [][]uaf.MatchCriteria{{{AAID: []string{deviceapi.AAIDBiometric}, KeyIDs: []string{kid}}}}},
	})
	if err != nil {
		return err
	}
	// The phone: what sdk's redeem and sign call.
	var req uaf.AuthenticationRequest
	if err := uaf.Decode(reqMsg, &req); err != nil {
		return fmt.Errorf("request: %v", err)
	}
	if !req.Policy.Matches(deviceapi.Describe(deviceapi.AAIDBiometric, kid)) {
		return fmt.Errorf("policy")
	}
	fc := uaf.EncodeFCParams(uaf.FinalChallengeParams{AppID: req.Header.AppID, Challenge: req.Challenge, FacetID: sdk.FacetID})
	as, err := uaf.BuildAuthAssertion(key, uaf.SignedData{AAID: deviceapi.AAIDBiometric, Mode: uaf.ModeUserVerified,
		FinalChallenge: uaf.FinalChallenge(fc), KeyID: keyID, SignCounter: counter})
	if err != nil {
		return err
	}
	respMsg, err := uaf.Encode(uaf.Response{Header: uaf.Header{UPV: uaf.V1_1, Op: uaf.OpAuth, AppID: appID, ServerData: "sd"},
		FCParams: fc, Assertions: []uaf.Assertion{{AssertionScheme: uaf.SchemeTLV, Assertion: uaf.B64.EncodeToString(as)}}})
	if err != nil {
		return err
	}
	// The cloud: what the emulator's parseUAF and checkSession call.
	var resp uaf.Response
	if err := uaf.Decode(respMsg, &resp); err != nil || len(resp.Assertions) != 1 || resp.Assertions[0].AssertionScheme != uaf.SchemeTLV {
		return fmt.Errorf("response: %v", err)
	}
	fp, err := uaf.DecodeFCParams(resp.FCParams)
	if err != nil || fp.Challenge != uaf.B64.EncodeToString(ch) || fp.AppID != appID {
		return fmt.Errorf("fcParams: %v", err)
	}
	raw, err := uaf.B64.DecodeString(resp.Assertions[0].Assertion)
	if err != nil {
		return err
	}
	aa, err := uaf.ParseAuthAssertion(raw)
	if err != nil {
		return err
	}
	if string(aa.SignedData.FinalChallenge) != string(uaf.FinalChallenge(resp.FCParams)) || string(aa.SignedData.KeyID) != string(keyID) ||
		aa.SignedData.SignCounter != counter {
		return fmt.Errorf("signed data does not match")
	}
	return aa.Verify(&key.PublicKey)
}

func BenchmarkPeer(b *testing.B) {
	b.Run("messages/peer", func(b *testing.B) {
		w, u, a := newPeer(b), &user{id: []byte("user-1")}, virtualwebauthn.NewAuthenticator()
		a.Options.UserHandle = u.id
		cred, err := peerEnrol(w, u, &a)
		if err != nil {
			b.Fatal(err)
		}
		defer cpuPerOp(b)()
		for b.Loop() {
			if err := peerLogin(w, u, a, cred); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("messages/authphone", func(b *testing.B) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		keyID := make([]byte, 32)
		_, _ = rand.Read(keyID)
		var n uint32
		defer cpuPerOp(b)()
		for b.Loop() {
			n++
			if err := uafLogin(key, keyID, n); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("enrol+approve/peer", func(b *testing.B) {
		w := newPeer(b)
		i := 0
		defer cpuPerOp(b)()
		for b.Loop() {
			i++
			u, a := &user{id: []byte("user-" + strconv.Itoa(i))}, virtualwebauthn.NewAuthenticator()
			a.Options.UserHandle = u.id
			cred, err := peerEnrol(w, u, &a)
			if err != nil {
				b.Fatal(err)
			}
			if err := peerLogin(w, u, a, cred); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("enrol+approve/authphone-memory", func(b *testing.B) { benchAuthphone(b, true) })
	b.Run("enrol+approve/authphone-statedir", func(b *testing.B) { benchAuthphone(b, false) })
	// The crypto of each side's enrol+approve alone, on new keys as there.
	for _, side := range []struct {
		name string
		c    cryptoCount
	}{{"peer", peerCrypto}, {"authphone", authphoneCrypto}} {
		b.Run("crypto/"+side.name, func(b *testing.B) {
			defer cpuPerOp(b)()
			for b.Loop() {
				cryptoOps(b, side.c)
			}
			b.ReportMetric(float64(side.c.keygens), "keygens/op")
			b.ReportMetric(float64(side.c.signs), "signs/op")
			b.ReportMetric(float64(side.c.verifies), "verifies/op")
		})
	}
	// The least one of authphone's HTTP exchanges costs in process: a small
	// JSON body posted through net/http's client over sdk.InProcess, read
	// and answered with a small JSON by a ServeMux handler.
	b.Run("floor/inprocess-exchange", func(b *testing.B) {
		type msg struct {
			Token string `json:"token"`
			N     int    `json:"n"`
		}
		mux := http.NewServeMux()
		mux.HandleFunc("POST /x", func(w http.ResponseWriter, r *http.Request) {
			var m msg
			if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			m.N++
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(m)
		})
		c := &http.Client{Transport: sdk.InProcess{Handler: mux}}
		body := []byte(`{"token":"` + strings.Repeat("t", 120) + `","n":1}`)
		defer cpuPerOp(b)()
		for b.Loop() {
			resp, err := c.Post("http://cloud.invalid/x", "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			var m msg
			err = json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
			if err != nil || m.N != 2 {
				b.Fatal(err)
			}
		}
	})
}

// The P-256 operations of one enrol+approve.
//
// The peer: a key made (the benchmark's, NewCredential's own), packed
// self-attestation signed and verified, the assertion signed and verified.
//
// authphone: the account key and the phone's device key made; signed: the
// registration assertion (account key, its push target carried with it),
// the inbox read's Device-Signature (device key), the authentication
// assertion (account key), and the approval's transaction token (the
// cloud's issuer key, when the backend reads the status; the enrolment's,
// which nobody reads here, is signed only when read); verified: both
// assertions and the Device-Signature.
type cryptoCount struct{ keygens, signs, verifies int }

var (
	peerCrypto      = cryptoCount{keygens: 1, signs: 2, verifies: 2}
	authphoneCrypto = cryptoCount{keygens: 2, signs: 4, verifies: 3}
	issuerKey, _    = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
)

func cryptoOps(tb testing.TB, c cryptoCount) {
	h := sha256.Sum256([]byte("the signed data"))
	keys := make([]*ecdsa.PrivateKey, c.keygens)
	for i := range keys {
		keys[i], _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	for i := range c.signs {
		k := keys[0] // the account key signs most; the rest: device key, issuer
		switch {
		case i == c.signs-1 && c.keygens > 1:
			k = issuerKey
		case i == c.signs-2 && c.keygens > 1:
			k = keys[1]
		}
		sig, err := ecdsa.SignASN1(rand.Reader, k, h[:])
		if err != nil {
			tb.Fatal(err)
		}
		if i < c.verifies && !ecdsa.VerifyASN1(&k.PublicKey, h[:], sig) {
			tb.Fatal("verify")
		}
	}
}

// benchAuthphone is one enrol+approve through authphone's whole stack in
// process: a new phone each time (one account each, as the peer's new
// authenticator), with its accounts in memory or in a state directory.
func benchAuthphone(b *testing.B, memory bool) {
	const base = "http://cloud.invalid"
	emu, err := emulator.New(emulator.WithBaseURL(base))
	if err != nil {
		b.Fatal(err)
	}
	h := emu.Handler()
	ctx := context.Background()
	be := backend.New(base, backend.WithAccessKey(emu.AccessKey()), backend.WithHTTPClient(&http.Client{Transport: sdk.InProcess{Handler: h}}),
		backend.WithMinimalAnswers()) // the phone scans the app link: no QR image
	dir := b.TempDir()
	i := 0
	defer cpuPerOp(b)()
	for b.Loop() {
		i++
		state := sdk.WithMemoryState()
		if !memory {
			state = sdk.WithStateDir(filepath.Join(dir, strconv.Itoa(i)))
		}
		p, err := sdk.New("bench", keystore.NewMemory(), state, sdk.WithCloud(base), sdk.WithInProcess(h), sdk.WithDurability(sdk.DurabilityRelaxed))
		if err != nil {
			b.Fatal(err)
		}
		name := "user-" + strconv.Itoa(i)
		u, _, err := be.Enroll(ctx, cloudapi.EnrollRequest{Username: name})
		if err != nil {
			b.Fatal(err)
		}
		f, err := p.Scan(ctx, []byte(u.Enrollment.AppLinkURI), sdk.WithBiometric())
		if err != nil {
			b.Fatal(err)
		}
		if last := flows.Drive(f, flows.Answers{Biometric: true}.Answer, nil); last.State != flows.Done {
			b.Fatal(last.Err)
		}
		ap, _, err := be.Approve(ctx, cloudapi.ApprovalRequest{Username: name})
		if err != nil {
			b.Fatal(err)
		}
		r, err := p.Next(ctx, sdk.Select{})
		if err != nil {
			b.Fatal(err)
		}
		f, err = p.Approve(ctx, r)
		if err != nil {
			b.Fatal(err)
		}
		if last := flows.Drive(f, flows.Answers{Confirm: true, Biometric: true}.Answer, nil); last.State != flows.Done {
			b.Fatal(last.Err)
		}
		if st, err := be.Status(ctx, ap.StatusToken, 0); err != nil || st.Status != cloudapi.StatusSucceeded {
			b.Fatalf("%+v %v", st, err)
		}
	}
}

// TestBothSidesVerify proves each side refuses a wrong answer, so the
// benchmarks measure real checks.
func TestBothSidesVerify(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keyID := make([]byte, 32)
	if err := uafLogin(key, keyID, 1); err != nil {
		t.Fatal(err)
	}
	w, u, a := newPeer(t), &user{id: []byte("user-1")}, virtualwebauthn.NewAuthenticator()
	a.Options.UserHandle = u.id
	cred, err := peerEnrol(w, u, &a)
	if err != nil {
		t.Fatal(err)
	}
	if err := peerLogin(w, u, a, cred); err != nil {
		t.Fatal(err)
	}
	other := peerCredential()
	other.ID = cred.ID // same id, another key: the signature must fail
	if err := peerLogin(w, u, a, other); err == nil {
		t.Fatal("the peer accepted a signature by another key")
	}
}

func cpuPerOp(b *testing.B) func() {
	t0 := processCPU()
	return func() {
		b.ReportMetric(float64((processCPU()-t0).Microseconds())/float64(max(b.N, 1)), "cpu-µs/op")
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
