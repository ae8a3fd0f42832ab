package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk/backend"
)

// A state directory (--state DIR) holds:
//
//	fleet.json   the cloud, the second factor and each phone's user
//	keys.age     every phone's keys, age-encrypted (one file, one write)
//	phones/N/    phone N's accounts.json and counters.log
const (
	stateFile = "fleet.json"
	keysFile  = "keys.age"
)

type savedFleet struct {
	Version      int          `json:"version"`
	Cloud        string       `json:"cloud"`
	SecondFactor string       `json:"secondFactor"`
	Phones       []savedPhone `json:"phones"`
}

type savedPhone struct {
	Username string `json:"username"`
	UserID   string `json:"userId"`
}

func factorName(biometric bool) string {
	if biometric {
		return "biometric"
	}
	return "pin"
}

func readSaved(dir string) (*savedFleet, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the fleet state: %w", err)
	}
	var sf savedFleet
	if err := json.Unmarshal(b, &sf); err != nil || sf.Version != 1 {
		return nil, fmt.Errorf("%w: %s is not a fleet state (%v); use another --state DIR", ErrBadConfig, filepath.Join(dir, stateFile), err)
	}
	return &sf, nil
}

// loadState reads the saved fleet, if any, and its keys into r.keys.
func (r *run) loadState(ctx context.Context) (*savedFleet, error) {
	sf, err := readSaved(r.cfg.StateDir)
	if sf == nil || err != nil {
		return nil, err
	}
	if strings.TrimRight(sf.Cloud, "/") != strings.TrimRight(r.cfg.Cloud, "/") {
		return nil, fmt.Errorf("%w: --state %s holds a fleet enrolled at %s; use that --cloud, or another --state DIR", ErrBadConfig, r.cfg.StateDir, sf.Cloud)
	}
	if want := factorName(r.cfg.Biometric); sf.SecondFactor != want {
		return nil, fmt.Errorf("%w: --state %s holds %s phones; use --second-factor %s, or another --state DIR", ErrBadConfig, r.cfg.StateDir, sf.SecondFactor, sf.SecondFactor)
	}
	all, err := keystore.NewFile(filepath.Join(r.cfg.StateDir, keysFile), r.cfg.Passphrase).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("open the fleet's keys: %w", err)
	}
	for k, v := range all {
		if err := r.keys.Set(ctx, k, v); err != nil {
			return nil, err
		}
	}
	return sf, nil
}

// saveState writes the fleet's users and keys to the state directory.
func (r *run) saveState(ctx context.Context) error {
	sf := savedFleet{Version: 1, Cloud: r.cfg.Cloud, SecondFactor: factorName(r.cfg.Biometric)}
	// By position, as the phones' directories: a gap (a phone not
	// enrolled) is an empty entry, enrolled next time.
	for _, ph := range r.phones {
		var sp savedPhone
		if ph != nil {
			sp = savedPhone{Username: ph.username, UserID: ph.userID}
		}
		sf.Phones = append(sf.Phones, sp)
	}
	// Phones saved before but not used this run (a smaller --phones) stay.
	if old, err := readSaved(r.cfg.StateDir); err == nil && old != nil && len(old.Phones) > len(sf.Phones) {
		sf.Phones = append(sf.Phones, old.Phones[len(sf.Phones):]...)
	}
	if err := keystore.NewFile(filepath.Join(r.cfg.StateDir, keysFile), r.cfg.Passphrase).Replace(ctx, r.keys.All()); err != nil {
		return fmt.Errorf("save the fleet's keys: %w", err)
	}
	b, _ := json.MarshalIndent(sf, "", "  ")
	if err := keystore.WriteFileAtomic(filepath.Join(r.cfg.StateDir, stateFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save the fleet state: %w", err)
	}
	return nil
}

// Remove deletes the users of the fleet saved in cfg.StateDir from the
// cloud, and the state with them; it returns how many users it removed.
func Remove(ctx context.Context, cfg Config) (int, error) {
	if cfg.StateDir == "" {
		return 0, fmt.Errorf("%w: remove needs --state DIR", ErrBadConfig)
	}
	sf, err := readSaved(cfg.StateDir)
	if err != nil {
		return 0, err
	}
	if sf == nil {
		return 0, fmt.Errorf("%w: %s holds no fleet (no %s)", ErrBadConfig, cfg.StateDir, stateFile)
	}
	if cfg.Cloud != "" && strings.TrimRight(sf.Cloud, "/") != strings.TrimRight(cfg.Cloud, "/") {
		return 0, fmt.Errorf("%w: --state %s holds a fleet enrolled at %s; use that --cloud", ErrBadConfig, cfg.StateDir, sf.Cloud)
	}
	opts := []backend.Option{backend.WithAccessKey(cfg.AccessKey)}
	if cfg.Transport != nil {
		opts = append(opts, backend.WithHTTPClient(&http.Client{Transport: cfg.Transport}))
	}
	be := backend.New(sf.Cloud, opts...)
	if err := be.Ping(ctx); err != nil {
		return 0, fmt.Errorf("reach the cloud at %s: %w", sf.Cloud, err)
	}
	var mu sync.Mutex
	var firstErr error
	removed := 0
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, sp := range sf.Phones {
		if sp.UserID == "" {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := be.DeleteUser(ctx, sp.UserID)
			mu.Lock()
			defer mu.Unlock()
			var ae *backend.Error
			switch {
			case err == nil:
				removed++
			case errors.As(err, &ae) && ae.Status == 404: // already gone
			case firstErr == nil:
				firstErr = fmt.Errorf("remove user %s: %w", sp.Username, err)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return removed, fmt.Errorf("%w; the state was kept, run again to finish", firstErr)
	}
	for _, name := range []string{stateFile, keysFile, "phones"} {
		if err := os.RemoveAll(filepath.Join(cfg.StateDir, name)); err != nil {
			return removed, err
		}
	}
	return removed, nil
}
