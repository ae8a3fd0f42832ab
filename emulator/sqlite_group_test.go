package emulator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestSQLiteFailedGroupRunsItsMembersAgain: a group whose SQLite commit
// fails (one member's write is refused) is undone, and each member runs
// again on its own, so no member keeps an answer computed from another
// member's change that never was: the refused write fails (503), a member
// that was refused as a replay of that member's nonce succeeds, an
// unrelated member succeeds and is on file, and a member whose function
// panics panics on its own goroutine, not on the group leader's.
func TestSQLiteFailedGroupRunsItsMembersAgain(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "group.db")
	s := openSQLiteT(t, path)
	var syncs atomic.Int32
	release := make(chan struct{})
	s.syncFile = func(f *os.File) error {
		if syncs.Add(1) == 1 {
			<-release // the first commit holds the lock while the others queue
		}
		return fdatasync(f)
	}
	poison := errors.New("disk I/O error")
	s.writeFault = func(c *changeSet) error {
		for _, ch := range c.rows {
			if ch.table == "users" && ch.key == "poison" {
				return poison
			}
		}
		return nil
	}
	type result struct {
		err      error
		panicked any
	}
	update := func(fn func(Tx) error) chan result {
		ch := make(chan result, 1)
		go func() {
			defer func() {
				if p := recover(); p != nil {
					ch <- result{panicked: p}
				}
			}()
			ch <- result{err: s.Update(ctx, fn)}
		}()
		return ch
	}
	errReplay := errors.New("replay")

	first := update(func(tx Tx) error { return putTestUser(tx, "u0", "zero") })
	for syncs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	a := update(func(tx Tx) error { // uses n1, then writes what the file refuses
		if fresh, err := tx.UseNonce("n1", at(5)); err != nil || !fresh {
			return errors.Join(err, errReplay)
		}
		return putTestUser(tx, "poison", "p")
	})
	waitQueued(t, s, 1)
	var bRuns, bRefused atomic.Int32
	b := update(func(tx Tx) error { // uses n1 too: a replay of a's only while a's use stands
		bRuns.Add(1)
		fresh, err := tx.UseNonce("n1", at(5))
		if err != nil {
			return err
		}
		if !fresh {
			bRefused.Add(1)
			return errReplay
		}
		return nil
	})
	waitQueued(t, s, 2)
	c := update(func(tx Tx) error { return putTestUser(tx, "c", "see") })
	waitQueued(t, s, 3)
	d := update(func(tx Tx) error { panic("d's bug") })
	waitQueued(t, s, 4)
	close(release)

	if r := <-first; r.err != nil || r.panicked != nil {
		t.Fatalf("the first commit: %+v", r)
	}
	if r := <-a; r.panicked != nil || !errors.Is(r.err, ErrUnavailable) || !errors.Is(r.err, poison) {
		t.Fatalf("the member whose write the file refused: %+v, want a 503 with the refusal", r)
	}
	if r := <-b; r.err != nil || r.panicked != nil {
		t.Fatalf("the member that used a's nonce: %+v, want success (a's use never was)", r)
	}
	if bRefused.Load() != 1 || bRuns.Load() != 2 {
		t.Fatalf("b ran %d times, refused %d: want it refused once in the group, then run again alone", bRuns.Load(), bRefused.Load())
	}
	if r := <-c; r.err != nil || r.panicked != nil {
		t.Fatalf("the unrelated member: %+v, want success", r)
	}
	if r := <-d; r.panicked != "d's bug" {
		t.Fatalf("the member that panicked: %+v, want its own panic", r)
	}

	// The store goes on, and what it said stays is what is on file.
	s.writeFault = nil
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openSQLiteT(t, path)
	err := s.View(ctx, func(tx Tx) error {
		for id, want := range map[string]bool{"u0": true, "c": true, "poison": false} {
			if u, err := tx.User(id); err != nil || (u != nil) != want {
				t.Errorf("after a restart user %s: %+v (%v), want on file %v", id, u, err, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx Tx) error {
		if fresh, err := tx.UseNonce("n1", at(5)); err != nil || fresh {
			t.Errorf("after a restart n1 is fresh %v (%v), want used (by b)", fresh, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
