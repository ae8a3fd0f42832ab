package emulator

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/authphone/authphone/sdk/adminapi"
)

func eventTypes(evs []*adminapi.Event) string {
	out := []string{}
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%d:%s", e.ID, e.Type))
	}
	return strings.Join(out, " ")
}

// TestStoreEventLog: events are logged with their transaction or not at
// all, numbered in commit order from 1, read after an ID with a limit,
// kept through Reset, and swept after the retention — on every store.
func TestStoreEventLog(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ func(*testing.T) Store) {
		ctx := context.Background()
		add := func(typ string, at0 int) func(Tx) error {
			return func(tx Tx) error {
				return tx.AddEvent(&adminapi.Event{Type: typ, Time: at(at0), UserID: "u1", Data: map[string]string{"k": typ}})
			}
		}
		if err := s.Update(ctx, func(tx Tx) error {
			if err := add("a", 0)(tx); err != nil {
				return err
			}
			return add("b", 0)(tx)
		}); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		if err := s.Update(ctx, func(tx Tx) error {
			if err := add("rolled-back", 1)(tx); err != nil {
				return err
			}
			return boom
		}); !errors.Is(err, boom) {
			t.Fatalf("failed update: %v", err)
		}
		if err := s.Update(ctx, func(tx Tx) error {
			if err := add("kept", 2)(tx); err != nil {
				return err
			}
			return commitWith(boom)
		}); !errors.Is(err, boom) {
			t.Fatalf("commitWith update: %v", err)
		}
		if err := s.Update(ctx, func(tx Tx) error {
			if err := tx.PutUser(&User{ID: "u1", Username: "ann", CreatedAt: t0, UpdatedAt: t0}); err != nil {
				return err
			}
			return add("late", 90)(tx)
		}); err != nil {
			t.Fatal(err)
		}
		read := func(since int64, limit int) ([]*adminapi.Event, int64) {
			t.Helper()
			var evs []*adminapi.Event
			var last int64
			err := s.View(ctx, func(tx Tx) error {
				var err error
				if evs, err = tx.Events(since, limit); err != nil {
					return err
				}
				last, err = tx.LastEventID()
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return evs, last
		}
		evs, last := read(0, -1)
		if got, want := eventTypes(evs), "1:a 2:b 3:kept 4:late"; got != want || last != 4 {
			t.Fatalf("log %s (last %d), want %s (last 4)", got, last, want)
		}
		if evs[0].UserID != "u1" || evs[0].Data["k"] != "a" || !evs[0].Time.Equal(t0) {
			t.Fatalf("event fields did not round-trip: %+v", evs[0])
		}
		if evs, _ := read(1, 2); eventTypes(evs) != "2:b 3:kept" {
			t.Fatalf("since 1 limit 2: %s", eventTypes(evs))
		}
		if evs, _ := read(4, -1); len(evs) != 0 {
			t.Fatalf("since the last: %s", eventTypes(evs))
		}
		if err := s.View(ctx, func(tx Tx) error { return tx.AddEvent(&adminapi.Event{Type: "x"}) }); err == nil {
			t.Fatal("AddEvent inside View succeeded")
		}

		// Reset forgets the user, keeps the log; the next ID goes on.
		if err := s.Update(ctx, func(tx Tx) error {
			if err := tx.Reset(); err != nil {
				return err
			}
			return add("reset", 91)(tx)
		}); err != nil {
			t.Fatal(err)
		}
		var c Counts
		if err := s.View(ctx, func(tx Tx) error { var err error; c, err = tx.Counts(); return err }); err != nil {
			t.Fatal(err)
		}
		if c.Users != 0 {
			t.Fatalf("users after reset: %+v", c)
		}
		// Sweep with the cutoff at minute 60 drops the first three.
		if err := s.Update(ctx, func(tx Tx) error { _, err := tx.Sweep(at(100), at(60)); return err }); err != nil {
			t.Fatal(err)
		}
		if evs, last := read(0, -1); eventTypes(evs) != "4:late 5:reset" || last != 5 {
			t.Fatalf("after reset and sweep: %s (last %d)", eventTypes(evs), last)
		}
	})
}

