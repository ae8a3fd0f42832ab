package emulator

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite", pure Go
)

// SQLiteStore keeps the state in memory and, after every change, in a
// SQLite file (modernc.org/sqlite, no cgo), so an emulator restarted with
// the same file loses nothing: users, keys, counters, pending operations,
// tokens and the signing keys. The whole state is one JSON document in one
// row, written in one statement per change: simple, atomic, and quick for
// the thousands of objects a test run makes.
type SQLiteStore struct {
	mu sync.RWMutex
	st *State
	db *sql.DB
}

const sqliteSchema = `CREATE TABLE IF NOT EXISTS state (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	doc        TEXT NOT NULL,
	updated_at TEXT NOT NULL
)`

// OpenSQLite opens (or creates, mode 0600) the store at path.
func OpenSQLite(path string) (*SQLiteStore, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(sqliteSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s is not a usable SQLite database: %w", path, err)
	}
	_ = os.Chmod(path, 0o600)
	st := NewState()
	var doc string
	switch err := db.QueryRow(`SELECT doc FROM state WHERE id = 1`).Scan(&doc); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		db.Close()
		return nil, fmt.Errorf("read %s: %w", path, err)
	default:
		if err := json.Unmarshal([]byte(doc), st); err != nil {
			db.Close()
			return nil, fmt.Errorf("the state in %s is damaged (%v); move the file aside to start afresh", path, err)
		}
		st.fill()
	}
	return &SQLiteStore{st: st, db: db}, nil
}

// fill makes the maps a decoded document left nil.
func (s *State) fill() {
	fresh := NewState()
	if s.Users == nil {
		s.Users = fresh.Users
	}
	if s.Authenticators == nil {
		s.Authenticators = fresh.Authenticators
	}
	if s.Transactions == nil {
		s.Transactions = fresh.Transactions
	}
	if s.Tokens == nil {
		s.Tokens = fresh.Tokens
	}
	if s.Sessions == nil {
		s.Sessions = fresh.Sessions
	}
	if s.Inbox == nil {
		s.Inbox = fresh.Inbox
	}
	if s.Intents == nil {
		s.Intents = fresh.Intents
	}
	if s.Nonces == nil {
		s.Nonces = fresh.Nonces
	}
	if s.Revoked == nil {
		s.Revoked = fresh.Revoked
	}
	if s.LoginRequests == nil {
		s.LoginRequests = fresh.LoginRequests
	}
	if s.Pairings == nil {
		s.Pairings = fresh.Pairings
	}
	if s.RefreshTokens == nil {
		s.RefreshTokens = fresh.RefreshTokens
	}
	if s.Chains == nil {
		s.Chains = fresh.Chains
	}
}

// View runs fn with the state under a read lock.
func (s *SQLiteStore) View(_ context.Context, fn func(*State) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return fn(s.st)
}

// Update runs fn under the write lock and, if it succeeds, writes the state.
// The write does not stop for a cancelled request: a change the cloud made
// is a change it keeps.
func (s *SQLiteStore) Update(ctx context.Context, fn func(*State) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fn(s.st); err != nil {
		return err
	}
	doc, err := json.Marshal(s.st)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	_, err = s.db.ExecContext(context.WithoutCancel(ctx),
		`INSERT INTO state (id, doc, updated_at) VALUES (1, ?, ?)
		 ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at`,
		string(doc), time.Now().UTC().Format(time.RFC3339Nano))
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *SQLiteStore) Close() error { return s.db.Close() }

// authenticatorJSON is an Authenticator with its public key as bytes.
type authenticatorJSON struct {
	ID          string    `json:"id"`
	UserID      string    `json:"userId"`
	KeyID       string    `json:"keyId"`
	AAID        string    `json:"aaid"`
	PublicKey   []byte    `json:"publicKey"`
	SignCounter uint32    `json:"signCounter"`
	Name        string    `json:"name"`
	DeviceID    string    `json:"deviceId,omitempty"`
	Type        string    `json:"type"`
	CreatedAt   time.Time `json:"createdAt"`
	Deleted     bool      `json:"deleted,omitempty"`
}

// MarshalJSON stores the public key as its uncompressed bytes.
func (a *Authenticator) MarshalJSON() ([]byte, error) {
	pub, err := a.PublicKey.Bytes()
	if err != nil {
		return nil, err
	}
	return json.Marshal(authenticatorJSON{ID: a.ID, UserID: a.UserID, KeyID: a.KeyID, AAID: a.AAID, PublicKey: pub,
		SignCounter: a.SignCounter, Name: a.Name, DeviceID: a.DeviceID, Type: a.Type, CreatedAt: a.CreatedAt, Deleted: a.Deleted})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (a *Authenticator) UnmarshalJSON(b []byte) error {
	var j authenticatorJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), j.PublicKey)
	if err != nil {
		return fmt.Errorf("authenticator %s: %w", j.ID, err)
	}
	*a = Authenticator{ID: j.ID, UserID: j.UserID, KeyID: j.KeyID, AAID: j.AAID, PublicKey: pub, SignCounter: j.SignCounter,
		Name: j.Name, DeviceID: j.DeviceID, Type: j.Type, CreatedAt: j.CreatedAt, Deleted: j.Deleted}
	return nil
}
