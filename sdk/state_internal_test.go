package sdk

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authphone/authphone/keystore"
)

func statePhone(t *testing.T, dir string, opts ...Option) *Phone {
	t.Helper()
	p, err := New("state", keystore.NewMemory(), append([]Option{WithStateDir(dir)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func counterOf(t *testing.T, p *Phone, id string) (uint32, int) {
	t.Helper()
	a, err := p.Account(id)
	if err != nil {
		t.Fatal(err)
	}
	return a.SignCounter, a.PINFailures
}

func TestCountersAreAppendedNotRewritten(t *testing.T) {
	dir := t.TempDir()
	p := statePhone(t, dir)
	for _, id := range []string{"acct-one", "acct-two"} {
		if err := p.addAccount(&Account{ID: id, UserID: "u-" + id, KeyID: "k", CreatedAt: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	before, err := os.ReadFile(filepath.Join(dir, accountsFile))
	if err != nil {
		t.Fatal(err)
	}
	fi0, _ := os.Stat(filepath.Join(dir, accountsFile))
	for range 10 {
		if err := p.updateAccount("acct-one", func(a *Account) { a.SignCounter++ }); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.updateAccount("acct-two", func(a *Account) { a.PINFailures = 2 }); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, accountsFile))
	fi1, _ := os.Stat(filepath.Join(dir, accountsFile))
	if string(before) != string(after) || !os.SameFile(fi0, fi1) {
		t.Fatal("accounts.json was rewritten for a counter")
	}
	log, _ := os.ReadFile(filepath.Join(dir, countersFile))
	if n := strings.Count(string(log), "\n"); n != 11 || !strings.HasSuffix(string(log), "acct-two 0 2\n") {
		t.Fatalf("log %q", log)
	}
	if c, _ := counterOf(t, p, "acct-one"); c != 10 {
		t.Fatalf("in memory: counter %d", c)
	}
	// A new phone on the same directory (a restart) replays the log.
	q := statePhone(t, dir)
	if c, f := counterOf(t, q, "acct-one"); c != 10 || f != 0 {
		t.Fatalf("after restart: %d %d", c, f)
	}
	if c, f := counterOf(t, q, "acct-two"); c != 0 || f != 2 {
		t.Fatalf("after restart: %d %d", c, f)
	}
	// Adding an account folds the log into accounts.json and empties it.
	if err := q.addAccount(&Account{ID: "acct-three", UserID: "u3", KeyID: "k"}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, countersFile)); fi.Size() != 0 {
		t.Fatalf("log not emptied: %d bytes", fi.Size())
	}
	if b, _ := os.ReadFile(filepath.Join(dir, accountsFile)); !strings.Contains(string(b), `"signCounter": 10`) {
		t.Fatalf("counters not folded: %s", b)
	}
	// The first phone sees the other's change (another process) at its next read.
	if accts, err := p.Accounts(); err != nil || len(accts) != 3 {
		t.Fatalf("%d accounts %v", len(accts), err)
	}
	if c, _ := counterOf(t, p, "acct-one"); c != 10 {
		t.Fatalf("after fold: counter %d", c)
	}
}

func TestTwoPhonesOnOneProfileNeverReuseACounter(t *testing.T) {
	dir := t.TempDir()
	a, b := statePhone(t, dir), statePhone(t, dir, WithDurability(DurabilityRelaxed))
	if err := a.addAccount(&Account{ID: "acct", UserID: "u", KeyID: "k"}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[uint32]bool{}
	var wg sync.WaitGroup
	for _, p := range []*Phone{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				var c uint32
				if err := p.updateAccount("acct", func(x *Account) { x.SignCounter++; c = x.SignCounter }); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[c] {
					t.Errorf("counter %d used twice", c)
				}
				seen[c] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if c, _ := counterOf(t, statePhone(t, dir), "acct"); c != 400 {
		t.Fatalf("counter %d, want 400", c)
	}
}

func TestCounterLogCompactsAndSurvivesATornLine(t *testing.T) {
	dir := t.TempDir()
	p := statePhone(t, dir, WithDurability(DurabilityRelaxed))
	if err := p.addAccount(&Account{ID: "acct", UserID: "u", KeyID: "k"}); err != nil {
		t.Fatal(err)
	}
	n := compactAfter/len("acct 1000 0\n") + 100
	for range n {
		if err := p.updateAccount("acct", func(a *Account) { a.SignCounter++ }); err != nil {
			t.Fatal(err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, countersFile)); fi.Size() > compactAfter {
		t.Fatalf("log never folded: %d bytes", fi.Size())
	}
	// A crash in the middle of an append leaves a torn line: it is ignored
	// on reading, and cut off by the next write.
	f, _ := os.OpenFile(filepath.Join(dir, countersFile), os.O_APPEND|os.O_WRONLY, 0)
	_, _ = f.WriteString("acct 99999")
	f.Close()
	q := statePhone(t, dir)
	if c, _ := counterOf(t, q, "acct"); int(c) != n {
		t.Fatalf("counter %d, want %d", c, n)
	}
	if err := q.updateAccount("acct", func(a *Account) { a.SignCounter++ }); err != nil {
		t.Fatal(err)
	}
	if c, _ := counterOf(t, statePhone(t, dir), "acct"); int(c) != n+1 {
		t.Fatalf("counter %d, want %d", c, n+1)
	}
}

func TestDamagedCounterLog(t *testing.T) {
	dir := t.TempDir()
	p := statePhone(t, dir)
	if err := p.addAccount(&Account{ID: "acct", UserID: "u", KeyID: "k"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, countersFile), []byte("acct seven 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := statePhone(t, dir).Accounts()
	if err == nil || !strings.Contains(err.Error(), "is damaged") || !strings.Contains(err.Error(), "move it aside") {
		t.Fatalf("got %v", err)
	}
	if err := statePhone(t, dir).updateAccount("acct", func(a *Account) { a.SignCounter++ }); err == nil {
		t.Fatal("a damaged log was written to")
	}
	if err := os.Remove(filepath.Join(dir, countersFile)); err != nil {
		t.Fatal(err)
	}
	if err := p.updateAccount("nobody", func(*Account) {}); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("got %v", err)
	}
}

func TestParseDurability(t *testing.T) {
	for s, want := range map[string]Durability{"": DurabilityFull, "full": DurabilityFull, "relaxed": DurabilityRelaxed} {
		if d, err := ParseDurability(s); err != nil || d != want {
			t.Errorf("%q: %v %v", s, d, err)
		}
	}
	if _, err := ParseDurability("fast"); err == nil || !strings.Contains(err.Error(), "use full") {
		t.Errorf("fast: %v", err)
	}
}

func FuzzCounterLog(f *testing.F) {
	f.Add([]byte("acct 5 0\nacct 6 1\n"))
	f.Add([]byte("acct 5 0\nacct 9"))
	f.Add([]byte("acct -1 0\n"))
	f.Fuzz(func(t *testing.T, log []byte) {
		dir := t.TempDir()
		p := statePhone(t, dir)
		if err := p.addAccount(&Account{ID: "acct", UserID: "u", KeyID: "k", SignCounter: 3}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, countersFile), log, 0o600); err != nil {
			t.Fatal(err)
		}
		accts, err := statePhone(t, dir).Accounts()
		if err != nil {
			return
		}
		if len(accts) != 1 || accts[0].SignCounter < 3 {
			t.Fatalf("%+v", accts)
		}
	})
}
