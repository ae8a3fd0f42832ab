package emulator

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"time"

	"github.com/authphone/authphone/sdk/adminapi"
)

// Store keeps the emulator's state. Handlers read in View and change in
// Update, through the typed reads and writes of a Tx: by key and by index,
// never the whole state. An Update commits all of its writes or none of
// them: when fn returns an error (other than one made by commitWith), or
// the commit fails, nothing it wrote is visible to anyone (then Update returns the error; a failed commit wraps
// ErrUnavailable). An Update may run fn more than once (to retry a conflict
// with a concurrent transaction), so fn must only set the results it
// returns, not accumulate them.
type Store interface {
	View(ctx context.Context, fn func(Tx) error) error
	Update(ctx context.Context, fn func(Tx) error) error
	// Subscribe calls fn with every key a committed transaction woke (see
	// Tx.Wake), including keys woken by other processes on the same
	// database. The returned func stops the calls.
	Subscribe(fn func(key string)) (cancel func())
	Close() error
}

// commitWith makes a transaction's error keep its writes: Update commits
// them and then returns err (a slow_down answer records the poll; a reused
// refresh token revokes its chain and fails).
func commitWith(err error) error { return &keepWrites{err} }

type keepWrites struct{ err error }

func (k *keepWrites) Error() string { return k.err.Error() }
func (k *keepWrites) Unwrap() error { return k.err }

// keeps splits fn's result: whether to commit, and the error to return.
func keeps(err error) (commit bool, result error) {
	if err == nil {
		return true, nil // the usual case, without errors.As's allocation
	}
	var k *keepWrites
	if errors.As(err, &k) {
		return true, k.err
	}
	return err == nil, err
}

// ErrUnavailable marks a store failure the client may retry: the
// transaction did not happen.
var ErrUnavailable = errors.New("the emulator's store is unavailable")

