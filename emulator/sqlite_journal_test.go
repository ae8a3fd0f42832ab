package emulator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authphone/authphone/sdk/adminapi"
)

// TestSQLiteSyncsWhatMustSync: with synchronous=FULL, the store syncs
// SQLite's own -wal file after every commit except those of nonces alone,
// sessions alone and the sweep's removals, each time; with normal, never.
// The connection stays on NORMAL throughout.
func TestSQLiteSyncsWhatMustSync(t *testing.T) {
	ctx := context.Background()
	for _, sync := range []string{"full", "normal"} {
		t.Run(sync, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sync.db")
			s := openSQLiteT(t, path, WithSQLiteSync(sync))
			syncs := 0
			s.syncFile = func(f *os.File) error {
				// The file SQLite writes, with the commit in it.
				got, err := f.Stat()
				if err != nil {
					return err
				}
				want, err := os.Stat(path + "-wal")
				if err != nil {
					return err
				}
				if !os.SameFile(got, want) || got.Size() == 0 {
					t.Errorf("synced %s (%d bytes), not the database's -wal", f.Name(), got.Size())
				}
				syncs++
				return fdatasync(f)
			}
			check := func(what string, fn func(Tx) error, full bool) {
				t.Helper()
				before := syncs
				if err := s.Update(ctx, fn); err != nil {
					t.Fatal(err)
				}
				want := 0
				if full && sync == "full" {
					want = 1
				}
				if syncs-before != want {
					t.Fatalf("%s: %d syncs, want %d", what, syncs-before, want)
				}
				var mode int
				if err := s.db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&mode); err != nil || mode != 1 {
					t.Fatalf("after %s: synchronous %d (%v), want 1 (NORMAL)", what, mode, err)
				}
			}
			for i := range 3 {
				check("a nonce", func(tx Tx) error { _, err := tx.UseNonce(fmt.Sprint("n", i), at(1)); return err }, false)
				check("a user", func(tx Tx) error {
					return tx.PutUser(&User{ID: fmt.Sprint("u", i), Username: fmt.Sprint("user", i), CreatedAt: t0, UpdatedAt: t0})
				}, true)
				check("a sweep", func(tx Tx) error { _, err := tx.Sweep(at(2), at(-60)); return err }, false)
				check("a delivered request's session", func(tx Tx) error {
					return tx.PutSession(&Session{ServerData: fmt.Sprint("ib.item", i, ".r"), Challenge: "c", TransactionID: "t", ExpiresAt: at(1)})
				}, false)
				check("a session dropped", func(tx Tx) error { return tx.DeleteSession(fmt.Sprint("ib.item", i, ".r")) }, false)
				check("a session with a spent token", func(tx Tx) error {
					if err := tx.PutSession(&Session{ServerData: fmt.Sprint("sd", i), Challenge: "c", TransactionID: "t", ExpiresAt: at(1)}); err != nil {
						return err
					}
					return tx.PutDispatchToken(&DispatchToken{Token: fmt.Sprint("tok", i), Kind: "auth", Redeemed: true, ExpiresAt: at(1)})
				}, true)
				check("an event", func(tx Tx) error { return tx.AddEvent(&adminapi.Event{Type: "x", Time: t0}) }, true)
			}
		})
	}
}

