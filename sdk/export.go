package sdk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/authphone/authphone/keystore"
)

// ProfileExport is a phone profile saved by ExportAccounts: its accounts
// and, in an encrypted export only, their secrets (device keys and PIN
// verifiers, by keystore name).
type ProfileExport struct {
	Kind       string            `json:"kind"` // ProfileExportKind
	Version    int               `json:"version"`
	Profile    string            `json:"profile"`
	ExportedAt time.Time         `json:"exportedAt"`
	Accounts   []*Account        `json:"accounts"`
	Secrets    map[string][]byte `json:"secrets,omitempty"`
}

// ProfileExportKind marks an accounts export (and tells it from the
// emulator's state export).
const ProfileExportKind = "authphone-accounts"

// profileExportVersion is the version ExportAccounts writes.
const profileExportVersion = 1

// exportWorkFactor is the scrypt work factor (log2 N) of an encrypted
// export: the file keystore's, so a test run stays light (age's own
// default, 18, costs 256 MiB and about a second per export).
const exportWorkFactor = keystore.WorkFactor

// Errors of export and import.
var (
	// ErrPassphraseNeeded: an encrypted export was given without its
	// passphrase.
	ErrPassphraseNeeded = errors.New("this export is encrypted: give its passphrase")
	// ErrNotExport: the input is not something ExportAccounts wrote.
	ErrNotExport = errors.New("not an authphone accounts export")
)

// ExportAccounts saves the phone's accounts. Without a passphrase it is
// plain JSON of the accounts (what `authphone accounts` shows: no keys).
// With one it also holds each account's device key and PIN verifier and is
// encrypted with age to that passphrase (scrypt), ASCII-armored.
func (p *Phone) ExportAccounts(ctx context.Context, passphrase string) ([]byte, error) {
	accts, err := p.Accounts()
	if err != nil {
		return nil, err
	}
	doc := ProfileExport{Kind: ProfileExportKind, Version: profileExportVersion, Profile: p.profile, ExportedAt: p.now().UTC().Truncate(time.Second), Accounts: accts}
	if doc.Accounts == nil {
		doc.Accounts = []*Account{}
	}
	if passphrase == "" {
		b, err := json.MarshalIndent(doc, "", "  ")
		return append(b, '\n'), err
	}
	doc.Secrets = map[string][]byte{}
	for _, a := range accts {
		for _, name := range []string{keyName(a.KeyID), pinName(a.KeyID)} {
			v, err := p.keys.Get(ctx, name)
			if errors.Is(err, keystore.ErrNotFound) {
				if name == keyName(a.KeyID) {
					return nil, &keyGoneError{account: a, kind: p.keys.Kind()}
				}
				continue // biometric and headless accounts have no PIN verifier
			}
			if err != nil {
				return nil, fmt.Errorf("read %s from the %s keystore: %w", name, p.keys.Kind(), err)
			}
			doc.Secrets[name] = v
		}
	}
	plain, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	rcp, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return nil, err
	}
	rcp.SetWorkFactor(exportWorkFactor)
	var out bytes.Buffer
	aw := armor.NewWriter(&out)
	w, err := age.Encrypt(aw, rcp)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// IsEncryptedExport reports whether data is an age-encrypted export (armored
// or binary), which ImportAccounts needs the passphrase for.
func IsEncryptedExport(data []byte) bool {
	d := bytes.TrimSpace(data)
	return bytes.HasPrefix(d, []byte(armor.Header)) || bytes.HasPrefix(d, []byte("age-encryption.org/"))
}

// ImportResult says what ImportAccounts did.
type ImportResult struct {
	Accounts []*Account `json:"accounts"`
	// Keys is true when the export held the accounts' keys (it was
	// encrypted); a plain export restores the records only.
	Keys bool `json:"keys"`
}

