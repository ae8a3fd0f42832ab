package emulator

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
)

// A written authenticator keeps its parsed key: reads share the store's
// own copy (never the writer's), an update that keeps the key keeps it, a
// new key replaces it, and a failed transaction gives the old one back.
func TestMemoryStoreKeepsParsedKeys(t *testing.T) {
	ctx := context.Background()
	m := NewMemoryStore()
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := k1.PublicKey // the writer's own, changed below
	put := func(fn func(Tx) error) error { return m.Update(ctx, fn) }
	read := func() *Authenticator {
		t.Helper()
		var a *Authenticator
		if err := m.View(ctx, func(tx Tx) (err error) { a, err = tx.AuthenticatorByKeyID("kid"); return err }); err != nil || a == nil {
			t.Fatal(a, err)
		}
		return a
	}
	if err := put(func(tx Tx) error {
		return tx.PutAuthenticator(&Authenticator{ID: "a1", UserID: "u1", KeyID: "kid", PublicKey: &pub, CreatedAt: t0})
	}); err != nil {
		t.Fatal(err)
	}
	a := read()
	if a.PublicKey == &pub || !a.PublicKey.Equal(&k1.PublicKey) {
		t.Fatalf("read the writer's key (%v) or another key", a.PublicKey == &pub)
	}
	pub = k2.PublicKey // the writer reuses its value: the store does not see it
	if b := read(); b.PublicKey != a.PublicKey || !b.PublicKey.Equal(&k1.PublicKey) {
		t.Fatal("the kept key changed")
	}
	if err := put(func(tx Tx) error {
		b, _ := tx.Authenticator("a1")
		b.SignCounter = 7
		return tx.PutAuthenticator(b)
	}); err != nil {
		t.Fatal(err)
	}
	if b := read(); b.PublicKey != a.PublicKey || b.SignCounter != 7 {
		t.Fatalf("an update that kept the key parsed it again (%v) or lost the counter (%d)", b.PublicKey != a.PublicKey, b.SignCounter)
	}
	if err := put(func(tx Tx) error {
		b, _ := tx.Authenticator("a1")
		b.PublicKey = &k2.PublicKey
		return tx.PutAuthenticator(b)
	}); err != nil {
		t.Fatal(err)
	}
	if b := read(); !b.PublicKey.Equal(&k2.PublicKey) || b.PublicKey == &k2.PublicKey {
		t.Fatal("a new key was not taken, or the writer's was kept")
	}
	fail := errors.New("no")
	if err := put(func(tx Tx) error {
		b, _ := tx.Authenticator("a1")
		b.PublicKey = &k1.PublicKey
		if err := tx.PutAuthenticator(b); err != nil {
			return err
		}
		return fail
	}); !errors.Is(err, fail) {
		t.Fatal(err)
	}
	if b := read(); !b.PublicKey.Equal(&k2.PublicKey) {
		t.Fatal("a failed transaction left its key")
	}
}

// Rows rewritten with the same index values and expiry stay findable and
// are still swept when they expire; a changed value moves them.
func TestMemoryStoreRewritesKeepIndexesAndExpiry(t *testing.T) {
	ctx := context.Background()
	m := NewMemoryStore()
	tx := func(fn func(Tx) error) {
		t.Helper()
		if err := m.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	item := &InboxItem{ID: "i1", AuthenticatorID: "a1", TransactionID: "t1", CreatedAt: at(0), ExpiresAt: at(5)}
	for range 3 { // the same values again and again
		tx(func(tx Tx) error { c := *item; return tx.PutInboxItem(&c) })
	}
	if n := len(m.inbox.heap); n != 1 {
		t.Fatalf("%d heap entries for one row never changing its expiry", n)
	}
	tx(func(tx Tx) error { c := *item; c.Message = "changed"; return tx.PutInboxItem(&c) })
	var items, byTx, other []*InboxItem
	_ = m.View(ctx, func(tx Tx) (err error) {
		items, _ = tx.Inbox("a1")
		byTx, _ = tx.InboxItems("t1", "")
		other, _ = tx.Inbox("a2")
		return nil
	})
	if len(items) != 1 || len(byTx) != 1 || items[0].Message != "changed" || len(other) != 0 {
		t.Fatalf("%v %v %v", items, byTx, other)
	}
	// Moved to another authenticator and back, with a later expiry and back.
	tx(func(tx Tx) error {
		c := *item
		c.AuthenticatorID, c.ExpiresAt = "a2", at(9)
		return tx.PutInboxItem(&c)
	})
	_ = m.View(ctx, func(tx Tx) (err error) { items, _ = tx.Inbox("a1"); other, _ = tx.Inbox("a2"); return nil })
	if len(items) != 0 || len(other) != 1 {
		t.Fatalf("after the move: %d in a1, %d in a2", len(items), len(other))
	}
	tx(func(tx Tx) error { c := *item; return tx.PutInboxItem(&c) })
	var n int
	tx(func(tx Tx) (err error) { n, err = tx.Sweep(at(4), at(4)); return err })
	if n != 0 {
		t.Fatalf("swept %d rows before their time", n)
	}
	tx(func(tx Tx) (err error) { n, err = tx.Sweep(at(6), at(6)); return err })
	_ = m.View(ctx, func(tx Tx) (err error) { items, _ = tx.Inbox("a1"); byTx, _ = tx.InboxItems("t1", ""); return nil })
	if n != 1 || len(items) != 0 || len(byTx) != 0 {
		t.Fatalf("swept %d at its expiry; left %v %v", n, items, byTx)
	}
	// A failed rewrite puts the indexes back.
	tx(func(tx Tx) error { c := *item; c.ExpiresAt = at(30); return tx.PutInboxItem(&c) })
	_ = m.Update(ctx, func(tx Tx) error {
		c := *item
		c.AuthenticatorID, c.ExpiresAt = "a3", at(40)
		_ = tx.PutInboxItem(&c)
		return errors.New("no")
	})
	_ = m.View(ctx, func(tx Tx) (err error) { items, _ = tx.Inbox("a1"); other, _ = tx.Inbox("a3"); return nil })
	if len(items) != 1 || len(other) != 0 {
		t.Fatalf("after a failed move: %d in a1, %d in a3", len(items), len(other))
	}
	tx(func(tx Tx) (err error) { n, err = tx.Sweep(at(31), at(31)); return err })
	if n != 1 {
		t.Fatalf("swept %d at the restored expiry", n)
	}
}
