package keystore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"filippo.io/age"
)

// WorkFactor is the scrypt work factor (log2 N) of the file store: about a
// tenth of a second per unlock on a laptop, which keeps the CLI quick.
const WorkFactor = 15

// File keeps secrets in one age-encrypted file (passphrase, scrypt), written
// atomically with mode 0600. The decrypted map is kept in memory after the
// first read.
type File struct {
	path       string
	passphrase string

	mu     sync.Mutex
	loaded map[string][]byte
}

// NewFile returns the file store at path.
func NewFile(path, passphrase string) *File { return &File{path: path, passphrase: passphrase} }

// Kind is "file".
func (*File) Kind() string { return KindFile }

func (s *File) load() (map[string][]byte, error) {
	if s.loaded != nil {
		return s.loaded, nil
	}
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		s.loaded = map[string][]byte{}
		return s.loaded, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer f.Close()
	id, err := age.NewScryptIdentity(s.passphrase)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	r, err := age.Decrypt(f, id)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, fmt.Errorf("%w for %s: check %s", ErrPassphrase, s.path, PassphraseEnv)
		}
		return nil, fmt.Errorf("%w: %s is not an authphone keystore: %w", ErrUnavailable, s.path, err)
	}
	var m map[string][]byte
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, s.path, err)
	}
	s.loaded = m
	return m, nil
}

func (s *File) save(m map[string][]byte) error {
	rcp, err := age.NewScryptRecipient(s.passphrase)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	rcp.SetWorkFactor(WorkFactor)
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rcp)
	if err != nil {
		return err
	}
	if err := json.NewEncoder(w).Encode(m); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return WriteFileAtomic(s.path, buf.Bytes(), 0o600)
}

// Get implements Store.
func (s *File) Get(_ context.Context, name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.load()
	if err != nil {
		return nil, err
	}
	v, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return bytes.Clone(v), nil
}

// Set implements Store.
func (s *File) Set(_ context.Context, name string, secret []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.load()
	if err != nil {
		return err
	}
	next := make(map[string][]byte, len(m)+1)
	for k, v := range m {
		next[k] = v
	}
	next[name] = bytes.Clone(secret)
	if err := s.save(next); err != nil {
		return err
	}
	s.loaded = next
	return nil
}

// Delete implements Store.
func (s *File) Delete(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.load()
	if err != nil {
		return err
	}
	if _, ok := m[name]; !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	next := make(map[string][]byte, len(m))
	for k, v := range m {
		if k != name {
			next[k] = v
		}
	}
	if err := s.save(next); err != nil {
		return err
	}
	s.loaded = next
	return nil
}

// WriteFileAtomic writes data to a temporary file beside path and renames it
// into place, so readers see the old or the new content, never a mix.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := io.Copy(f, bytes.NewReader(data)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}

// All returns a copy of every secret in the file (one decryption).
func (s *File) All(_ context.Context) (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.load()
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = bytes.Clone(v)
	}
	return out, nil
}

// Replace makes m the file's whole content, in one write (one encryption)
// however many secrets it holds. An existing file must open with the
// passphrase first.
func (s *File) Replace(_ context.Context, m map[string][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.load(); err != nil {
		return err
	}
	next := make(map[string][]byte, len(m))
	for k, v := range m {
		next[k] = bytes.Clone(v)
	}
	if err := s.save(next); err != nil {
		return err
	}
	s.loaded = next
	return nil
}