// Tx is one transaction. Reads return copies: a change is made by a Put
// with the changed value. A read of an absent key returns nil and no error.
// Lists come sorted as documented.
type Tx interface {
	User(id string) (*User, error)
	UserByName(username string) (*User, error)
	// Users lists every user, oldest first.
	Users() ([]*User, error)
	PutUser(*User) error
	DeleteUser(id string) error

	Authenticator(id string) (*Authenticator, error)
	AuthenticatorByKeyID(keyID string) (*Authenticator, error)
	// UserAuthenticators lists a user's authenticators, deleted ones too,
	// oldest first.
	UserAuthenticators(userID string) ([]*Authenticator, error)
	PutAuthenticator(*Authenticator) error
	DeleteAuthenticator(id string) error

	Transaction(id string) (*Transaction, error)
	// PendingTransactions lists the transactions whose status is pending
	// and that belong to userID (when not empty) or are to be answered by
	// authenticatorID (when not empty), oldest first.
	PendingTransactions(userID, authenticatorID string) ([]*Transaction, error)
	PutTransaction(*Transaction) error

	DispatchToken(token string) (*DispatchToken, error)
	PutDispatchToken(*DispatchToken) error

	Session(serverData string) (*Session, error)
	// TransactionSessions lists the sessions of a transaction.
	TransactionSessions(txID string) ([]*Session, error)
	PutSession(*Session) error
	DeleteSession(serverData string) error

	// Inbox lists an authenticator's messages, oldest first.
	Inbox(authenticatorID string) ([]*InboxItem, error)
	// InboxItems lists the messages of a transaction (txID) or of a login
	// request (loginRequestID), whichever is not empty.
	InboxItems(txID, loginRequestID string) ([]*InboxItem, error)
	PutInboxItem(*InboxItem) error
	DeleteInboxItem(id string) error
	// ClearInbox deletes all of an authenticator's messages.
	ClearInbox(authenticatorID string) error

	Intent(token string) (*Intent, error)
	PutIntent(*Intent) error

	// UseNonce records a Device-Signature nonce until a time; it reports
	// false if the nonce is already recorded.
	UseNonce(nonce string, until time.Time) (fresh bool, err error)

	// Revoke records a revoked token id until the token's expiry.
	Revoke(jti string, until time.Time) error
	IsRevoked(jti string) (bool, error)

	LoginRequest(id string) (*LoginRequest, error)
	PutLoginRequest(*LoginRequest) error

	Pairing(id string) (*Pairing, error)
	PutPairing(*Pairing) error

	RefreshToken(token string) (*RefreshToken, error)
	// ChainRefreshTokens lists the refresh tokens of a chain.
	ChainRefreshTokens(chainID string) ([]*RefreshToken, error)
	PutRefreshToken(*RefreshToken) error

	Chain(id string) (*TokenChain, error)
	PutChain(*TokenChain) error
	// AddChainToken records an access or id token of a chain, until it
	// expires; ChainTokens returns them.
	AddChainToken(chainID, jti string, until time.Time) error
	ChainTokens(chainID string) (map[string]time.Time, error)

	// Meta and PutMeta keep small named values: the signing keys, the
	// generated access key.
	Meta(name string) ([]byte, error)
	PutMeta(name string, value []byte) error

	// Sweep forgets what expired: transactions, dispatch tokens, intents,
	// login requests, pairings and inbox messages that expired before
	// cutoff, and sessions, refresh tokens, revocations, nonces and chain
	// tokens that expired before now. It returns how many it removed.
	Sweep(now, cutoff time.Time) (int, error)

	// Wake names a long-poll key to wake once the transaction commits.
	Wake(keys ...string)

	// AddEvent appends e to the event log if, and when, the transaction
	// commits; the store then sets e.ID to the next ID, so IDs follow the
	// commit order, across replicas too (see events.go for the emit API).
	AddEvent(e *adminapi.Event) error
	// Events lists up to limit events with an ID above since, oldest first.
	Events(since int64, limit int) ([]*adminapi.Event, error)
	// LastEventID is the newest event's ID, 0 when there is none.
	LastEventID() (int64, error)

	// Transactions lists every transaction kept, oldest first;
	// LoginRequests and Pairings likewise (inspection API).
	Transactions() ([]*Transaction, error)
	LoginRequests() ([]*LoginRequest, error)
	Pairings() ([]*Pairing, error)
	// ExpiredPending lists up to limit pending transactions whose expiry
	// is not after now, soonest first.
	ExpiredPending(now time.Time, limit int) ([]*Transaction, error)
	// TransactionTokens lists a transaction's dispatch tokens.
	TransactionTokens(txID string) ([]*DispatchToken, error)
	// Counts counts what the store holds.
	Counts() (Counts, error)
	// Reset forgets every user, authenticator, operation, token, message
	// and nonce. The meta values (signing keys, access key, webhooks) and
	// the event log stay, so IDs keep growing and readers keep their place.
	Reset() error
}

// Counts is how many of each kind a store holds.
type Counts struct {
	Users, Authenticators, DeletedAuthenticators  int
	Transactions, PendingTransactions             int
	LoginRequests, Pairings, Inbox, RefreshTokens int
}

// eventsWaitKey is woken by every transaction that logs an event.
const eventsWaitKey = "events"

// Meta names.
const (
	metaIssuer    = "issuer"
	metaAccessKey = "access-key"
)

// User is a user of the relying party.
type User struct {
	ID        string
	Username  string
	CreatedAt time.Time
	UpdatedAt time.Time
	// Activated is set when the first authenticator registers.
	Activated bool
	// LastLoginSuccess and LastLoginFailure are when an approval of the
	// user last succeeded and last failed (zero: never).
	LastLoginSuccess time.Time
	LastLoginFailure time.Time
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
	// Token is the transaction token, once succeeded: its JWS signing
	// input (header.payload), signed when read (Server.signedToken); a
	// store written before that keeps the signed token.
	Token string
	// Number is the number a number-matching approval shows the user (0:
	// none); Choices are the numbers the phone offers, Number among them.
	Number    int
	Choices   []int
	CreatedAt time.Time
	UpdatedAt time.Time
	ExpiresAt time.Time
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
	ID              string
	AuthenticatorID string
	LoginRequestID  string
	Token           string
	TransactionID   string
	Kind            string
	Payload         string
	Notification    string
	Message         string
	CreatedAt       time.Time
	ExpiresAt       time.Time
	// Seq orders messages made at the same time; the store sets it.
	Seq int64
}

// Intent is a single-use, one-user, one-operation credential.
type Intent struct {
	Token     string
	UserID    string
	Username  string
	Operation string
	Channels  []string // empty: every channel
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
}
