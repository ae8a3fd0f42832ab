package keystore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authphone/authphone/keystore"
)

// contract checks what every Store must do.
func contract(t *testing.T, s keystore.Store) {
	t.Helper()
	ctx := context.Background()
	name := "test-" + strings.ReplaceAll(t.Name(), "/", "-")
	if _, err := s.Get(ctx, name); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get missing: %v, want ErrNotFound", err)
	}
	secret := []byte{0, 1, 2, 0xff, 'k', 'e', 'y'}
	if err := s.Set(ctx, name, secret); err != nil {
		t.Fatalf("Set: %v", err)
	}
	got, err := s.Get(ctx, name)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Get = %x, %v", got, err)
	}
	if err := s.Set(ctx, name, []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, name); string(got) != "v2" {
		t.Fatalf("overwrite: %q", got)
	}
	if err := s.Delete(ctx, name); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Delete(ctx, name); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Delete missing: %v", err)
	}
}

func TestMemory(t *testing.T) { contract(t, keystore.NewMemory()) }

func TestBulk(t *testing.T) {
	ctx := context.Background()
	m := keystore.NewMemory()
	_ = m.Set(ctx, "a", []byte("1"))
	_ = m.Set(ctx, "b", []byte("2"))
	all := m.All()
	all["a"][0] = 'x' // a copy
	if got, _ := m.Get(ctx, "a"); string(got) != "1" || len(all) != 2 {
		t.Fatalf("All: %q %v", got, all)
	}
	path := filepath.Join(t.TempDir(), "keys.age")
	f := keystore.NewFile(path, "pass")
	if err := f.Replace(ctx, m.All()); err != nil {
		t.Fatal(err)
	}
	back, err := keystore.NewFile(path, "pass").All(ctx)
	if err != nil || len(back) != 2 || string(back["b"]) != "2" {
		t.Fatalf("%v %v", back, err)
	}
	if err := keystore.NewFile(path, "wrong").Replace(ctx, nil); !errors.Is(err, keystore.ErrPassphrase) {
		t.Fatalf("replace with a wrong passphrase: %v", err)
	}
	if back, _ := keystore.NewFile(path, "pass").All(ctx); len(back) != 2 {
		t.Fatal("a refused replace changed the file")
	}
}

func TestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.age")
	s := keystore.NewFile(path, "correct horse")
	contract(t, s)
	ctx := context.Background()
	if err := s.Set(ctx, "device-key", []byte("PRIVATE-KEY-MATERIAL")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte("PRIVATE-KEY-MATERIAL")) || !bytes.HasPrefix(raw, []byte("age-encryption.org/v1")) {
		t.Fatal("the file is not age-encrypted")
	}
	// A second process (a new store) reads it back.
	if got, err := keystore.NewFile(path, "correct horse").Get(ctx, "device-key"); err != nil || string(got) != "PRIVATE-KEY-MATERIAL" {
		t.Fatalf("reopen: %q %v", got, err)
	}
	wrong := keystore.NewFile(path, "wrong")
	if _, err := wrong.Get(ctx, "device-key"); !errors.Is(err, keystore.ErrPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if err := wrong.Set(ctx, "x", []byte("y")); !errors.Is(err, keystore.ErrPassphrase) {
		t.Fatalf("write with wrong passphrase: %v", err)
	}
	if got, _ := keystore.NewFile(path, "correct horse").Get(ctx, "device-key"); string(got) != "PRIVATE-KEY-MATERIAL" {
		t.Fatal("a failed write changed the file")
	}
}

func TestOpenFileNeedsPassphrase(t *testing.T) {
	_, err := keystore.Open(context.Background(), keystore.Config{Kind: keystore.KindFile, FilePath: "x"})
	if !errors.Is(err, keystore.ErrUnavailable) || !strings.Contains(err.Error(), keystore.PassphraseEnv) {
		t.Fatalf("err = %v", err)
	}
	if _, err := keystore.Open(context.Background(), keystore.Config{Kind: "vault"}); err == nil {
		t.Fatal("unknown kind accepted")
	}
}

// keyringAvailable says whether this process runs inside the private
// dbus-run-session + gnome-keyring-daemon that `make test` sets up.
func keyringAvailable(t *testing.T) {
	t.Helper()
	if os.Getenv("AUTHPHONE_TEST_KEYRING") != "1" {
		t.Skip("no private Secret Service: run `make test` (it starts dbus-run-session + gnome-keyring-daemon when installed)")
	}
}

func TestOSKeyring(t *testing.T) {
	keyringAvailable(t)
	s, err := keystore.Open(context.Background(), keystore.Config{Kind: keystore.KindAuto, Profile: "test"})
	if err != nil {
		t.Fatalf("auto with a keyring: %v", err)
	}
	if s.Kind() != keystore.KindOS {
		t.Fatalf("auto picked %s", s.Kind())
	}
	contract(t, s)
	// Profiles are separate namespaces.
	ctx := context.Background()
	a, b := keystore.NewOS("phone-a"), keystore.NewOS("phone-b")
	if err := a.Set(ctx, "k", []byte("a")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Delete(ctx, "k") })
	if _, err := b.Get(ctx, "k"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("profile b sees profile a's secret: %v", err)
	}
}

// TestAutoWithoutKeyring runs a child process whose D-Bus address points
// nowhere: auto must fail with a message naming the other keystores.
func TestAutoWithoutKeyring(t *testing.T) {
	if os.Getenv("AUTHPHONE_CHILD_NO_KEYRING") == "1" {
		_, err := keystore.Open(context.Background(), keystore.Config{Kind: keystore.KindAuto, Profile: "x"})
		if err == nil {
			os.Stdout.WriteString("NO-ERROR")
			return
		}
		os.Stdout.WriteString("ERR:" + err.Error())
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAutoWithoutKeyring$")
	cmd.Env = append(os.Environ(), "AUTHPHONE_CHILD_NO_KEYRING=1",
		"DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent/authphone-test-bus", "XDG_RUNTIME_DIR=/nonexistent", "DISPLAY=")
	out, _ := cmd.Output()
	s := string(out)
	if !strings.Contains(s, "ERR:") || !strings.Contains(s, "--keystore file") || !strings.Contains(s, "AUTHPHONE_KEYSTORE_PASSPHRASE") || strings.Contains(s, "--keystore memory") {
		t.Fatalf("auto without a keyring said: %s", s)
	}
}