// TestStoreEventOrderUnderConcurrency: writers log at once (on PostgreSQL
// through two stores, as two replicas); a reader following the log with
// since= must see IDs 1, 2, 3… with no gap ever filled later — an ID is
// only visible once every lower one is.
func TestStoreEventOrderUnderConcurrency(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, replica func(*testing.T) Store) {
		stores := []Store{s}
		if replica != nil {
			stores = append(stores, replica(t))
		}
		const writers, each = 8, 15
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st := stores[w%len(stores)]
				for i := range each {
					err := st.Update(ctx, func(tx Tx) error {
						if err := tx.PutUser(&User{ID: fmt.Sprintf("w%d-%d", w, i), Username: fmt.Sprintf("w%d-%d", w, i), CreatedAt: t0, UpdatedAt: t0}); err != nil {
							return err
						}
						return tx.AddEvent(&adminapi.Event{Type: "t", UserID: fmt.Sprint(w)})
					})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		var last int64
		reader := stores[len(stores)-1]
		for finished := false; !finished; {
			select {
			case <-done:
				finished = true
			default:
			}
			err := reader.View(ctx, func(tx Tx) error {
				evs, err := tx.Events(last, -1)
				for _, e := range evs {
					if e.ID != last+1 {
						return fmt.Errorf("read ID %d after %d: a lower ID became visible later", e.ID, last)
					}
					last = e.ID
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if last != writers*each {
			t.Fatalf("read up to %d, want %d", last, writers*each)
		}
	})
}

// TestStoreExpiredPending: only pending transactions whose time is up are
// listed, soonest first, on every store.
func TestStoreExpiredPending(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ func(*testing.T) Store) {
		ctx := context.Background()
		txs := []*Transaction{
			{ID: "late", Kind: KindApproval, Status: "pending", CreatedAt: at(0), UpdatedAt: at(0), ExpiresAt: at(2)},
			{ID: "early", Kind: KindApproval, Status: "pending", CreatedAt: at(0), UpdatedAt: at(0), ExpiresAt: at(1)},
			{ID: "live", Kind: KindApproval, Status: "pending", CreatedAt: at(0), UpdatedAt: at(0), ExpiresAt: at(9)},
			{ID: "done", Kind: KindApproval, Status: "succeeded", CreatedAt: at(0), UpdatedAt: at(0), ExpiresAt: at(1)},
		}
		if err := s.Update(ctx, func(tx Tx) error {
			for _, x := range txs {
				if err := tx.PutTransaction(x); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var ids []string
		if err := s.View(ctx, func(tx Tx) error {
			got, err := tx.ExpiredPending(at(5), 10)
			for _, x := range got {
				ids = append(ids, x.ID)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ids) != "[early late]" {
			t.Fatalf("expired pending %v", ids)
		}
	})
}

// BenchmarkEventLogCost: one Update writing a transaction, without and
// with an event logged in it, per store: the event log's share of a
// state change (the figure in ARCHITECTURE.md is the ratio).
func BenchmarkEventLogCost(b *testing.B) {
	open := map[string]func(b *testing.B) Store{
		"memory": func(*testing.B) Store { return NewMemoryStore() },
		"sqlite": func(b *testing.B) Store {
			s, err := OpenSQLite(filepath.Join(b.TempDir(), "state.db"), WithSQLiteSync("normal"))
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
	}
	for _, name := range []string{"memory", "sqlite"} {
		for _, logged := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/event=%v", name, logged), func(b *testing.B) {
				s := open[name](b)
				defer s.Close()
				ctx := context.Background()
				i := 0
				for b.Loop() {
					i++
					err := s.Update(ctx, func(tx Tx) error {
						x := &Transaction{ID: fmt.Sprint(i), Kind: KindApproval, Status: "pending", UserID: "u", CreatedAt: t0, UpdatedAt: t0, ExpiresAt: at(5)}
						if err := tx.PutTransaction(x); err != nil {
							return err
						}
						if logged {
							return tx.AddEvent(&adminapi.Event{Type: "approval.created", UserID: "u", OperationID: x.ID, Time: t0})
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
