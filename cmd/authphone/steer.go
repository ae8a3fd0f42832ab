package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/spf13/cobra"
)

// newBackendChaosCmd reads or switches the emulator's chaos at run time.
func newBackendChaosCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "chaos [SPEC|off]",
		Short: "Read or switch the emulator's chaos (latency, 503s, lost pushes) while it runs",
		Long: `chaos without SPEC prints the chaos in force; with SPEC
(` + cloudapi.ChaosNames + `) it switches to exactly that: settings not
named are off. "off" turns it all off. The admin API itself is never
delayed or failed, so chaos can always be switched off again.`,
		Example: `  authphone backend chaos latency=300ms,error-rate=0.2
  authphone backend chaos drop-push=1 --json
  authphone backend chaos off
  authphone backend chaos`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			var ch cloudapi.Chaos
			if len(args) == 0 {
				ch, err = c.Chaos(cmd.Context())
			} else {
				want, perr := cloudapi.ParseChaos(args[0])
				if perr != nil {
					return usageErrorf("%v", perr)
				}
				ch, err = c.SetChaos(cmd.Context(), want)
			}
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(ch)
			} else {
				a.printf("chaos: %s\n", ch)
			}
			return nil
		},
	}
}

func newBackendExportCmd(a *app) *cobra.Command {
	var secrets bool
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Print the emulator's users, authenticators and counters as JSON (a known state to import later)",
		Long: `export prints the emulator's state as one JSON document: users, their
authenticators (public keys) and sign counters, so that the same phones
keep working after 'backend import' or 'emulator --seed'. Pending
operations and tokens are not part of it. --include-secrets adds the
emulator's signing keys (private keys: keep that file like a key), so that
tokens it issued still verify after the import. With or without --json the
output is the same JSON document.`,
		Example: `  authphone backend export > state.json
  authphone backend export --include-secrets > state-with-keys.json
  authphone backend export --json | jq '.users[].username'`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			var raw []byte
			if _, err := c.Export(cmd.Context(), secrets, &raw); err != nil {
				return err
			}
			a.printRaw(raw)
			return nil
		},
	}
	cmd.Flags().BoolVar(&secrets, "include-secrets", false, "also export the emulator's signing keys (private keys, in the clear)")
	return cmd
}

func newBackendImportCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE",
		Short: "Load a state 'backend export' wrote into the running emulator",
		Long: `import writes the users, authenticators and counters of FILE (- for
standard input) into the emulator, in one transaction: all of them, or
nothing if a username or key belongs to someone else there (reset first).
Users and authenticators are matched by id, so importing twice changes
nothing. Signing keys are taken when the file has them.`,
		Example: `  authphone backend import state.json
  authphone backend export | authphone --cloud http://127.0.0.1:9000 backend import - --json`,
		Args: exactArgs(1, "the FILE to import (- for standard input)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var b []byte
			var err error
			if args[0] == "-" {
				b, err = io.ReadAll(io.LimitReader(a.io.in, adminapi.MaxImport+1))
			} else {
				b, err = readFile(args[0], "the FILE argument")
			}
			if err != nil {
				return err
			}
			if !json.Valid(b) {
				return fmt.Errorf("%s is not JSON: give a file 'authphone backend export' wrote", args[0])
			}
			c, err := a.backend()
			if err != nil {
				return err
			}
			res, err := c.Import(cmd.Context(), json.RawMessage(b))
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(res)
				return nil
			}
			keys := ""
			if res.SigningKeys {
				keys = " and the signing keys"
			}
			a.printf("imported %s and %s%s\n", plural(res.Users, "user"), plural(res.Authenticators, "authenticator"), keys)
			return nil
		},
	}
}

// exportPassphraseEnv holds the passphrase of an accounts export.
const exportPassphraseEnv = "AUTHPHONE_EXPORT_PASSPHRASE"

// exportPassphrase reads the passphrase of an accounts export: the file
// --passphrase-file names (its first line), AUTHPHONE_EXPORT_PASSPHRASE, or
// a hidden prompt. It returns "" when none of them gives one.
func (a *app) exportPassphrase(file string) (string, error) {
	if file != "" {
		b, err := readFile(file, "--passphrase-file")
		if err != nil {
			return "", err
		}
		pass, _, _ := strings.Cut(string(b), "\n")
		if pass = strings.TrimRight(pass, "\r"); pass == "" {
			return "", usageErrorf("--passphrase-file %s is empty: put the passphrase on its first line", file)
		}
		return pass, nil
	}
	if v := os.Getenv(exportPassphraseEnv); v != "" {
		return v, nil
	}
	if a.io.inTTY && a.io.readPIN != nil {
		return a.io.readPIN("Passphrase of the export: ")
	}
	return "", nil
}

