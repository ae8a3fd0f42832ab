package emulator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestSQLiteFiles: whatever the umask, every file the store creates (the
// database, -wal) is 0600; a path with URI metacharacters is taken
// as a path (the files land exactly there, with the pragmas applied); the
// sync mode is the one asked for.
func TestSQLiteFiles(t *testing.T) {
	old := syscall.Umask(0) // the most permissive: files would be 0666
	defer syscall.Umask(old)
	for _, tc := range []struct {
		name, sync string
		full       bool // the store syncs commits (the connection is on NORMAL either way)
	}{
		{"cloud.db", "", true},
		{"a#b%20c?mode=memory&d e.db", "normal", false},
		{"100%.db", "FULL", true},
		{"loose.db", "", true}, // made beforehand with mode 0644
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tc.name)
			if tc.name == "loose.db" {
				if err := os.WriteFile(path, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var opts []SQLiteOption
			if tc.sync != "" {
				opts = append(opts, WithSQLiteSync(tc.sync))
			}
			s, err := OpenSQLite(path, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			u := &User{ID: "u1", Username: "alice", CreatedAt: time.Unix(1, 0).UTC(), UpdatedAt: time.Unix(1, 0).UTC()}
			if err := s.Update(ctx, func(tx Tx) error { return tx.PutUser(u) }); err != nil {
				t.Fatal(err)
			}
			var mode string
			var sync int
			if err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
				t.Fatalf("journal_mode %q, %v; want wal", mode, err)
			}
			// 1, NORMAL, set by the pragma (SQLite's default is FULL).
			if err := s.db.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil || sync != 1 {
				t.Fatalf("synchronous %d, %v; want 1", sync, err)
			}
			if s.full != tc.full {
				t.Fatalf("full %v, want %v", s.full, tc.full)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
				fi, err := e.Info()
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s has mode %v, want 0600", e.Name(), fi.Mode().Perm())
				}
			}
			// No -shm: with locking_mode=EXCLUSIVE the WAL's index is in memory.
			want := []string{tc.name, tc.name + "-wal"}
			slices.Sort(names)
			if !slices.Equal(names, want) {
				t.Fatalf("files %q, want %q", names, want)
			}
			if s.Path() != path {
				t.Fatalf("Path %q, want %q", s.Path(), path)
			}
			// One emulator at a time has the file: a second is told so.
			if _, err := OpenSQLite(path); !errors.Is(err, ErrInUse) {
				t.Fatalf("second store on an open file: %v, want ErrInUse", err)
			}
			// The state is in that file: a store opened after it reads it.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2, err := OpenSQLite(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			var got *User
			if err := s2.View(ctx, func(tx Tx) (err error) { got, err = tx.UserByName("alice"); return err }); err != nil || got == nil {
				t.Fatalf("reopened: %v %v", got, err)
			}
		})
	}
	if _, err := OpenSQLite(filepath.Join(t.TempDir(), "x.db"), WithSQLiteSync("off")); !errors.Is(err, ErrBadSync) {
		t.Fatalf("sync off: %v", err)
	}
	if _, err := OpenSQLite(filepath.Join(t.TempDir(), "no", "such", "dir", "x.db")); err == nil {
		t.Fatal("opened a database in a directory that does not exist")
	}
}
