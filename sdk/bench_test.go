package sdk_test

import (
	"io"
	"net/http"

	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/devsig"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/authphone/authphone/sdk/uaf"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/crypto/argon2"
)

// BenchmarkP256SignVerify is the crypto alone: one P-256 signature and its
// verification.
func BenchmarkP256SignVerify(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	data := []byte("the signed data of an authentication assertion")
	for b.Loop() {
		sig, err := uaf.Sign(key, data)
		if err != nil {
			b.Fatal(err)
		}
		if err := uaf.VerifySignature(&key.PublicKey, uaf.AlgSecp256r1SHA256Raw, data, sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApprovalCrypto is all the crypto one push approval does, without
// HTTP: the PIN check (Argon2id), the signed inbox read (ES256 sign and
// verify), the UAF assertion (sign and verify) and the transaction token
// (sign).
func BenchmarkApprovalCrypto(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cloudKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	salt := make([]byte, 16)
	data := []byte("the signed data of an authentication assertion")
	for b.Loop() {
		_ = argon2.IDKey([]byte("1234"), salt, 2, 19*1024, 1, 32)
		h, _ := devsig.Sign(key, "kid", "GET", "/_app/inbox", nil, time.Now())
		s, _ := devsig.Parse(h)
		if err := s.Verify(&key.PublicKey, "GET", "/_app/inbox", nil, time.Now(), time.Minute); err != nil {
			b.Fatal(err)
		}
		sig, _ := uaf.Sign(key, data)
		if err := uaf.VerifySignature(&key.PublicKey, uaf.AlgSecp256r1SHA256Raw, data, sig); err != nil {
			b.Fatal(err)
		}
		d := sha256.Sum256(data)
		if _, err := ecdsa.SignASN1(rand.Reader, cloudKey, d[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnrol is a full enrolment in process over loopback HTTP: the
// enroll call, the phone's scan (key, PIN verifier, registration, push
// target), and the status reading succeeded.
func BenchmarkEnrol(b *testing.B) {
	e := newEnv(b)
	p := e.phone("bench")
	i := 0
	for b.Loop() {
		i++
		u, _, err := e.be.Enroll(e.ctx, cloudapi.EnrollRequest{Username: "u" + time.Now().Format("150405.000000000")})
		if err != nil {
			b.Fatal(err)
		}
		f, err := p.Scan(e.ctx, []byte(u.Enrollment.AppLinkURI))
		if err != nil {
			b.Fatal(err)
		}
		if last := flows.Drive(f, flows.Answers{NewPIN: "1234"}.Answer, nil); last.State != flows.Done {
			b.Fatal(last.Err)
		}
		if st, err := e.be.Status(e.ctx, u.Enrollment.StatusToken, 0); err != nil || st.Status != cloudapi.StatusSucceeded {
			b.Fatalf("%+v %v", st, err)
		}
	}
}

// BenchmarkApproval is a full push approval in process over loopback HTTP:
// the approval call, the phone reading its inbox and approving with its PIN,
// and the status reading succeeded.
func BenchmarkApproval(b *testing.B) {
	e := newEnv(b)
	p := e.phone("bench")
	e.enrol(p, "alice", "1234")
	for b.Loop() {
		ap, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "alice"})
		if err != nil {
			b.Fatal(err)
		}
		r, err := p.Next(e.ctx, sdk.Select{})
		if err != nil {
			b.Fatal(err)
		}
		f, err := p.Approve(e.ctx, r)
		if err != nil {
			b.Fatal(err)
		}
		if last := flows.Drive(f, flows.Answers{Confirm: true, PIN: "1234"}.Answer, nil); last.State != flows.Done {
			b.Fatal(last.Err)
		}
		if st, err := e.be.Status(e.ctx, ap.StatusToken, 0); err != nil || st.Status != cloudapi.StatusSucceeded {
			b.Fatalf("%+v %v", st, err)
		}
	}
}

// BenchmarkStatusWake measures how long a status long-poll takes to answer
// after the decision: the phone declines, and the clock runs from the
// decline's answer to the long-poll's (reported as wake-µs; negative means
// the long-poll answered first).
func BenchmarkStatusWake(b *testing.B) {
	e := newEnv(b)
	p := e.phone("bench")
	e.enrol(p, "alice", "1234")
	var total time.Duration
	for b.Loop() {
		ap, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "alice"})
		if err != nil {
			b.Fatal(err)
		}
		r, err := p.Next(e.ctx, sdk.Select{})
		if err != nil {
			b.Fatal(err)
		}
		got := make(chan time.Time, 1)
		go func() {
			_, _ = e.be.Status(e.ctx, ap.StatusToken, 30*time.Second)
			got <- time.Now()
		}()
		for e.emu.LongPolls() < 1 { // the long-poll is waiting at the cloud
			time.Sleep(50 * time.Microsecond)
		}
		if err := p.Deny(e.ctx, r, ""); err != nil {
			b.Fatal(err)
		}
		decided := time.Now()
		total += (<-got).Sub(decided)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "wake-µs")
}

// BenchmarkGetData is a getData round trip over loopback: phone → cloud
// (Device-Signature checked) → data service (JWT made; the test service
// verifies it with a cached JWKS) → phone.
func BenchmarkGetData(b *testing.B) {
	e, ds := withData(b)
	p := e.phone("bench")
	if _, err := p.GetData(e.ctx, []byte("warm up")); err != nil {
		b.Fatal(err)
	}
	set, err := jwk.Fetch(e.ctx, e.emu.URL()+"/.well-known/jwks.json")
	if err != nil {
		b.Fatal(err)
	}
	ds.handle = func(w http.ResponseWriter, r *http.Request) bool {
		if _, err := jwt.ParseRequest(r, jwt.WithKeySet(set), jwt.WithAudience(ds.URL)); err != nil {
			http.Error(w, err.Error(), 401)
			return true
		}
		body, _ := io.ReadAll(r.Body)
		_, _ = w.Write(body)
		return true
	}
	payload := []byte(`{"query":"balance","account":"CH93 0076 2011 6238 5295 7"}`)
	for b.Loop() {
		if _, err := p.GetData(e.ctx, payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetDataCrypto is the crypto of one getData alone: the phone's
// ES256 Device-Signature and the cloud's check of it, the cloud's ES256 JWT
// and the data service's check of it.
func BenchmarkGetDataCrypto(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cloudKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	payload := []byte(`{"query":"balance","account":"CH93 0076 2011 6238 5295 7"}`)
	for b.Loop() {
		h, _ := devsig.Sign(key, "kid", "POST", "/_app/data", payload, time.Now())
		s, _ := devsig.Parse(h)
		if err := s.Verify(&key.PublicKey, "POST", "/_app/data", payload, time.Now(), time.Minute); err != nil {
			b.Fatal(err)
		}
		tok, _ := jwt.NewBuilder().Issuer("cloud").Subject("user").Audience([]string{"svc"}).Expiration(time.Now().Add(time.Minute)).Build()
		signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), cloudKey))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := jwt.Parse(signed, jwt.WithKey(jwa.ES256(), &cloudKey.PublicKey), jwt.WithAudience("svc")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignInWithDevice is the whole exchange in process over loopback:
// the new device's request, the trusted phone reading its inbox and
// approving with its PIN (APPROVE_DEVICE), and the tokens reaching the new
// device through the long-poll. token-wake-µs is the time from the
// approval's answer to the tokens' arrival.
func BenchmarkSignInWithDevice(b *testing.B) {
	e := newEnv(b)
	phone := e.phone("phone")
	e.enrol(phone, "alice", "1234")
	laptop := e.phone("laptop")
	var wake time.Duration
	for b.Loop() {
		lr, err := laptop.SignInWithDevice(e.ctx, "alice")
		if err != nil {
			b.Fatal(err)
		}
		got := make(chan time.Time, 1)
		go func() {
			if _, err := laptop.WaitTokens(e.ctx, lr, 30*time.Second); err != nil {
				b.Error(err)
			}
			got <- time.Now()
		}()
		r, err := phone.Next(e.ctx, sdk.Select{Wait: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		f, err := phone.Approve(e.ctx, r)
		if err != nil {
			b.Fatal(err)
		}
		if last := flows.Drive(f, flows.Answers{Confirm: true, PIN: "1234"}.Answer, nil); last.State != flows.Done {
			b.Fatal(last.Err)
		}
		approved := time.Now()
		wake += (<-got).Sub(approved)
	}
	b.ReportMetric(float64(wake.Microseconds())/float64(b.N), "token-wake-µs")
}

// BenchmarkSignInCrypto is the crypto of one sign-in alone: the PIN check
// (Argon2id), the phone's signed inbox read and signed answer (two ES256
// Device-Signatures and one approval signature, each made and checked), and
// the cloud's access and id tokens.
func BenchmarkSignInCrypto(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cloudKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	salt := make([]byte, 16)
	facts := trustapi.SignedFacts("user", "request", trustapi.EventLogin, time.Now().Unix(), true)
	for b.Loop() {
		_ = argon2.IDKey([]byte("1234"), salt, 2, 19*1024, 1, 32)
		for range 2 {
			h, _ := devsig.Sign(key, "kid", "POST", "/_app/login-requests/x/respond", facts, time.Now())
			s, _ := devsig.Parse(h)
			if err := s.Verify(&key.PublicKey, "POST", "/_app/login-requests/x/respond", facts, time.Now(), time.Minute); err != nil {
				b.Fatal(err)
			}
		}
		sig, _ := trustapi.Sign(key, facts)
		if !trustapi.Verify(&key.PublicKey, facts, sig) {
			b.Fatal("approval signature")
		}
		for range 2 {
			tok, _ := jwt.NewBuilder().Issuer("cloud").Subject("user").Audience([]string{"app"}).Expiration(time.Now().Add(time.Hour)).Build()
			if _, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), cloudKey)); err != nil {
				b.Fatal(err)
			}
		}
	}
}