func newAccountsExportCmd(a *app) *cobra.Command {
	var withKeys bool
	var passFile string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Print this phone's accounts (with --with-keys: and their keys, encrypted with a passphrase)",
		Long: `export prints the profile's accounts (cloud, user, key id, counters) as
JSON. With --with-keys it also holds each account's device key and PIN
verifier, and is encrypted with age to a passphrase (scrypt), ASCII-armored:
the passphrase comes from --passphrase-file, ` + exportPassphraseEnv + ` or a
hidden prompt, and there is no export of keys without one. 'accounts import'
reads either on another profile or machine.`,
		Example: `  authphone accounts export > accounts.json
  AUTHPHONE_EXPORT_PASSPHRASE='correct horse' authphone accounts export --with-keys > phone.age
  authphone accounts export --with-keys --passphrase-file pass.txt --json > phone.age`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			pass := ""
			if withKeys {
				var err error
				if pass, err = a.exportPassphrase(passFile); err != nil {
					return err
				}
				if pass == "" {
					return usageErrorf("--with-keys needs a passphrase: pass --passphrase-file or set %s (keys never leave unencrypted)", exportPassphraseEnv)
				}
			} else if passFile != "" {
				return usageErrorf("--passphrase-file is for --with-keys: without keys the export is not encrypted")
			}
			p, err := a.phone(cmd.Context())
			if err != nil {
				return err
			}
			out, err := p.ExportAccounts(cmd.Context(), pass)
			if err != nil {
				return err
			}
			a.printed = true // the document is the result, with or without --json
			_, err = a.io.out.Write(out)
			return err
		},
	}
	cmd.Flags().BoolVar(&withKeys, "with-keys", false, "include the device keys and PIN verifiers, encrypted with a passphrase")
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", "read the passphrase from this file's first line (else "+exportPassphraseEnv+", else a prompt)")
	return cmd
}

func newAccountsImportCmd(a *app) *cobra.Command {
	var passFile string
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Add the accounts (and keys) of an 'accounts export' to this phone",
		Long: `import adds the accounts of FILE (- for standard input) to the profile;
an account already here is replaced by the exported record (counters and
PIN failures as they were). An encrypted export (--with-keys) needs its
passphrase (--passphrase-file, ` + exportPassphraseEnv + ` or a prompt) and
brings the keys; a plain one brings the records only, which approve only
where their keys already are.`,
		Example: `  authphone --profile restored accounts import phone.age --passphrase-file pass.txt
  authphone accounts import accounts.json --json`,
		Args: exactArgs(1, "the FILE to import (- for standard input)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var b []byte
			var err error
			if args[0] == "-" {
				b, err = io.ReadAll(io.LimitReader(a.io.in, 64<<20))
			} else {
				b, err = readFile(args[0], "the FILE argument")
			}
			if err != nil {
				return err
			}
			pass := ""
			if sdk.IsEncryptedExport(b) {
				if pass, err = a.exportPassphrase(passFile); err != nil {
					return err
				}
				if pass == "" {
					return usageErrorf("%v: pass --passphrase-file or set %s", sdk.ErrPassphraseNeeded, exportPassphraseEnv)
				}
			}
			p, err := a.phone(cmd.Context())
			if err != nil {
				return err
			}
			res, err := p.ImportAccounts(cmd.Context(), b, pass)
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(res)
				return nil
			}
			what := "with their keys"
			if !res.Keys {
				what = "without keys (a plain export): they approve only where their keys already are"
			}
			a.printf("imported %s %s\n", plural(len(res.Accounts), "account"), what)
			for _, ac := range res.Accounts {
				a.printf("  %s (user %s) on %s, account %s\n", ac.Name(), ac.UserID, ac.Cloud, ac.ID)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", "read the passphrase from this file's first line (else "+exportPassphraseEnv+", else a prompt)")
	return cmd
}
