package emulator

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/authphone/authphone/sdk/adminapi"
)

// TestSQLiteSyncsWhatMustSync: with synchronous=FULL, the connection is
// on NORMAL for a commit of nonces and sessions alone or of the sweep's
// removals, and
// back on FULL for every other, each time; with normal, always NORMAL.
func TestSQLiteSyncsWhatMustSync(t *testing.T) {
	ctx := context.Background()
	for _, sync := range []string{"full", "normal"} {
		t.Run(sync, func(t *testing.T) {
			s, err := OpenSQLite(filepath.Join(t.TempDir(), "sync.db"), WithSQLiteSync(sync))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			check := func(what string, fn func(Tx) error, full bool) {
				t.Helper()
				if err := s.Update(ctx, fn); err != nil {
					t.Fatal(err)
				}
				want := 1 // NORMAL
				if full && sync == "full" {
					want = 2
				}
				var got int
				if err := s.db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&got); err != nil || got != want {
					t.Fatalf("after %s: synchronous %d (%v), want %d", what, got, err, want)
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
