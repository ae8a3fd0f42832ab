package emulator

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/uaf"
)

// SeedUsers puts n enrolled users (one authenticator each, each with a key
// object of its own) into s through the Store API, in batches: what n
// enrolments leave behind.
func SeedUsers(s Store, n int) error {
	var pubs [][]byte // parsing one of a few keys is cheaper than making n
	for range 16 {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		p, _ := k.PublicKey.Bytes()
		pubs = append(pubs, p)
	}
	t0 := time.Now().UTC()
	const batch = 2000
	for start := 0; start < n; start += batch {
		err := s.Update(context.Background(), func(tx Tx) error {
			for i := start; i < min(start+batch, n); i++ {
				u := &User{ID: fmt.Sprintf("seed-user-%06d", i), Username: fmt.Sprintf("seed%06d", i), CreatedAt: t0, UpdatedAt: t0, Activated: true}
				if err := tx.PutUser(u); err != nil {
					return err
				}
				kid := make([]byte, 32)
				_, _ = rand.Read(kid)
				pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pubs[i%len(pubs)])
				if err != nil {
					return err
				}
				a := &Authenticator{ID: fmt.Sprintf("seed-auth-%06d", i), UserID: u.ID, KeyID: uaf.B64.EncodeToString(kid),
					AAID: deviceapi.AAIDPIN, PublicKey: pub, Name: "seed", Type: "phone", CreatedAt: t0}
				if err := tx.PutAuthenticator(a); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// runBenchChild serves an emulator for BenchmarkApproval, each store and
// size in a process of its own (its own heap, its own CPU time to read):
// on $AUTHPHONE_BENCH_DB (empty: memory; a postgres:// URL; else a SQLite
// file, synchronous=$AUTHPHONE_BENCH_SYNC), with $AUTHPHONE_BENCH_USERS
// users seeded. It prints its URL once listening and ends when its stdin
// closes (when the benchmark ends, or dies).
func runBenchChild() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 1 }
	var store Store
	var err error
	switch db := os.Getenv("AUTHPHONE_BENCH_DB"); {
	case db == "":
		store = NewMemoryStore()
	case IsPostgresURL(db):
		store, err = OpenPostgres(context.Background(), db)
	default:
		store, err = OpenSQLite(db, WithSQLiteSync(os.Getenv("AUTHPHONE_BENCH_SYNC")))
	}
	if err != nil {
		return fail(err)
	}
	defer store.Close()
	n, err := strconv.Atoi(os.Getenv("AUTHPHONE_BENCH_USERS"))
	if err != nil {
		return fail(err)
	}
	if err := SeedUsers(store, n); err != nil {
		return fail(err)
	}
	s, err := New(WithAccessKey("test-key"), WithStore(store), WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		return fail(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		return fail(err)
	}
	runtime.GC() // the seeding's garbage is not the approvals' cost
	fmt.Println(s.URL())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = s.Close(context.Background())
	return 0
}
