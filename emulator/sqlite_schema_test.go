package emulator

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authphone/authphone/sdk/adminapi"
)

// TestSQLiteOpensAVersion7File: a file an emulator of schema version 7
// left (rowid tables with secondary indexes, the event counter in
// event_seq, the oldest events swept) opens: it is migrated to one
// B-tree per table and no secondary index, every row is read back and
// found by its indexes in memory, and the event IDs go on from the
// newest ever given, across a sweep of the whole log and a restart.
func TestSQLiteOpensAVersion7File(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v7.db")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	// The version 7 file, written as the version 7 store wrote it.
	db, err := sql.Open("sqlite", sqliteURI(path))
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateTo(ctx, db, sqliteDialect, "", 7); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &sqlTx{ctx: ctx, tx: tx, d: sqliteDialect, write: true}
	u := &User{ID: "u1", Username: "ann", CreatedAt: t0, UpdatedAt: at(1), Activated: true, LastLoginSuccess: at(2)}
	a := &Authenticator{ID: "a1", UserID: "u1", KeyID: "kid-1", AAID: "0000#0001", PublicKey: &key.PublicKey,
		SignCounter: 41, Name: "phone", Type: "phone", CreatedAt: t0}
	x := &Transaction{ID: "t1", Kind: "authentication", UserID: "u1", AuthenticatorID: "a1", Status: "pending",
		CreatedAt: t0, UpdatedAt: t0, ExpiresAt: at(5), Number: 7, Choices: []int{7, 12, 30}}
	in := &InboxItem{ID: "i1", AuthenticatorID: "a1", TransactionID: "t1", Token: "dt1", Kind: "authentication",
		Payload: `{"p":1}`, CreatedAt: t0, ExpiresAt: at(5), Seq: 9}
	for _, err := range []error{
		w.PutUser(u), w.PutAuthenticator(a), w.PutTransaction(x), w.PutInboxItem(in),
		w.PutDispatchToken(&DispatchToken{Token: "dt1", Kind: "authentication", TransactionID: "t1", AuthenticatorID: "a1", ExpiresAt: at(5)}),
		w.PutMeta("signing-key", []byte("secret")),
		w.AddEvent(&adminapi.Event{Type: "one", Time: t0}), w.AddEvent(&adminapi.Event{Type: "two", Time: t0}),
		w.AddEvent(&adminapi.Event{Type: "three", Time: at(1), UserID: "u1"}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.flushEvents(); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM events WHERE id <= 2"); err != nil { // an old sweep
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatalf("open the version 7 file: %v", err)
	}
	defer func() { s.Close() }()
	checkSchema(t, s)
	var got struct {
		u     *User
		a     *Authenticator
		x     *Transaction
		inbox []*InboxItem
		meta  []byte
		evs   []*adminapi.Event
		last  int64
	}
	err = s.View(ctx, func(tx Tx) error {
		var err error
		got.u, _ = tx.UserByName("ann")
		got.a, _ = tx.AuthenticatorByKeyID("kid-1")
		pending, _ := tx.PendingTransactions("u1", "")
		if len(pending) == 1 {
			got.x = pending[0]
		}
		got.inbox, _ = tx.Inbox("a1")
		got.meta, _ = tx.Meta("signing-key")
		got.evs, _ = tx.Events(0, -1)
		got.last, err = tx.LastEventID()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.u == nil || *got.u != *u {
		t.Fatalf("user by name: %+v, want %+v", got.u, u)
	}
	if got.a == nil || got.a.SignCounter != 41 || !got.a.PublicKey.Equal(&key.PublicKey) || got.a.UserID != "u1" {
		t.Fatalf("authenticator by keyID: %+v", got.a)
	}
	if got.x == nil || got.x.Number != 7 || len(got.x.Choices) != 3 || !got.x.ExpiresAt.Equal(at(5)) {
		t.Fatalf("pending transaction: %+v", got.x)
	}
	if len(got.inbox) != 1 || got.inbox[0].Payload != `{"p":1}` || got.inbox[0].Seq != 9 {
		t.Fatalf("inbox: %+v", got.inbox)
	}
	if string(got.meta) != "secret" {
		t.Fatalf("meta: %q", got.meta)
	}
	if eventTypes(got.evs) != "3:three" || got.last != 3 {
		t.Fatalf("events %s (last %d), want 3:three (last 3)", eventTypes(got.evs), got.last)
	}

	// The next event is 4; a sweep of every event, a restart, and the
	// next is 5.
	addEvent := func(typ string) {
		t.Helper()
		if err := s.Update(ctx, func(tx Tx) error { return tx.AddEvent(&adminapi.Event{Type: typ, Time: at(10)}) }); err != nil {
			t.Fatal(err)
		}
	}
	reopen := func() {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if s, err = OpenSQLite(path); err != nil {
			t.Fatal(err)
		}
	}
	lastEvents := func() (string, int64) {
		t.Helper()
		var evs []*adminapi.Event
		var last int64
		if err := s.View(ctx, func(tx Tx) error {
			var err error
			if evs, err = tx.Events(0, -1); err != nil {
				return err
			}
			last, err = tx.LastEventID()
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return eventTypes(evs), last
	}
	addEvent("four")
	reopen()
	if evs, last := lastEvents(); evs != "3:three 4:four" || last != 4 {
		t.Fatalf("after a restart: %s (last %d)", evs, last)
	}
	if err := s.Update(ctx, func(tx Tx) error { _, err := tx.Sweep(at(100), at(60)); return err }); err != nil {
		t.Fatal(err)
	}
	reopen()
	if evs, last := lastEvents(); evs != "" || last != 4 {
		t.Fatalf("after sweeping every event and a restart: %q (last %d)", evs, last)
	}
	addEvent("five")
	reopen()
	if evs, last := lastEvents(); evs != "5:five" || last != 5 {
		t.Fatalf("the event after the sweep: %s (last %d)", evs, last)
	}
	checkSchema(t, s)
}

// checkSchema: the file is at schemaVersion, each table one B-tree,
// no secondary index.
func checkSchema(t *testing.T, s *SQLiteStore) {
	t.Helper()
	var v int
	if err := s.db.QueryRow("SELECT version FROM schema_version").Scan(&v); err != nil || v != schemaVersion {
		t.Fatalf("schema version %d (%v), want %d", v, err, schemaVersion)
	}
	rows, err := s.db.Query("SELECT type, name, COALESCE(sql, '') FROM sqlite_master")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	tables := 0
	for rows.Next() {
		var typ, name, def string
		if err := rows.Scan(&typ, &name, &def); err != nil {
			t.Fatal(err)
		}
		switch {
		case typ == "index":
			t.Errorf("index %s (%s) in the file", name, def)
		case typ != "table", name == "schema_version", name == "event_seq":
		case name == "events":
			if !strings.Contains(def, "id INTEGER PRIMARY KEY") {
				t.Errorf("events is not keyed by its rowid: %s", def)
			}
		case !strings.HasSuffix(def, "WITHOUT ROWID"):
			t.Errorf("table %s has a rowid: %s", name, def)
		default:
			tables++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if tables != 15 {
		t.Errorf("%d WITHOUT ROWID tables, want 15", tables)
	}
}

// TestSQLiteRefusesANewerFile: a file a newer emulator migrated past this
// one's schema version is refused with ErrSchemaTooNew and left as it was
// (version 9 exists so that an emulator from before it refuses a file
// whose transactions keep their tokens' signing inputs).
func TestSQLiteRefusesANewerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "newer.db")
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec("UPDATE schema_version SET version = ?", schemaVersion+1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err := OpenSQLite(path); !errors.Is(err, ErrSchemaTooNew) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("open a file of schema version %d: %v, want ErrSchemaTooNew", schemaVersion+1, err)
	}
	db, err := sql.Open("sqlite", sqliteURI(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("SELECT version FROM schema_version").Scan(&v); err != nil || v != schemaVersion+1 {
		t.Fatalf("after the refusal the file is at version %d (%v), want %d", v, err, schemaVersion+1)
	}
}