// ImportAccounts adds the accounts of an export to the phone: an account
// already here (same id) is replaced by the exported record, so counters
// and PIN failures come back as they were. An encrypted export needs its
// passphrase and brings the keys too; a plain one brings the records only
// (an account whose key is not in this phone's keystore cannot approve).
// The export is checked whole before anything is written; then the keys
// are written, and the account list last, in one atomic write.
func (p *Phone) ImportAccounts(ctx context.Context, data []byte, passphrase string) (*ImportResult, error) {
	plain := data
	if IsEncryptedExport(data) {
		if passphrase == "" {
			return nil, ErrPassphraseNeeded
		}
		id, err := age.NewScryptIdentity(passphrase)
		if err != nil {
			return nil, err
		}
		var in io.Reader = bytes.NewReader(data)
		if bytes.HasPrefix(bytes.TrimSpace(data), []byte(armor.Header)) {
			in = armor.NewReader(bufio.NewReader(bytes.NewReader(bytes.TrimSpace(data))))
		}
		r, err := age.Decrypt(in, id)
		if err != nil {
			var nm *age.NoIdentityMatchError
			if errors.As(err, &nm) {
				return nil, fmt.Errorf("%w: the passphrase does not open this export", keystore.ErrPassphrase)
			}
			return nil, fmt.Errorf("%w: the encrypted export is damaged (%v)", ErrNotExport, err)
		}
		if plain, err = io.ReadAll(io.LimitReader(r, 64<<20)); err != nil {
			return nil, fmt.Errorf("%w: the encrypted export is damaged (%v)", ErrNotExport, err)
		}
	}
	var doc ProfileExport
	if err := json.Unmarshal(plain, &doc); err != nil || doc.Kind != ProfileExportKind {
		return nil, fmt.Errorf("%w: give a file `authphone accounts export` wrote", ErrNotExport)
	}
	if doc.Version != profileExportVersion {
		return nil, fmt.Errorf("%w: version %d is not %d; export it again with this authphone", ErrNotExport, doc.Version, profileExportVersion)
	}
	for i, a := range doc.Accounts {
		if a == nil || a.ID == "" || a.KeyID == "" || a.Cloud == "" || a.UserID == "" {
			return nil, fmt.Errorf("%w: accounts[%d] lacks its id, key id, cloud or user id", ErrNotExport, i)
		}
		if doc.Secrets != nil {
			if _, ok := doc.Secrets[keyName(a.KeyID)]; !ok {
				return nil, fmt.Errorf("%w: the key of accounts[%d] (%s) is missing", ErrNotExport, i, a.Name())
			}
		}
	}

	have, err := p.Accounts()
	if err != nil {
		return nil, err
	}
	for _, a := range doc.Accounts {
		for _, h := range have {
			switch {
			case h.ID == a.ID && h.KeyID != a.KeyID:
				return nil, fmt.Errorf("account %s is already on this phone with another key; remove it first (`authphone accounts remove %s`)", a.Name(), h.ID)
			case h.ID != a.ID && h.KeyID == a.KeyID:
				return nil, fmt.Errorf("the key of account %s is already used by account %s on this phone; remove it first", a.Name(), h.ID)
			}
		}
	}
	names := make([]string, 0, len(doc.Secrets))
	for name := range doc.Secrets {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !strings.HasPrefix(name, "device-key/") && !strings.HasPrefix(name, "pin/") {
			return nil, fmt.Errorf("%w: it holds an unknown secret %q", ErrNotExport, name)
		}
		if err := p.keys.Set(ctx, name, doc.Secrets[name]); err != nil {
			return nil, fmt.Errorf("keep %s in the %s keystore: %w", name, p.keys.Kind(), err)
		}
	}
	err = p.changeAccounts(func(accts []*Account) []*Account {
		merged := slices.Clone(accts)
		for _, a := range doc.Accounts {
			c := *a
			if i := slices.IndexFunc(merged, func(h *Account) bool { return h.ID == a.ID }); i >= 0 {
				merged[i] = &c
			} else {
				merged = append(merged, &c)
			}
		}
		return merged
	})
	if err != nil {
		return nil, err
	}
	return &ImportResult{Accounts: doc.Accounts, Keys: doc.Secrets != nil}, nil
}
