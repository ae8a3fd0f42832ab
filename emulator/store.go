package emulator

import (
	"context"
	"crypto/ecdsa"
	"sync"
	"time"
)

// Store keeps the emulator's state. Every handler runs its reads in View and
// its changes in Update; an implementation must run Update functions one at a
// time and make their effects durable before returning (the in-memory store
// has nothing to make durable). A function that returns an error must leave
// the state unchanged: handlers validate before they mutate.
type Store interface {
	View(ctx context.Context, fn func(*State) error) error
	Update(ctx context.Context, fn func(*State) error) error
}

// State is everything the cloud knows.
type State struct {
	Users          map[string]*User          // by userId
	Authenticators map[string]*Authenticator // by authenticatorId
	Transactions   map[string]*Transaction   // by transactionId
	Tokens         map[string]*DispatchToken // dispatch tokens, by token
	Sessions       map[string]*Session       // UAF requests in flight, by serverData
	Inbox          map[string][]*InboxItem   // by authenticatorId
	Intents        map[string]*Intent        // by token
	Nonces         map[string]time.Time      // Device-Signature nonces seen, until when
	Revoked        map[string]time.Time      // revoked token ids (jti), until expiry
	LoginRequests  map[string]*LoginRequest  // by requestId
	Pairings       map[string]*Pairing       // by pairingId
	RefreshTokens  map[string]*RefreshToken  // by token
	Chains         map[string]*TokenChain    // refresh-token families, by id

	// Issuer and AccessKey (when generated) survive restarts with a file
	// store.
	Issuer    *IssuerState
	AccessKey string
}

// NewState returns an empty state.
func NewState() *State {
	return &State{
		Users: map[string]*User{}, Authenticators: map[string]*Authenticator{},
		Transactions: map[string]*Transaction{}, Tokens: map[string]*DispatchToken{},
		Sessions: map[string]*Session{}, Inbox: map[string][]*InboxItem{},
		Intents: map[string]*Intent{}, Nonces: map[string]time.Time{}, Revoked: map[string]time.Time{},
		LoginRequests: map[string]*LoginRequest{}, Pairings: map[string]*Pairing{},
		RefreshTokens: map[string]*RefreshToken{}, Chains: map[string]*TokenChain{},
	}
}

// User is a user of the relying party.
type User struct {
	ID        string
	Username  string
	CreatedAt time.Time
	UpdatedAt time.Time
	// Activated is set when the first authenticator registers.
	Activated bool
}

// name is how messages name the user: the username, else the id.
func (u *User) name() string {
	if u.Username != "" {
		return u.Username
	}
	return u.ID
}

// Authenticator is a registered device key.
type Authenticator struct {
	ID          string
	UserID      string
	KeyID       string // base64url
	AAID        string
	PublicKey   *ecdsa.PublicKey
	SignCounter uint32
	Name        string
	DeviceID    string
	Type        string
	CreatedAt   time.Time
	// Deleted authenticators can still read their inbox, to learn that they
	// were removed (a deregistration message), and nothing else.
	Deleted bool
}

// Transaction kinds.
const (
	KindEnroll   = "enroll"
	KindApproval = "approval"
)

// Transaction is an enrol or an approval the backend started.
type Transaction struct {
	ID              string
	Kind            string
	UserID          string
	AuthenticatorID string // approvals: the key that must answer
	Message         string // approvals: transaction text
	Status          string
	Reason          string // why it failed
	Token           string // transaction token, once succeeded
	CreatedAt       time.Time
	UpdatedAt       time.Time
	ExpiresAt       time.Time
}

// DispatchToken is the single-use token inside a dispatch payload.
type DispatchToken struct {
	Token           string
	Kind            string // registration, authentication, deregistration
	TransactionID   string
	AuthenticatorID string // deregistration
	ExpiresAt       time.Time
	Redeemed        bool
}

// Session is a UAF request handed out by redeem, keyed by its serverData.
type Session struct {
	ServerData      string
	Op              string
	Challenge       string
	TransactionID   string
	AuthenticatorID string
	Policy          []string // accepted AAIDs
	ExpiresAt       time.Time
}

// InboxItem is a push message waiting for a device.
type InboxItem struct {
	ID             string
	LoginRequestID string
	Token          string
	TransactionID  string
	Kind           string
	Payload        string
	Notification   string
	Message        string
	CreatedAt      time.Time
	ExpiresAt      time.Time
}

// Intent is a single-use, one-user, one-operation credential.
type Intent struct {
	Token     string
	UserID    string
	Username  string
	Operation string
	IssuedAt  time.Time
	ExpiresAt time.Time
	Used      bool
}

// LoginRequest is a non-trusted device asking to log in as a user.
type LoginRequest struct {
	ID            string
	UserID        string
	Identifier    string
	CodeChallenge string
	PollToken     string
	DeviceName    string
	IP            string
	BindingCode   string
	Status        string // pending, approved, rejected
	Signature     string // the approving device's signature
	ApprovedBy    string // authenticator id
	SignedAt      int64
	Issued        bool // tokens handed out
	LastPoll      time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
	ExpiresAt     time.Time
}

// Pairing is a new device waiting to be made trusted by QR.
type Pairing struct {
	ID              string
	UserID          string
	PublicKey       string // base64url uncompressed P-256
	KeyID           string
	DeviceName      string
	Status          string // pending, approved
	AuthenticatorID string
	CreatedAt       time.Time
	ExpiresAt       time.Time
}

// RefreshToken is one refresh token of a chain; a used one must not come
// back.
type RefreshToken struct {
	Token     string
	ChainID   string
	UserID    string
	Username  string
	Used      bool
	ExpiresAt time.Time
}

// TokenChain is a family of tokens from one sign-in: reusing a rotated
// refresh token revokes all of it.
type TokenChain struct {
	ID      string
	Revoked bool
	JTIs    map[string]time.Time // access and id tokens, until expiry
}

// MemoryStore keeps state in memory, guarded by a lock. Its zero value is
// not usable; call NewMemoryStore.
type MemoryStore struct {
	mu sync.RWMutex
	st *State
}

// NewMemoryStore returns an empty in-memory store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{st: NewState()} }

// View runs fn with the state under a read lock.
func (m *MemoryStore) View(_ context.Context, fn func(*State) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return fn(m.st)
}

// Update runs fn with the state under the write lock.
func (m *MemoryStore) Update(_ context.Context, fn func(*State) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fn(m.st)
}

// userAuthenticators lists a user's active authenticators, oldest first.
func (s *State) userAuthenticators(userID string) []*Authenticator {
	var out []*Authenticator
	for _, a := range s.Authenticators {
		if a.UserID == userID && !a.Deleted {
			out = append(out, a)
		}
	}
	sortAuthenticators(out)
	return out
}

func (s *State) authenticatorByKeyID(keyID string) *Authenticator {
	for _, a := range s.Authenticators {
		if a.KeyID == keyID {
			return a
		}
	}
	return nil
}

func (s *State) userByName(name string) *User {
	for _, u := range s.Users {
		if u.Username != "" && u.Username == name {
			return u
		}
	}
	return nil
}
