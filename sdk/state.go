package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/keystore"
)

// Account is an account of this phone at one cloud: what the phone keeps in
// the clear. Its private key and PIN verifier live in the keystore.
type Account struct {
	// ID is the cloud's authenticator id: unique per account.
	ID          string    `json:"id"`
	Cloud       string    `json:"cloud"`
	Username    string    `json:"username,omitempty"`
	UserID      string    `json:"userId"`
	KeyID       string    `json:"keyId"`
	AAID        string    `json:"aaid"`
	SignCounter uint32    `json:"signCounter"`
	PINFailures int       `json:"pinFailures,omitempty"`
	Headless    bool      `json:"headless,omitempty"`
	Biometric   bool      `json:"biometric,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
}

// MaxPINAttempts is how many wrong PINs in a row lock an account.
const MaxPINAttempts = 5

// Locked reports whether the account's second factor is locked.
func (a *Account) Locked() bool { return a.PINFailures >= MaxPINAttempts }

// Name is how the CLI names the account: the username, else the user id.
func (a *Account) Name() string {
	if a.Username != "" {
		return a.Username
	}
	return a.UserID
}

func (a *Account) flowAccount() *flows.Account {
	if a == nil {
		return nil
	}
	return &flows.Account{ID: a.ID, Username: a.Username, UserID: a.UserID, Cloud: a.Cloud, Headless: a.Headless}
}

type stateFile struct {
	Version  int        `json:"version"`
	Accounts []*Account `json:"accounts"`
}

func (p *Phone) statePath() string { return filepath.Join(p.dir, "accounts.json") }

// load reads the account list; a missing file is an empty phone.
func (p *Phone) load() ([]*Account, error) {
	b, err := os.ReadFile(p.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read phone state: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("phone state %s is damaged (%v); move it aside to start afresh", p.statePath(), err)
	}
	return st.Accounts, nil
}

func (p *Phone) save(accts []*Account) error {
	b, err := json.MarshalIndent(stateFile{Version: 1, Accounts: accts}, "", "  ")
	if err != nil {
		return err
	}
	if err := keystore.WriteFileAtomic(p.statePath(), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write phone state: %w", err)
	}
	return nil
}

// updateAccount applies fn to the stored account with id and saves.
func (p *Phone) updateAccount(id string, fn func(*Account)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	accts, err := p.load()
	if err != nil {
		return err
	}
	for _, a := range accts {
		if a.ID == id {
			fn(a)
			return p.save(accts)
		}
	}
	return fmt.Errorf("%w: %s", ErrNoAccount, id)
}

func (p *Phone) addAccount(a *Account) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	accts, err := p.load()
	if err != nil {
		return err
	}
	return p.save(append(accts, a))
}

func (p *Phone) removeAccountState(id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	accts, err := p.load()
	if err != nil {
		return err
	}
	out := accts[:0]
	for _, a := range accts {
		if a.ID != id {
			out = append(out, a)
		}
	}
	return p.save(out)
}

// Accounts lists the phone's accounts, oldest first.
func (p *Phone) Accounts() ([]*Account, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.load()
}

// Account finds an account by id, username, user id or a unique id prefix.
// An empty ref names the only account.
func (p *Phone) Account(ref string) (*Account, error) {
	accts, err := p.Accounts()
	if err != nil {
		return nil, err
	}
	if ref == "" {
		switch len(accts) {
		case 0:
			return nil, fmt.Errorf("%w: this phone has no accounts; scan an enrolment QR first", ErrNoAccount)
		case 1:
			return accts[0], nil
		default:
			return nil, fmt.Errorf("%w: this phone has %d accounts; name one (username, user id or account id)", ErrNoAccount, len(accts))
		}
	}
	var found []*Account
	for _, a := range accts {
		if a.ID == ref || a.Username == ref || a.UserID == ref || (len(ref) >= 6 && len(a.ID) > len(ref) && a.ID[:len(ref)] == ref) {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w: %q; `authphone accounts` lists them", ErrNoAccount, ref)
	case 1:
		return found[0], nil
	default:
		return nil, fmt.Errorf("%w: %q names %d accounts; use the account id", ErrNoAccount, ref, len(found))
	}
}
