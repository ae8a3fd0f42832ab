package emulator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authphone/authphone/sdk/adminapi"
)

// BenchmarkSQLiteFleetWrites writes what a fleet's approvals write, at the
// store alone (no HTTP, no crypto): K users, each enrolled as the emulator
// enrols (a user, an authenticator, the enrolment's transaction, dispatch
// token and events, a nonce), then approvals of users picked at random,
// each the four transactions of the delivered path (the approval with its
// dispatch token, inbox message and event; the inbox read's nonce; the
// delivered request's session; the answer: transaction, token, message and
// session settled, the user's last login and the authenticator's counter,
// an event). It reports the CPU and the wall time per approval, so that
// the cost of 10 000 users can be set against 100's without a fleet's
// noise (issue 9: a fleet of 10 000 at the approvals/s of 100).
func BenchmarkSQLiteFleetWrites(b *testing.B) {
	for _, sync := range []string{"normal", "full"} {
		for _, k := range []int{100, 10_000} {
			b.Run(fmt.Sprintf("sync=%s/users=%d", sync, k), func(b *testing.B) {
				s, err := OpenSQLite(filepath.Join(b.TempDir(), "fleet.db"), WithSQLiteSync(sync))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { s.Close() })
				ctx := context.Background()
				t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
				pub := make([]byte, 65)
				pub[0] = 4
				msg := strings.Repeat("m", 120)
				payload := strings.Repeat("p", 400)
				users := make([]*User, k)
				auths := make([]*Authenticator, k)
				for start := 0; start < k; start += 100 {
					err := s.Update(ctx, func(tx Tx) error {
						for i := start; i < min(start+100, k); i++ {
							u := &User{ID: uuid.NewString(), Username: fmt.Sprintf("fleet-%06d", i), CreatedAt: t0, UpdatedAt: t0, Activated: true}
							a := &Authenticator{ID: uuid.NewString(), UserID: u.ID, KeyID: uuid.NewString() + uuid.NewString()[:8], AAID: "4e4e#4005",
								Name: "phone", Type: "phone", DeviceID: uuid.NewString(), CreatedAt: t0}
							a.PublicKey = nil
							users[i], auths[i] = u, a
							x := &Transaction{ID: uuid.NewString(), Kind: KindEnroll, UserID: u.ID, Status: "succeeded", Message: msg, CreatedAt: t0, UpdatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
							if err := firstErr(tx.PutUser(u), putAuthRaw(tx, a, pub), tx.PutTransaction(x),
								tx.PutDispatchToken(&DispatchToken{Token: uuid.NewString(), Kind: "registration", TransactionID: x.ID, ExpiresAt: x.ExpiresAt, Redeemed: true}),
								tx.AddEvent(&adminapi.Event{Type: "user.enrolled", Time: t0, UserID: u.ID}),
								tx.AddEvent(&adminapi.Event{Type: "authenticator.registered", Time: t0, UserID: u.ID, AuthenticatorID: a.ID})); err != nil {
								return err
							}
							if _, err := tx.UseNonce(uuid.NewString(), t0.Add(time.Minute)); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				rng := rand.New(rand.NewPCG(1, 2))
				approve := func(n int) {
					i := rng.IntN(k)
					u, a := users[i], auths[i]
					now := t0.Add(time.Duration(n) * time.Millisecond)
					x := &Transaction{ID: uuid.NewString(), Kind: "auth", UserID: u.ID, AuthenticatorID: a.ID, Message: msg, Status: "pending",
						CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(5 * time.Minute)}
					dt := &DispatchToken{Token: uuid.NewString(), Kind: "authentication", TransactionID: x.ID, ExpiresAt: x.ExpiresAt}
					ib := &InboxItem{ID: uuid.NewString(), AuthenticatorID: a.ID, Token: dt.Token, TransactionID: x.ID, Kind: "authentication",
						Payload: payload, Message: msg, CreatedAt: now, ExpiresAt: x.ExpiresAt}
					sess := &Session{ServerData: ib.ID + ".r", Op: "Auth", Challenge: uuid.NewString(), TransactionID: x.ID, AuthenticatorID: a.ID, ExpiresAt: x.ExpiresAt}
					steps := []func(tx Tx) error{
						func(tx Tx) error {
							return firstErr(tx.PutTransaction(x), tx.PutDispatchToken(dt), tx.PutInboxItem(ib),
								tx.AddEvent(&adminapi.Event{Type: "approval.created", Time: now, UserID: u.ID, OperationID: x.ID}))
						},
						func(tx Tx) error { _, err := tx.UseNonce(uuid.NewString(), now.Add(time.Minute)); return err },
						func(tx Tx) error { return tx.PutSession(sess) },
						func(tx Tx) error {
							y, d, uu := *x, *dt, *u
							y.Status, y.UpdatedAt, d.Redeemed, uu.LastLoginSuccess = "succeeded", now, true, now
							aa := *a
							aa.SignCounter = uint32(n)
							return firstErr(tx.PutTransaction(&y), tx.PutDispatchToken(&d), tx.DeleteInboxItem(ib.ID), tx.DeleteSession(sess.ServerData),
								tx.PutUser(&uu), putAuthRaw(tx, &aa, pub),
								tx.AddEvent(&adminapi.Event{Type: "approval.succeeded", Time: now, UserID: u.ID, OperationID: x.ID, Status: "succeeded"}))
						},
					}
					for _, fn := range steps {
						if err := s.Update(ctx, fn); err != nil {
							b.Fatal(err)
						}
					}
				}
				for n := range 500 { // warm
					approve(-n)
				}
				r0, w0 := benchIO()
				cpu0, wall0 := benchCPU(), time.Now()
				n := 0
				for b.Loop() {
					approve(n)
					n++
				}
				b.ReportMetric(float64(benchCPU()-cpu0)/float64(n), "cpu-ns/op")
				b.ReportMetric(float64(time.Since(wall0))/float64(n), "wall-ns/op")
				r1, w1 := benchIO()
				b.ReportMetric(float64(r1-r0)/float64(n), "reads/op")
				b.ReportMetric(float64(w1-w0)/float64(n), "writes/op")
			})
		}
	}
}

// putAuthRaw stores a with the 65 bytes of a public key, without parsing one.
func putAuthRaw(tx Tx, a *Authenticator, pub []byte) error {
	if mt, ok := tx.(*memTx); ok {
		m := &memAuth{Authenticator: *a, packed: true}
		copy(m.pub[:], pub)
		return put(mt, mt.m.auths, m)
	}
	return tx.PutAuthenticator(a)
}

// benchIO is how many read and write system calls this process has made
// (/proc/self/io: syscr, syscw); in this benchmark only SQLite makes them.
func benchIO() (reads, writes int64) {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(raw), "\n") {
		name, v, _ := strings.Cut(l, ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch name {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes
}

func benchCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
