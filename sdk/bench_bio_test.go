package sdk_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"syscall"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/backend"
	"github.com/authphone/authphone/sdk/cloudapi"
)

// BenchmarkApprovalBiometricCrypto is the crypto of one biometric approval
// alone: 3 P-256 signatures (the phone's signed inbox read, its UAF
// assertion, the cloud's transaction token) and 2 verifications (the
// cloud's checks of the first two).
func BenchmarkApprovalBiometricCrypto(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cloudKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := sha256.Sum256([]byte("the signed data of an authentication assertion"))
	defer cpuPerOp(b)()
	for b.Loop() {
		for range 2 {
			sig, err := ecdsa.SignASN1(rand.Reader, key, d[:])
			if err != nil || !ecdsa.VerifyASN1(&key.PublicKey, d[:], sig) {
				b.Fatal("sign/verify")
			}
		}
		if _, err := ecdsa.SignASN1(rand.Reader, cloudKey, d[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApprovalBiometric is a full biometric push approval: the
// backend's approval call, the phone's Next (one signed inbox read), its
// flow (redeem, confirm, biometric, assertion) and the backend reading
// succeeded; over loopback HTTP, and in process (sdk.WithInProcess, no
// sockets). Compare with BenchmarkApprovalBiometricCrypto.
func BenchmarkApprovalBiometric(b *testing.B) {
	for _, d := range []sdk.Durability{sdk.DurabilityFull, sdk.DurabilityRelaxed} {
		b.Run("loopback/durability="+d.String(), func(b *testing.B) {
			e := newEnv(b)
			p, err := sdk.New("bench", keystore.NewMemory(), sdk.WithStateDir(b.TempDir()), sdk.WithCloud(e.emu.URL()), sdk.WithDurability(d))
			if err != nil {
				b.Fatal(err)
			}
			benchApprovals(b, e.ctx, e.be, p)
		})
	}
	for _, d := range []sdk.Durability{sdk.DurabilityFull, sdk.DurabilityRelaxed} {
		b.Run("inprocess/durability="+d.String(), func(b *testing.B) {
			const base = "http://cloud.invalid"
			emu, err := emulator.New(emulator.WithBaseURL(base))
			if err != nil {
				b.Fatal(err)
			}
			h := emu.Handler()
			be := backend.New(base, backend.WithAccessKey(emu.AccessKey()), backend.WithHTTPClient(sdkClient(h)))
			p, err := sdk.New("inproc", keystore.NewMemory(), sdk.WithStateDir(b.TempDir()), sdk.WithCloud(base),
				sdk.WithInProcess(h), sdk.WithDurability(d))
			if err != nil {
				b.Fatal(err)
			}
			benchApprovals(b, context.Background(), be, p)
		})
	}
}

// cpuPerOp reports the process's CPU time per op (cpu-µs/op): under load
// from other processes it is steadier than the wall clock. Call the
// returned func when the loop is done.
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

func benchApprovals(b *testing.B, ctx context.Context, be *backend.Client, p *sdk.Phone) {
	u, _, err := be.Enroll(ctx, cloudapi.EnrollRequest{Username: "alice"})
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
	answer := flows.Answers{Confirm: true, Biometric: true}.Answer
	b.ResetTimer()
	defer cpuPerOp(b)()
	for b.Loop() {
		ap, _, err := be.Approve(ctx, cloudapi.ApprovalRequest{Username: "alice"})
		if err != nil {
			b.Fatal(err)
		}
		r, err := p.Next(ctx, sdk.Select{})
		if err != nil {
			b.Fatal(err)
		}
		f, err := p.Approve(ctx, r)
		if err != nil {
			b.Fatal(err)
		}
		if last := flows.Drive(f, answer, nil); last.State != flows.Done {
			b.Fatal(last.Err)
		}
		if st, err := be.Status(ctx, ap.StatusToken, 0); err != nil || st.Status != cloudapi.StatusSucceeded {
			b.Fatalf("%+v %v", st, err)
		}
	}
}
