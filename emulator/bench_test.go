package emulator_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/internal/pgtest"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/uaf"
)

// benchStores open an empty store of each kind for a benchmark.
var benchStores = []struct {
	name string
	open func(b *testing.B) emulator.Store
}{
	{"memory", func(b *testing.B) emulator.Store { return emulator.NewMemoryStore() }},
	{"sqlite", func(b *testing.B) emulator.Store {
		s, err := emulator.OpenSQLite(filepath.Join(b.TempDir(), "bench.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}},
	{"sqlite-normal", func(b *testing.B) emulator.Store { // --db-sync normal
		s, err := emulator.OpenSQLite(filepath.Join(b.TempDir(), "bench.db"), emulator.WithSQLiteSync("normal"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}},
	{"postgres", func(b *testing.B) emulator.Store {
		s, err := emulator.OpenPostgres(context.Background(), pgtest.DB(b))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}},
}

// seed puts n enrolled users (one authenticator each) into s, in batches,
// through the Store API: what n enrolments leave behind.
func seed(b *testing.B, s emulator.Store, n int) {
	b.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	t0 := time.Now().UTC()
	const batch = 2000
	for start := 0; start < n; start += batch {
		err := s.Update(context.Background(), func(tx emulator.Tx) error {
			for i := start; i < min(start+batch, n); i++ {
				u := &emulator.User{ID: fmt.Sprintf("seed-user-%06d", i), Username: fmt.Sprintf("seed%06d", i), CreatedAt: t0, UpdatedAt: t0, Activated: true}
				if err := tx.PutUser(u); err != nil {
					return err
				}
				kid := make([]byte, 32)
				_, _ = rand.Read(kid)
				a := &emulator.Authenticator{ID: fmt.Sprintf("seed-auth-%06d", i), UserID: u.ID, KeyID: uaf.B64.EncodeToString(kid),
					AAID: deviceapi.AAIDPIN, PublicKey: &k.PublicKey, Name: "seed", Type: "phone", CreatedAt: t0}
				if err := tx.PutAuthenticator(a); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApproval is one push approval, end to end over loopback
// (approval → inbox → redeem → signed assertion → status), on each store
// with 0 to 100 000 other users enrolled: the cost must not grow with the
// number of users.
func BenchmarkApproval(b *testing.B) {
	for _, st := range benchStores {
		for _, users := range []int{0, 1_000, 10_000, 100_000} {
			b.Run(fmt.Sprintf("store=%s/users=%d", st.name, users), func(b *testing.B) {
				store := st.open(b)
				seed(b, store, users)
				s, err := emulator.New(emulator.WithAccessKey("test-key"), emulator.WithStore(store))
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Start("127.0.0.1:0"); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = s.Close(context.Background()) })
				c := &cloud{t: b, url: s.URL()}
				d := newDevice()
				c.enrolled(d, "bench")
				for b.Loop() {
					ap := c.approve(cloudapi.ApprovalRequest{Username: "bench"})
					d.counter++
					if code, sb := c.answer(d, ap.TransactionID, d.counter); code != 200 {
						b.Fatalf("authenticate: %d %+v", code, sb)
					}
					if got := c.status(ap.StatusToken); got != cloudapi.StatusSucceeded {
						b.Fatalf("status %s", got)
					}
				}
			})
		}
	}
}
