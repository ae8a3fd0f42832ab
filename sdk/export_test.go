package sdk_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/cloudapi"
)

// approveOnce runs one pushed approval of alice on p.
func (e *env) approveOnce(t *testing.T, p *sdk.Phone) flows.Update {
	t.Helper()
	if _, _, err := e.be.Approve(e.ctx, cloudapi.ApprovalRequest{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	req, err := p.Next(e.ctx, sdk.Select{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.Approve(e.ctx, req)
	_, last := run(t, f, err, flows.Answers{Confirm: true, PIN: "1234"})
	return last
}

// TestAccountsExportImport: an encrypted export brings the accounts and
// their keys to a new phone, which approves; a wrong passphrase or a
// damaged file changes nothing; a plain export holds no secret.
func TestAccountsExportImport(t *testing.T) {
	e := newEnv(t)
	orig := e.phone("orig")
	e.enrol(orig, "alice", "1234")
	if last := e.approveOnce(t, orig); last.State != flows.Done {
		t.Fatal(last.Err)
	}

	plain, err := orig.ExportAccounts(e.ctx, "")
	if err != nil || sdk.IsEncryptedExport(plain) || bytes.Contains(plain, []byte("secrets")) || !bytes.Contains(plain, []byte(`"signCounter": 1`)) {
		t.Fatalf("plain export: %v\n%s", err, plain)
	}
	sealed, err := orig.ExportAccounts(e.ctx, "correct horse")
	if err != nil || !sdk.IsEncryptedExport(sealed) || bytes.Contains(sealed, []byte("alice")) {
		t.Fatalf("encrypted export: %v\n%s", err, sealed)
	}

	keys := keystore.NewMemory()
	fresh, err := sdk.New("fresh", keys, sdk.WithStateDir(t.TempDir()), sdk.WithCloud(e.emu.URL()))
	if err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Replace(sealed, []byte("\n"), []byte("\nAAAA"), 3)
	for name, tc := range map[string]struct {
		data []byte
		pass string
		want error
	}{
		"no passphrase":    {sealed, "", sdk.ErrPassphraseNeeded},
		"wrong passphrase": {sealed, "battery staple", keystore.ErrPassphrase},
		"damaged":          {damaged, "correct horse", sdk.ErrNotExport},
		"not an export":    {[]byte(`{"version":1,"users":[]}`), "", sdk.ErrNotExport},
	} {
		if _, err := fresh.ImportAccounts(e.ctx, tc.data, tc.pass); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if accts, _ := fresh.Accounts(); len(accts) != 0 {
		t.Fatalf("a refused import added %d accounts", len(accts))
	}

	res, err := fresh.ImportAccounts(e.ctx, sealed, "correct horse")
	if err != nil || !res.Keys || len(res.Accounts) != 1 || res.Accounts[0].SignCounter != 1 {
		t.Fatalf("import: %+v %v", res, err)
	}
	if last := e.approveOnce(t, fresh); last.State != flows.Done {
		t.Fatalf("the imported phone: %v", last.Err)
	}
	// Importing again over the record puts the counter back, and the
	// cloud then refuses the stale counter like a clone's.
	if _, err := fresh.ImportAccounts(e.ctx, plain, ""); err != nil {
		t.Fatal(err)
	}
	if last := e.approveOnce(t, fresh); last.State != flows.Error {
		t.Fatal("a counter put back was accepted")
	}
}

// FuzzImportAccounts: any file given to `accounts import` is taken or
// refused with an error, never a panic; a refused one adds nothing.
func FuzzImportAccounts(f *testing.F) {
	f.Add([]byte(`{"kind":"authphone-accounts","version":1,"accounts":[{"id":"a","cloud":"http://c","userId":"u","keyId":"k"}]}`))
	f.Add([]byte(`{"kind":"authphone-accounts","version":1,"accounts":[null],"secrets":{"x":"AA=="}}`))
	f.Add([]byte("-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n"))
	f.Add([]byte("age-encryption.org/v1\n-> scrypt AAAA 10\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := sdk.New("fuzz", keystore.NewMemory(), sdk.WithStateDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.ImportAccounts(t.Context(), data, "pass"); err != nil {
			if accts, _ := p.Accounts(); len(accts) != 0 {
				t.Fatalf("a refused import added %d accounts", len(accts))
			}
		}
	})
}
