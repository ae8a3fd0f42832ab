package emulator

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authphone/authphone/internal/pgtest"
)

func TestMain(m *testing.M) {
	if db := os.Getenv("AUTHPHONE_TEST_CHILD_DB"); db != "" {
		os.Exit(runChild(db)) // durability_test.go runs the binary as an emulator
	}
	if os.Getenv("AUTHPHONE_BENCH_CHILD") != "" {
		os.Exit(runBenchChild()) // so does BenchmarkApproval
	}
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// storeMaker opens a fresh store of one implementation; replica opens a
// second store on the same state (nil where that is not possible).
type storeMaker struct {
	name string
	open func(t *testing.T) (Store, func(t *testing.T) Store)
}

var storeMakers = []storeMaker{
	{"memory", func(t *testing.T) (Store, func(*testing.T) Store) { return NewMemoryStore(), nil }},
	{"sqlite", func(t *testing.T) (Store, func(*testing.T) Store) {
		s, err := OpenSQLite(filepath.Join(t.TempDir(), "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, nil
	}},
	{"postgres", func(t *testing.T) (Store, func(*testing.T) Store) {
		url := pgtest.DB(t)
		open := func(t *testing.T) Store {
			s, err := OpenPostgres(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		return open(t), open
	}},
}

// forEachStore runs f against every implementation.
func forEachStore(t *testing.T, f func(t *testing.T, s Store, replica func(*testing.T) Store)) {
	for _, m := range storeMakers {
		t.Run(m.name, func(t *testing.T) {
			s, replica := m.open(t)
			f(t, s, replica)
		})
	}
}

// t0 is a time with nanoseconds, in UTC as stores give times back.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 891011, time.UTC)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

// authView is an authenticator with its key as bytes, for comparing.
type authView struct {
	A   Authenticator
	Pub []byte
}

func views(as ...*Authenticator) []authView {
	out := []authView{}
	for _, a := range as {
		v := authView{A: *a}
		v.Pub, _ = a.PublicKey.Bytes()
		v.A.PublicKey = nil
		out = append(out, v)
	}
	return out
}

// noSeq drops the order numbers the store assigns.
func noSeq(items []*InboxItem) []InboxItem {
	out := []InboxItem{}
	for _, it := range items {
		c := *it
		c.Seq = 0
		out = append(out, c)
	}
	return out
}

func vals[V any](ps []*V) []V {
	out := []V{}
	for _, p := range ps {
		out = append(out, *p)
	}
	return out
}

func newKey(t *testing.T) *ecdsa.PublicKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

// step is one operation of the conformance table and what it must give.
type step struct {
	name    string
	write   bool // run in Update (else View)
	do      func(Tx) (any, error)
	want    any
	wantErr error
}

func wrote(err error) (any, error) { return nil, err }

func conformance(t *testing.T) []step {
	k1, k2 := newKey(t), newKey(t)
	alice := &User{ID: "u1", Username: "alice", CreatedAt: at(1), UpdatedAt: at(1), LastLoginSuccess: at(7), LastLoginFailure: at(8)}
	headless := &User{ID: "u2", CreatedAt: at(2), UpdatedAt: at(2), Activated: false}
	a1 := &Authenticator{ID: "a1", UserID: "u1", KeyID: "k1", AAID: "F1D0#0001", PublicKey: k1, SignCounter: 3, Name: "phone",
		Type: "cli", CreatedAt: at(5)}
	a2 := &Authenticator{ID: "a2", UserID: "u1", KeyID: "k2", AAID: "F1D0#0002", PublicKey: k2, Name: "tablet", DeviceID: "d2",
		Type: "cli", CreatedAt: at(4)}
	a1c := *a1
	a1c.SignCounter, a1c.Deleted = 4_000_000_000, true
	tx1 := &Transaction{ID: "t1", Kind: KindApproval, UserID: "u1", AuthenticatorID: "a1", Message: "pay", Status: "pending", Number: 42, Choices: []int{17, 42, 88},
		CreatedAt: at(10), UpdatedAt: at(10), ExpiresAt: at(12)}
	tx2 := &Transaction{ID: "t2", Kind: KindEnroll, UserID: "u1", Status: "pending", CreatedAt: at(11), UpdatedAt: at(11), ExpiresAt: at(16)}
	tx3 := &Transaction{ID: "t3", Kind: KindEnroll, UserID: "u1", Status: "succeeded", Token: "jwt", CreatedAt: at(9), UpdatedAt: at(9), ExpiresAt: at(14)}
	tx1f := *tx1
	tx1f.Status, tx1f.Reason, tx1f.UpdatedAt = "failed", "user declined", at(11)
	dt := &DispatchToken{Token: "d1", Kind: "authentication", TransactionID: "t1", ExpiresAt: at(12)}
	dtr := *dt
	dtr.Redeemed = true
	s1 := &Session{ServerData: "s1", Op: "Auth", Challenge: "c", TransactionID: "t1", AuthenticatorID: "a1", Policy: []string{"F1D0#0001", "F1D0#0002"}, ExpiresAt: at(12)}
	s2 := &Session{ServerData: "s2", Op: "Reg", Challenge: "c2", TransactionID: "t1", ExpiresAt: at(12)}
	s3 := &Session{ServerData: "s3", Op: "Reg", Challenge: "c3", TransactionID: "t2", ExpiresAt: at(13)}
	i1 := &InboxItem{ID: "i1", AuthenticatorID: "a1", TransactionID: "t1", Token: "d1", Kind: "authentication", Payload: "{}",
		Notification: "n", Message: "pay", CreatedAt: at(10), ExpiresAt: at(12)}
	i2 := &InboxItem{ID: "i2", AuthenticatorID: "a1", LoginRequestID: "l1", Kind: "login-request", CreatedAt: at(10), ExpiresAt: at(13)}
	i0 := &InboxItem{ID: "i0", AuthenticatorID: "a1", LoginRequestID: "l2", Kind: "login-request", CreatedAt: at(9), ExpiresAt: at(13)}
	i3 := &InboxItem{ID: "i3", AuthenticatorID: "a2", TransactionID: "t2", CreatedAt: at(10), ExpiresAt: at(13)}
	in := &Intent{Token: "it", UserID: "u1", Username: "alice", Operation: "approve", Channels: []string{"app", "push"}, IssuedAt: at(1), ExpiresAt: at(6)}
	lr := &LoginRequest{ID: "l1", UserID: "u1", Identifier: "alice", CodeChallenge: "cc", PollToken: "pt", DeviceName: "desk",
		IP: "127.0.0.1", BindingCode: "123 456", Status: "approved", Signature: "sig", ApprovedBy: "a1", SignedAt: 1_700_000_000,
		Issued: true, LastPoll: at(2), CreatedAt: at(1), UpdatedAt: at(2), ExpiresAt: at(4)}
	pr := &Pairing{ID: "p1", UserID: "u1", PublicKey: "pk", KeyID: "kid", DeviceName: "desk", Status: "pending", CreatedAt: at(1), ExpiresAt: at(3)}
	r1 := &RefreshToken{Token: "r1", ChainID: "c1", UserID: "u1", Username: "alice", ExpiresAt: at(60)}
	r2 := &RefreshToken{Token: "r2", ChainID: "c1", UserID: "u1", Username: "alice", Used: true, ExpiresAt: at(60)}
	r3 := &RefreshToken{Token: "r3", ChainID: "c2", UserID: "u1", Username: "alice", ExpiresAt: at(60)}
	ch := &TokenChain{ID: "c1"}
	chr := &TokenChain{ID: "c1", Revoked: true}

	return []step{
		{name: "absent user", do: func(tx Tx) (any, error) { return tx.User("u1") }, want: (*User)(nil)},
		{name: "absent name", do: func(tx Tx) (any, error) { return tx.UserByName("alice") }, want: (*User)(nil)},
		{name: "put users", write: true, do: func(tx Tx) (any, error) {
			if err := tx.PutUser(headless); err != nil {
				return nil, err
			}
			return wrote(tx.PutUser(alice))
		}},
		{name: "user by id", do: func(tx Tx) (any, error) { return tx.User("u1") }, want: alice},
		{name: "user by name", do: func(tx Tx) (any, error) { return tx.UserByName("alice") }, want: alice},
		{name: "no user by empty name", do: func(tx Tx) (any, error) { return tx.UserByName("") }, want: (*User)(nil)},
		{name: "users oldest first", do: func(tx Tx) (any, error) { us, err := tx.Users(); return vals(us), err },
			want: []User{*alice, *headless}},
		{name: "rename", write: true, do: func(tx Tx) (any, error) {
			u, err := tx.User("u1")
			if err != nil {
				return nil, err
			}
			u.Username = "al"
			return wrote(tx.PutUser(u))
		}},
		{name: "old name gone from the index", do: func(tx Tx) (any, error) { return tx.UserByName("alice") }, want: (*User)(nil)},
		{name: "new name in the index", do: func(tx Tx) (any, error) { u, err := tx.UserByName("al"); return u.ID, err }, want: "u1"},
		{name: "a read is a copy", do: func(tx Tx) (any, error) {
			u, _ := tx.User("u1")
			u.Username = "changed without a put"
			u, err := tx.User("u1")
			return u.Username, err
		}, want: "al"},

		{name: "put authenticators", write: true, do: func(tx Tx) (any, error) {
			if err := tx.PutAuthenticator(a1); err != nil {
				return nil, err
			}
			return wrote(tx.PutAuthenticator(a2))
		}},
		{name: "authenticator by id", do: func(tx Tx) (any, error) { a, err := tx.Authenticator("a1"); return views(a), err }, want: views(a1)},
		{name: "authenticator by keyID", do: func(tx Tx) (any, error) { a, err := tx.AuthenticatorByKeyID("k2"); return views(a), err }, want: views(a2)},
		{name: "unknown keyID", do: func(tx Tx) (any, error) { return tx.AuthenticatorByKeyID("k9") }, want: (*Authenticator)(nil)},
		{name: "a user's authenticators oldest first", do: func(tx Tx) (any, error) {
			as, err := tx.UserAuthenticators("u1")
			return views(as...), err
		}, want: views(a2, a1)},
		{name: "counter and tombstone", write: true, do: func(tx Tx) (any, error) { return wrote(tx.PutAuthenticator(&a1c)) }},
		{name: "counter kept in full", do: func(tx Tx) (any, error) { a, err := tx.Authenticator("a1"); return views(a), err }, want: views(&a1c)},
		{name: "delete authenticator", write: true, do: func(tx Tx) (any, error) { return wrote(tx.DeleteAuthenticator("a2")) }},
		{name: "deleted is gone from the key index", do: func(tx Tx) (any, error) { return tx.AuthenticatorByKeyID("k2") }, want: (*Authenticator)(nil)},
		{name: "deleted is gone from the user index", do: func(tx Tx) (any, error) {
			as, err := tx.UserAuthenticators("u1")
			return views(as...), err
		}, want: views(&a1c)},

		{name: "put transactions", write: true, do: func(tx Tx) (any, error) {
			for _, x := range []*Transaction{tx1, tx2, tx3} {
				if err := tx.PutTransaction(x); err != nil {
					return nil, err
				}
			}
			return nil, nil
		}},
		{name: "transaction by id", do: func(tx Tx) (any, error) { return tx.Transaction("t3") }, want: tx3},
		{name: "pending of a user", do: func(tx Tx) (any, error) { ts, err := tx.PendingTransactions("u1", ""); return vals(ts), err },
			want: []Transaction{*tx1, *tx2}},
		{name: "pending of an authenticator", do: func(tx Tx) (any, error) { ts, err := tx.PendingTransactions("", "a1"); return vals(ts), err },
			want: []Transaction{*tx1}},
		{name: "pending of both", do: func(tx Tx) (any, error) { ts, err := tx.PendingTransactions("u1", "a1"); return vals(ts), err },
			want: []Transaction{*tx1}},
		{name: "fail a transaction", write: true, do: func(tx Tx) (any, error) { return wrote(tx.PutTransaction(&tx1f)) }},
		{name: "a failed one is not pending", do: func(tx Tx) (any, error) { ts, err := tx.PendingTransactions("", "a1"); return vals(ts), err },
			want: []Transaction{}},

		{name: "put dispatch token", write: true, do: func(tx Tx) (any, error) { return wrote(tx.PutDispatchToken(dt)) }},
		{name: "redeem it", write: true, do: func(tx Tx) (any, error) { return wrote(tx.PutDispatchToken(&dtr)) }},
		{name: "redeemed", do: func(tx Tx) (any, error) { return tx.DispatchToken("d1") }, want: &dtr},

		{name: "put sessions", write: true, do: func(tx Tx) (any, error) {
			for _, x := range []*Session{s3, s2, s1} {
				if err := tx.PutSession(x); err != nil {
					return nil, err
				}
			}
			return nil, nil
		}},
		{name: "session keeps its policy", do: func(tx Tx) (any, error) { return tx.Session("s1") }, want: s1},
		{name: "sessions of a transaction", do: func(tx Tx) (any, error) { ss, err := tx.TransactionSessions("t1"); return vals(ss), err },
			want: []Session{*s1, *s2}},
		{name: "delete session", write: true, do: func(tx Tx) (any, error) { return wrote(tx.DeleteSession("s1")) }},
		{name: "deleted session", do: func(tx Tx) (any, error) { return tx.Session("s1") }, want: (*Session)(nil)},

		{name: "put inbox", write: true, do: func(tx Tx) (any, error) {
			for _, x := range []*InboxItem{i1, i2, i3, i0} {
				c := *x
				if err := tx.PutInboxItem(&c); err != nil {
					return nil, err
				}
			}
			return nil, nil
		}},
		{name: "inbox oldest first, then in order of arrival", do: func(tx Tx) (any, error) { is, err := tx.Inbox("a1"); return noSeq(is), err },
			want: []InboxItem{*i0, *i1, *i2}},
		{name: "inbox of a transaction", do: func(tx Tx) (any, error) { is, err := tx.InboxItems("t1", ""); return noSeq(is), err },
			want: []InboxItem{*i1}},
		{name: "inbox of a login request", do: func(tx Tx) (any, error) { is, err := tx.InboxItems("", "l1"); return noSeq(is), err },
			want: []InboxItem{*i2}},
		{name: "delete one message", write: true, do: func(tx Tx) (any, error) { return wrote(tx.DeleteInboxItem("i1")) }},
		{name: "gone from the transaction index", do: func(tx Tx) (any, error) { is, err := tx.InboxItems("t1", ""); return noSeq(is), err },
			want: []InboxItem{}},
		{name: "clear an inbox", write: true, do: func(tx Tx) (any, error) { return wrote(tx.ClearInbox("a1")) }},
		{name: "cleared", do: func(tx Tx) (any, error) { is, err := tx.Inbox("a1"); return noSeq(is), err }, want: []InboxItem{}},
		{name: "other inboxes kept", do: func(tx Tx) (any, error) { is, err := tx.Inbox("a2"); return noSeq(is), err }, want: []InboxItem{*i3}},

		{name: "put intent", write: true, do: func(tx Tx) (any, error) { return wrote(tx.PutIntent(in)) }},
		{name: "intent", do: func(tx Tx) (any, error) { return tx.Intent("it") }, want: in},
		{name: "fresh nonce", write: true, do: func(tx Tx) (any, error) { return tx.UseNonce("n1", at(3)) }, want: true},
		{name: "replayed nonce", write: true, do: func(tx Tx) (any, error) { return tx.UseNonce("n1", at(3)) }, want: false},
		{name: "revoke", write: true, do: func(tx Tx) (any, error) { return wrote(tx.Revoke("j1", at(30))) }},
		{name: "revoked", do: func(tx Tx) (any, error) { return tx.IsRevoked("j1") }, want: true},
		{name: "not revoked", do: func(tx Tx) (any, error) { return tx.IsRevoked("j2") }, want: false},
		{name: "put login request", write: true, do: func(tx Tx) (any, error) { return wrote(tx.PutLoginRequest(lr)) }},
		{name: "login request", do: func(tx Tx) (any, error) { return tx.LoginRequest("l1") }, want: lr},
		{name: "put pairing", write: true, do: func(tx Tx) (any, error) { return wrote(tx.PutPairing(pr)) }},
		{name: "pairing", do: func(tx Tx) (any, error) { return tx.Pairing("p1") }, want: pr},
		{name: "put refresh tokens and chain", write: true, do: func(tx Tx) (any, error) {
			for _, x := range []*RefreshToken{r3, r2, r1} {
				if err := tx.PutRefreshToken(x); err != nil {
					return nil, err
				}
			}
			if err := tx.AddChainToken("c1", "j1", at(30)); err != nil {
				return nil, err
			}
			if err := tx.AddChainToken("c1", "j3", at(31)); err != nil {
				return nil, err
			}
			return wrote(tx.PutChain(ch))
		}},
		{name: "refresh token", do: func(tx Tx) (any, error) { return tx.RefreshToken("r2") }, want: r2},
		{name: "a chain's refresh tokens", do: func(tx Tx) (any, error) { rs, err := tx.ChainRefreshTokens("c1"); return vals(rs), err },
			want: []RefreshToken{*r1, *r2}},
		{name: "a chain's tokens", do: func(tx Tx) (any, error) { return tx.ChainTokens("c1") },
			want: map[string]time.Time{"j1": at(30), "j3": at(31)}},
		{name: "revoke chain", write: true, do: func(tx Tx) (any, error) { return wrote(tx.PutChain(chr)) }},
		{name: "chain", do: func(tx Tx) (any, error) { return tx.Chain("c1") }, want: chr},
		{name: "absent meta", do: func(tx Tx) (any, error) { return tx.Meta("issuer") }, want: []byte(nil)},
		{name: "put meta", write: true, do: func(tx Tx) (any, error) { return wrote(tx.PutMeta("issuer", []byte{0, 1, 2, 255})) }},
		{name: "meta", do: func(tx Tx) (any, error) { return tx.Meta("issuer") }, want: []byte{0, 1, 2, 255}},
		{name: "no writes in View", do: func(tx Tx) (any, error) { return wrote(tx.PutUser(&User{ID: "u9"})) }, wantErr: errReadOnly},

		// Sweep at minute 13 with a 2-minute retention (cutoff minute 11):
		// t1 (expired at 12) is kept, sessions expired by 13 go, nonce n1
		// (until 3) goes, pairing p1 (expired 3) and login l1 (4) go.
		{name: "sweep", write: true, do: func(tx Tx) (any, error) { return tx.Sweep(at(13), at(11)) }, want: 5},
		{name: "swept session", do: func(tx Tx) (any, error) { return tx.Session("s2") }, want: (*Session)(nil)},
		{name: "kept session", do: func(tx Tx) (any, error) { return tx.Session("s3") }, want: s3},
		{name: "swept nonce may come again", write: true, do: func(tx Tx) (any, error) { return tx.UseNonce("n1", at(20)) }, want: true},
		{name: "retained transaction", do: func(tx Tx) (any, error) { return tx.Transaction("t1") }, want: &tx1f},
		{name: "swept pairing", do: func(tx Tx) (any, error) { return tx.Pairing("p1") }, want: (*Pairing)(nil)},
		{name: "sweep past the retention", write: true, do: func(tx Tx) (any, error) { return tx.Sweep(at(20), at(15)) }},
		{name: "forgotten transaction", do: func(tx Tx) (any, error) { return tx.Transaction("t1") }, want: (*Transaction)(nil)},
		{name: "forgotten token", do: func(tx Tx) (any, error) { return tx.DispatchToken("d1") }, want: (*DispatchToken)(nil)},
		{name: "transaction expiring later kept", do: func(tx Tx) (any, error) { return tx.Transaction("t2") }, want: tx2},
		{name: "users are never swept", do: func(tx Tx) (any, error) { u, err := tx.User("u2"); return u, err }, want: headless},
	}
}

// TestStoreConformance runs the table against every store.
func TestStoreConformance(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ func(*testing.T) Store) {
		ctx := context.Background()
		for i, st := range conformance(t) {
			var got any
			run := s.View
			if st.write {
				run = s.Update
			}
			err := run(ctx, func(tx Tx) error {
				var err error
				got, err = st.do(tx)
				return err
			})
			if st.wantErr != nil {
				if !errors.Is(err, st.wantErr) {
					t.Fatalf("step %d %q: error %v, want %v", i, st.name, err, st.wantErr)
				}
				continue
			}
			if err != nil {
				t.Fatalf("step %d %q: %v", i, st.name, err)
			}
			if st.want != nil && !reflect.DeepEqual(got, st.want) {
				t.Fatalf("step %d %q:\n got %#v\nwant %#v", i, st.name, got, st.want)
			}
		}
	})
}

// TestStoreAllOrNothing: a transaction that fails leaves nothing, one that
// fails with commitWith keeps its writes, and wake-ups follow commits only.
func TestStoreAllOrNothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ func(*testing.T) Store) {
		ctx := context.Background()
		woke := make(chan string, 10)
		defer s.Subscribe(func(k string) { woke <- k })()
		boom := errors.New("boom")
		err := s.Update(ctx, func(tx Tx) error {
			if err := tx.PutUser(&User{ID: "u1", Username: "alice", CreatedAt: t0}); err != nil {
				return err
			}
			if err := tx.PutAuthenticator(&Authenticator{ID: "a1", UserID: "u1", KeyID: "k1", PublicKey: newKey(t), CreatedAt: t0}); err != nil {
				return err
			}
			if _, err := tx.UseNonce("n", t0); err != nil {
				return err
			}
			if err := tx.PutMeta("m", []byte("x")); err != nil {
				return err
			}
			tx.Wake("lost")
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Update returned %v, want fn's error", err)
		}
		err = s.View(ctx, func(tx Tx) error {
			u, _ := tx.UserByName("alice")
			a, _ := tx.AuthenticatorByKeyID("k1")
			as, _ := tx.UserAuthenticators("u1")
			m, _ := tx.Meta("m")
			if u != nil || a != nil || len(as) != 0 || m != nil {
				return fmt.Errorf("a failed transaction left %v %v %v %q", u, a, as, m)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Update(ctx, func(tx Tx) error {
			fresh, err := tx.UseNonce("n", t0)
			if err != nil || !fresh {
				return fmt.Errorf("the nonce of a failed transaction stayed: %v %v", fresh, err)
			}
			if err := tx.PutUser(&User{ID: "u2", CreatedAt: t0}); err != nil {
				return err
			}
			tx.Wake("kept")
			return commitWith(boom)
		})
		if !errors.Is(err, boom) {
			t.Fatalf("commitWith: Update returned %v", err)
		}
		_ = s.View(ctx, func(tx Tx) error {
			if u, _ := tx.User("u2"); u == nil {
				t.Error("commitWith did not keep the write")
			}
			return nil
		})
		select {
		case k := <-woke:
			if k != "kept" {
				t.Fatalf("woke %q, want only the committed key", k)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no wake-up after a commit")
		}
	})
}

// TestStoreConcurrentTransactions: transactions on the same key run as if
// one after the other: a token is redeemed once, no counter step is lost,
// a nonce is fresh once. On PostgreSQL half the goroutines use a second
// store on the same database (a second replica).
func TestStoreConcurrentTransactions(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, replica func(*testing.T) Store) {
		ctx := context.Background()
		stores := []Store{s}
		if replica != nil {
			stores = append(stores, replica(t))
		}
		key := newKey(t)
		err := s.Update(ctx, func(tx Tx) error {
			if err := tx.PutDispatchToken(&DispatchToken{Token: "d", Kind: "authentication", ExpiresAt: at(10)}); err != nil {
				return err
			}
			return tx.PutAuthenticator(&Authenticator{ID: "a", UserID: "u", KeyID: "k", PublicKey: key, CreatedAt: t0})
		})
		if err != nil {
			t.Fatal(err)
		}
		const n = 16
		var redeemed, fresh atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 3*n)
		for i := range n {
			st := stores[i%len(stores)]
			wg.Add(3)
			go func() {
				defer wg.Done()
				won := false
				err := st.Update(ctx, func(tx Tx) error {
					won = false
					dt, err := tx.DispatchToken("d")
					if err != nil || dt.Redeemed {
						return err
					}
					dt.Redeemed, won = true, true
					return tx.PutDispatchToken(dt)
				})
				if err != nil {
					errs <- err
				} else if won {
					redeemed.Add(1)
				}
			}()
			go func() {
				defer wg.Done()
				errs <- st.Update(ctx, func(tx Tx) error {
					a, err := tx.Authenticator("a")
					if err != nil {
						return err
					}
					a.SignCounter++
					return tx.PutAuthenticator(a)
				})
			}()
			go func() {
				defer wg.Done()
				ok := false
				errs <- st.Update(ctx, func(tx Tx) error {
					var err error
					ok, err = tx.UseNonce("same", at(10))
					return err
				})
				if ok {
					fresh.Add(1)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if redeemed.Load() != 1 {
			t.Errorf("the token was redeemed %d times", redeemed.Load())
		}
		if fresh.Load() != 1 {
			t.Errorf("the nonce was fresh %d times", fresh.Load())
		}
		_ = s.View(ctx, func(tx Tx) error {
			a, err := tx.Authenticator("a")
			if err != nil || a.SignCounter != n {
				t.Errorf("counter %d after %d increments (%v)", a.SignCounter, n, err)
			}
			return nil
		})
	})
}

// TestStoreConcurrentFailures runs many Updates at once (on SQLite they
// share commits), a third of them failing after writing and a third
// keeping their writes while returning an error: each one's writes are
// visible exactly when its Update commits them, whatever its neighbours
// did.
func TestStoreConcurrentFailures(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ func(*testing.T) Store) {
		ctx := context.Background()
		const n = 48
		errNo, errKept := errors.New("no"), errors.New("kept")
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("u%02d", i)
				err := s.Update(ctx, func(tx Tx) error {
					if err := tx.PutUser(&User{ID: id, Username: id, CreatedAt: t0}); err != nil {
						return err
					}
					if _, err := tx.UseNonce("n"+id, at(10)); err != nil {
						return err
					}
					switch i % 3 {
					case 1:
						return errNo
					case 2:
						return commitWith(errKept)
					}
					return nil
				})
				want := []error{nil, errNo, errKept}[i%3]
				if !errors.Is(err, want) || (want == nil && err != nil) {
					t.Errorf("%s: Update = %v, want %v", id, err, want)
				}
			}()
		}
		wg.Wait()
		err := s.Update(ctx, func(tx Tx) error {
			for i := range n {
				id := fmt.Sprintf("u%02d", i)
				u, err := tx.User(id)
				if err != nil {
					return err
				}
				fresh, err := tx.UseNonce("n"+id, at(10))
				if err != nil {
					return err
				}
				if kept := i%3 != 1; (u != nil) != kept || fresh == kept {
					t.Errorf("%s: user %v, nonce fresh again %v; want the writes kept: %v", id, u != nil, fresh, kept)
				}
			}
			return errNo // leave the nonces as they were
		})
		if !errors.Is(err, errNo) {
			t.Fatal(err)
		}
	})
}
