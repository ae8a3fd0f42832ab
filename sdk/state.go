package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/authphone/authphone/flows"
)

// Account is an account of this phone at one cloud: what the phone keeps in
// the clear. Its private key and PIN verifier live in the keystore.
type Account struct {
	// ID is the cloud's authenticator id: unique per account.
	ID          string `json:"id"`
	Cloud       string `json:"cloud"`
	Username    string `json:"username,omitempty"`
	UserID      string `json:"userId"`
	KeyID       string `json:"keyId"`
	AAID        string `json:"aaid"`
	SignCounter uint32 `json:"signCounter"`
	PINFailures int    `json:"pinFailures,omitempty"`
	Headless    bool   `json:"headless,omitempty"`
	Biometric   bool   `json:"biometric,omitempty"`
	// SignAlg is the key's UAF signature algorithm, chosen at registration
	// to satisfy the cloud's policy; zero is uaf.AlgSecp256r1SHA256Raw.
	SignAlg uint16 `json:"signAlg,omitempty"`
	// InboxKey is the id of the phone's device key that the account's
	// push target is bound to: such accounts are read with one signed
	// request for all (POST /_app/inboxes).
	InboxKey  string    `json:"inboxKey,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
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

// The phone keeps its accounts in memory and on disk in two files of its
// state directory (ours):
//
//   - accounts.json, the list, rewritten atomically when an account is
//     added, replaced or removed (and when the log is folded into it);
//   - counters.log, a write-ahead log of the counters that change on every
//     approval: one short line "ACCOUNT-ID SIGN-COUNTER PIN-FAILURES"
//     appended (and, with DurabilityFull, fsynced) before a signature
//     leaves the phone. Loading replays it over accounts.json; past
//     compactAfter bytes it is folded into accounts.json and emptied.
//
// Every write holds an advisory lock (flock) on counters.log, and every
// read first checks, with a stat of each file, whether another process
// changed them, so several processes on one profile stay consistent.
//
// A phone made WithMemoryState keeps only the list in memory: no file is
// read or written, and its accounts end with the Phone.
const (
	accountsFile = "accounts.json"
	countersFile = "counters.log"
	compactAfter = 64 << 10
)

// Durability says how the phone makes its counters survive a crash.
type Durability int

const (
	// DurabilityFull fsyncs each counter record before the signature that
	// uses it leaves the phone: a counter survives a power loss. The default.
	DurabilityFull Durability = iota
	// DurabilityRelaxed appends the record without fsync: it survives the
	// process crashing, but a power loss can lose the last counters, and a
	// cloud then refuses the next approval as a replay. For fleets and load
	// tests.
	DurabilityRelaxed
)

func (d Durability) String() string {
	if d == DurabilityRelaxed {
		return "relaxed"
	}
	return "full"
}

// ParseDurability reads "full" or "relaxed".
func ParseDurability(s string) (Durability, error) {
	switch s {
	case "full", "":
		return DurabilityFull, nil
	case "relaxed":
		return DurabilityRelaxed, nil
	}
	return 0, fmt.Errorf("durability %q: use full (fsync each sign counter) or relaxed (no fsync, for load tests)", s)
}

// WithDurability sets how the phone writes its sign counters (default
// DurabilityFull).
func WithDurability(d Durability) Option { return func(o *options) { o.durability = d } }

// Durability is how this phone writes its sign counters.
func (p *Phone) Durability() Durability { return p.durability }

// state is the phone's accounts in memory, and what of the two files they
// reflect. Guarded by Phone.mu.
type state struct {
	loaded bool
	accts  []*Account
	json   os.FileInfo // accounts.json as read or written; nil: none
	logOff int64       // the bytes of counters.log applied
}

func (p *Phone) statePath() string { return filepath.Join(p.dir, accountsFile) }
func (p *Phone) logPath() string   { return filepath.Join(p.dir, countersFile) }

func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// refresh brings the accounts in memory up to date with the files: a
// stat of each when nothing changed.
func (p *Phone) refresh() error {
	_, err := p.refreshLog(nil)
	return err
}

// refreshLog is refresh with the counter log already open (and locked) as
// log, so its size is read from the open file. It returns that size when
// it read it and nothing had changed, else -1.
func (p *Phone) refreshLog(log *os.File) (int64, error) {
	if p.memory {
		return 0, nil // nothing but memory to be up to date with
	}
	fi, err := os.Stat(p.statePath())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return -1, fmt.Errorf("read phone state: %w", err)
	}
	if !p.st.loaded || !sameFile(p.st.json, fi) {
		return -1, p.reload(log, fi == nil)
	}
	var lfi os.FileInfo
	if log != nil {
		lfi, err = log.Stat()
	} else {
		lfi, err = os.Stat(p.logPath())
	}
	var size int64
	switch {
	case err == nil:
		size = lfi.Size()
	case !errors.Is(err, os.ErrNotExist):
		return -1, fmt.Errorf("read phone state: %w", err)
	}
	switch {
	case size < p.st.logOff:
		return -1, p.reload(log, false) // folded by another process
	case size > p.st.logOff:
		return -1, p.replay(log)
	}
	return size, nil
}

// reload reads accounts.json and replays the whole log over it; log is
// the log if it is open, and absent says a stat just found no
// accounts.json (a new profile: nothing to open).
func (p *Phone) reload(log *os.File, absent bool) error {
	p.st = state{}
	f, err := (*os.File)(nil), error(os.ErrNotExist)
	if !absent {
		f, err = os.Open(p.statePath())
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read phone state: %w", err)
	}
	if err == nil {
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("read phone state: %w", err)
		}
		b, err := io.ReadAll(f)
		if err != nil {
			return fmt.Errorf("read phone state: %w", err)
		}
		var sf stateFile
		if err := json.Unmarshal(b, &sf); err != nil {
			return fmt.Errorf("phone state %s is damaged (%v); move it aside to start afresh", p.statePath(), err)
		}
		p.st.accts, p.st.json = sf.Accounts, fi
	}
	if err := p.replay(log); err != nil {
		return err
	}
	p.st.loaded = true
	return nil
}

// replay applies the complete lines of counters.log past logOff. A torn
// last line (a crash in the middle of an append) is left for the next
// writer to cut off. log is the log if it is open (it is then read, not
// opened again).
func (p *Phone) replay(log *os.File) error {
	f := log
	if f == nil {
		var err error
		f, err = os.Open(p.logPath())
		if errors.Is(err, os.ErrNotExist) {
			p.st.logOff = 0
			return nil
		}
		if err != nil {
			return fmt.Errorf("read phone state: %w", err)
		}
		defer f.Close()
	}
	b, err := io.ReadAll(io.NewSectionReader(f, p.st.logOff, 1<<40))
	if err != nil {
		return fmt.Errorf("read phone state: %w", err)
	}
	b = b[:bytes.LastIndexByte(b, '\n')+1]
	for line := range bytes.Lines(b) {
		id, counter, failures, ok := parseRecord(line)
		if !ok {
			return fmt.Errorf("phone state %s is damaged (line %q); move it aside, with %s, to start afresh", p.logPath(), bytes.TrimSpace(line), accountsFile)
		}
		for _, a := range p.st.accts {
			if a.ID == id {
				a.SignCounter = max(a.SignCounter, counter) // counters never go back
				a.PINFailures = failures
			}
		}
	}
	p.st.logOff += int64(len(b))
	return nil
}

func parseRecord(line []byte) (id string, counter uint32, failures int, ok bool) {
	f := strings.Fields(string(line))
	if len(f) != 3 {
		return "", 0, 0, false
	}
	c, err1 := strconv.ParseUint(f[1], 10, 32)
	n, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || n < 0 || f[0] == "" {
		return "", 0, 0, false
	}
	return f[0], uint32(c), n, true
}

func appendRecord(b []byte, a *Account) []byte {
	b = append(b, a.ID...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(a.SignCounter), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(a.PINFailures), 10)
	return append(b, '\n')
}

// lockState opens counters.log and holds its lock until the file is
// closed; the accounts in memory are then up to date. It also returns the
// log's size when it is known (-1: stat the file for it).
func (p *Phone) lockState() (*os.File, int64, error) {
	f, err := os.OpenFile(p.logPath(), os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		// The first write of a new profile: make its directory.
		if err := os.MkdirAll(p.dir, 0o700); err != nil {
			return nil, -1, fmt.Errorf("write phone state: %w", err)
		}
		f, err = os.OpenFile(p.logPath(), os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	}
	if err != nil {
		return nil, -1, fmt.Errorf("write phone state: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, -1, fmt.Errorf("lock phone state: %w", err)
	}
	size, err := p.refreshLog(f)
	if err != nil {
		f.Close()
		return nil, -1, err
	}
	return f, size, nil
}

// updateAccount applies fn to the account with id and appends its counters
// to the log: one small write (and an fsync with DurabilityFull), not a
// rewrite of accounts.json.
func (p *Phone) updateAccount(id string, fn func(*Account)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.memory {
		for _, a := range p.st.accts {
			if a.ID == id {
				fn(a)
				return nil
			}
		}
		return fmt.Errorf("%w: %s", ErrNoAccount, id)
	}
	f, size, err := p.lockState()
	if err != nil {
		return err
	}
	defer f.Close()
	var a *Account
	for _, x := range p.st.accts {
		if x.ID == id {
			a = x
		}
	}
	if a == nil {
		return fmt.Errorf("%w: %s", ErrNoAccount, id)
	}
	if size < 0 {
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("write phone state: %w", err)
		}
		size = fi.Size()
	}
	if size != p.st.logOff { // a torn line from a crash: cut it off
		if err := f.Truncate(p.st.logOff); err != nil {
			return fmt.Errorf("write phone state: %w", err)
		}
	}
	fn(a)
	rec := appendRecord(make([]byte, 0, 64), a)
	if _, err := f.Write(rec); err != nil {
		p.st.loaded = false // re-read: the log may hold part of it
		return fmt.Errorf("write phone state: %w", err)
	}
	if p.durability == DurabilityFull {
		if err := f.Sync(); err != nil {
			p.st.loaded = false
			return fmt.Errorf("write phone state: %w", err)
		}
	}
	p.st.logOff += int64(len(rec))
	if p.st.logOff > compactAfter {
		return p.rewrite(f, func(a []*Account) []*Account { return a })
	}
	return nil
}

// rewrite replaces the account list by fn's, writes accounts.json (the
// counters folded in) and empties the log; f is the locked log.
func (p *Phone) rewrite(f *os.File, fn func([]*Account) []*Account) error {
	accts := fn(p.st.accts)
	b, err := json.MarshalIndent(stateFile{Version: 1, Accounts: accts}, "", "  ")
	if err != nil {
		return err
	}
	fi, err := writeAtomic(p.statePath(), append(b, '\n'), p.durability == DurabilityFull)
	if err != nil {
		p.st.loaded = false
		return fmt.Errorf("write phone state: %w", err)
	}
	if err := f.Truncate(0); err != nil {
		p.st.loaded = false
		return fmt.Errorf("write phone state: %w", err)
	}
	p.st.accts, p.st.json, p.st.logOff = accts, fi, 0
	return nil
}

// writeAtomic writes path by a rename of a temporary file; with sync, the
// data and the directory entry reach the disk before it returns. It
// returns the file's FileInfo as written (the rename keeps its inode,
// size and modification time).
func writeAtomic(path string, data []byte, sync bool) (os.FileInfo, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	var fi os.FileInfo
	if err == nil {
		fi, err = f.Stat()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return nil, err
	}
	if sync {
		if d, err := os.Open(dir); err == nil {
			err = d.Sync()
			d.Close()
			return fi, err
		}
	}
	return fi, nil
}

// changeAccounts rewrites the account list with fn's.
func (p *Phone) changeAccounts(fn func([]*Account) []*Account) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.memory {
		p.st.accts = fn(p.st.accts)
		return nil
	}
	f, _, err := p.lockState()
	if err != nil {
		return err
	}
	defer f.Close()
	return p.rewrite(f, fn)
}

func (p *Phone) addAccount(a *Account) error {
	c := *a
	return p.changeAccounts(func(accts []*Account) []*Account { return append(slices.Clip(accts), &c) })
}

// replaceAccount swaps the record with id for a (or adds a).
func (p *Phone) replaceAccount(id string, a *Account) error {
	c := *a
	return p.changeAccounts(func(accts []*Account) []*Account {
		out := slices.Clone(accts)
		for i, x := range out {
			if x.ID == id {
				out[i] = &c
				return out
			}
		}
		return append(out, &c)
	})
}

func (p *Phone) removeAccountState(id string) error {
	return p.changeAccounts(func(accts []*Account) []*Account {
		return slices.DeleteFunc(slices.Clone(accts), func(a *Account) bool { return a.ID == id })
	})
}

// Accounts lists the phone's accounts, oldest first.
func (p *Phone) Accounts() ([]*Account, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.refresh(); err != nil {
		return nil, err
	}
	out := make([]*Account, len(p.st.accts))
	for i, a := range p.st.accts {
		c := *a
		out[i] = &c
	}
	return out, nil
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