// TestSQLiteCommitWaitsForItsSync: a commit that must sync returns only
// once its sync has finished, and until then nobody reads the change (a
// View waits); the commits written meanwhile are in the WAL, so the sync
// covers them.
func TestSQLiteCommitWaitsForItsSync(t *testing.T) {
	ctx := context.Background()
	s := openSQLiteT(t, filepath.Join(t.TempDir(), "wait.db"))
	started, release := make(chan struct{}), make(chan struct{})
	s.syncFile = func(f *os.File) error {
		close(started)
		<-release
		return fdatasync(f)
	}
	committed := make(chan error, 1)
	go func() {
		committed <- s.Update(ctx, func(tx Tx) error {
			return putTestUser(tx, "u1", "alice")
		})
	}()
	select {
	case <-started:
	case err := <-committed:
		t.Fatalf("the commit returned (%v) without a sync", err)
	}
	seen := make(chan *User, 1)
	go func() {
		_ = s.View(ctx, func(tx Tx) error {
			u, err := tx.User("u1")
			seen <- u
			return err
		})
	}()
	select {
	case err := <-committed:
		t.Fatalf("the commit returned (%v) before its sync finished", err)
	case u := <-seen:
		t.Fatalf("a read saw %+v before the commit's sync finished", u)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	if u := <-seen; u == nil || u.Username != "alice" {
		t.Fatalf("after the sync a read saw %+v", u)
	}
}

// TestSQLiteFailedSyncStopsWrites: when the sync of a commit fails, the
// commit fails with ErrUnavailable and its change is not visible; SQLite
// has committed it by then, so the store takes no further write (memory
// and the file would disagree) while reads still answer, until the
// emulator is restarted on the file.
func TestSQLiteFailedSyncStopsWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "broken.db")
	s := openSQLiteT(t, path)
	put := func(id string) error {
		return s.Update(ctx, func(tx Tx) error {
			return putTestUser(tx, id, "name-"+id)
		})
	}
	if err := put("before"); err != nil {
		t.Fatal(err)
	}
	eio := errors.New("input/output error")
	s.syncFile = func(*os.File) error { return eio }
	if err := put("failed"); !errors.Is(err, ErrUnavailable) || !errors.Is(err, eio) {
		t.Fatalf("a commit whose sync failed: %v", err)
	}
	s.syncFile = fdatasync
	for what, fn := range map[string]func(Tx) error{
		"a user": func(tx Tx) error {
			return putTestUser(tx, "after", "after")
		},
		"a nonce": func(tx Tx) error { _, err := tx.UseNonce("n", at(1)); return err },
	} {
		if err := s.Update(ctx, fn); !errors.Is(err, ErrUnavailable) || !errors.Is(err, eio) {
			t.Fatalf("%s after a failed sync: %v", what, err)
		}
	}
	err := s.View(ctx, func(tx Tx) error {
		for id, want := range map[string]bool{"before": true, "failed": false, "after": false} {
			u, err := tx.User(id)
			if err != nil {
				return err
			}
			if (u != nil) != want {
				t.Errorf("user %s visible: %v, want %v", id, u != nil, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openSQLiteT(t, path)
	if err := s2.Update(ctx, func(tx Tx) error {
		return putTestUser(tx, "restarted", "restarted")
	}); err != nil {
		t.Fatalf("a write after the restart: %v", err)
	}
}

// TestSQLiteFailedCommitLeavesNoTransaction: when SQLite refuses a
// commit's statement, nothing of it is kept, in memory or in the file,
// and the connection is left with no transaction open: the next commits
// go through, and are in the file.
func TestSQLiteFailedCommitLeavesNoTransaction(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "one.db")
	s := openSQLiteT(t, path)
	if _, err := s.db.ExecContext(ctx, "ALTER TABLE nonces RENAME TO nonces_away"); err != nil {
		t.Fatal(err)
	}
	use := func() (bool, error) {
		var fresh bool
		err := s.Update(ctx, func(tx Tx) error {
			var err error
			fresh, err = tx.UseNonce("n1", at(1))
			return err
		})
		return fresh, err
	}
	if _, err := use(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a nonce with no table to write it to: %v", err)
	}
	if _, err := s.db.ExecContext(ctx, "ALTER TABLE nonces_away RENAME TO nonces"); err != nil {
		t.Fatal(err)
	}
	if fresh, err := use(); err != nil || !fresh {
		t.Fatalf("the nonce after the failed commit: fresh %v, %v; want a fresh nonce", fresh, err)
	}
	if err := s.Update(ctx, func(tx Tx) error {
		if err := putTestUser(tx, "u1", "alice"); err != nil {
			return err
		}
		return tx.AddEvent(&adminapi.Event{Type: "x", Time: t0})
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openSQLiteT(t, path)
	err := s2.Update(ctx, func(tx Tx) error {
		fresh, err := tx.UseNonce("n1", at(1))
		if err == nil && fresh {
			t.Error("the nonce was not kept in the file")
		}
		u, err := tx.User("u1")
		if err == nil && u == nil {
			t.Error("the user was not kept in the file")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSQLiteSyncsTheWALThroughASymlink: with --db a symlink to a file,
// SQLite writes its -wal beside the target; the store syncs that file,
// not a path beside the link (which does not exist, or is a stray file
// SQLite never writes), and the writes go on working after a restart.
func TestSQLiteSyncsTheWALThroughASymlink(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	real, link := filepath.Join(dir, "real"), filepath.Join(dir, "link")
	for _, d := range []string{real, link} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(link, "state.db")
	if err := os.Symlink(filepath.Join(real, "state.db"), path); err != nil {
		t.Fatal(err)
	}
	for round, stray := range []bool{false, true} {
		if stray { // a file where the link's -wal would be: never synced
			if err := os.WriteFile(path+"-wal", nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		s, err := OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		syncs := 0
		s.syncFile = func(f *os.File) error {
			got, err := f.Stat()
			if err != nil {
				return err
			}
			want, err := os.Stat(filepath.Join(real, "state.db-wal"))
			if err != nil {
				return err
			}
			if !os.SameFile(got, want) {
				t.Errorf("round %d: synced %s, not SQLite's -wal beside the link's target", round, f.Name())
			}
			syncs++
			return fdatasync(f)
		}
		err = s.Update(ctx, func(tx Tx) error {
			return tx.PutUser(&User{ID: fmt.Sprint("u", round), Username: fmt.Sprint("user", round), CreatedAt: t0, UpdatedAt: t0})
		})
		if err != nil {
			t.Fatalf("round %d: a write through a symlinked --db: %v", round, err)
		}
		if syncs != 1 {
			t.Fatalf("round %d: %d syncs, want 1", round, syncs)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s := openSQLiteT(t, path)
	if err := s.View(ctx, func(tx Tx) error {
		for _, name := range []string{"user0", "user1"} {
			if u, err := tx.UserByName(name); err != nil || u == nil {
				return fmt.Errorf("%s after a restart: %v, %v", name, u, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// openSQLiteT opens the SQLite store at path for a test, closed when the
// test ends (Close again after the test's own is harmless).
func openSQLiteT(t *testing.T, path string, opts ...SQLiteOption) *SQLiteStore {
	t.Helper()
	s, err := OpenSQLite(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// waitQueued waits until n Updates wait in s's queue for the next group.
func waitQueued(t *testing.T, s *SQLiteStore, n int) {
	t.Helper()
	for range 10_000 {
		s.gmu.Lock()
		q := len(s.queue)
		s.gmu.Unlock()
		if q == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%d Updates never queued", n)
}

// putTestUser writes a user with the given id and username.
func putTestUser(tx Tx, id, name string) error {
	return tx.PutUser(&User{ID: id, Username: name, CreatedAt: t0, UpdatedAt: t0})
}

// TestSQLiteGroupCommit: Updates that arrive while a commit is being
// synced wait and then commit together, in one SQLite transaction with
// one sync, none of them visible before it; a member whose fn fails
// leaves no trace and does not stop the others; and when the group's sync
// fails, every member fails and none is visible.
func TestSQLiteGroupCommit(t *testing.T) {
	ctx := context.Background()
	s := openSQLiteT(t, filepath.Join(t.TempDir(), "group.db"))
	var syncs atomic.Int32
	block := make(chan chan error, 1) // the next sync waits for a result on the channel sent
	s.syncFile = func(f *os.File) error {
		syncs.Add(1)
		select {
		case res := <-block:
			if err := <-res; err != nil {
				return err
			}
		default:
		}
		return fdatasync(f)
	}
	update := func(fn func(Tx) error) chan error {
		done := make(chan error, 1)
		go func() { done <- s.Update(ctx, fn) }()
		return done
	}
	visible := func(id string) bool {
		t.Helper()
		var u *User
		if err := s.View(ctx, func(tx Tx) error {
			var err error
			u, err = tx.User(id)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return u != nil
	}
	boom := errors.New("refused")

	// A commit held in its sync; three Updates queue behind it, one of
	// them failing after a write.
	res := make(chan error, 1)
	block <- res
	first := update(func(tx Tx) error { return putTestUser(tx, "u1", "one") })
	for syncs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	second := update(func(tx Tx) error { return putTestUser(tx, "u2", "two") })
	failing := update(func(tx Tx) error {
		if err := putTestUser(tx, "u3", "three"); err != nil {
			return err
		}
		return boom
	})
	fourth := update(func(tx Tx) error {
		u, err := tx.User("u3")
		if err != nil || u != nil {
			return fmt.Errorf("a failed member's write seen: %+v %v", u, err)
		}
		return putTestUser(tx, "u4", "four")
	})
	waitQueued(t, s, 3)
	res <- nil
	for what, ch := range map[string]chan error{"first": first, "second": second, "fourth": fourth} {
		if err := <-ch; err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	if err := <-failing; !errors.Is(err, boom) {
		t.Fatalf("the failing member: %v", err)
	}
	if n := syncs.Load(); n != 2 {
		t.Fatalf("%d syncs for a commit and a group after it, want 2", n)
	}
	for id, want := range map[string]bool{"u1": true, "u2": true, "u3": false, "u4": true} {
		if visible(id) != want {
			t.Errorf("%s visible: %v, want %v", id, !want, want)
		}
	}

	// A group whose sync fails: every member fails, none is visible.
	res = make(chan error, 1)
	block <- res
	held := update(func(tx Tx) error { return putTestUser(tx, "u5", "five") })
	for syncs.Load() == 2 {
		time.Sleep(time.Millisecond)
	}
	a := update(func(tx Tx) error { return putTestUser(tx, "u6", "six") })
	b := update(func(tx Tx) error { return tx.AddEvent(&adminapi.Event{Type: "x", Time: t0}) })
	waitQueued(t, s, 2)
	eio := errors.New("input/output error")
	res2 := make(chan error, 1)
	block <- res2 // the group's sync
	res <- nil
	res2 <- eio
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	for what, ch := range map[string]chan error{"a user": a, "an event": b} {
		if err := <-ch; !errors.Is(err, ErrUnavailable) || !errors.Is(err, eio) {
			t.Fatalf("%s in a group whose sync failed: %v", what, err)
		}
	}
	if !visible("u5") || visible("u6") {
		t.Fatalf("after the failed group: u5 %v (want true), u6 %v (want false)", visible("u5"), visible("u6"))
	}
	var events int
	if err := s.View(ctx, func(tx Tx) error {
		es, err := tx.Events(0, 100)
		events = len(es)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if events != 0 {
		t.Fatalf("%d events after the failed group, want 0", events)
	}
}

// TestSQLiteSubscriberMayUpdate: a Subscribe callback is called once the
// group that woke it is committed and handed on, so it may itself run an
// Update (as after MemoryStore.Update) instead of waiting for its own
// group to end.
func TestSQLiteSubscriberMayUpdate(t *testing.T) {
	ctx := context.Background()
	s := openSQLiteT(t, filepath.Join(t.TempDir(), "sub.db"))
	inner := make(chan error, 1)
	cancel := s.Subscribe(func(key string) {
		if key == "outer" {
			inner <- s.Update(ctx, func(tx Tx) error { return putTestUser(tx, "u2", "inner") })
		}
	})
	defer cancel()
	outer := make(chan error, 1)
	go func() {
		outer <- s.Update(ctx, func(tx Tx) error {
			tx.Wake("outer")
			return putTestUser(tx, "u1", "outer")
		})
	}()
	select {
	case err := <-outer:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an Update from a subscriber did not return: the group that woke it still held the commit")
	}
	if err := <-inner; err != nil {
		t.Fatal(err)
	}
}
